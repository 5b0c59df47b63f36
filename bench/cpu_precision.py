"""Does bf16-mixed pay for the fast CNN on this CPU? float32 vs bfloat16-autocast training steps, one process.

    python bench/cpu_precision.py [--batch-size 500] [--steps 2] [--rounds 2] [--threads 1] [--optimizer muon|sgd] [--widths 64 256 256]

Both sides train the same ``FastCNN`` (widths 64/256/256, channels_last, as ``configs/fast_cnn_muon.yaml`` builds
it) from the same weights on the same random batch: forward, label-smoothed cross-entropy, backward, optimizer
step (``--optimizer muon``: ``MuonWithSGD`` with its defaults, whose Newton-Schulz runs in float32 on the CPU;
``sgd``: SGD-Nesterov as ``configs/fast_cnn.yaml``). The bfloat16 side runs the forward under
``torch.autocast("cpu", torch.bfloat16)``, as Lightning's ``bf16-mixed`` does, with float32 weights and optimizer
state: ``configs/cpu_bf16.yaml`` against ``configs/cpu.yaml``. After one untimed step each, the sides alternate
rounds of ``--steps`` steps and the median step of each is compared. Prints one JSON line: ``float32_step_s``,
``bf16_step_s``, ``speedup`` (float32 / bf16), ``bfloat16_hardware`` (AVX512-BF16 or AMX: without it bfloat16 is
emulated, which is expected to be slower than float32; not measured here), ``cpu_capability`` and ``max_abs_logit_diff`` (the two sides' logits for the
same weights and input, in eval mode: what bfloat16 rounding changes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.compile_cpu import alternating_medians, random_batch, refuse_below_one  # noqa: E402  - after the path is set
from core.torch_internals import cpu_has_bfloat16_hardware  # noqa: E402
from lit_models.components.fast_cnn import FastCNN  # noqa: E402
from lit_models.components.muon import MuonWithSGD  # noqa: E402

SIDES = ("float32", "bf16")


def precision_context(side: str) -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16) if side == "bf16" else contextlib.nullcontext()


def train_step(net: torch.nn.Module, opt: torch.optim.Optimizer, side: str, x: torch.Tensor, y: torch.Tensor) -> float:
    t = time.perf_counter()
    with precision_context(side):  # the loss too, as Lightning's training_step runs under autocast
        loss = F.cross_entropy(net(x), y, label_smoothing=0.2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per side per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--optimizer", choices=("muon", "sgd"), default="muon")
    ap.add_argument("--widths", type=int, nargs=3, default=[64, 256, 256])
    a = ap.parse_args(argv)
    refuse_below_one((("--batch-size", a.batch_size), ("--steps", a.steps), ("--rounds", a.rounds), ("--threads", a.threads),
                      *((f"--widths {i + 1}", w) for i, w in enumerate(a.widths))))
    torch.set_num_threads(a.threads)
    x, y = random_batch(a.batch_size)
    nets = {}
    for side in SIDES:
        torch.manual_seed(0)  # the same weights on both sides
        net = FastCNN(widths=a.widths).to(memory_format=torch.channels_last)
        if a.optimizer == "muon":
            opt: torch.optim.Optimizer = MuonWithSGD(net.parameters())
        else:
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.85, nesterov=True)
        nets[side] = (net, opt)
    with torch.no_grad():
        logits = {}
        for side in SIDES:
            nets[side][0].eval()
            with precision_context(side):
                logits[side] = nets[side][0](x).float()
            nets[side][0].train()
        diff = (logits["float32"] - logits["bf16"]).abs().max().item()
    for side in SIDES:
        train_step(*nets[side], side, x, y)  # first steps: allocator and oneDNN kernel selection, not timed
    medians = alternating_medians(lambda side: train_step(*nets[side], side, x, y), SIDES, a.rounds, a.steps)
    float32, bf16 = medians["float32"], medians["bf16"]
    report = {
        "batch_size": a.batch_size, "threads": a.threads, "steps": a.steps * a.rounds, "optimizer": a.optimizer,
        "float32_step_s": float32, "bf16_step_s": bf16, "speedup": round(float32 / bf16, 3) if bf16 > 0 else None,
        "bfloat16_hardware": cpu_has_bfloat16_hardware(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "max_abs_logit_diff": diff,
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
