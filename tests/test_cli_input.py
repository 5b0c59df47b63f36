"""What a new user types: batch limits as Lightning means them, and typos named in one line with the nearest key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.cli_helpers import ROOT, base_args, refusal, run_cli

COUNT_OR_FRACTION = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches", "overfit_batches", "val_check_interval")


def _printed_trainer(capsys: pytest.CaptureFixture, *args: str) -> dict:
    with pytest.raises(SystemExit) as exc:
        run_cli("fit", *args, "--print_config")
    assert exc.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)["trainer"]


@pytest.mark.parametrize("given,expected", [("2", 2), ("1", 1), ("0.5", 0.5), ("1.0", 1.0), ("0", 0)])
def test_an_integer_batch_limit_is_a_count_and_a_float_a_fraction(given: str, expected: float, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Lightning: "float = fraction, int = num_batches"; int 1 is one batch, 1.0 all of them (trainer/setup.py)."""
    flags = [a for flag in COUNT_OR_FRACTION for a in (f"--trainer.{flag}", given)]
    trainer = _printed_trainer(capsys, *base_args(tmp_path, tmp_path / "runs"), *flags)
    for flag in COUNT_OR_FRACTION:
        assert trainer[flag] == expected and type(trainer[flag]) is type(expected), f"--trainer.{flag} {given} parsed as {trainer[flag]!r}"


def test_an_integer_batch_limit_in_a_config_file_is_a_count(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "limits.yaml"
    config.write_text("trainer:\n" + "".join(f"  {flag}: 2\n" for flag in COUNT_OR_FRACTION))
    trainer = _printed_trainer(capsys, *base_args(tmp_path, tmp_path / "runs"), "--config", str(config))
    assert {flag: trainer[flag] for flag in COUNT_OR_FRACTION} == dict.fromkeys(COUNT_OR_FRACTION, 2)
    assert all(type(trainer[flag]) is int for flag in COUNT_OR_FRACTION)


def test_limit_val_batches_1_validates_one_batch_and_2_point_0_is_refused(batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs"
    # 30 validation images in batches of 25: two batches; the integer 1 is one of them (1.0 would be both).
    cli = run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1"))
    assert cli.trainer.num_val_batches == [1]
    message = refusal(capsys, "fit", *base_args(batches_dir, runs, "--trainer.limit_val_batches", "2.0"))
    assert message.startswith("error: --trainer.limit_val_batches") and "got 2.0" in message and "write 2 for 2 batches" in message, message


def test_the_course_config_keeps_its_integer_validation_interval(capsys: pytest.CaptureFixture) -> None:
    trainer = _printed_trainer(capsys, "--config", str(ROOT / "configs/mlp.yaml"))
    assert trainer["val_check_interval"] == 100 and type(trainer["val_check_interval"]) is int


# ------------------------------------------------------------------ a typo: which key, where, the nearest valid one

MLP_FILE = "model:\n  class_path: lit_models.MLPClassifier\n  init_args:\n"


@pytest.mark.parametrize(
    "yaml_text,flags,expected",
    [
        ("trainer:\n  max_stpes: 10\n", [], "{config}: unknown key trainer.max_stpes; did you mean trainer.max_steps?"),
        ("trainr:\n  max_steps: 10\n", [], "{config}: unknown key trainr.max_steps; did you mean trainer.max_steps?"),
        (MLP_FILE + "    hiden_sizes: [10]\n", [],
         "{config}: unknown key model.init_args.hiden_sizes (lit_models.MLPClassifier has no parameter 'hiden_sizes'); did you mean model.init_args.hidden_sizes?"),
        (MLP_FILE + "    optimizer:\n      class_path: torch.optim.SGD\n      init_args:\n        lrr: 0.1\n", [],
         "{config}: unknown key model.init_args.optimizer.init_args.lrr (torch.optim.SGD has no parameter 'lrr'); did you mean model.init_args.optimizer.init_args.lr?"),
        (None, ["--model.optimizer.init_args.lrr", "0.1"],
         "--model.optimizer.init_args.lrr: no such flag (torch.optim.SGD has no parameter 'lrr'); did you mean --model.optimizer.init_args.lr?"),
        (None, ["--model.hiden_sizes", "[10]"], "--model.hiden_sizes: no such flag (lit_models.MLPClassifier has no parameter 'hiden_sizes'); did you mean --model.hidden_sizes?"),
        (None, ["--trainer.max_stpes", "3"], "--trainer.max_stpes: no such flag; did you mean --trainer.max_steps?"),
        (None, ["--data.batch_sze=3", "--trainer.max_stpes", "4"],
         "--data.batch_sze: no such flag; did you mean --data.batch_size? | --trainer.max_stpes: no such flag; did you mean --trainer.max_steps?"),
    ],
    ids=["yaml-trainer", "yaml-group", "yaml-model", "yaml-optimizer", "flag-optimizer", "flag-model", "flag-trainer", "two-flags"],
)
@pytest.mark.parametrize("config_first", [False, True])
def test_a_typo_is_one_line_naming_the_key_where_it_was_given_and_the_nearest_valid_key(yaml_text: str | None, flags: list[str], expected: str, config_first: bool,
                                                                                        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "exp.yaml"
    extra = [*flags]
    if yaml_text is not None:
        config.write_text(yaml_text)
        extra = ["--config", str(config), *extra]
    elif config_first:
        pytest.skip("a mistyped flag given before the --model/--optimizer class it belongs to gets a one-line but less precise message (known gap)")
    args = base_args(tmp_path / "no_data_here", tmp_path / "runs")
    message = refusal(capsys, "fit", *((*extra, *args) if config_first else (*args, *extra)))
    assert message == "error: " + expected.format(config=config), message


# ------------------------------------------------------------------ console output: commands that work as printed, no false alarms


def test_the_printed_evaluate_command_works_from_another_directory(batches_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture) -> None:
    import subprocess
    import sys

    from tests.cli_helpers import script_env

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_cli("fit", *base_args(batches_dir, Path("runs"), "--trainer.max_steps", "2", "--run_name", "e"))
    printed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Evaluate it: "))
    command = printed.removeprefix("Evaluate it: ")
    assert command == f"{sys.executable} {ROOT / 'train.py'} test --ckpt_path runs/e/version_0/checkpoints/best.ckpt", command
    res = subprocess.run(command + " --trainer.logger false --trainer.enable_progress_bar false", shell=True, cwd=elsewhere,
                         env=script_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "test/acc" in res.stdout, res.stderr[-2000:]


def test_commands_for_the_user_name_what_they_run_from_where_they_are_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from callbacks.console import command_for_user

    import shutil
    import sys

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: sys.executable)  # `python` is this interpreter: an activated venv
    monkeypatch.chdir(ROOT)
    assert command_for_user("fit", "--config", Path("runs/a b/config.yaml")) == "python train.py fit --config 'runs/a b/config.yaml'"
    monkeypatch.chdir(tmp_path)
    assert command_for_user("fit", "--ckpt_path", Path("runs/x/last.ckpt"), "--config", ROOT / "configs/mlp.yaml") == (
        f"python {ROOT / 'train.py'} fit --ckpt_path runs/x/last.ckpt --config {ROOT / 'configs/mlp.yaml'}")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)  # no venv active: the interpreter's own path
    assert command_for_user("test").startswith(f"{sys.executable} {ROOT / 'train.py'} test")


@pytest.mark.parametrize("under_slurm", [False, True])
def test_the_srun_hint_is_silenced_outside_slurm_only(under_slurm: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import warnings

    from lightning.fabric.plugins.environments import SLURMEnvironment

    import train

    for key in ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(key, raising=False)
    if under_slurm:
        monkeypatch.setenv("SLURM_JOB_ID", "123")  # inside an allocation, started without srun: the hint may matter
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: "/usr/bin/srun" if name == "srun" else real_which(name, *a, **k))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train.quiet_false_alarms()
        SLURMEnvironment.detect()
    hints = [w for w in caught if "`srun` command is available" in str(w.message)]
    assert len(hints) == (1 if under_slurm else 0), [str(w.message) for w in caught]


@pytest.mark.parametrize("spelling", [["--trainer.logger", "CSVLogger"], ["--trainer.logger=CSVLogger"], ["--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger"]])
def test_a_file_logger_named_either_way_gets_the_run_directory_as_its_save_dir(spelling: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``--trainer.logger=CSVLogger`` was refused ("required: save_dir") where ``--trainer.logger CSVLogger`` ran."""
    trainer = _printed_trainer(capsys, *base_args(tmp_path, tmp_path / "runs", logger=None), *spelling)
    assert trainer["logger"]["init_args"]["save_dir"] == "."  # "." = the run directory (cli/loggers.py)


def test_a_csv_logger_given_with_an_equals_sign_writes_its_metrics_into_the_run_directory(batches_dir: Path, tmp_path: Path) -> None:
    from tests.cli_helpers import only_run_dir

    run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "2", logger=None), "--trainer.logger=CSVLogger")
    assert (only_run_dir(tmp_path / "runs") / "metrics.csv").is_file()


def test_a_refusal_whose_first_line_only_introduces_the_cause_keeps_the_cause() -> None:
    """A constructor's error read 'error: Problem with given class_path 'X':' and nothing else (seen in a study)."""
    from cli.lightning_cli import _first_line

    assert _first_line(ValueError("Problem with given class_path 'a.B':\n  - Key 'c' is required\n")) == "Problem with given class_path 'a.B': - Key 'c' is required"
    assert _first_line(ValueError("lr must be > 0\nmore detail")) == "lr must be > 0"
    assert _first_line(ValueError("")) == "ValueError" and len(_first_line(ValueError("x:\n" + "y" * 1000))) == 400
