"""Convert COCO panoptic segmentation (already downloaded and extracted) into a minseg dataset.

    python data_scripts/prepare_coco_panoptic.py --root ~/data/coco --size 128 --limit 2000
    python -c "from minseg import data; print(data.load_dataset('coco-panoptic', 'val'))"

Reads <split>2017/*.jpg, annotations/panoptic_<split>2017.json (segments_info with
category_id and iscrowd; categories with isthing) and the PNGs in
annotations/panoptic_<split>2017/ whose colour encodes the segment id
R + 256 G + 256^2 B. Writes semantic labels (COCO categories in id order, 255 =
unlabelled) and instance ids (things 1..k, stuff and crowd 0). Use --limit: all of
train2017 does not fit in a laptop's memory. Nothing is downloaded, and nothing is
left at --out if any file is bad.
"""
from __future__ import annotations

import argparse
import sys

import _common
from minseg.data import data_home
from minseg.data.convert import prepare_coco_panoptic


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="prepare_coco_panoptic.py", description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="the COCO directory")
    parser.add_argument("--out", default=None, help="output directory (default <MINSEG_DATA>/coco-panoptic)")
    parser.add_argument("--size", type=int, default=128, help="square output size (default 128)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits (default train val)")
    parser.add_argument("--limit", type=int, default=None, help="keep the first N images of each split")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    out = args.out or data_home() / "coco-panoptic"
    return _common.run("prepare_coco_panoptic.py", prepare_coco_panoptic, root=args.root, out=out,
                       size=args.size, splits=args.splits, limit=args.limit, overwrite=args.overwrite,
                       show_progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
