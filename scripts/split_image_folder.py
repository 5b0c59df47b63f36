"""Make a train/test image folder from a train-only one by holding out images per class (symlinks, no copies).

The shared JPEG set has only CIFAR-10's 50,000 training images; the course numbers need a test split:

    python scripts/split_image_folder.py SRC_DIR DST_DIR --test-per-class 1000

SRC_DIR holds ``train/<class>/*.jpg``; DST_DIR gets ``train/`` (the rest) and ``test/`` (the held-out
images), chosen by a seeded shuffle so everyone who runs this gets the same split.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="folder containing train/<class>/")
    ap.add_argument("dst", type=Path, help="output folder (created)")
    ap.add_argument("--test-per-class", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    src_train = args.src / "train"
    if not src_train.is_dir():
        raise SystemExit(f"error: '{src_train}' does not exist; SRC must contain train/<class>/")
    for cls_dir in sorted(p for p in src_train.iterdir() if p.is_dir()):
        files = sorted(cls_dir.iterdir())
        if len(files) <= args.test_per_class:
            raise SystemExit(f"error: '{cls_dir}' has {len(files)} images, not more than --test-per-class={args.test_per_class}")
        random.Random(f"{args.seed}-{cls_dir.name}").shuffle(files)
        for split, chosen in (("test", files[: args.test_per_class]), ("train", files[args.test_per_class :])):
            out = args.dst / split / cls_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for f in chosen:
                link = out / f.name
                if not link.exists():
                    link.symlink_to(f.resolve())
    print(f"wrote {args.dst}/train and {args.dst}/test ({args.test_per_class} test images per class)")


if __name__ == "__main__":
    main()
