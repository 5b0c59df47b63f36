"""Training throughput: the project's Trainer + DataModule + LightningModule vs a hand-written PyTorch loop.

    python bench/throughput.py --model {mlp,wn_mlp,vgg} --steps N --device {cpu,cuda} [--precision 32|bf16-mixed]

Both sides train the same network (``lit_models.components``) with the same optimizer, batch size,
preprocessing and augmentation on the same in-memory uint8 tensors; each is timed over ``--steps``
steps after ``--warmup`` steps, best of ``--rounds`` alternating rounds. The Lightning side keeps the
project's per-step logging and always-on callbacks (LR record, learning curves, divergence guard) and
turns off only the progress bar, checkpointing and validation. Prints one JSON line:
``{"model", "device", "lightning_img_s", "plain_img_s", "ratio" (= plain / lightning), "peak_rss_mb", "peak_gpu_mb"}``.
Data: ``--data-dir`` if given (e.g. the shared JPEG images), else 50,000 random images written once to a temp dir.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train import tune_cpu_allocator  # noqa: E402

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

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.warmup:
            _sync(pl_module.device)
            self.start = time.perf_counter()

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


def lightning_img_s(spec: dict, dm: CIFAR10DataModule, args: argparse.Namespace) -> float:
    torch.manual_seed(0)
    model = _make_model(spec, args)
    timer = StepTimer(args.warmup)
    trainer = L.Trainer(
        accelerator=args.device, devices=1, precision=args.precision, max_steps=args.warmup + args.steps, logger=False,
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        log_every_n_steps=args.log_every, callbacks=[timer, LRScheduleMonitor(), LearningCurves(), DivergenceGuard()], default_root_dir=tempfile.mkdtemp(),
    )
    trainer.fit(model, datamodule=dm)
    return args.steps * spec["batch"] / (timer.end - timer.start)


def plain_img_s(spec: dict, dm: CIFAR10DataModule, args: argparse.Namespace) -> float:
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
    start = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            _sync(device)
            start = time.perf_counter()
        b = step % (n // batch)
        if b == 0:
            perm = torch.randperm(n, device=device)
        sel = perm[b * batch : (b + 1) * batch]
        x = normalize(x_all[sel], mean, std)
        if spec["augment"]:
            x = random_crop(x, 4, gen, flip=True)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss = criterion(step_net(x), y_all[sel])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return args.steps * batch / (time.perf_counter() - start)


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(SPECS), default="mlp")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", default=None, help="default: 32 on cpu, bf16-mixed on cuda")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile on both sides (cuda only)")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--log-every", type=int, default=50, help="Trainer log_every_n_steps (Lightning's default 50; the course configs use 1)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device available")
    args.precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32")
    spec = SPECS[args.model]
    data_dir = args.data_dir or fake_cifar()
    dm = CIFAR10DataModule(str(data_dir), download=False, batch_size=spec["batch"], preprocessing=spec["preprocessing"], augment=spec["augment"], drop_last=True)
    dm.setup("fit")
    lightning, plain = [], []
    for _ in range(args.rounds):
        plain.append(plain_img_s(spec, dm, args))
        lightning.append(lightning_img_s(spec, dm, args))
    result = {
        "model": args.model,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "precision": args.precision,
        "steps": args.steps,
        "log_every_n_steps": args.log_every,
        "lightning_img_s": round(max(lightning), 1),
        "plain_img_s": round(max(plain), 1),
        "ratio": round(max(plain) / max(lightning), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if args.device == "cuda" else 0.0,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
