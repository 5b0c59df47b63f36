"""Does ``torch.compile`` (Inductor) pay for the fast CNN on the CPU? Eager vs compiled training steps, one process.

    python bench/compile_cpu.py [--batch-size 256] [--steps 10] [--rounds 2] [--threads 1] [--recipe-steps 387]

Both sides train the same ``FastCNN`` (widths 64/256/256, channels_last, float32, as ``configs/fast_cnn.yaml``
+ ``configs/cpu.yaml`` build it) on the same random batch: forward, label-smoothed cross-entropy, backward,
SGD-Nesterov step. ``--model.compile true`` compiles the network alone (its forward and, through
AOTAutograd, its backward), so this does too. The compiled side's first step includes compiling
(``compile_s``: that step minus an eager step); then both sides alternate rounds of ``--steps`` steps and the
median step of each side is compared. Prints one JSON line: ``eager_step_s``, ``compiled_step_s``,
``speedup`` (eager / compiled), ``compile_s``, ``break_even_steps`` (steps after which compiling has paid,
null if it never does), ``recipe_steps`` and ``pays_over_recipe`` (for ``--recipe-steps`` steps of
``--recipe-batch-size`` images, the step times scaled by batch size), and ``max_abs_logit_diff`` (the two
sides' logits for the same weights and input: compile must not change the model).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_models.components.fast_cnn import FastCNN  # noqa: E402  - after the path is set


def train_step(net: torch.nn.Module, forward: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    t = time.perf_counter()
    loss = F.cross_entropy(forward(x), y, label_smoothing=0.2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def refuse_below_one(values: Sequence[tuple[str, int]]) -> None:
    for name, value in values:
        if value < 1:
            sys.exit(f"error: {name} must be at least 1, got {value}")


def random_batch(batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded images in channels_last, as the recipes lay them out, and labels."""
    torch.manual_seed(0)
    return torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last), torch.randint(0, 10, (batch_size,))


def alternating_medians(step: Callable[[str], float], sides: tuple[str, str], rounds: int, steps: int) -> dict[str, float]:
    """Rounds of ``steps`` timed steps per side, the order flipped every round so the machine's load hits both sides
    alike; the median step of each side, rounded (so every derived figure follows from the printed ones)."""
    times: dict[str, list[float]] = {side: [] for side in sides}
    for rnd in range(rounds):
        for side in (sides if rnd % 2 == 0 else sides[::-1]):
            times[side] += [step(side) for _ in range(steps)]
    return {side: round(statistics.median(t), 4) for side, t in times.items()}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per side per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--recipe-steps", type=int, default=387, help="the recipe's steps (configs/fast_cnn.yaml on 40,000 images)")
    ap.add_argument("--recipe-batch-size", type=int, default=1024)
    a = ap.parse_args(argv)
    refuse_below_one((("--batch-size", a.batch_size), ("--steps", a.steps), ("--rounds", a.rounds), ("--threads", a.threads)))
    torch.set_num_threads(a.threads)
    x, y = random_batch(a.batch_size)
    nets = {}
    for side in ("eager", "compiled"):
        torch.manual_seed(0)  # the same weights on both sides
        net = FastCNN().to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.85, nesterov=True)
        nets[side] = (net, torch.compile(net) if side == "compiled" else net, opt)
    with torch.no_grad():
        nets["eager"][0].eval(), nets["compiled"][0].eval()
        diff = (nets["eager"][1](x) - nets["compiled"][1](x)).abs().max().item()  # compiles the eval graph (not timed)
        nets["eager"][0].train(), nets["compiled"][0].train()
    first = {side: train_step(*nets[side], x, y) for side in ("eager", "compiled")}
    medians = alternating_medians(lambda side: train_step(*nets[side], x, y), ("eager", "compiled"), a.rounds, a.steps)
    eager, compiled = medians["eager"], medians["compiled"]
    compile_s = round(max(0.0, first["compiled"] - eager), 1)
    saved = eager - compiled
    scale = a.recipe_batch_size / a.batch_size
    report = {
        "batch_size": a.batch_size, "threads": a.threads, "steps": a.steps * a.rounds,
        "eager_step_s": eager, "compiled_step_s": compiled, "speedup": round(eager / compiled, 3) if compiled > 0 else None,
        "compile_s": compile_s, "break_even_steps": round(compile_s / saved) if saved > 0 else None,
        "recipe_steps": a.recipe_steps,
        "pays_over_recipe": saved > 0 and a.recipe_steps * saved * scale > compile_s,
        "max_abs_logit_diff": diff,
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
