"""``scripts/compare_runs.py`` on tiny fake-data runs: legend labels that tell every run apart and name the model,
a test result credited only to the run whose checkpoint it evaluated, no columns for arguments left at their
defaults, and one-line errors for paths that hold no run."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import studies.compare as compare_mod
from studies.compare import main as compare_main
from tests.cli_helpers import base_args, run_cli
from tests.conftest import write_batches


@dataclass
class Runs:
    """Every run the tests compare, trained once (each tiny fit costs seconds)."""

    root: Path
    linear: Path  # MLPClassifier, hidden []
    mlp: Path  # hidden [100]
    numpy: Path  # NumpyMLPClassifier with NumpySGD, and trainer flags the others leave at their defaults
    twin: Path  # linear's config again: runs/linear/version_1
    momentum: Path  # mlp with SGD momentum 0.9
    stale: Path  # study layout: cell/seed0/version_0, a differently trained version left behind ...
    trained: Path  # ... and cell/seed0/version_1
    of_trained: Path  # cell/seed0/eval-test/version_0: the test of version_1's best checkpoint
    of_stale: Path  # cell/seed0/eval-test/version_1: the test of version_0's
    of_mlp: Path  # runs/mlp-test/version_0: a single run's test, beside it


def fit(data: Path, runs: Path, name: str, *extra: str) -> Path:
    run_cli("fit", *base_args(data, runs, "--run_name", name, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
                              "--trainer.check_val_every_n_epoch", "null", *extra))  # fmt: skip
    return max((runs / name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))


def evaluate(data: Path, run_dir: Path, runs_dir: Path, *name: str) -> Path:
    """``train.py test`` of the run's best checkpoint (into ``runs_dir/<name>-test/version_j``); its directory."""
    cli = run_cli("test", "--ckpt_path", run_dir / "checkpoints" / "best.ckpt", "--data.data_dir", data, "--runs_dir", runs_dir,
                  *(("--run_name", *name) if name else ()), "--trainer.logger", "false", "--trainer.enable_progress_bar", "false")  # fmt: skip
    return Path(cli.trainer.default_root_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("compare")
    data = root / "data"
    write_batches(data)
    single, seed = root / "runs", root / "study" / "cell" / "seed0"
    numpy_flags = ("--trainer.devices", "1", "--trainer.log_every_n_steps", "10", "--trainer.num_sanity_val_steps", "0")
    linear = fit(data, single, "linear", "--model.hidden_sizes", "[]")
    mlp = fit(data, single, "mlp", "--model.hidden_sizes", "[100]")
    numpy = fit(data, single, "numpy", "--model", "NumpyMLPClassifier", "--model.hidden_sizes", "[16]",
                "--model.optimizer", "lit_models.components.numpy_sgd.NumpySGD", "--model.optimizer.lr", "0.05", *numpy_flags)  # fmt: skip
    twin = fit(data, single, "linear", "--model.hidden_sizes", "[]")
    momentum = fit(data, single, "momentum", "--model.hidden_sizes", "[100]", "--model.optimizer.momentum", "0.9")
    stale = fit(data, seed.parent, "seed0", "--model.hidden_sizes", "[]", "--model.optimizer.lr", "0.5")
    trained = fit(data, seed.parent, "seed0")
    assert (twin.name, stale.name, trained.name) == ("version_1", "version_0", "version_1")
    of_trained, of_stale = evaluate(data, trained, seed, "eval"), evaluate(data, stale, seed, "eval")
    assert (of_trained.name, of_stale.name) == ("version_0", "version_1"), "eval-test/version_k did not test seed0/version_k"
    assert acc_of(of_trained) != acc_of(of_stale), "the test needs results that tell the two evaluations apart"
    return Runs(root, linear, mlp, numpy, twin, momentum, stale, trained, of_trained, of_stale, evaluate(data, mlp, single))


def acc_of(eval_dir: Path) -> str:
    return f"{json.loads((eval_dir / 'per_class_accuracy.json').read_text())['test']['overall_accuracy']:.4f}"


def compare(out: Path, *runs: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[list[dict[str, str]], list[str]]:
    """(the comparison.csv rows, the legend labels of the learning-curve overlay)."""
    labels: list[str] = []
    if monkeypatch is not None:
        real = compare_mod.overlay
        monkeypatch.setattr(compare_mod, "overlay", lambda rs, ls, path: (labels.extend(ls), real(rs, ls, path))[1])
    with contextlib.redirect_stdout(io.StringIO()):
        assert compare_main([*map(str, runs), "--out", str(out)]) == 0
    with open(out / "comparison.csv", newline="") as fh:
        return list(csv.DictReader(fh)), labels


def test_labels_are_unique_and_name_the_model(runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug: labels came from the first 3 differing keys (here trainer flags the NumPy run sets), so the two torch MLPs
    shared one legend entry and no label said which model it was."""
    _, labels = compare(tmp_path, runs.linear, runs.mlp, runs.numpy, runs.twin, monkeypatch=monkeypatch)
    assert len(labels) == 4 and len(set(labels)) == 4, labels
    assert all("MLPClassifier" in label and "Numpy" not in label for label in (labels[0], labels[1], labels[3])), labels
    assert "NumpyMLPClassifier" in labels[2], labels
    assert "empty" in labels[0] and "100" in labels[1], f"hidden_sizes tells the two torch MLPs apart: {labels}"
    assert "linear/version_0" in labels[0] and "linear/version_1" in labels[3], f"the same config: the run directory tells them apart: {labels}"


def test_the_table_leaves_out_arguments_at_their_defaults(runs: Runs, tmp_path: Path) -> None:
    """Friction: SGD beside the NumPy SGD gave a column to each of SGD's defaults (dampening, foreach, fused, ...)."""
    table, _ = compare(tmp_path, runs.linear, runs.mlp, runs.numpy, runs.twin)
    keys = list(table[0])
    assert "model.class_path" in keys and "model.init_args.hidden_sizes" in keys
    optimizer_args = [k for k in keys if k.startswith("model.init_args.optimizer.init_args.")]
    assert optimizer_args == [], f"SGD's arguments at their defaults are no difference: {optimizer_args}"
    assert "model.init_args.optimizer.class_path" in keys, "the optimizer class differs"
    assert "model.init_args.dropout" not in keys and "model.init_args.norm" not in keys, "MLP arguments at their defaults"
    assert "model.init_args.init" in keys, "the NumPy MLP's default init (course) differs from the MLP's (default)"


def test_optimizer_arguments_that_differ_are_kept(runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table, labels = compare(tmp_path, runs.mlp, runs.momentum, monkeypatch=monkeypatch)
    keys = [k for k in table[0] if k.startswith("model.")]
    assert keys == ["model.init_args.optimizer.init_args.momentum"], keys
    assert [r["model.init_args.optimizer.init_args.momentum"] for r in table] == ["0", "0.9"]
    assert labels == ["momentum=0", "momentum=0.9"]


def test_a_test_result_is_credited_only_to_the_run_it_evaluated(runs: Runs, tmp_path: Path) -> None:
    """Bug: a seed folder's eval-test result went to every version_k in it (a stale version_0 showed version_1's test)."""
    table, _ = compare(tmp_path / "study", runs.stale, runs.trained)
    assert [r["test acc"] for r in table] == [acc_of(runs.of_stale), acc_of(runs.of_trained)]
    assert yaml.safe_load((runs.of_mlp / "config.yaml").read_text())["ckpt_path"] == str((runs.mlp / "checkpoints" / "best.ckpt").resolve())
    table, _ = compare(tmp_path / "single", runs.linear, runs.mlp, runs.momentum)
    assert [r["test acc"] for r in table] == ["—", acc_of(runs.of_mlp), "—"], "runs/mlp-test/version_0 tested runs/mlp/version_0 alone"


def _copy_study(runs: Runs, to: Path, *, drop_stale_eval: bool = True) -> Path:
    seed = to / "cell" / "seed0"
    shutil.copytree(runs.trained.parent, seed)
    if drop_stale_eval:
        shutil.rmtree(seed / "eval-test" / runs.of_stale.name)
    return seed


def _edit_config(eval_dir: Path, **changes: object) -> None:
    config = yaml.safe_load((eval_dir / "config.yaml").read_text())
    (eval_dir / "config.yaml").write_text(yaml.safe_dump({**config, **changes}, sort_keys=False))


def test_an_evaluation_that_did_not_record_its_checkpoint(runs: Runs, tmp_path: Path) -> None:
    """Evaluations written before config.yaml kept ckpt_path: a study's eval-test is credited to the version the
    study evaluated (the newest that got anywhere) if the evaluated step is that run's best; no other version."""
    seed = _copy_study(runs, tmp_path / "study")
    _edit_config(seed / "eval-test" / runs.of_trained.name, ckpt_path=None)
    table, _ = compare(tmp_path / "cmp", seed / "version_0", seed / "version_1")
    assert [r["test acc"] for r in table] == ["—", acc_of(runs.of_trained)]


def test_a_study_copied_elsewhere_keeps_its_test_results(runs: Runs, tmp_path: Path) -> None:
    """The recorded checkpoint path no longer exists (the study came from another machine): it is read relative to
    the evaluation's runs_dir."""
    seed = _copy_study(runs, tmp_path / "here", drop_stale_eval=False)
    for eval_dir, run in ((runs.of_trained, runs.trained), (runs.of_stale, runs.stale)):
        old = f"/elsewhere/cell/seed0/{run.name}/checkpoints/best.ckpt"
        _edit_config(seed / "eval-test" / eval_dir.name, ckpt_path=old, runs_dir="/elsewhere/cell/seed0")
    table, _ = compare(tmp_path / "cmp", seed / "version_0", seed / "version_1")
    assert [r["test acc"] for r in table] == [acc_of(runs.of_stale), acc_of(runs.of_trained)]


@pytest.mark.parametrize("case", ["missing", "empty", "file", "name_folder"])
def test_a_path_that_holds_no_run_is_one_line(case: str, runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "file": runs.mlp / "config.yaml", "name_folder": runs.linear.parent}[case]
    if case == "empty":
        bad.mkdir()
    assert compare_main([str(runs.mlp), str(bad), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(bad) in err[0], err
    if case == "name_folder":
        assert "it holds version_0, version_1" in err[0], err
    assert not (tmp_path / "cmp").exists(), "nothing written for a refused comparison"


def test_an_unreadable_config_is_one_line(runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(runs.mlp, broken)
    (broken / "config.yaml").write_text("model: [unclosed\n")
    assert compare_main([str(runs.mlp), str(broken), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {broken}: unreadable"), err


def test_an_out_that_is_a_file_is_one_line(runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (out := tmp_path / "out.txt").write_text("")
    assert compare_main([str(runs.mlp), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: --out {out} is a file; pass a folder for the table and plot"]
