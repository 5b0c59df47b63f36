"""``scripts/study.py STUDY.yaml [--out DIR] [--jobs N] [--export-wandb-sweep [PATH]] [train.py fit flags ...]``

Runs every cell x seed of a study as a normal ``train.py fit`` run under ``DIR/<cell>/seed<k>/``, resumes
an interrupted study when the same command is run again, and writes ``summary.csv``, ``summary.md`` and
the plots into ``DIR`` (default ``runs/studies/<name>``). Exit codes: 0 every run completed or diverged
(a result), 1 some run failed or did not finish, 2 bad study file or flags (one line naming them), 128+N stopped by signal N.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from cli.loggers import logs_to_wandb
from core.wandb_internals import SharedService
from studies.flags import STUDY_OWNED, FitParser, keys_in_argv, same_flag, to_argv
from studies.plots import all_plots
from studies.results import read_run
from studies.launchers import Launcher, StudyInterrupted, StudyLaunchError, open_bar
from studies.launchers.forked import fork_refusal
from studies.launchers.local import LocalLauncher
from studies.slurm_options import KEYS as SLURM_KEYS
from studies.slurm_options import SlurmOptionError, SlurmOptions, slurm_options
from studies.spec import Cell, StudySpec, StudySpecError, load_spec
from studies.store import StudyDirError, claim, lock_study_dir
from studies.summary import problems, summarise, write_csv, write_markdown
from studies.spec import ROOT
from studies.tasks import TaskPlanner
from studies.wandb_sweep import export_sweep


LAUNCHER_CHOICES = ("local", "slurm", "submitit-local")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    ap = argparse.ArgumentParser(prog="scripts/study.py", description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("study", type=Path, help="the study file (configs/studies/*.yaml)")
    ap.add_argument("--out", type=Path, default=None, help="study directory (default: runs/studies/<name>)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (CPU threads split between them; with GPUs one run per device)")
    ap.add_argument("--export-wandb-sweep", nargs="?", const="", default=None, metavar="PATH",
                    help="write the study as a W&B sweep YAML (default DIR/wandb_sweep.yaml) and exit")  # fmt: skip
    ap.add_argument("--storage", default=None, metavar="URL",
                    help="search studies: keep the trials in this database (postgresql://..., mysql://..., sqlite:///...) instead of DIR/optuna.journal")  # fmt: skip
    ap.add_argument("--launcher", choices=LAUNCHER_CHOICES, default="local",
                    help="local: runs on this machine (--jobs at once); slurm: one SLURM job per run (submitit), resources from the "
                         "study file's slurm: block and --slurm.* flags; submitit-local: the slurm launcher's path on this machine")  # fmt: skip
    ap.add_argument("--fork", action=argparse.BooleanOptionalAction, default=True,
                    help="--launcher local: fork each run from the study process, which imported everything once (the default; "
                         "where a fork is unsafe one line says why and runs are subprocesses); --no-fork: a subprocess per run")  # fmt: skip
    ap.add_argument("--no-wait", action="store_true", help="--launcher slurm: exit after submitting; the same command later reports and submits what is left")
    for key in SLURM_KEYS:
        ap.add_argument(f"--slurm.{key}", dest=f"slurm_{key}", default=None, metavar="VALUE", action="append" if key in ("sbatch", "setup") else "store",
                        help=argparse.SUPPRESS)  # fmt: skip
    args, extra = ap.parse_known_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    return args, extra


def check_extra_args(spec: StudySpec, extra: list[str]) -> None:
    """Command-line flags apply to every run; they may not set what the study sets per run."""
    if extra and not extra[0].startswith("--"):
        raise StudySpecError(f"unexpected argument '{extra[0]}': train.py flags look like --trainer.max_steps 500")
    for key in keys_in_argv(extra):
        if any(same_flag(key, owned) for owned in STUDY_OWNED):
            raise StudySpecError(f"--{key} is set by the study for every run (DIR/<cell>/seed<k>); choose the study directory with --out")
        if any(same_flag(key, varied) for varied in spec.varied_keys()):
            raise StudySpecError(f"--{key} is varied by the study file {spec.path}; it cannot also be set on the command line")
        if any(same_flag(key, seed_flag) for seed_flag in spec.seed_flags):
            raise StudySpecError(f"--{key} is set from the study's seeds: (seed_flags)")


def check_flags(spec: StudySpec, extra: list[str]) -> Any:
    """Every cell's full command line through train.py's own parser, before any run starts; returns the
    runs' ``fit`` config as the study's flags and command line give it (a namespace, before any cell's flags)."""
    parser = FitParser()
    base = ["--config", str(spec.config), *to_argv(spec.flags), *extra]
    config, error = parser.check(base)
    if error:
        raise StudySpecError(f"study file {spec.path}: flags / command line: {error}")
    if spec.search:
        for flag, p in spec.search.params.items():
            for value in p.choices if p.choices is not None else (p.low, p.high):
                if error := parser.error([*base, *to_argv({flag: int(value) if p.int else value})]):
                    raise StudySpecError(f"study file {spec.path}: search.params.{flag} = {value!r}: {error}")
        return config
    for cell in spec.cells():
        if error := parser.error([*base, *to_argv(cell.flags)]):
            raise StudySpecError(f"study file {spec.path}: cell '{cell.name}': {error}")
    return config


def summarise_study(spec: StudySpec, out: Path, cells: list[Cell], echo: bool = True) -> int:
    """Regenerate the summary files and plots from the runs; print the table. Returns the number of runs that
    failed or did not finish (a child killed outright leaves its run ``running``: not a result)."""
    results = [read_run(out, c.name, s) for c in cells for s in spec.seeds]
    summaries = summarise(cells, results)
    write_csv(out / "summary.csv", summaries, spec, out)
    text = write_markdown(out / "summary.md", summaries, spec, f"Study {spec.name}: {len(cells)} cells x {len(spec.seeds)} seeds")
    plots = all_plots(summaries, spec, out)
    if echo:
        print("\n" + text, flush=True)
        tables = ["summary.csv", "summary.md", *(["reported.csv"] if spec.reported else [])]
        print(f"Outputs: {out}/ ({', '.join(tables + [p.name for p in plots])})")
    return sum(1 for line in problems(summaries) if line.startswith(("FAILED", "ERROR", "PENDING")))


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    started = time.monotonic()
    try:
        spec = load_spec(args.study)
        check_extra_args(spec, extra)
        if args.storage is not None and not spec.search:
            raise StudySpecError(f"--storage is for search studies; {spec.path} has no search: block")
        out = (args.out or Path("runs/studies") / spec.name).resolve()
        if args.export_wandb_sweep is not None:
            path = export_sweep(spec, extra, Path(args.export_wandb_sweep) if args.export_wandb_sweep else out / "wandb_sweep.yaml")
            print(f"W&B sweep written to {path}; run `wandb sweep {path}`, then `wandb agent <sweep-id>` on each machine (from the repository root).")
            return 0
        runs_config = check_flags(spec, extra)
        options = slurm_options(spec.slurm, {k: getattr(args, f"slurm_{k}") for k in SLURM_KEYS})
        if args.launcher == "local" and (args.no_wait or any(getattr(args, f"slurm_{k}") is not None for k in SLURM_KEYS)):
            raise StudySpecError("--no-wait and --slurm.* flags are for --launcher slurm")
        lock = lock_study_dir(out, shared=spec.search is not None)
    except SlurmOptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (StudySpecError, StudyDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # read-only, permission denied, a file in the way: the study directory cannot be made
        print(f"error: --out {out}: cannot create the study directory there ({exc.strerror or exc})", file=sys.stderr)
        return 2
    try:
        return _run(spec, out, extra, args, options, started, runs_config)
    except (StudyDirError, StudyLaunchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        os.close(lock)  # releases the study directory (the OS does it too if this process dies)


def _shared_data(data: Any, args: argparse.Namespace) -> contextlib.AbstractContextManager[bool]:
    """Runs forked from this process inherit the images it read (``datamodules.shared_data``); other runs read their own."""
    if args.launcher != "local" or not args.fork or data.get("source") == "synthetic" or fork_refusal(LocalLauncher.visible_gpus()) is not None:
        return contextlib.nullcontext(False)
    from datamodules.shared_data import shared_with_forked_runs

    def as_the_runs_see_it(path: Any) -> Any:  # their working directory is the repository (an absolute path stays)
        return str(ROOT / Path(path).expanduser()) if isinstance(path, str | os.PathLike) else path

    return shared_with_forked_runs(as_the_runs_see_it(data.get("data_dir")), as_the_runs_see_it(data.get("cache_dir")), data.get("archive_md5"))


def _launcher(planner: TaskPlanner, args: argparse.Namespace, options: SlurmOptions, wandb_service: SharedService | None = None) -> Launcher:
    if args.launcher == "local":
        return LocalLauncher(planner, jobs=args.jobs, fork=args.fork, run_env=wandb_service.env if wandb_service is not None else None)
    from studies.launchers.slurm import SlurmLauncher

    return SlurmLauncher(planner, options, wait=not args.no_wait, cluster="local" if args.launcher == "submitit-local" else "slurm")


def _run(spec: StudySpec, out: Path, extra: list[str], args: argparse.Namespace, options: SlurmOptions, started: float, runs_config: Any) -> int:
    cells = [] if spec.search else spec.cells()
    claim(out, spec, extra, cells)
    planner = TaskPlanner(spec, out, extra)
    # The runs on this machine share one W&B service, started as the first run starts (core/wandb_internals.py).
    wandb_service = SharedService() if args.launcher == "local" and logs_to_wandb(runs_config.trainer.get("logger")) else None
    code = _launch(spec, out, extra, args, options, started, cells, planner, _launcher(planner, args, options, wandb_service), runs_config)
    if wandb_service is not None:  # every run has ended (an exception would leave it to stop itself when idle)
        wandb_service.close()
    return code


def _launch(
    spec: StudySpec, out: Path, extra: list[str], args: argparse.Namespace, options: SlurmOptions, started: float, cells: list[Cell], planner: TaskPlanner,
    launcher: Launcher, runs_config: Any,
) -> int:  # fmt: skip
    at_once = f"{args.jobs} at once" if args.launcher == "local" else f"{args.launcher}, {options.array_parallelism if not spec.search else options.workers} at once"
    print(f"Study {spec.name}: {out}  ({'search' if spec.search else f'{len(cells)} cells'} x {len(spec.seeds)} seeds, {at_once})", flush=True)
    try:
        if spec.search and args.launcher != "local":
            return _submit_search_workers(spec, out, extra, args, launcher)
        if spec.search:
            try:
                cells = _run_search(spec, out, planner, launcher, args.storage)
            except KeyboardInterrupt:  # while asking Optuna or waiting for other workers' trials: no run of ours is going
                raise StudyInterrupted(signal.SIGINT) from None
        else:
            tasks = [planner.task(c, s) for c in cells for s in spec.seeds]
            done = sum(t.phase == "done" for t in tasks)
            if done:
                print(f"{done} of {len(tasks)} runs already finished (kept, not re-run)", flush=True)
            with contextlib.ExitStack() as shared:
                if done < len(tasks):  # runs to start: read their images once for the forked ones
                    try:
                        shared.enter_context(_shared_data(runs_config.data, args))
                    except KeyboardInterrupt:
                        raise StudyInterrupted(signal.SIGINT) from None
                with open_bar(len(tasks), done, spec.name) as bar:
                    launcher.run(tasks, bar)
    except StudyInterrupted as exc:
        print(f"\nStudy interrupted ({exc}): {launcher.interrupted_note()}. Resume with:\n  {' '.join(shlex.quote(a) for a in [sys.executable, *sys.argv])}", file=sys.stderr)
        if not spec.search:
            summarise_study(spec, out, cells, echo=False)
        return 128 + exc.signum
    if getattr(launcher, "submitted_only", False):  # --no-wait
        summarise_study(spec, out, cells, echo=False)
        print(f"Submitted; the study goes on without this process. Re-run the same command (with or without --no-wait) to see where it stands: {out}/summary.md")
        return 0
    failures = summarise_study(spec, out, cells)
    print(f"Study wall time (this command): {time.monotonic() - started:.0f} s")
    return 1 if failures else 0


def _submit_search_workers(spec: StudySpec, out: Path, extra: list[str], args: argparse.Namespace, launcher: Any) -> int:
    """A search under SLURM: ``workers`` jobs, each this command with the local launcher, share the Optuna storage."""
    from studies.launchers.slurm import SearchWorkerJob

    argv = [str(ROOT / "scripts" / "study.py"), str(spec.path.resolve()), "--out", str(out), "--launcher", "local", "--jobs", "1",
            *(["--storage", args.storage] if args.storage else []), *extra]  # fmt: skip
    workers = launcher.options.workers
    ids = sorted(launcher.scheduler.active([j for k, j in launcher.recorded().items() if k.startswith("search-worker")]))
    if ids:  # a re-run while the search goes on: follow it, submit no more workers
        print(f"{len(ids)} search worker job(s) already queued or running: {' '.join(ids)}", flush=True)
    else:
        ids = launcher.submit([SearchWorkerJob(argv) for _ in range(workers)], [f"search-worker-{time.time_ns()}-{i}" for i in range(workers)], spec.name)
        print(f"Submitted {workers} search worker job(s): {' '.join(ids)}", flush=True)
    if args.no_wait:
        return 0
    launcher.wait_for(ids)
    from studies.search import open_search, search_cells

    failures = summarise_study(spec, out, search_cells(open_search(spec, out, args.storage), spec))
    return 1 if failures else 0


def _run_search(spec: StudySpec, out: Path, planner: TaskPlanner, launcher: Launcher, storage: str | None) -> list[Cell]:
    from studies.search import finished, open_search, run_search, search_cells

    study = open_search(spec, out, storage)
    per_trial = len(spec.seeds)
    with open_bar(spec.search.trials * per_trial, min(finished(study), spec.search.trials) * per_trial, spec.name) as bar:

        def run_cell(cell: Cell) -> None:
            tasks = [planner.task(cell, s) for s in spec.seeds]
            bar.update(sum(t.phase == "done" for t in tasks))
            launcher.run(tasks, bar)

        run_search(study, spec, out, run_cell, bar.write)
    return search_cells(study, spec)
