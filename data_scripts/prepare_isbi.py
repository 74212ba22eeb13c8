"""Convert the ISBI 2012 EM membrane segmentation set (the U-Net paper's data) into a minseg dataset.

    python data_scripts/prepare_isbi.py --root ~/data/isbi2012 --val 5 --test 5
    python -c "from minseg import data; print(data.load_dataset('isbi2012', 'train'))"

Reads train-volume.tif and train-labels.tif (multi-page TIFFs, 30 slices of 512x512;
label 255 = cell, 0 = membrane) and writes classes 0 = cell, 1 = membrane. The last
--val + --test slices become the val and test splits. Nothing is downloaded, and
nothing is left at --out if any file is bad.
"""
from __future__ import annotations

import argparse
import sys

import _common
from minseg.data import data_home
from minseg.data.convert import prepare_isbi


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="prepare_isbi.py", description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="directory with train-volume.tif and train-labels.tif")
    parser.add_argument("--out", default=None, help="output directory (default <MINSEG_DATA>/isbi2012)")
    parser.add_argument("--size", type=int, default=None, help="resize slices to SIZE x SIZE (default: native)")
    parser.add_argument("--val", type=int, default=5, help="slices for the val split (default 5)")
    parser.add_argument("--test", type=int, default=5, help="slices for the test split (default 5)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    out = args.out or data_home() / "isbi2012"
    return _common.run("prepare_isbi.py", prepare_isbi, root=args.root, out=out, size=args.size,
                       n_val=args.val, n_test=args.test, overwrite=args.overwrite,
                       show_progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
