"""Convert PASCAL VOC 2012 segmentation (already downloaded and extracted) into a minseg dataset.

    python data_scripts/prepare_voc.py --root ~/data/VOCdevkit/VOC2012 --size 128
    python -c "from minseg import data; print(data.load_dataset('voc2012', 'val'))"

Reads JPEGImages/<id>.jpg, SegmentationClass/<id>.png (palette PNGs: index = class,
255 = the void border, kept as ignore), SegmentationObject/<id>.png when present
(instance ids) and the ImageSets/Segmentation/<split>.txt lists. Each image is scaled
so its longer side is --size, then padded to a square with ignore. Nothing is
downloaded, and nothing is left at --out if any file is bad.
"""
from __future__ import annotations

import argparse
import sys

import _common
from minseg.data import data_home
from minseg.data.convert import prepare_voc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="prepare_voc.py", description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="the extracted VOC2012 (or VOCdevkit) directory")
    parser.add_argument("--out", default=None, help="output directory (default <MINSEG_DATA>/voc2012)")
    parser.add_argument("--size", type=int, default=128, help="square output size (default 128)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="ImageSets lists (default train val)")
    parser.add_argument("--limit", type=int, default=None, help="keep the first N images of each split")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    out = args.out or data_home() / "voc2012"
    return _common.run("prepare_voc.py", prepare_voc, root=args.root, out=out, size=args.size,
                       splits=args.splits, limit=args.limit, overwrite=args.overwrite,
                       show_progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
