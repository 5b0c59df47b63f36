"""Training throughput: the project's Trainer + DataModule + LightningModule vs a hand-written PyTorch loop.

    python bench/throughput.py --model {mlp,wn_mlp,vgg} --steps N --device {cpu,cuda} [--precision 32|bf16-mixed]

Both sides train the same network (``lit_models.components``) with the same optimizer, batch size,
preprocessing and augmentation on the same in-memory uint8 tensors; each is timed over ``--steps``
steps after ``--warmup`` steps, best of ``--rounds`` alternating rounds. The Lightning side keeps the
project's per-step logging and always-on callbacks (LR record, learning curves, divergence guard) and
turns off only the progress bar, checkpointing and validation. Prints one JSON line:
``{"model", "device", "lightning_img_s", "plain_img_s", "ratio" (= plain / lightning), "overhead_ms_per_step",
"ratio_median_step", "peak_rss_mb", "peak_gpu_mb"}``. ``--floor`` adds Lightning's own per-step loop cost, measured on a model
too small to compute anything, which bounds the ratio any LightningModule can reach on this machine.
Data: ``--data-dir`` if given (e.g. the shared JPEG images), else 50,000 random images written once to a temp dir.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.cpu_allocator import tune_cpu_allocator  # noqa: E402

tune_cpu_allocator()  # as train.py does; applies to both sides of the comparison (same process, forked workers)

import lightning as L  # noqa: E402

from callbacks.divergence import DivergenceGuard  # noqa: E402
from callbacks.learning_curves import LearningCurves  # noqa: E402
from callbacks.lr_schedule import LRScheduleMonitor  # noqa: E402
from datamodules import CIFAR10DataModule  # noqa: E402
from datamodules.augment import normalize, random_crop  # noqa: E402
from lit_models import MLPClassifier, VGGClassifier, WeightNormMLPClassifier  # noqa: E402

# The configs' recipes (configs/mlp.yaml, wn_mlp.yaml, vgg.yaml), minus schedule lengths.
SPECS = {
    "mlp": dict(cls=MLPClassifier, kwargs={}, opt=(torch.optim.SGD, {"lr": 2e-3}), batch=200, preprocessing="mean_image", augment=False),
    "wn_mlp": dict(cls=WeightNormMLPClassifier, kwargs={}, opt=(torch.optim.Adam, {"lr": 1e-4}), batch=200, preprocessing="standardize", augment=False),
    "vgg": dict(cls=VGGClassifier, kwargs={"label_smoothing": 0.1}, opt=(torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}),
                batch=512, preprocessing="standardize", augment=True),
}


def fake_cifar(n: int = 50_000) -> Path:
    root = Path(tempfile.mkdtemp(prefix="bench_cifar_"))
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    per = n // 5
    for name, count in [*((f"data_batch_{i}", per) for i in range(1, 6)), ("test_batch", 1000)]:
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, count).tolist()}, fh)
    return root


class StepTimer(L.Callback):
    """Wall time between the start of step ``warmup`` and the end of training, synchronised on GPU."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None
        self.stamps: list[float] = []  # every step start after warm-up (meaningful per step on the CPU only)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.warmup:
            _sync(pl_module.device)
            self.start = time.perf_counter()
        if trainer.global_step >= self.warmup:
            self.stamps.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        _sync(pl_module.device)
        self.end = time.perf_counter()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _make_model(spec: dict, args: argparse.Namespace) -> L.LightningModule:
    opt_cls, opt_kwargs = spec["opt"]
    compile_ = args.compile and args.device == "cuda"
    return spec["cls"](optimizer=lambda p: opt_cls(p, **opt_kwargs), channels_last=args.channels_last, compile=compile_, **spec["kwargs"])


def lightning_img_s(spec: dict, dm: CIFAR10DataModule, args: argparse.Namespace) -> tuple[float, float]:
    """(mean images/s over the timed steps, images/s at the median step time)."""
    torch.manual_seed(0)
    model = _make_model(spec, args)
    timer = StepTimer(args.warmup)
    with tempfile.TemporaryDirectory(prefix="bench_run_") as root:
        trainer = L.Trainer(
            accelerator=args.device, devices=1, precision=args.precision, max_steps=args.warmup + args.steps, logger=False,
            enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
            log_every_n_steps=args.log_every, callbacks=[timer, LRScheduleMonitor(), LearningCurves(), DivergenceGuard()], default_root_dir=root,
        )
        trainer.fit(model, datamodule=dm)
    return args.steps * spec["batch"] / (timer.end - timer.start), spec["batch"] / (_median_step_ms(timer.stamps, skip=0) / 1e3)


def plain_img_s(spec: dict, dm: CIFAR10DataModule, args: argparse.Namespace) -> tuple[float, float]:
    """(mean images/s over the timed steps, images/s at the median step time)."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    lit = _make_model(spec, args)
    net = lit.net.to(device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    step_net = torch.compile(net) if (args.compile and args.device == "cuda") else net
    opt_cls, opt_kwargs = spec["opt"]
    opt = opt_cls(net.parameters(), **opt_kwargs)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=spec["kwargs"].get("label_smoothing", 0.0))
    x_all, y_all = dm.train_x.to(device), dm.train_y.to(device)
    mean, std = dm.mean.to(device), None if dm.std is None else dm.std.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16-mixed")
    batch, n = spec["batch"], len(x_all)
    gen = torch.Generator(device=device).manual_seed(0)
    perm = torch.randperm(n, device=device)
    start, stamps = None, []
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            _sync(device)
            start = time.perf_counter()
        if step >= args.warmup:
            stamps.append(time.perf_counter())
        b = step % (n // batch)
        if b == 0:
            perm = torch.randperm(n, device=device)
        sel = perm[b * batch : (b + 1) * batch]
        x = normalize(x_all.index_select(0, sel), mean, std)
        if spec["augment"]:
            x = random_crop(x, 4, gen, flip=True)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss = criterion(step_net(x), y_all.index_select(0, sel))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return args.steps * batch / (time.perf_counter() - start), batch / (_median_step_ms(stamps, skip=0) / 1e3)


class _TinyBatches:
    """2,000 batches of 8 random 10-d points: steps so small that what remains is framework cost."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.batches = [(torch.randn(8, 10, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(2000)]

    def __iter__(self):  # noqa: ANN204
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _TinyModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(10, 10)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _median_step_ms(stamps: list[float], skip: int = 100) -> float:
    return 1e3 * statistics.median(b - a for a, b in zip(stamps[skip:], stamps[skip + 1 :]))


def framework_floor_ms(rounds: int) -> dict:
    """Median per-step time of a bare Lightning loop (no logger, callbacks or metrics) and of a plain loop
    on a 10x10 linear model: their difference is Lightning's own per-step cost on this machine, the floor
    under any ratio a model with steps of a few ms can reach."""
    data = _TinyBatches()
    lightning, plain = [], []
    for _ in range(rounds):
        torch.manual_seed(0)
        stamps = StepTimer(warmup=0)
        with tempfile.TemporaryDirectory(prefix="bench_run_") as root:
            L.Trainer(
                accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                enable_model_summary=False, callbacks=[stamps], default_root_dir=root,
            ).fit(_TinyModule(), train_dataloaders=data)
        lightning.append(_median_step_ms(stamps.stamps))
        net = torch.nn.Linear(10, 10)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        plain_stamps = []
        for x, y in data:
            plain_stamps.append(time.perf_counter())
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        plain.append(_median_step_ms(plain_stamps))
    return {"bare_lightning_ms_per_step": round(min(lightning), 3), "bare_plain_ms_per_step": round(min(plain), 3),
            "lightning_loop_cost_ms_per_step": round(min(lightning) - min(plain), 3)}


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(SPECS), default="mlp")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per side; the best of each is reported (this VM's noise is +-20%%)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", default=None, help="default: 32 on cpu, bf16-mixed on cuda")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile on both sides (cuda only)")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--log-every", type=int, default=50, help="Trainer log_every_n_steps (Lightning's default 50; the course configs use 1)")
    ap.add_argument("--floor", action="store_true", help="also measure Lightning's own per-step loop cost with a 10x10 model (CPU)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device available")
    args.precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32")
    spec = SPECS[args.model]
    data_dir = args.data_dir or fake_cifar()
    try:
        dm = CIFAR10DataModule(str(data_dir), download=False, batch_size=spec["batch"], preprocessing=spec["preprocessing"], augment=spec["augment"], drop_last=True)
        dm.setup("fit")
        lightning, plain = [], []
        for _ in range(args.rounds):
            plain.append(plain_img_s(spec, dm, args))
            lightning.append(lightning_img_s(spec, dm, args))
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    lightning_mean, lightning_median = (max(v) for v in zip(*lightning))
    plain_mean, plain_median = (max(v) for v in zip(*plain))
    result = {
        "model": args.model,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "precision": args.precision,
        "steps": args.steps,
        "log_every_n_steps": args.log_every,
        "lightning_img_s": round(lightning_mean, 1),
        "plain_img_s": round(plain_mean, 1),
        "ratio": round(plain_mean / lightning_mean, 3),
        # What the framework adds to each step, in absolute terms: the ratio alone hides that it is fixed.
        "overhead_ms_per_step": round(1e3 * spec["batch"] * (1 / lightning_mean - 1 / plain_mean), 3),
        # From the median step time: robust to the stalls of a shared VM, blind to rare costs (logging
        # every 50 steps), so a complement to the ratio above. CPU only: GPU steps run asynchronously.
        "ratio_median_step": round(plain_median / lightning_median, 3) if args.device == "cpu" else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if args.device == "cuda" else 0.0,
    }
    if args.floor:
        result.update(framework_floor_ms(args.rounds))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
