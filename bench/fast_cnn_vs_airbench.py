"""The fast CNN recipe side by side with airbench94 (or airbench94_muon) on the same data, machine and threads.

    python bench/fast_cnn_vs_airbench.py --airbench PATH --data-dir DIR --out DIR [--recipe airbench94|muon]
        [--baseline airbench94|airbench94_muon] [--device cpu|cuda] [--epochs 9.9] [--seeds 1] [--baseline-runs N]
        [--threads 2] [--config configs/fast_cnn.yaml --config configs/cpu.yaml] [--batch-size 1024]
        [--baseline-epochs E] [--baseline-batch-size B] [--baseline-precision 32|bf16-mixed] [--per-epoch] [--concurrent]
        [train.py fit flags ...]

``--recipe muon`` compares ``configs/fast_cnn_muon.yaml`` (+ ``configs/cpu.yaml`` on cpu) with
``airbench94_muon.py`` (read from the git directory's HEAD, or the file given), 8 epochs at batch 2,000 by
default. Patched the same way: on the CPU float32 (its bfloat16 Newton-Schulz too), no ``torch.compile``
and no compile warm-up run, a wall-clock timer; on both devices the run count, epochs (its
``ceil(8 * len(train_loader))`` steps) and batch size. On CUDA it runs as shipped (fp16, compiled, with its
warm-up run on random labels, which is not timed).

``--airbench``: airbench94's script, as a file or as a git directory of github KellerJordan/cifar10-airbench
(``legacy/airbench94.py`` is read from its HEAD). Its maths is not touched: on the CPU only what needs a GPU
is replaced (``.half().cuda()`` -> float32, CUDA events -> a wall-clock timer); on both devices the number of
runs, ``train_epochs`` and batch size are set from ``--baseline-runs``, ``--baseline-epochs`` and
``--baseline-batch-size``. The patched copy is kept in
``OUT/airbench/`` for reading. Its data is written from this project's own loader (``--data-dir``: any
layout the DataModule reads, with a test split), so both sides train on the same images and test on the
same held-out ones.

``--baseline`` pairs a recipe with the other script, each side with its own published epochs and batch size
(``--recipe muon --baseline airbench94``: our 8 epochs at 2,000 against airbench94's 9.9 at 1,024); the figure
to read is then ``train_seconds_ratio`` (our mean training seconds / the baseline's), not seconds per epoch. On
CUDA our first epoch includes ``torch.compile`` (airbench94_muon compiles in its untimed warm-up run): read
``train_seconds_ratio_after_epoch0`` there.

The baseline's runs (``--baseline-runs``, default ``--seeds``) and ours (``--seeds`` of them from ``--first-seed``) alternate,
or with ``--concurrent`` each side runs its own back to back at the same time as the other's, and the report
says how long the two overlapped (evaluation included): the side that ends later runs its tail on a quieter
machine. Ours is ``train.py fit --config CONFIG --trainer.max_steps ceil(epochs x
steps per epoch)`` and ``train.py test`` on its final checkpoint (the config's TTA), with the same thread
count. Speed is training seconds per epoch without evaluation on both sides (airbench's own timer, our
``epoch_log.csv``); the first epoch is left out of the mean (start-up, and ``torch.compile`` with
``configs/fast_cnn.yaml``). ``--per-epoch`` adds our per-epoch test accuracy without TTA
(``scripts/evaluate_checkpoints.py``), next to airbench's ``val_acc`` column; ours evaluates the lookahead
average, airbench the live weights (up to 4 steps past its last lookahead sync).

On the CPU both sides compute in float32 without compile by default, so the ratio compares implementations
of the same maths. On a CPU with bfloat16 hardware (AMX, AVX512-BF16) ``--config RECIPE --config
configs/cpu_bf16.yaml`` trains ours under bf16-mixed and ``--baseline-precision bf16-mixed`` puts airbench's
forward and loss under the same bfloat16 autocast (float32 weights); the report's ``precision`` says each
side's (ours read from its runs' saved configs). On CUDA airbench runs its own fp16 weights without compile and ours the config's bf16-mixed
with ``torch.compile``: the ratio then compares the two recipes as shipped. Prints one JSON line,
``{"epochs", "seeds", ..., "airbench": {...}, "fast_cnn": {...}, "seconds_per_epoch_ratio", "train_seconds_ratio", ...}``
(both ours / airbench's),
and writes ``OUT/side_by_side.md`` and ``OUT/side_by_side.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from threading import Event, Lock
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.run_layout import checkpoint, newest_run  # noqa: E402  - after the path is set

# What must match airbench's run: the whole training split, its batch size and its step count.
FIXED_FLAGS = ("--data.val_size", "--data.batch_size", "--data.drop_last", "--trainer.max_steps", "--trainer.max_epochs", "--data.data_dir")
COLUMNS = ("run", "epoch", "train_loss", "train_acc", "val_acc", "tta_val_acc", "total_time_seconds")
MUON_COLUMNS = ("run", "epoch", "train_acc", "val_acc", "tta_val_acc", "time_seconds")
TIMER = """
import time as _time
class _WallClockEvent:
    def record(self): self.t = _time.perf_counter()
    def elapsed_time(self, other): return (other.t - self.t) * 1e3
"""


def airbench_source(path: Path, upstream: str = "legacy/airbench94.py") -> str:
    if path.is_file():
        return path.read_text()
    git_dir = path / ".git" if (path / ".git").exists() else path
    res = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{upstream}"], capture_output=True, text=True)
    if res.returncode != 0:
        name = upstream.rsplit("/", 1)[-1]
        sys.exit(f"error: --airbench {path}: neither {name} nor a git directory holding {upstream} ({res.stderr.strip()})")
    return res.stdout


def apply_edits(src: str, edits: list[tuple[str, str]], script: str, threads: int) -> str:
    """Every edit must find its text: an upstream change is refused, never silently missed."""
    for old, new in edits:
        if old not in src:
            sys.exit(f"error: --airbench: {old.splitlines()[0]!r} not found; this script knows {script} as of 2024-2026")
        src = src.replace(old, new)
    return f"import torch\ntorch.set_num_threads({threads})\n{TIMER}\n{src}"


AUTOCAST = "torch.autocast('cpu', torch.bfloat16)"
PRECISIONS = ("32", "bf16-mixed")


def patch_airbench(src: str, device: str, epochs: float, runs: int, threads: int, batch_size: int = 1024, precision: str = "32") -> str:
    """Set the run count, epochs and batch size; on the CPU, float32 weights and data, a wall-clock timer, and with
    ``precision="bf16-mixed"`` its training forward and loss under bfloat16 autocast, as Lightning's bf16-mixed trains
    ours (evaluation stays float32 on both sides: ours is ``train.py test`` at its default precision). Refuses an
    upstream change that would make a replacement silently miss."""
    assert precision in PRECISIONS, precision
    edits = [("'train_epochs': 9.9", f"'train_epochs': {epochs!r}"), ("range(25)", f"range({runs})"), ("'batch_size': 1024", f"'batch_size': {batch_size}"),
             ("with open(sys.argv[0]) as f:\n        code = f.read()", "code = ''")]
    if device == "cpu":
        edits += [(".half().cuda()", ".float()"), (".half()", ".float()"), ("torch.device(gpu)", "'cpu'"),
                  ("torch.cuda.Event(enable_timing=True)", "_WallClockEvent()"), ("torch.cuda.synchronize()", "pass")]
        if precision == "bf16-mixed":
            step = "            outputs = model(inputs)\n            loss = loss_fn(outputs, labels).sum()"
            edits.append((step, f"            with {AUTOCAST}:\n    " + step.replace("\n", "\n    ")))
    return apply_edits(src, edits, "airbench94.py", threads)


def patch_airbench_muon(src: str, device: str, epochs: float, runs: int, threads: int, batch_size: int = 2000, precision: str = "32") -> str:
    """airbench94_muon.py: run count, epochs, batch size; on the CPU float32, no compile (nor its warm-up run), a wall-clock
    timer, and with ``precision="bf16-mixed"`` its training forward and loss under bfloat16 autocast (its Newton-Schulz
    stays float32, as ours on the CPU; evaluation float32, as ours)."""
    assert precision in PRECISIONS, precision
    edits = [("ceil(8 * len(train_loader))", f"ceil({epochs!r} * len(train_loader))"), ("batch_size = 2000", f"batch_size = {batch_size}"),
             ("for run in range(200)", f"for run in range({runs})"), ("with open(sys.argv[0]) as f:\n    code = f.read()", "code = ''")]
    if device == "cpu":
        edits += [("@torch.compile\ndef zeropower_via_newtonschulz5", "def zeropower_via_newtonschulz5"), ("X = G.bfloat16()", "X = G.float()"),
                  ('map_location=torch.device("cuda")', 'map_location="cpu"'), ("self.images.half()", "self.images.float()"),
                  ("mod.half()", "mod.float()"), ("CifarNet().cuda()", "CifarNet()"), ('model.compile(mode="max-autotune")', "pass"),
                  ('main("warmup", model)', "pass"), ("torch.cuda.Event(enable_timing=True)", "_WallClockEvent()"),
                  ("torch.cuda.synchronize()", "pass")]
        if precision == "bf16-mixed":
            forward = "outputs = model(inputs, whiten_bias_grad=(step < whiten_bias_train_steps))"
            loss = 'F.cross_entropy(outputs, labels, label_smoothing=0.2, reduction="sum")'
            edits.append((f"            {forward}\n            {loss}.backward()",
                          f"            with {AUTOCAST}:\n                {forward}\n                loss = {loss}\n            loss.backward()"))
    return apply_edits(src, edits, "airbench94_muon.py", threads)


@dataclass(frozen=True)
class Baseline:
    """One of airbench's scripts: its path in the repository, its patch and printed table, its published epochs and batch size."""

    upstream: str
    patch: Callable[..., str]
    columns: tuple[str, ...]
    time_column: str  # its cumulative training seconds
    epochs: float
    batch_size: int
    label: str  # in side_by_side.md


@dataclass(frozen=True)
class Recipe:
    """Our side: its config (configs/cpu.yaml is added on the CPU), the baseline it copies (whose epochs and batch size it
    takes by default) and its label in side_by_side.md and our run names."""

    config: str
    baseline: str
    label: str


BASELINES = {
    "airbench94": Baseline("legacy/airbench94.py", patch_airbench, COLUMNS, "total_time_seconds", 9.9, 1024, "airbench94"),
    "airbench94_muon": Baseline("airbench94_muon.py", patch_airbench_muon, MUON_COLUMNS, "time_seconds", 8.0, 2000, "airbench94_muon"),
}
RECIPES = {
    "airbench94": Recipe("configs/fast_cnn.yaml", "airbench94", "fast_cnn"),
    "muon": Recipe("configs/fast_cnn_muon.yaml", "airbench94_muon", "fast_cnn_muon"),
}


def write_airbench_data(data_dir: str, folder: Path) -> int:
    """airbench's format from this project's loader: uint8 NHWC images, labels, class names. Returns the train size."""
    import numpy as np
    import torch

    from datamodules.sources import CLASSES, load_cifar10

    from datamodules.sources import DataError

    try:
        raw = load_cifar10(data_dir, download=False)
    except DataError as exc:
        sys.exit(f"error: --data-dir {data_dir}: {exc}")
    if raw.test_x is None:
        sys.exit(f"error: --data-dir {data_dir} has no test split; hold one out first (scripts/split_image_folder.py)")
    folder.mkdir(parents=True, exist_ok=True)
    for split, x, y in (("train", raw.train_x, raw.train_y), ("test", raw.test_x, raw.test_y)):
        images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        torch.save({"images": images, "labels": torch.from_numpy(y.astype(np.int64)), "classes": list(CLASSES)}, folder / f"{split}.pt")
    return len(raw.train_x)


def parse_airbench_table(stdout: str, columns: tuple[str, ...] = COLUMNS) -> list[dict[str, str]]:
    """Rows of airbench's printed table; the run number is carried down to its blank cells."""
    rows, run = [], ""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(columns) or cells[1] in ("epoch", ""):
            continue
        row = dict(zip(columns, cells))
        run = row["run"] = row["run"] or run
        rows.append(row)
    return rows


def airbench_summary(rows: list[dict[str, str]], run: str, time_column: str = "total_time_seconds") -> dict:
    mine = [r for r in rows if r["run"] == run]
    epochs = [r for r in mine if r["epoch"].isdigit()]
    final = [r for r in mine if r["epoch"] == "eval"]
    totals = [float(r[time_column]) for r in epochs]  # cumulative over the run's epochs
    per_epoch = [b - a for a, b in zip([0.0, *totals], totals)]
    return {"val_acc_per_epoch": [float(r["val_acc"]) for r in epochs], "test_acc": float(final[0]["val_acc"]) if final else None,
            "test_acc_tta": float(final[0]["tta_val_acc"]) if final else None, "train_seconds_per_epoch": per_epoch}


_CHILDREN: set[subprocess.Popen] = set()  # the sides' running processes: with --concurrent, one side's failure stops the other's
_STOPPING = Event()  # ... and no side starts another process after it
_CHILDREN_LOCK = Lock()  # a process starts and is registered, or is refused, as one step against the stopping side's


def _start(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    with _CHILDREN_LOCK:
        if _STOPPING.is_set():
            sys.exit("error: not started: the other side failed")
        proc = subprocess.Popen(cmd, **kwargs)
        _CHILDREN.add(proc)
    return proc


def _wait(proc: subprocess.Popen) -> int:
    try:
        return proc.wait()
    finally:
        _CHILDREN.discard(proc)


def run_airbench(src: Path, workdir: Path, threads: int, columns: tuple[str, ...] = COLUMNS) -> list[dict[str, str]]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    log = workdir / "airbench.log"  # every run's output, in order (main() starts it empty)
    with open(log, "a") as fh:
        proc = _start([sys.executable, src.name], cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = []
        for line in proc.stdout:  # shown as it comes: a CPU run takes hours
            print(line, end="", flush=True)
            fh.write(line)
            out.append(line)
    if _wait(proc) != 0:
        sys.exit(f"error: {src.name} failed (exit {proc.returncode}); its output is in {log}")
    return parse_airbench_table("".join(out), columns)


def run_airbench_summary(src: Path, workdir: Path, threads: int, baseline: Baseline) -> dict:
    return airbench_summary(run_airbench(src, workdir, threads, baseline.columns), "0", baseline.time_column)


def train_py(*args: str, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    code = _wait(_start([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env))
    if code != 0:
        sys.exit(f"error: train.py {args[0]} failed (exit {code}): train.py {' '.join(args)}")


def run_precision(run: Path) -> str:
    """The precision our run trained in, as its saved config says (what the overlays and flags resolved to; unset is
    Lightning's default, 32-true)."""
    import yaml

    precision = (yaml.safe_load((run / "config.yaml").read_text()).get("trainer") or {}).get("precision")
    return "32" if precision in (None, "32-true", 32) else str(precision)


def run_fast_cnn(a: argparse.Namespace, seed: int, max_steps: int, flags: list[str]) -> dict:
    name = f"{RECIPES[a.recipe].label}_seed{seed}"
    runs = a.out / "runs"
    common = ["--data.data_dir", a.data_dir, "--data.download", "false", "--runs_dir", str(runs), "--trainer.enable_progress_bar", "false"]
    configs = [arg for config in a.config for arg in ("--config", str(config))]
    train_py("fit", *configs, *common, "--run_name", name, "--seed_everything", str(seed),
             "--trainer.max_steps", str(max_steps), "--trainer.max_epochs", str(math.ceil(a.epochs)), "--data.batch_size", str(a.batch_size),
             *flags, threads=a.threads)
    run = newest_run(runs, name)
    from scripts.evaluate_checkpoints import test_accuracy

    log = list(csv.DictReader(open(run / "epoch_log.csv")))
    if int(log[-1]["step"]) != max_steps:
        sys.exit(f"error: {run} stopped at step {log[-1]['step']}, not {max_steps} ({a.epochs:g} epochs): check the flags given to train.py")
    last, evals = checkpoint(run, "last"), str(a.out / "eval")
    result = {"run_dir": str(run), "precision": run_precision(run), "train_seconds_per_epoch": [float(r["train_seconds"]) for r in log],
              "test_acc": test_accuracy(last, "none", common[:4], evals)}
    if a.per_epoch:  # its last row is last.ckpt with TTA: the TTA figure, not evaluated twice
        from scripts.evaluate_checkpoints import main as evaluate_checkpoints

        rows = evaluate_checkpoints([str(run), "--data.data_dir", a.data_dir, "--data.download", "false"])
        result["val_acc_per_epoch"] = [float(r["test_acc"]) for r in rows if r["epoch"] != "final"]
        result["test_acc_tta"] = next(float(r["test_acc"]) for r in rows if r["epoch"] == "final")
    else:
        result["test_acc_tta"] = test_accuracy(last, "flip+translate", common[:4], evals)
    return result


def side_by_side(*sides: Callable[[], dict]) -> list[dict]:
    """Run the sides at once (threads that mostly wait on child processes); the first to fail stops the others'
    processes (SIGTERM: our train.py saves last.ckpt and records ``interrupted``) and its error is raised, at
    once rather than after the other side's hours."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    _STOPPING.clear()
    with ThreadPoolExecutor(len(sides)) as pool:
        futures = [pool.submit(side) for side in sides]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f.exception() for f in futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            with _CHILDREN_LOCK:
                _STOPPING.set()
                running = list(_CHILDREN)
            print(f"One side failed; stopping the other ({len(running)} process(es)).", file=sys.stderr, flush=True)
            for proc in running:
                proc.terminate()
            raise failed
    return [f.result() for f in futures]


def mean_std(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    return {"mean": statistics.fmean(values) if values else None, "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def steady_epoch_seconds(per_run: list[list[float]]) -> float:
    """Mean training seconds per epoch, leaving out the first (start-up, compile) and, with more than two
    epochs, the last (9.9 epochs end with a partial one)."""
    epochs = [s for run in per_run for s in (run[1:-1] if len(run) > 2 else run[1:] or run)]
    return statistics.fmean(epochs)


def timed(runs: list[Callable[[], dict]]) -> Callable[[], dict]:
    """One side: its runs back to back, with the wall-clock span they took (to say how long the sides overlapped)."""
    def side() -> dict:
        start = time.monotonic()
        results = [run() for run in runs]
        return {"runs": results, "wall": (start, time.monotonic())}
    return side


def alternate(*sides: list[Callable[[], dict]]) -> list[dict]:
    """Each side's i-th run, side after side, then the i+1-th: a change in the machine's load hits every side alike
    (the longer side's extra runs come last)."""
    results: list[dict] = [{"runs": []} for _ in sides]
    for i in range(max(map(len, sides))):
        for result, runs in zip(results, sides):
            if i < len(runs):
                result["runs"].append(runs[i]())
    return results


def overlap_seconds(a: tuple[float, float], b: tuple[float, float]) -> float:
    """How long two (start, end) spans ran at the same time."""
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--airbench", type=Path, required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="airbench94",
                    help="airbench94: configs/fast_cnn.yaml; muon: configs/fast_cnn_muon.yaml")
    ap.add_argument("--baseline", choices=sorted(BASELINES), default=None,
                    help="airbench's script to compare with; default: the recipe's own (legacy/airbench94.py, airbench94_muon.py). "
                         "Another one runs its own epochs and batch size, and the figure to read is train_seconds_ratio")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--epochs", type=float, default=None, help="ours (and the baseline's when it is the recipe's own); default: the recipe's (airbench94 9.9, muon 8)")
    ap.add_argument("--batch-size", type=int, default=None, help="as --epochs; default: the recipe's (airbench94 1024, muon 2000; smaller only for small data sets)")
    ap.add_argument("--baseline-epochs", type=float, default=None, help="default: --epochs for the recipe's own baseline, else the baseline's (9.9 or 8)")
    ap.add_argument("--baseline-batch-size", type=int, default=None, help="as --baseline-epochs (1024 or 2000)")
    ap.add_argument("--seeds", type=int, default=1, help="our runs, seeds --first-seed to --first-seed + N - 1")
    ap.add_argument("--first-seed", type=int, default=0, help="e.g. to add seeds to an earlier bench's (give a new --out; the report covers this run's seeds only)")
    ap.add_argument("--baseline-runs", type=int, default=None, help="the baseline's runs; default: --seeds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline-precision", choices=PRECISIONS, default="32",
                    help="cpu only: airbench's training precision (bf16-mixed: its forward and loss under bfloat16 autocast, float32 "
                         "weights, as ours with configs/cpu_bf16.yaml). Ours is its config's: e.g. --config RECIPE --config configs/cpu_bf16.yaml")
    ap.add_argument("--config", type=Path, action="append", default=None,
                    help="train.py's config files, in order (repeat it for a recipe and its overlays); default: "
                         "the recipe's (configs/fast_cnn.yaml or configs/fast_cnn_muon.yaml), plus configs/cpu.yaml on cpu")
    ap.add_argument("--per-epoch", action="store_true", help="our per-epoch test accuracy without TTA (one test run per epoch)")
    ap.add_argument("--concurrent", action="store_true",
                    help="run airbench's runs and ours at the same time (each side's runs back to back), each with --threads "
                         "(e.g. 1 each on 2 cores): about half the wall time when both sides take as long, and load from anything else slows both alike")
    a, flags = ap.parse_known_args(argv)
    for flag in flags:
        if flag.split("=")[0] in FIXED_FLAGS:
            sys.exit(f"error: {flag.split('=')[0]} is set by this benchmark (the same images on both sides, the steps from --epochs); use --epochs / --batch-size")
    recipe = RECIPES[a.recipe]
    given = {"--batch-size": a.batch_size is not None, "--baseline-batch-size": a.baseline_batch_size is not None}
    a.baseline = a.baseline or recipe.baseline
    baseline, own = BASELINES[a.baseline], a.baseline == recipe.baseline
    a.epochs = BASELINES[recipe.baseline].epochs if a.epochs is None else a.epochs
    a.batch_size = BASELINES[recipe.baseline].batch_size if a.batch_size is None else a.batch_size
    if a.baseline_epochs is None:
        a.baseline_epochs = a.epochs if own else baseline.epochs
    if a.baseline_batch_size is None:
        a.baseline_batch_size = a.batch_size if own else baseline.batch_size
    a.baseline_runs = a.seeds if a.baseline_runs is None else a.baseline_runs
    for name, value in (("--epochs", a.epochs), ("--seeds", a.seeds), ("--threads", a.threads), ("--batch-size", a.batch_size),
                        ("--baseline-epochs", a.baseline_epochs), ("--baseline-batch-size", a.baseline_batch_size), ("--baseline-runs", a.baseline_runs)):
        if not value > 0:
            sys.exit(f"error: {name} must be positive, got {value}")
    if a.first_seed < 0:
        sys.exit(f"error: --first-seed must be >= 0, got {a.first_seed}")
    if a.device == "cuda" and a.baseline_precision != "32":
        sys.exit("error: --baseline-precision is for --device cpu; on cuda airbench runs as shipped (fp16)")
    import torch

    torch.set_num_threads(a.threads)  # our evaluation runs in this process
    a.config = a.config or [ROOT / recipe.config, *([ROOT / "configs/cpu.yaml"] if a.device == "cpu" else [])]
    workdir = a.out / "airbench"
    n_train = write_airbench_data(a.data_dir, workdir / "cifar10")
    max_steps = math.ceil(a.epochs * (n_train // a.batch_size))
    for flag, batch in (("--batch-size", a.batch_size), ("--baseline-batch-size", a.baseline_batch_size)):
        if n_train // batch < 1:
            default = "" if given[flag] else f" (the default for --recipe {a.recipe} --baseline {a.baseline}; give {flag})"
            sys.exit(f"error: {flag} {batch}{default} is larger than the {n_train} training images of --data-dir {a.data_dir}")
    (workdir / "airbench.log").unlink(missing_ok=True)
    src = workdir / f"{Path(baseline.upstream).stem}_patched.py"
    src.write_text(baseline.patch(airbench_source(a.airbench, baseline.upstream), a.device, a.baseline_epochs, 1, a.threads, a.baseline_batch_size,
                                a.baseline_precision))

    run_ab = partial(run_airbench_summary, src, workdir, a.threads, baseline)
    ab_runs = [run_ab] * a.baseline_runs
    our_runs = [partial(run_fast_cnn, a, seed, max_steps, flags) for seed in range(a.first_seed, a.first_seed + a.seeds)]
    if a.concurrent:
        airbench, ours = side_by_side(timed(ab_runs), timed(our_runs))
    else:
        airbench, ours = alternate(ab_runs, our_runs)
    report = {"recipe": a.recipe, "baseline": a.baseline, "epochs": a.epochs, "steps": max_steps, "baseline_epochs": a.baseline_epochs,
              "batch_size": a.batch_size, "baseline_batch_size": a.baseline_batch_size, "seeds": a.seeds, "first_seed": a.first_seed, "baseline_runs": a.baseline_runs,
              "device": a.device, "threads": a.threads, "concurrent": a.concurrent,
              "precision": {"airbench": a.baseline_precision if a.device == "cpu" else "16 (as shipped)",
                            "fast_cnn": ",".join(sorted({r["precision"] for r in ours["runs"]}))}}
    if a.concurrent:
        (s0, e0), (s1, e1) = airbench["wall"], ours["wall"]
        report["wall_seconds"] = {"airbench": e0 - s0, "fast_cnn": e1 - s1, "overlap": overlap_seconds((s0, e0), (s1, e1))}
    for key, side in (("airbench", airbench), ("fast_cnn", ours)):
        runs = side["runs"]
        report[key] = {"test_acc": mean_std([r["test_acc"] for r in runs]), "test_acc_tta": mean_std([r["test_acc_tta"] for r in runs]),
                       "seconds_per_epoch": steady_epoch_seconds([r["train_seconds_per_epoch"] for r in runs]),
                       "train_seconds": mean_std([sum(r["train_seconds_per_epoch"]) for r in runs]),
                       "train_seconds_after_epoch0": mean_std([sum(r["train_seconds_per_epoch"][1:]) for r in runs]), "runs": runs}
    report["seconds_per_epoch_ratio"] = report["fast_cnn"]["seconds_per_epoch"] / report["airbench"]["seconds_per_epoch"]

    def ratio(key: str) -> float | None:
        theirs = report["airbench"][key]["mean"]
        return report["fast_cnn"][key]["mean"] / theirs if theirs else None

    report["train_seconds_ratio"], report["train_seconds_ratio_after_epoch0"] = ratio("train_seconds"), ratio("train_seconds_after_epoch0")
    (a.out / "side_by_side.json").write_text(json.dumps(report, indent=2))
    (a.out / "side_by_side.md").write_text(markdown(report))
    print(json.dumps({k: v for k, v in report.items() if k not in ("airbench", "fast_cnn")}
                     | {k: {m: report[k][m] for m in ("test_acc", "test_acc_tta", "seconds_per_epoch", "train_seconds")} for k in ("airbench", "fast_cnn")}))
    return report


def markdown(report: dict) -> str:
    def acc(s: dict) -> str:
        return "–" if s["mean"] is None else f"{s['mean']:.4f}" + (f" ± {s['std']:.4f}" if s["n"] > 1 else "")

    labels = {"airbench": BASELINES[report["baseline"]].label, "fast_cnn": RECIPES[report["recipe"]].label}
    runs = {"airbench": report["baseline_runs"], "fast_cnn": report["seeds"]}
    epochs = {"airbench": (report["baseline_epochs"], report["baseline_batch_size"]), "fast_cnn": (report["epochs"], report["batch_size"])}
    lines = [f"ours {report['steps']} steps, {report['device']}, {report['threads']} thread(s)" + (" each, both sides at the same time" if report.get("concurrent") else ""),
             "", "| side | runs | epochs (batch) | precision | test acc | test acc (TTA) | train s / epoch | train s (total) |", "|---|---|---|---|---|---|---|---|"]
    for key in ("airbench", "fast_cnn"):
        r = report[key]
        lines.append(f"| {labels[key]} | {runs[key]} | {epochs[key][0]:g} ({epochs[key][1]}) | {report.get('precision', {}).get(key, '–')} "
                     f"| {acc(r['test_acc'])} | {acc(r['test_acc_tta'])} "
                     f"| {r['seconds_per_epoch']:.1f} | {r['train_seconds']['mean']:.0f} |")

    def ratio(key: str) -> str:
        return "–" if report[key] is None else f"{report[key]:.3f}"

    lines += ["", f"{labels['fast_cnn']} / {labels['airbench']}: seconds per epoch **{ratio('seconds_per_epoch_ratio')}**, "
              f"training seconds **{ratio('train_seconds_ratio')}** (after epoch 0: {ratio('train_seconds_ratio_after_epoch0')})"]
    if "wall_seconds" in report:
        w = report["wall_seconds"]
        lines.append(f"(wall: {w['airbench']:.0f} s and {w['fast_cnn']:.0f} s, {w['overlap']:.0f} s of them at the same time)")
    precision = report.get("precision", {})
    if report["device"] == "cpu" and precision and precision["airbench"] != precision["fast_cnn"]:
        lines.append(f"The sides trained in different precisions ({labels['airbench']} {precision['airbench']}, {labels['fast_cnn']} "
                     f"{precision['fast_cnn']}): the ratio compares recipes, not implementations of the same maths (--baseline-precision)")
    lines.append("")
    per_epoch = [(f"{labels[k]} run {i}" if k == "airbench" else Path(r["run_dir"]).parent.name, r["val_acc_per_epoch"])
                 for k in ("airbench", "fast_cnn") for i, r in enumerate(report[k]["runs"]) if "val_acc_per_epoch" in r]
    if per_epoch:  # airbench's always (its table has them), ours with --per-epoch
        lines += ["Per-epoch test accuracy without TTA:", ""] + [f"- {name}: " + ", ".join(f"{v:.4f}" for v in vals) for name, vals in per_epoch]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
