"""A whole run as a user runs it, against a plain PyTorch script of the same recipe; a study against a plain loop.

    python bench/end_to_end.py --data_dir /tmp/cifar10-holdout [--rounds 3] [--steps 1500] [--skip-study]

In one invocation, alternating rounds (ours, plain; the next round plain first), each a fresh process:

* **single run**: ``train.py fit --config configs/mlp.yaml`` then ``train.py test --ckpt_path <its best.ckpt>``
  (README, "Models and results"), with the default logger (W&B offline) and with ``--trainer.logger false``;
  against :func:`plain_recipe`: PIL decodes the same image folder into one tensor, then the same MLP
  (3072-100-10, ReLU, ``nn.Linear``'s init), SGD lr 2e-3, batch 200, the same steps, pixels minus the mean
  training image, 5,000 validation images checked every 100 steps, the best validation weights tested on
  the 10,000 test images; it stops at a non-finite loss, as the run's divergence guard does.
* **study**: ``scripts/study.py`` on a study file written here (``configs/mlp.yaml`` at the nine learning
  rates of ``configs/studies/lr.yaml``, seed 0, ``test: true``, ``--jobs 2``), its runs as subprocesses
  (``--no-fork``) and, as a second side, forked from the study process (``--fork``, the default), against the same nine runs of
  :func:`plain_recipe` in one process (data decoded once).

Prints one JSON line per measurement and a summary line: best (min) and median wall time per side over the
rounds, the ratios (goals: <= 1.3x for the single run, <= 1.2x for the study) and a breakdown next to each
(imports, setup, data, training, validation, test, outputs, shutdown), read from the runs' own records
(``CIFAR_PHASES_FILE``, ``callbacks/phase_times.py``), never from console text. ``cpu_s`` is the CPU time of
the measured process tree (less sensitive to a busy machine than wall time). ``--repo DIR`` measures
``train.py`` of another checkout (an older commit, say) with this bench; a checkout without
``callbacks/phase_times.py`` gives walls without a breakdown.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.run_layout import checkpoint, newest_run  # noqa: E402  - after the path is set
LRS = (1.0e-6, 1.0e-5, 1.0e-4, 1.0e-3, 1.0e-2, 1.0e-1, 1.0, 10.0, 100.0)  # configs/studies/lr.yaml
RECIPE_LR = 2e-3  # configs/mlp.yaml
PHASES_ENV = "CIFAR_PHASES_FILE"  # callbacks/phase_times.py (not imported: the bench stays a plain script)
GOALS = {"single_run": 1.3, "study": 1.2}


# --------------------------------------------------------------------------- the plain script
def plain_recipe(data_dir: Path, steps: int, lrs: list[float], phases_file: Path, val_size: int = 5000) -> None:
    """The course MLP recipe written by hand, one run per learning rate, data decoded once; phases to a file."""
    import copy

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torch import nn

    marks = {"start": time.monotonic()}
    loops = {"validation_s": 0.0, "test_s": 0.0}

    def load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        classes = sorted(p.name for p in (data_dir / split).iterdir() if p.is_dir())
        files = [(f, y) for y, c in enumerate(classes) for f in sorted((data_dir / split / c).iterdir())]
        x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f, _ in files])  # N, 32, 32, 3 uint8
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.tensor([y for _, y in files])

    x, y = load("train")
    x_test, y_test = load("test")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    mean = x[train_idx].double().mean(0).float()  # the mean training image, 0..255 units
    marks["data"] = time.monotonic()

    def accuracy(model: nn.Module, xs: torch.Tensor, ys: torch.Tensor) -> float:
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(xs[i:i + 1000].float() - mean).argmax(1) == ys[i:i + 1000]).sum()) for i in range(0, len(xs), 1000))
        model.train()
        return correct / len(xs)

    results = []
    x_val, y_val = x[val_idx], y[val_idx]
    for lr in lrs:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3072, 100), nn.ReLU(), nn.Linear(100, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        step, best_acc, best_state, status = 0, -1.0, None, "completed"
        while step < steps and status == "completed":
            order = train_idx[torch.randperm(len(train_idx))]
            for i in range(0, len(order), 200):
                batch = order[i:i + 200]
                loss = F.cross_entropy(model(x[batch].float() - mean), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                if not math.isfinite(loss.item()):
                    status = "diverged"
                    break
                if step % 100 == 0 or step == steps:
                    started = time.monotonic()
                    acc = accuracy(model, x_val, y_val)
                    if acc > best_acc:
                        best_acc, best_state = acc, copy.deepcopy(model.state_dict())
                    loops["validation_s"] += time.monotonic() - started
                if step == steps:
                    break
        result = {"lr": lr, "status": status, "steps": step, "best_val_acc": best_acc}
        if status == "completed" and best_state is not None:
            started = time.monotonic()
            model.load_state_dict(best_state)
            result["test_acc"] = accuracy(model, x_test, y_test)
            loops["test_s"] += time.monotonic() - started
        results.append(result)
    marks["exit"] = time.monotonic()
    phases_file.write_text(json.dumps({"clock": "monotonic", "command": "plain", "marks": marks, **loops, "results": results}) + "\n")


# --------------------------------------------------------------------------- measuring one command
def measure(cmd: list[str], cwd: Path, log: Path, phases: str | None = None) -> dict[str, Any]:
    """Wall and CPU time of one process tree; ``phases``: the CIFAR_PHASES_FILE it writes."""
    env = {k: v for k, v in os.environ.items() if k not in ("CIFAR_RUN_DIR", "CIFAR_RESUME_CKPT", PHASES_ENV)}
    env.setdefault("WANDB_MODE", "offline")
    if phases:
        env[PHASES_ENV] = phases
    with open(log, "w") as out:
        launched = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        ended = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(map(str, cmd))} exited with {proc.returncode}; see {log}")
    return {"launched": launched, "ended": ended, "wall_s": round(ended - launched, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}


def read_phases(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def breakdown(record: dict[str, Any] | None, launched: float, ended: float) -> dict[str, float]:
    """One process's wall time split into imports, setup, data, training, validation, test, outputs."""
    if record is None:
        return {}
    m = record["marks"]
    val = record.get("validation_s", 0.0) + record.get("sanity_check_s", 0.0)
    parts = {"imports": m["start"] - launched, "data": m["data"] - m.get("built", m["start"])}
    if "built" in m:
        parts["setup"] = m["built"] - m["start"]  # parsing, run directory, objects, loggers (W&B init)
    if record.get("command") == "plain":
        parts.update(training=m["exit"] - m["data"] - val - record["test_s"], validation=val, test=record["test_s"])
    trained = m.get("train_end", m.get("stopped", m["exit"]))  # a diverged fit stops without train_end
    if "train_start" in m:
        parts["setup"] += m["train_start"] - m["data"] - record.get("sanity_check_s", 0.0)  # model to device, optimizer, restore
        parts.update(training=trained - m["train_start"] - record["validation_s"], validation=val)
    elif "test_start" in m:
        parts["setup"] += m["test_start"] - m["data"]
        parts["test"] = record["test_s"]
    end = trained if "train_start" in m else m.get("test_end", m["exit"])
    parts["outputs"] = m["exit"] - end if record.get("command") != "plain" else 0.0  # figures, last checkpoints, loggers finished, status
    parts["shutdown"] = ended - m["exit"]  # the interpreter's exit (atexit hooks, library teardown)
    return {k: round(v, 3) for k, v in parts.items()}


def add(total: dict[str, float], part: dict[str, float]) -> dict[str, float]:
    return {k: round(total.get(k, 0.0) + part.get(k, 0.0), 3) for k in {*total, *part}}


# --------------------------------------------------------------------------- the four sides
class Bench:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.args, self.work, self.repo = args, work, args.repo.resolve()
        self.python = sys.executable

    def _recipe_flags(self) -> list[str]:
        """Nothing for the recipe as shipped; --steps and --val_size where they differ from it."""
        return ([] if self.args.steps == 1500 else ["--trainer.max_steps", str(self.args.steps)]) + \
            ([] if self.args.val_size == 5000 else ["--data.val_size", str(self.args.val_size)])

    def ours_run(self, tag: str, logger: bool) -> dict[str, Any]:
        """fit, then test of its best checkpoint, as the README's commands; two processes."""
        runs = self.work / "runs"
        name = f"{tag}-{'wandb' if logger else 'nologger'}"
        common = ["--data.data_dir", str(self.args.data_dir), *([] if logger else ["--trainer.logger", "false"])]
        fit_cmd = [self.python, "train.py", "fit", "--config", "configs/mlp.yaml", *common, *self._recipe_flags(), "--runs_dir", str(runs), "--run_name", name]
        fit = measure(fit_cmd, self.repo, self.work / f"{name}-fit.log", str(self.work / f"{name}-fit.json"))
        best = checkpoint(newest_run(runs, name), "best")
        test_cmd = [self.python, "train.py", "test", "--ckpt_path", str(best), *common, "--runs_dir", str(runs)]
        test = measure(test_cmd, self.repo, self.work / f"{name}-test.log", str(self.work / f"{name}-test.json"))
        fit_parts = breakdown(read_phases(self.work / f"{name}-fit.json"), fit["launched"], fit["ended"])
        test_parts = breakdown(read_phases(self.work / f"{name}-test.json"), test["launched"], test["ended"])
        return {"side": "ours_run_wandb" if logger else "ours_run_nologger", "wall_s": round(fit["wall_s"] + test["wall_s"], 3),
                "fit_wall_s": fit["wall_s"], "test_wall_s": test["wall_s"], "cpu_s": round(fit["cpu_s"] + test["cpu_s"], 3),
                "fit_cpu_s": fit["cpu_s"], "test_cpu_s": test["cpu_s"], "breakdown": add(fit_parts, test_parts),
                "fit_breakdown": fit_parts, "test_breakdown": test_parts}

    def plain(self, tag: str, lrs: list[float], side: str) -> dict[str, Any]:
        phases = self.work / f"{tag}-{side}.json"
        cmd = [self.python, str(Path(__file__).resolve()), "plain", "--data_dir", str(self.args.data_dir), "--steps", str(self.args.steps),
               "--val_size", str(self.args.val_size), "--lrs", *map(str, lrs), "--phases", str(phases)]
        res = measure(cmd, ROOT, self.work / f"{tag}-{side}.log")
        record = read_phases(phases)
        out = {"side": side, "wall_s": res["wall_s"], "cpu_s": res["cpu_s"], "breakdown": breakdown(record, res["launched"], res["ended"])}
        out["runs"] = record["results"] if record else None
        return out

    def study_file(self) -> Path:
        import yaml

        path = self.work / "bench_lr_study.yaml"
        fixed = {**({"trainer.max_steps": self.args.steps} if self.args.steps != 1500 else {}),
                 **({"data.val_size": self.args.val_size} if self.args.val_size != 5000 else {})}
        spec = {"name": "bench_lr", "config": str(self.repo / "configs" / "mlp.yaml"), **({"flags": fixed} if fixed else {}),
                "grid": {"model.init_args.optimizer.init_args.lr": list(LRS)}, "seeds": [0], "metric": "val/acc", "test": True}
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    def ours_study(self, tag: str, fork: bool = False) -> dict[str, Any]:
        """``scripts/study.py``, its runs as subprocesses (``--no-fork``) or, with ``fork``, forked (``--fork``, the default)."""
        name = f"{tag}-study{'-fork' if fork else ''}"
        out_dir, phases_dir = self.work / name, self.work / f"{name}-phases"
        phases_dir.mkdir()
        cmd = [self.python, "scripts/study.py", str(self.study_file()), "--out", str(out_dir), "--jobs", str(self.args.jobs),
               "--data.data_dir", str(self.args.data_dir), "--fork" if fork else "--no-fork"]
        res = measure(cmd, self.repo, self.work / f"{name}.log", str(phases_dir / "{pid}.json"))
        runs = [r for p in sorted(phases_dir.glob("*.json")) if (r := read_phases(p))]
        per_run: dict[str, float] = {}
        for record in runs:  # the study launches them: from their imports' end to their exit mark (interpreter start, imports and shutdown not seen)
            per_run = add(per_run, breakdown(record, record["marks"]["start"], record["marks"]["exit"]))
        per_run.pop("imports", None)
        return {"side": "ours_study_fork" if fork else "ours_study", "wall_s": res["wall_s"], "cpu_s": res["cpu_s"], "processes": len(runs),
                "summed_over_processes": per_run}


# --------------------------------------------------------------------------- rounds and summary
def summarize(results: list[dict[str, Any]], ours: str, plain: str, goal: float) -> dict[str, Any]:
    a = [r for r in results if r["side"] == ours]
    b = [r for r in results if r["side"] == plain]
    if not a or not b:
        return {}
    best_a, best_b = min(a, key=lambda r: r["wall_s"]), min(b, key=lambda r: r["wall_s"])
    med_a, med_b = statistics.median(r["wall_s"] for r in a), statistics.median(r["wall_s"] for r in b)
    return {
        "ours": ours, "plain": plain, "rounds": len(a),
        "ours_best_s": best_a["wall_s"], "plain_best_s": best_b["wall_s"], "ratio_best": round(best_a["wall_s"] / best_b["wall_s"], 3),
        "ours_median_s": med_a, "plain_median_s": med_b, "ratio_median": round(med_a / med_b, 3),
        "ratio_cpu_best": round(min(r["cpu_s"] for r in a) / min(r["cpu_s"] for r in b), 3),
        "goal": goal,
        "ours_breakdown": best_a.get("breakdown") or best_a.get("summed_over_processes"), "plain_breakdown": best_b.get("breakdown"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["plain"]:
        ap = argparse.ArgumentParser()
        ap.add_argument("--data_dir", type=Path, required=True)
        ap.add_argument("--steps", type=int, required=True)
        ap.add_argument("--lrs", type=float, nargs="+", required=True)
        ap.add_argument("--phases", type=Path, required=True)
        ap.add_argument("--val_size", type=int, default=5000)
        a = ap.parse_args(argv[1:])
        plain_recipe(a.data_dir, a.steps, a.lrs, a.phases, a.val_size)
        return {}
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data_dir", "--data-dir", type=Path, required=True, help="an image folder with train/ and test/ (e.g. /tmp/cifar10-holdout)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; best and median per side are reported")
    ap.add_argument("--steps", type=int, default=1500, help="training steps per run (the recipe's 1,500; fewer for a quick check)")
    ap.add_argument("--skip-study", action="store_true", help="only the single run")
    ap.add_argument("--val_size", type=int, default=5000, help="validation images (the recipe's 5,000; fewer for tiny data)")
    ap.add_argument("--jobs", type=int, default=2, help="the study's --jobs")
    ap.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose train.py and scripts/study.py are measured")
    ap.add_argument("--work", type=Path, default=None, help="where runs and logs go (default: a temporary folder, kept)")
    args = ap.parse_args(argv)
    if not (args.data_dir / "train").is_dir() or not (args.data_dir / "test").is_dir():
        ap.error(f"--data_dir '{args.data_dir}' must hold train/<class>/ and test/<class>/ image folders")
    work = (args.work or Path(tempfile.mkdtemp(prefix="end_to_end_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, work)
    print(json.dumps({"work": str(work), "repo": str(bench.repo), "steps": args.steps, "rounds": args.rounds, "load_average": os.getloadavg()}), flush=True)
    results: list[dict[str, Any]] = []

    def record(result: dict[str, Any], rnd: int) -> None:
        result = {"round": rnd, **result, "load_average": round(os.getloadavg()[0], 2)}
        results.append(result)
        print(json.dumps(result), flush=True)

    for rnd in range(args.rounds):
        tag = f"r{rnd}"
        single = [lambda: bench.ours_run(tag, logger=True), lambda: bench.ours_run(tag, logger=False), lambda: bench.plain(tag, [RECIPE_LR], "plain_run")]
        study = [] if args.skip_study else [lambda: bench.ours_study(tag), lambda: bench.ours_study(tag, fork=True), lambda: bench.plain(tag, list(LRS), "plain_study")]
        for group in (single, study):
            for side in (group if rnd % 2 == 0 else group[::-1]):  # A B, then B A: a drifting load favours neither side
                record(side(), rnd)
    summary = {
        "summary": True,
        "single_run_wandb": summarize(results, "ours_run_wandb", "plain_run", GOALS["single_run"]),
        "single_run_nologger": summarize(results, "ours_run_nologger", "plain_run", GOALS["single_run"]),
        "study": summarize(results, "ours_study", "plain_study", GOALS["study"]),
        "study_fork": summarize(results, "ours_study_fork", "plain_study", GOALS["study"]),
        "load_average_end": os.getloadavg(),
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
