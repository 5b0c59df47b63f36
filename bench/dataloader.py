"""Data pipeline speed: the project's in-memory loader vs torchvision's standard pipeline, same images.

    python bench/dataloader.py [--data-dir DIR] [--batches 200] [--batch-size 256] [--workers 2]

Both sides produce training batches with random crop (padding 4), horizontal flip and per-channel
normalisation, as float tensors on the CPU:

* project: ``CIFAR10DataModule(augment=True).train_dataloader()`` (uint8 tensor in memory, batched ops);
* torchvision: ``ImageFolder`` (``train/<class>/*.jpg|png``, decoded per image) or, when DIR holds the
  official batches, ``torchvision.datasets.CIFAR10`` (PIL per image), with ``transforms`` and
  ``DataLoader(num_workers=2, shuffle=True)``.

Timed after ``--warmup`` batches; prints one JSON line with batches/s for both and the ratio.
Without ``--data-dir`` a folder of 10,000 random PNGs is made in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.cpu_allocator import tune_cpu_allocator  # noqa: E402

tune_cpu_allocator()  # as train.py does; applies to both sides of the comparison (same process, forked workers)

from datamodules import CLASSES, CIFAR10DataModule  # noqa: E402


def fake_folder(per_class: int = 1000) -> Path:
    from PIL import Image

    root = Path(tempfile.mkdtemp(prefix="bench_folder_"))
    rng = np.random.default_rng(0)
    for c in CLASSES:
        (root / "train" / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "train" / c / f"{i:04d}.png")
    return root


def rate(iterable, batches: int, warmup: int) -> float:  # noqa: ANN001
    it = iter(iterable)
    done = 0
    start = None
    while done < warmup + batches:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(iterable)
            continue
        assert batch[0].dtype == torch.float32
        done += 1
        if done == warmup:
            start = time.perf_counter()
    return batches / (time.perf_counter() - start)


def torchvision_loader(data_dir: Path, mean: list[float], std: list[float], batch_size: int, workers: int) -> tuple[str, torch.utils.data.DataLoader]:
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(mean, std)])
    if (data_dir / "cifar-10-batches-py").is_dir():
        ds, name = datasets.CIFAR10(str(data_dir), train=True, transform=tf, download=False), "torchvision CIFAR10"
    else:
        ds, name = datasets.ImageFolder(str(data_dir / "train"), transform=tf), "torchvision ImageFolder"
    return name, torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True, persistent_workers=workers > 0)


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per side; the best of each is reported")
    args = ap.parse_args()
    data_dir = args.data_dir or fake_folder()

    try:
        dm = CIFAR10DataModule(str(data_dir), download=False, batch_size=args.batch_size, augment=True, val_size=0, drop_last=True)
        dm.setup("fit")
        mean = (dm.mean.flatten() / 255).tolist()
        std = (dm.std.flatten() / 255).tolist()
        name, tv_loader = torchvision_loader(data_dir, mean, std, args.batch_size, args.workers)
        ours, theirs = 0.0, 0.0
        for _ in range(args.rounds):
            ours = max(ours, rate(dm.train_dataloader(), args.batches, args.warmup))
            theirs = max(theirs, rate(tv_loader, args.batches, args.warmup))
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    result = {
        "data": str(data_dir),
        "batch_size": args.batch_size,
        "project_batches_s": round(ours, 1),
        "baseline": f"{name} + transforms + DataLoader(num_workers={args.workers})",
        "baseline_batches_s": round(theirs, 1),
        "ratio": round(ours / theirs, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
