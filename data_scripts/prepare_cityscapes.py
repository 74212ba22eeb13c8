"""Convert Cityscapes fine annotations (gtFine + leftImg8bit, already downloaded and extracted) into a minseg dataset.

    python data_scripts/prepare_cityscapes.py --root ~/data/cityscapes --size 128
    python -c "from minseg import data; print(data.load_dataset('cityscapes', 'val'))"

Reads leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/<split>/<city>/*_gtFine_labelIds.png
(label ids mapped to the 19 train ids, 255 = ignore, as cityscapesScripts' labels.py) and
*_gtFine_instanceIds.png (id * 1000 + i per object -> instances 1..k; crowd groups 0). Each frame
is scaled so its longer side is --size, then padded to a square with ignore. Nothing is
downloaded, and nothing is left at --out if any file is bad.
"""
from __future__ import annotations

import argparse
import sys

import _common
from minseg.data import data_home
from minseg.data.convert import prepare_cityscapes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="prepare_cityscapes.py", description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="the directory holding leftImg8bit/ and gtFine/")
    parser.add_argument("--out", default=None, help="output directory (default <MINSEG_DATA>/cityscapes)")
    parser.add_argument("--size", type=int, default=128, help="square output size (default 128)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits (default train val)")
    parser.add_argument("--limit", type=int, default=None, help="keep the first N images of each split")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    out = args.out or data_home() / "cityscapes"
    return _common.run("prepare_cityscapes.py", prepare_cityscapes, root=args.root, out=out, size=args.size,
                       splits=args.splits, limit=args.limit, overwrite=args.overwrite,
                       show_progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
