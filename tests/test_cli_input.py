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
