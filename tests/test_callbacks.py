"""Callbacks: files exist and are real PNGs, and their numbers are right against hand computations."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from callbacks.divergence import DivergenceError
from callbacks.per_class import per_class_accuracy
from tests.cli_helpers import ROOT, base_args, only_run_dir, run_cli, state_dict_of


def assert_png(path: Path, min_px: int = 300) -> None:
    assert path.is_file(), f"{path} missing"
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= min_px, (im.format, im.size)
        assert len(set(im.convert("L").getdata())) > 10, "the image is blank"


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path)))


def test_fit_writes_every_figure(batches_dir: Path, tmp_path: Path) -> None:
    run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_epochs", "2"))
    run_dir = only_run_dir(tmp_path / "runs")
    for name in ("lr_schedule.png", "learning_curves.png", "per_class_accuracy_val.png", "confusion_matrix_val.png"):
        assert_png(run_dir / name)
    losses = _rows(run_dir / "train_loss.csv")
    assert [int(r["step"]) for r in losses] == list(range(1, 13)), "one training loss per step"
    vals = _rows(run_dir / "val_acc.csv")
    assert len(vals) == 2 and all(0 <= float(r["val_acc"]) <= 1 for r in vals)


def test_step_scheduler_gives_the_known_lr_sequence(batches_dir: Path, tmp_path: Path) -> None:
    run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "7",
            "--model.scheduler", "torch.optim.lr_scheduler.StepLR", "--model.scheduler.step_size", "2", "--model.scheduler.gamma", "0.5"))
    rows = _rows(only_run_dir(tmp_path / "runs") / "lr_schedule.csv")
    assert [float(r["opt0_group0"]) for r in rows] == [0.05 * 0.5 ** (k // 2) for k in range(7)]
    assert [int(r["step"]) for r in rows] == list(range(1, 8)), "the k-th update's rate at step k, as train_loss.csv"


def test_epoch_interval_and_onecycle(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "3", "--run_name", "ep", "--model.scheduler_interval", "epoch",
            "--model.scheduler", "torch.optim.lr_scheduler.ExponentialLR", "--model.scheduler.gamma", "0.1"))
    rows = _rows(runs / "ep" / "version_0" / "lr_schedule.csv")
    per_epoch = {int(r["epoch"]): float(r["opt0_group0"]) for r in rows}
    assert list(per_epoch) == [0, 1, 2] and list(per_epoch.values()) == pytest.approx([0.05, 0.005, 0.0005], rel=1e-12)
    assert len({(int(r["epoch"]), r["opt0_group0"]) for r in rows}) == 3, "constant within an epoch"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "2", "--run_name", "oc",
            "--model.scheduler", "torch.optim.lr_scheduler.OneCycleLR", "--model.scheduler.max_lr", "0.5"))
    lrs = [float(r["opt0_group0"]) for r in _rows(runs / "oc" / "version_0" / "lr_schedule.csv")]
    assert len(lrs) == 12 and max(lrs) == pytest.approx(0.5, rel=0.05) and lrs[-1] < lrs[0], "total_steps filled from the Trainer"


def test_lr_schedule_dry_run_matches_training(batches_dir: Path, tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import plot_lr_schedule

    flags = ["--model", "MLPClassifier", "--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "0.1", "--trainer.max_epochs", "3",
             "--model.scheduler", "torch.optim.lr_scheduler.OneCycleLR", "--model.scheduler.max_lr", "1.0", "--data.batch_size", "20", "--data.val_size", "30"]
    png = plot_lr_schedule.main([*flags, "--out", str(tmp_path / "dry"), "--train_images", "150"])
    assert_png(png)
    dry = [float(r["opt0_group0"]) for r in _rows(tmp_path / "dry" / "lr_schedule.csv")]
    run_cli("fit", *flags, "--data.data_dir", str(batches_dir), "--data.download", "false", "--runs_dir", str(tmp_path / "runs"),
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--run_name", "real")
    real = [float(r["opt0_group0"]) for r in _rows(tmp_path / "runs" / "real" / "version_0" / "lr_schedule.csv")]
    assert dry == pytest.approx(real, rel=1e-12) and len(dry) == 18


def test_per_class_against_hand_computed_confusion() -> None:
    cm = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 2.0], [1.0, 0.0, 0.0]])
    assert per_class_accuracy(cm).tolist() == [0.75, 0.5, 0.0]
    assert math.isnan(per_class_accuracy(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))[1]), "absent class -> NaN, not 0"


def test_per_class_callback_values(tmp_path: Path, batches_dir: Path) -> None:
    """Evaluate on a balanced test split: the mean of per-class accuracies equals the overall accuracy."""
    from tests.conftest import write_image_folder

    folder = write_image_folder(tmp_path / "balanced", per_class=5)
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(folder, runs, "--trainer.max_epochs", "2", "--run_name", "pc", "--data.val_size", "10"))
    ev = run_cli("test", "--ckpt_path", runs / "pc" / "version_0" / "checkpoints" / "last.ckpt", "--data.data_dir", folder, "--runs_dir", runs, "--trainer.logger", "false")
    out = runs / "pc-test" / "version_0"
    result = json.loads((out / "per_class_accuracy.json").read_text())["test"]
    cm = torch.tensor(result["confusion_matrix"], dtype=torch.float64)
    assert cm.sum() == 50 and (cm.sum(1) == 5).all(), "balanced: 5 test images per class"
    assert result["step"] == torch.load(runs / "pc" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] > 0
    per_class = list(result["per_class_accuracy"].values())
    assert per_class == pytest.approx((cm.diag() / 5).tolist())
    overall = float(ev.trainer.callback_metrics["test/acc"])
    assert sum(per_class) / 10 == pytest.approx(overall, abs=1e-6)
    assert float(ev.trainer.callback_metrics["test/acc_cat"]) == pytest.approx(result["per_class_accuracy"]["cat"])
    assert_png(out / "confusion_matrix_test.png")
    assert_png(out / "per_class_accuracy_test.png")


def test_a_fit_draws_its_validation_figures_once_from_its_last_validation(batches_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three validations, one drawing of each validation figure (at the end, titled with the last step); a
    diverged fit still gets the figures of its last validation."""
    import callbacks.per_class as per_class

    titles: list[str] = []
    for name in ("plot_per_class", "plot_confusion"):
        real = getattr(per_class, name)
        monkeypatch.setattr(per_class, name, lambda *a, _real=real, **k: (titles.append(a[2]), _real(*a, **k))[1])
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "3", "--run_name", "once"))
    run_dir = runs / "once" / "version_0"
    assert len(_rows(run_dir / "val_acc.csv")) == 3, "three validations"
    assert titles == ["val: per-class accuracy (model at step 18)", "val: confusion matrix, rows normalised (model at step 18)"]
    assert_png(run_dir / "per_class_accuracy_val.png")
    assert_png(run_dir / "confusion_matrix_val.png")
    assert json.loads((run_dir / "per_class_accuracy.json").read_text())["val"]["step"] == 18
    titles.clear()
    args = base_args(batches_dir, runs, "--trainer.max_epochs", "50", "--data.preprocessing", "mean_image", "--model.optimizer.lr", "1e3",
                     "--trainer.val_check_interval", "1", "--trainer.check_val_every_n_epoch", "null", "--run_name", "div")
    with pytest.raises(DivergenceError):
        run_cli("fit", *args)
    assert len(titles) == 2 and all(t.startswith("val: ") for t in titles), titles
    assert_png(runs / "div" / "version_0" / "confusion_matrix_val.png")


def test_phase_times_record_the_run_phases_in_order_when_asked(batches_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/end_to_end.py's breakdown: CIFAR_PHASES_FILE set, a fit and a test each write their instants."""
    from callbacks.phase_times import PHASES_ENV, PhaseTimes

    runs = tmp_path / "runs"
    monkeypatch.setenv(PHASES_ENV, str(tmp_path / "fit.json"))
    cli = run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "2", "--run_name", "ph"))
    [clock] = [cb for cb in cli.trainer.callbacks if isinstance(cb, PhaseTimes)]
    clock.write()  # what the process's exit does
    fit = json.loads((tmp_path / "fit.json").read_text())
    order = ["start", "built", "data", "train_start", "train_end", "fit_end", "exit"]
    assert list(fit["marks"]) == order and [fit["marks"][k] for k in order] == sorted(fit["marks"].values())
    assert fit["validations"] == 2 and 0 < fit["validation_s"] < fit["marks"]["train_end"] - fit["marks"]["train_start"]
    monkeypatch.setenv(PHASES_ENV, str(tmp_path / "test.json"))
    ev = run_cli("test", "--ckpt_path", runs / "ph" / "version_0" / "checkpoints" / "best.ckpt", "--runs_dir", runs, "--trainer.logger", "false")
    [clock] = [cb for cb in ev.trainer.callbacks if isinstance(cb, PhaseTimes)]
    clock.write()
    test = json.loads((tmp_path / "test.json").read_text())
    assert list(test["marks"]) == ["start", "built", "data", "test_start", "test_end", "exit"] and test["test_s"] > 0
    monkeypatch.delenv(PHASES_ENV)
    assert not any(isinstance(cb, PhaseTimes) for cb in run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "2")).trainer.callbacks), "off by default"


def test_divergence_stops_at_once_and_keeps_a_usable_checkpoint(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # Raw 0..255 inputs with a huge LR: finite for the first steps, then NaN/inf.
    args = base_args(batches_dir, runs, "--trainer.max_epochs", "50", "--data.preprocessing", "mean_image", "--model.optimizer.lr", "1e3",
                     "--trainer.val_check_interval", "1", "--trainer.check_val_every_n_epoch", "null", "--run_name", "div")
    with pytest.raises(DivergenceError, match=r"loss is (nan|inf) at step \d+ .*last finite loss") as exc:
        run_cli("fit", *args)
    step = int(str(exc.value).split(" at step ")[1].split()[0])
    assert step < 50, "stopped at once, not after many NaN steps"
    run_dir = runs / "div" / "version_0"
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] < step
    assert all(torch.isfinite(v).all() for v in state_dict_of(run_dir / "checkpoints" / "last.ckpt").values() if v.is_floating_point())
    assert_png(run_dir / "learning_curves.png"), "curves of a diverged run are still written"


@pytest.mark.parametrize("max_steps,validated", [(7, [5, 7]), (3, [3]), (10, [5, 10])])
def test_every_fit_ends_with_a_validation_of_its_last_step(max_steps: int, validated: list[int], batches_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    """Validation every 5 steps: 7 steps used to end unvalidated after step 5 (best/last val/acc from step 5),
    3 steps without any validation, so without best.ckpt. 10 steps: the check due at step 10 runs once."""
    runs = tmp_path / "runs"
    cli = run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", str(max_steps), "--trainer.val_check_interval", "5",
                                    "--trainer.check_val_every_n_epoch", "null"))
    run_dir = only_run_dir(runs)
    assert [int(r["step"]) for r in _rows(run_dir / "val_acc.csv")] == validated
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == max_steps and best["global_step"] in validated
    curves = next(v for k, v in last["callbacks"].items() if "LearningCurves" in k)
    assert curves["val_steps"] == validated, "last.ckpt is saved after the final validation"
    final = float(cli.trainer.callback_metrics["val/acc"])
    assert float(_rows(run_dir / "val_acc.csv")[-1]["val_acc"]) == pytest.approx(final)
    assert f"last {final:.4f}" in capsys.readouterr().out, "the footer's last val/acc is the final step's"


def test_a_max_epochs_fit_validated_by_steps_ends_with_a_validation(batches_dir: Path, tmp_path: Path) -> None:
    run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_epochs", "2", "--trainer.val_check_interval", "5",
                              "--trainer.check_val_every_n_epoch", "null"))
    assert [int(r["step"]) for r in _rows(only_run_dir(tmp_path / "runs") / "val_acc.csv")] == [5, 10, 12]
