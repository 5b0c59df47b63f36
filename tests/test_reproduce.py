"""``scripts/reproduce.py``: a report's study files found by number, each one valid before anything runs,
and one reported-vs-ours table gathered from the studies' own ``reported.csv``."""

from __future__ import annotations

from pathlib import Path

import pytest

from studies import reproduce
from studies.flags import FitParser
from studies.main import check_flags
from studies.spec import StudySpecError, load_spec
from tests.cli_helpers import ROOT


def test_every_report_study_file_is_valid_and_states_what_the_report_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = FitParser()
    monkeypatch.setattr("studies.main.FitParser", lambda: parser)
    files = sorted((ROOT / "configs" / "reports").glob("r*.yaml"))
    assert files
    for path in files:
        spec = load_spec(path)
        assert spec.name == path.stem, f"{path.name}: its study name is its file name (the study directory)"
        assert spec.reported is not None, f"{path.name} names no reported figure"
        check_flags(spec, [])


def test_report_numbers_find_their_files_and_a_wrong_one_is_one_line() -> None:
    assert reproduce.study_files("r001") == reproduce.study_files("1") == sorted((ROOT / "configs" / "reports").glob("r001_*.yaml"))
    with pytest.raises(StudySpecError, match=r"no study files .*r099_\*.yaml \(reports: r001"):
        reproduce.study_files("r099")
    assert reproduce.main(["nonsense"]) == 2


def test_the_report_table_gathers_each_studys_reported_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    for name, value in (("r007_a", 0.5), ("r007_b", 0.25)):
        (reports / f"{name}.yaml").write_text(f"name: {name}\nconfig: {ROOT}/configs/mlp.yaml\nseeds: [0, 1]\ntest: true\n"
                                              f"reported: {{source: report 7, metric: test/acc, values: {{{name}: {value}}}}}\n")  # fmt: skip
    monkeypatch.setattr(reproduce, "REPORTS_DIR", reports)
    out = tmp_path / "out"
    (out / "r007_a").mkdir(parents=True)
    (out / "r007_a" / "reported.csv").write_text("cell,metric,reported,ours_mean,ours_std,n,difference,source\nr007_a,test/acc,0.5,0.47,0.01,2,-0.03,report 7\n")
    table = reproduce.gather("r007", out, reproduce.study_files("r007")).read_text()
    assert "| r007_a | r007_a | test/acc | 0.5000 | 0.4700 ± 0.0100 (n=2) | -3.0 points | report 7 |" in table
    assert "| r007_b | r007_b | test/acc | 0.2500 | not run | — | report 7 |" in table, "a study not run yet still lists the report's figure"
    assert (out / "r007.csv").read_text().count("\n") == 3
