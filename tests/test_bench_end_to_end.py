"""bench/end_to_end.py on tiny data: every measurement is a JSON line with its breakdown, and the summary has
the ratios (the numbers themselves are the bench's business, never a test's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write_image_folder


@pytest.mark.slow
def test_single_run_sides_print_their_breakdown_and_the_summary_its_ratios(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bench.end_to_end import main

    data = write_image_folder(tmp_path / "data", per_class=5)
    summary = main(["--data_dir", str(data), "--rounds", "1", "--steps", "3", "--val_size", "10", "--skip-study", "--work", str(tmp_path / "work")])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    sides = {line["side"]: line for line in lines if "side" in line}
    assert set(sides) == {"ours_run_wandb", "ours_run_nologger", "plain_run"}
    for name in ("ours_run_wandb", "ours_run_nologger"):
        parts = sides[name]["breakdown"]
        assert {"imports", "setup", "data", "training", "validation", "test", "outputs", "shutdown"} <= set(parts), parts
        assert all(v >= 0 for v in parts.values()) and sides[name]["wall_s"] == pytest.approx(sides[name]["fit_wall_s"] + sides[name]["test_wall_s"])
        assert sum(parts.values()) == pytest.approx(sides[name]["wall_s"], abs=0.5), "the parts cover the two processes' wall time"
    assert {"imports", "data", "training", "validation", "test"} <= set(sides["plain_run"]["breakdown"])
    [run] = sides["plain_run"]["runs"]
    assert run["status"] == "completed" and run["steps"] == 3 and 0 <= run["test_acc"] <= 1
    assert summary["single_run_wandb"]["goal"] == 1.3 and summary["single_run_wandb"]["ratio_best"] > 0
    assert summary["single_run_nologger"]["ours_breakdown"] == sides["ours_run_nologger"]["breakdown"]
    assert summary["study"] == summary["study_fork"] == {} and lines[-1]["summary"] is True


def test_the_study_file_is_the_course_lr_study_at_one_seed(tmp_path: Path) -> None:
    import argparse

    import yaml

    from bench.end_to_end import LRS, Bench

    args = argparse.Namespace(repo=Path("."), steps=20, val_size=5000, data_dir=tmp_path, jobs=2)
    spec = yaml.safe_load(Bench(args, tmp_path).study_file().read_text())
    course = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "studies" / "lr.yaml").read_text())
    assert spec["grid"] == course["grid"] and list(LRS) == course["grid"]["model.init_args.optimizer.init_args.lr"]
    assert spec["seeds"] == [0] and spec["test"] is True and spec["flags"] == {"trainer.max_steps": 20}
