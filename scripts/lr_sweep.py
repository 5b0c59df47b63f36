"""The course's learning-rate study: one model trained at N log-spaced learning rates, then compared.

    python scripts/lr_sweep.py --config configs/mlp.yaml [--num 9 --min 1e-6 --max 100] [train.py fit flags]

Each LR is a normal ``train.py fit`` run (its own run directory, checkpoints, plots, W&B offline run)
under ``--out`` (default ``runs/lr_sweep``). A run whose loss becomes NaN/inf is stopped by the
divergence guard, marked as diverged, and the sweep continues. Afterwards ``--out`` holds
``lr_sweep_best_val_acc.png`` (best validation accuracy vs LR, log x), ``lr_sweep_loss_curves.png``
(training loss per LR; diverged runs drawn dashed and marked where they diverged) and
``lr_sweep_summary.csv``; the summary table, naming the best LR, is printed.
For a W&B-hosted version of the same study see ``configs/sweeps/lr_sweep.yaml``.
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callbacks.outputs import plt, save_figure  # noqa: E402
from train import DIVERGED_EXIT_CODE  # noqa: E402


@dataclass
class SweepRun:
    lr: float
    run_dir: Path
    status: str  # ok | diverged | failed
    best_val_acc: float
    steps: list[int]
    loss: list[float]
    seconds: float


def read_csv(path: Path) -> tuple[list[int], list[float]]:
    if not path.is_file():
        return [], []
    rows = list(csv.reader(open(path)))[1:]
    return [int(r[0]) for r in rows], [float(r[1]) for r in rows]


def run_one(lr: float, index: int, args: argparse.Namespace, extra: list[str]) -> SweepRun:
    name = f"lr{index:02d}_{lr:.0e}"
    cmd = [sys.executable, str(ROOT / "train.py"), "fit", "--config", args.config, args.lr_flag, repr(lr),
           "--runs_dir", str(args.out), "--run_name", name, "--trainer.enable_progress_bar", "false", *extra]
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.time() - start
    run_dirs = sorted((args.out / name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    run_dir = run_dirs[-1] if run_dirs else args.out / name
    steps, loss = read_csv(run_dir / "train_loss.csv")
    _, val = read_csv(run_dir / "val_acc.csv")
    if proc.returncode == DIVERGED_EXIT_CODE or any(not math.isfinite(v) for v in loss):
        status = "diverged"
    elif proc.returncode != 0:
        status = "failed"
        (args.out / f"{name}.stderr.txt").write_text(proc.stderr)
    else:
        status = "ok"
    best = max((v for v in val if math.isfinite(v)), default=float("nan"))
    return SweepRun(lr, run_dir, status, best, steps, loss, seconds)


def plot(runs: list[SweepRun], out: Path) -> tuple[Path, Path]:
    fig, ax = plt.subplots(figsize=(7, 4))
    ok = [r for r in runs if r.status == "ok"]
    ax.plot([r.lr for r in ok], [r.best_val_acc for r in ok], "o-", color="tab:blue", label="completed")
    bad = [r for r in runs if r.status != "ok"]
    if bad:
        ax.plot([r.lr for r in bad], [0 if math.isnan(r.best_val_acc) else r.best_val_acc for r in bad], "x", ms=10, mew=2, color="tab:red", label="diverged / failed")
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("best validation accuracy")
    ax.set_title("LR sweep: best validation accuracy")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    acc_png = save_figure(fig, out / "lr_sweep_best_val_acc.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 1, len(runs)))
    for r, c in zip(runs, colors):
        finite = [(s, v) for s, v in zip(r.steps, r.loss) if math.isfinite(v)]
        label = f"lr={r.lr:.0e}" + ("" if r.status == "ok" else f" ({r.status})")
        style = "-" if r.status == "ok" else "--"
        if finite:
            ax.plot(*zip(*finite), style, color=c, lw=1, label=label)
        else:
            ax.plot([], [], style, color=c, label=label)
        if r.status == "diverged":
            end = next((s for s, v in zip(r.steps, r.loss) if not math.isfinite(v)), finite[-1][0] if finite else 0)
            y = finite[-1][1] if finite else 1.0
            ax.plot([end], [y], "X", color="tab:red", ms=9)
    ax.set_yscale("log")
    ok_losses = [v for r in runs if r.status == "ok" for v in r.loss if math.isfinite(v) and v > 0]
    if ok_losses and len(ok_losses) < sum(len(r.loss) for r in runs):
        # Diverged losses reach 1e30+; cap the axis so the completed runs stay readable.
        top = 10 * max(ok_losses)
        ax.set_ylim(min(ok_losses) / 2, top)
        for line in ax.lines:
            ys = line.get_ydata()
            if len(ys) == 1:  # the divergence markers: pin to the top edge
                line.set_ydata([min(float(ys[0]), top / 1.5)])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (log; diverged runs leave the top)")
    ax.set_title("LR sweep: training loss per learning rate (X = diverged)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    loss_png = save_figure(fig, out / "lr_sweep_loss_curves.png")
    return acc_png, loss_png


def main(argv: list[str] | None = None) -> list[SweepRun]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--num", type=int, default=9)
    ap.add_argument("--min", type=float, default=1e-6)
    ap.add_argument("--max", type=float, default=100.0)
    ap.add_argument("--out", type=Path, default=Path("runs/lr_sweep"))
    ap.add_argument("--lr_flag", default="--model.optimizer.init_args.lr", help="the flag that sets the LR (NumPy MLP: --model.lr)")
    args, extra = ap.parse_known_args(argv)
    if args.num < 1 or not 0 < args.min <= args.max:
        ap.error("need --num >= 1 and 0 < --min <= --max")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    lrs = np.logspace(math.log10(args.min), math.log10(args.max), args.num).tolist()
    runs = []
    for i, lr in enumerate(lrs):
        print(f"[{i + 1}/{len(lrs)}] lr={lr:.1e} ...", end=" ", flush=True)
        r = run_one(lr, i, args, extra)
        print(f"{r.status}, best val acc {r.best_val_acc:.4f}, {r.seconds:.0f}s  ({r.run_dir})", flush=True)
        runs.append(r)
    with open(args.out / "lr_sweep_summary.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["lr", "status", "best_val_acc", "final_train_loss", "steps", "seconds", "run_dir"])
        for r in runs:
            w.writerow([r.lr, r.status, r.best_val_acc, r.loss[-1] if r.loss else "", r.steps[-1] if r.steps else 0, round(r.seconds, 1), r.run_dir])
    acc_png, loss_png = plot(runs, args.out)
    print("\n| lr | status | best val acc | final train loss |\n|---:|---|---:|---:|")
    for r in runs:
        print(f"| {r.lr:.1e} | {r.status} | {r.best_val_acc:.4f} | {r.loss[-1] if r.loss else float('nan'):.4g} |")
    ok = [r for r in runs if r.status == "ok" and math.isfinite(r.best_val_acc)]
    if ok:
        best = max(ok, key=lambda r: r.best_val_acc)
        print(f"\nBest LR: {best.lr:.1e} (best val acc {best.best_val_acc:.4f}); plots: {acc_png}, {loss_png}")
    else:
        print(f"\nNo run completed; plots: {acc_png}, {loss_png}")
    return runs


if __name__ == "__main__":
    main()
