"""``scripts/study.py STUDY.yaml [--out DIR] [--jobs N] [--export-wandb-sweep [PATH]] [train.py fit flags ...]``

Runs every cell x seed of a study as a normal ``train.py fit`` run under ``DIR/<cell>/seed<k>/``, resumes
an interrupted study when the same command is run again, and writes ``summary.csv``, ``summary.md`` and
the plots into ``DIR`` (default ``runs/studies/<name>``). Exit codes: 0 every run completed or diverged
(a result), 1 some run failed or did not finish, 2 bad study file or flags (one line naming them), 128+N stopped by signal N.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from studies.flags import STUDY_OWNED, FitParser, keys_in_argv, same_flag, to_argv
from studies.plots import all_plots
from studies.results import read_run
from studies.runner import StudyInterrupted, StudyRunner, open_bar
from studies.spec import Cell, StudySpec, StudySpecError, load_spec
from studies.store import StudyDirError, claim, lock_study_dir
from studies.summary import problems, summarise, write_csv, write_markdown
from studies.wandb_sweep import export_sweep


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    ap = argparse.ArgumentParser(prog="scripts/study.py", description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("study", type=Path, help="the study file (configs/studies/*.yaml)")
    ap.add_argument("--out", type=Path, default=None, help="study directory (default: runs/studies/<name>)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (CPU threads split between them; with GPUs one run per device)")
    ap.add_argument("--export-wandb-sweep", nargs="?", const="", default=None, metavar="PATH",
                    help="write the study as a W&B sweep YAML (default DIR/wandb_sweep.yaml) and exit")  # fmt: skip
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


def check_flags(spec: StudySpec, extra: list[str]) -> None:
    """Every cell's full command line through train.py's own parser, before any run starts."""
    parser = FitParser()
    base = ["--config", str(spec.config), *to_argv(spec.flags), *extra]
    if error := parser.error(base):
        raise StudySpecError(f"study file {spec.path}: flags / command line: {error}")
    if spec.search:
        for flag, p in spec.search.params.items():
            for value in p.choices if p.choices is not None else (p.low, p.high):
                if error := parser.error([*base, *to_argv({flag: int(value) if p.int else value})]):
                    raise StudySpecError(f"study file {spec.path}: search.params.{flag} = {value!r}: {error}")
        return
    for cell in spec.cells():
        if error := parser.error([*base, *to_argv(cell.flags)]):
            raise StudySpecError(f"study file {spec.path}: cell '{cell.name}': {error}")


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
        out = (args.out or Path("runs/studies") / spec.name).resolve()
        if args.export_wandb_sweep is not None:
            path = export_sweep(spec, extra, Path(args.export_wandb_sweep) if args.export_wandb_sweep else out / "wandb_sweep.yaml")
            print(f"W&B sweep written to {path}; run `wandb sweep {path}`, then `wandb agent <sweep-id>` on each machine (from the repository root).")
            return 0
        check_flags(spec, extra)
        lock = lock_study_dir(out, shared=spec.search is not None)
    except (StudySpecError, StudyDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # read-only, permission denied, a file in the way: the study directory cannot be made
        print(f"error: --out {out}: cannot create the study directory there ({exc.strerror or exc})", file=sys.stderr)
        return 2
    try:
        return _run(spec, out, extra, args.jobs, started)
    except StudyDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        os.close(lock)  # releases the study directory (the OS does it too if this process dies)


def _run(spec: StudySpec, out: Path, extra: list[str], jobs: int, started: float) -> int:
    cells = [] if spec.search else spec.cells()
    claim(out, spec, extra, cells)
    runner = StudyRunner(spec, out, extra, jobs=jobs)
    print(f"Study {spec.name}: {out}  ({'search' if spec.search else f'{len(cells)} cells'} x {len(spec.seeds)} seeds, {jobs} at once)", flush=True)
    try:
        if spec.search:
            cells = _run_search(spec, out, runner)
        else:
            tasks = [runner.task(c, s) for c in cells for s in spec.seeds]
            done = sum(t.phase == "done" for t in tasks)
            if done:
                print(f"{done} of {len(tasks)} runs already finished (kept, not re-run)", flush=True)
            with open_bar(len(tasks), done, spec.name) as bar:
                runner.run(tasks, bar)
    except StudyInterrupted as exc:
        print(f"\nStudy interrupted ({exc}). Resume with:\n  {' '.join(shlex.quote(a) for a in [sys.executable, *sys.argv])}", file=sys.stderr)
        if not spec.search:
            summarise_study(spec, out, cells, echo=False)
        return 128 + exc.signum
    failures = summarise_study(spec, out, cells)
    print(f"Study wall time (this command): {time.monotonic() - started:.0f} s")
    return 1 if failures else 0


def _run_search(spec: StudySpec, out: Path, runner: StudyRunner) -> list[Cell]:
    from studies.search import finished, open_search, run_search, search_cells

    study = open_search(spec, out)
    per_trial = len(spec.seeds)
    with open_bar(spec.search.trials * per_trial, min(finished(study), spec.search.trials) * per_trial, spec.name) as bar:

        def run_cell(cell: Cell) -> None:
            tasks = [runner.task(cell, s) for s in spec.seeds]
            bar.update(sum(t.phase == "done" for t in tasks))
            runner.run(tasks, bar)

        run_search(study, spec, out, run_cell, bar.write)
    return search_cells(study, spec)
