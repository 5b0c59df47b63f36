"""Test accuracy of every per-epoch checkpoint of a run: the per-epoch log airbench prints, for our runs.

    python scripts/evaluate_checkpoints.py RUN_DIR [--tta none] [any train.py test flags, e.g. --data.data_dir DIR]

Evaluates ``RUN_DIR/checkpoints/epoch*.ckpt`` (written by configs whose ``checkpoint`` section keeps one
per epoch, e.g. ``configs/fast_cnn*.yaml``) with ``train.py test`` each (the model and data settings come
from the checkpoint; with weight averaging that is the averaged weights), and ``last.ckpt`` with
``--final_tta`` too. Prints one row per epoch, joined with the run's ``epoch_log.csv`` (train loss and
accuracy, training seconds), and writes it to ``RUN_DIR/epoch_test.csv``. The evaluation runs' own
directories go to a temporary folder.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.run_layout import checkpoint  # noqa: E402  - after the path is set


def test_accuracy(ckpt: Path, tta: str, flags: list[str], runs_dir: str) -> float:
    import train

    cli = train.main(["test", "--ckpt_path", str(ckpt), "--model.tta", tta, "--trainer.logger", "false", "--runs_dir", runs_dir,
                      "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", *flags])
    return float(cli.trainer.callback_metrics["test/acc"])


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--tta", default="none", help="TTA for the per-epoch rows (airbench's per-epoch column has none)")
    ap.add_argument("--final_tta", default="flip+translate", help="TTA for the last.ckpt row")
    own, flags = ap.parse_known_args(argv)
    ckpts = sorted(own.run_dir.glob("checkpoints/epoch*.ckpt"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    log_path = own.run_dir / "epoch_log.csv"
    log = {r["epoch"]: r for r in csv.DictReader(open(log_path))} if log_path.is_file() else {}
    rows = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for ckpt in ckpts:
            epoch = str(int(re.sub(r"\D", "", ckpt.stem)))
            rows.append({"checkpoint": ckpt.name, **log.get(epoch, {"epoch": epoch}), "tta": own.tta, "test_acc": f"{test_accuracy(ckpt, own.tta, flags, runs_dir):.4f}"})
        last = checkpoint(own.run_dir, "last")
        if last.is_file():
            rows.append({"checkpoint": last.name, "epoch": "final", "tta": own.final_tta, "test_acc": f"{test_accuracy(last, own.final_tta, flags, runs_dir):.4f}"})
    columns = ["checkpoint", "epoch", "step", "train_loss", "train_acc", "train_seconds", "total_train_seconds", "tta", "test_acc"]
    with open(own.run_dir / "epoch_test.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(" | ".join(columns))
    for r in rows:
        print(" | ".join(_fmt(r.get(c, "")) for c in columns))
    return rows


def _fmt(value: str) -> str:
    try:
        return f"{float(value):.4f}" if "." in value else value
    except ValueError:
        return value


if __name__ == "__main__":
    main()
