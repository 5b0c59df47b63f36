"""``scripts/reproduce.py REPORT [--out DIR] [--jobs N] [train.py fit flags ...]``: every experiment of one
course report, with the course's own recipe, and its figures beside ours.

A report's experiments are the study files ``configs/reports/r<NNN>_*.yaml`` (each names the report's
figures in its ``reported:`` block). Each runs as an ordinary study into ``DIR/<study name>/`` (default
``runs/reports``), so a reproduction is resumable and extendable like any study; then ``DIR/r<NNN>.md``
and ``.csv`` gather every study's reported-vs-ours rows into one table. The exit code is the worst of the
studies' (0 all done, 1 some run failed or unfinished, 2 bad input, 128+N stopped by a signal).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from studies.main import main as run_study
from studies.spec import ROOT, StudySpecError, load_spec

REPORTS_DIR = ROOT / "configs" / "reports"


def study_files(report: str) -> list[Path]:
    """``r003``, ``003`` or ``3`` -> ``configs/reports/r003_*.yaml`` (sorted); a report with none is an error."""
    if not re.fullmatch(r"r?\d{1,3}", report):
        raise StudySpecError(f"REPORT must be a report number like r003 (reports: {', '.join(available())}), got {report!r}")
    prefix = f"r{int(report.removeprefix('r')):03d}_"
    files = sorted(REPORTS_DIR.glob(f"{prefix}*.yaml"))
    if not files:
        raise StudySpecError(f"no study files {REPORTS_DIR / (prefix + '*.yaml')} (reports: {', '.join(available())})")
    return files


def available() -> list[str]:
    return sorted({p.name.split("_", 1)[0] for p in REPORTS_DIR.glob("r[0-9][0-9][0-9]_*.yaml")})


def gather(report: str, out: Path, files: list[Path]) -> Path:
    """One table of every study's ``reported.csv`` rows (a study not run yet contributes its reported figures only)."""
    rows = []
    for path in files:
        spec = load_spec(path)
        table = out / spec.name / "reported.csv"
        found = {r["cell"]: r for r in csv.DictReader(open(table, newline=""))} if table.is_file() else {}
        for cell, value in (spec.reported.values.items() if spec.reported else []):
            r = found.get(cell, {})
            rows.append({"study": spec.name, "cell": cell, "metric": spec.reported.metric, "reported": value, "ours_mean": r.get("ours_mean", ""),
                         "ours_std": r.get("ours_std", ""), "n": r.get("n", "0"), "difference": r.get("difference", ""), "source": spec.reported.source})  # fmt: skip
    with open(out / f"{report}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["study", "cell", "metric", "reported", "ours_mean", "ours_std", "n", "difference", "source"])
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Report {report}: reported vs ours", "", "| study | cell | metric | reported | ours (mean ± std, n) | difference | source |", "|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        ours = f"{float(r['ours_mean']):.4f} ± {float(r['ours_std']):.4f} (n={r['n']})" if r["ours_mean"] else "not run"
        diff = f"{100 * float(r['difference']):+.1f} points" if r["difference"] else "—"
        lines.append(f"| {r['study']} | {r['cell']} | {r['metric']} | {r['reported']:.4f} | {ours} | {diff} | {r['source']} |")
    path = out / f"{report}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/reproduce.py", description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("report", help=f"the report, e.g. r003 (here: {', '.join(available())})")
    ap.add_argument("--out", type=Path, default=Path("runs/reports"), help="where each study's directory goes (default: runs/reports)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once within each study")
    args, extra = ap.parse_known_args(argv)
    try:
        files = study_files(args.report)
    except StudySpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = f"r{int(args.report.removeprefix('r')):03d}"
    codes = []
    for path in files:
        print(f"\n=== {report}: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
        code = run_study([str(path), "--out", str(args.out / load_spec(path).name), "--jobs", str(args.jobs), *extra])
        codes.append(code)
        if code == 2 or code >= 128:  # bad input or stopped: the next studies would fail or be stopped the same way
            break
    args.out.mkdir(parents=True, exist_ok=True)
    table = gather(report, args.out, files)
    print(f"\n{table.read_text()}\nReport table: {table} (and {table.with_suffix('.csv').name})")
    return max(codes, key=lambda c: (c >= 128, c == 2, c))
