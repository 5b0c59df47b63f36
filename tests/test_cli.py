"""train.py end to end: config printing, fit, evaluation from a checkpoint alone, predict, W&B, DDP."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.cli_helpers import ROOT, base_args, only_run_dir, run_cli, run_script
from tests.helpers.wandb_file import config_and_history


def test_print_config_resolves_the_course_recipe(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli("fit", "--config", ROOT / "configs/mlp.yaml", "--print_config")
    assert exc.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["class_path"] == "lit_models.MLPClassifier"
    assert cfg["model"]["init_args"]["hidden_sizes"] == [100]
    assert cfg["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.002
    assert cfg["data"]["batch_size"] == 200 and cfg["data"]["preprocessing"] == "mean_image"
    assert cfg["trainer"]["max_steps"] == 1500 and cfg["trainer"]["val_check_interval"] == 100


def test_a_command_builds_only_its_own_subcommand_and_help_without_one_lists_all(capsys: pytest.CaptureFixture) -> None:
    from studies.flags import FitParser

    fit = FitParser()  # train.py's parser as `train.py fit ...` builds it
    recipe = ["--config", str(ROOT / "configs/mlp.yaml")]
    assert fit.error(recipe) is None
    with pytest.raises(SystemExit):
        fit.parser.parse_args(["test", *recipe])  # not built for a fit: its signatures cost every run's start
    with pytest.raises(SystemExit) as exc:
        run_cli("--help")
    assert exc.value.code == 0
    assert "{fit,validate,test,predict}" in capsys.readouterr().out


def test_fast_dev_run(batches_dir: Path, tmp_path: Path) -> None:
    cli = run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.fast_dev_run", "true"))
    assert cli.trainer.global_step == 1
    assert only_run_dir(tmp_path / "runs").name == "version_0"


def test_fit_then_eval_from_checkpoint_alone(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # Non-default data settings that evaluation must recover from the checkpoint, not from defaults.
    cli = run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "3", "--data.preprocessing", "mean_image", "--model.optimizer.lr", "1e-5", "--data.split_seed", "7", "--run_name", "exp"))
    run_dir = runs / "exp" / "version_0"
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["data"]["split_seed"] == 7 and saved["run_name"] == "exp"
    assert saved["trainer"]["default_root_dir"] is None and saved["ckpt_path"] is None, "paths of this run stay out of its re-runnable config"
    best_val = float(cli.trainer.checkpoint_callback.best_model_score)
    last_val = float(cli.trainer.callback_metrics["val/acc"])

    for name, expected in (("best", best_val), ("last", last_val)):
        ckpt = run_dir / "checkpoints" / f"{name}.ckpt"
        ev = run_cli("validate", "--ckpt_path", ckpt, "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false", "--trainer.enable_progress_bar", "false")
        assert ev.datamodule.hparams.split_seed == 7 and ev.datamodule.hparams.preprocessing == "mean_image"
        assert ev.model.hparams.hidden_sizes == [16]
        assert float(ev.trainer.callback_metrics["val/acc"]) == expected, f"validate({name}) must reproduce the logged val/acc exactly"

    te = run_cli("test", "--ckpt_path", run_dir / "checkpoints/best.ckpt", "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false")
    acc = float(te.trainer.callback_metrics["test/acc"])
    assert 0.0 <= acc <= 1.0 and "test/loss" in te.trainer.callback_metrics
    assert (runs / "exp-test" / "version_0").is_dir(), "evaluation runs get their own run directory"


def test_predict_writes_csv(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "1", "--run_name", "p"))
    ckpt = runs / "p" / "version_0" / "checkpoints" / "last.ckpt"
    run_cli("predict", "--ckpt_path", ckpt, "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false")
    rows = list(csv.DictReader(open(runs / "p-predict" / "version_0" / "predictions.csv")))
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert list(rows[0])[:5] == ["index", "image", "true_class", "predicted_class", "p_airplane"] and len(rows[0]) == 14
    assert [int(r["index"]) for r in rows] == list(range(50)), "rows in the data's own order"
    assert [r["image"] for r in rows] == [f"test_batch[{i}]" for i in range(50)], "official images are named by their index in test_batch"
    with open(batches_dir / "cifar-10-batches-py" / "test_batch", "rb") as fh:
        labels = pickle.load(fh)[b"labels"]
    assert [r["true_class"] for r in rows] == [classes[y] for y in labels]
    probs = torch.tensor([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    assert torch.allclose(probs.sum(1), torch.ones(50), atol=1e-4)
    assert [r["predicted_class"] for r in rows] == [classes[i] for i in probs.argmax(1).tolist()]


def test_wandb_offline_run_directory(batches_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline must follow from the missing key alone
    runs = tmp_path / "runs"
    cli = run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", logger=None))
    cli.trainer.loggers[0].experiment.finish()
    run_dir = only_run_dir(runs)
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert offline_runs and list(offline_runs[0].glob("*.wandb")), "a syncable offline run must be written"


def test_csv_logger_writes_into_run_dir(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "1", logger="CSVLogger"))
    metrics = only_run_dir(runs) / "metrics.csv"
    header = metrics.read_text().splitlines()[0].split(",")
    assert {"train/loss", "val/acc", "val/acc_cat", "lr/opt0_group0"} <= set(header)


def test_second_run_gets_a_new_version(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for _ in range(2):
        run_cli("fit", *base_args(batches_dir, runs, "--trainer.fast_dev_run", "true", "--run_name", "same"))
    assert sorted(p.name for p in (runs / "same").iterdir()) == ["version_0", "version_1"]


@pytest.mark.slow
def test_ddp_two_cpu_processes(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = run_script("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "2", "--trainer.devices", "2", "--trainer.strategy", "ddp", "--run_name", "ddp"), timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = runs / "ddp" / "version_0"
    assert [p.name for p in (runs / "ddp").iterdir()] == ["version_0"], "both ranks must share one run directory"
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    # 120 training images, batch 20, 2 ranks -> 3 steps per epoch per rank.
    assert ckpt["global_step"] == 6, ckpt["global_step"]
    assert ckpt["epoch"] == 1


# ------------------------------------------------------------------ loggers follow Lightning's conventions and ours


def test_an_explicit_wandb_logger_follows_the_offline_unless_keyed_rule(batches_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    runs = tmp_path / "runs"
    args = base_args(batches_dir, runs, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", logger="WandbLogger")
    run_cli("fit", *args, "--trainer.logger.project", "my-project")
    run_dir = only_run_dir(runs)
    config, _ = config_and_history(run_dir)
    assert config["trainer"]["max_steps"] == 2, "an offline run in the run directory, not a crash asking for an API key"


def test_wandb_gets_the_whole_config_and_the_csv_files_steps(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "12", "--trainer.val_check_interval", "4",
                              "--trainer.check_val_every_n_epoch", "null", "--trainer.log_every_n_steps", "2", logger=None))
    run_dir = only_run_dir(runs)
    config, history = config_and_history(run_dir)
    assert config["seed_everything"] == 0 and config["trainer"]["max_steps"] == 12 and config["trainer"]["log_every_n_steps"] == 2
    assert config["model"]["class_path"] == "lit_models.MLPClassifier" and config["data"]["val_size"] == 30
    steps_of = lambda key: [row["trainer/global_step"] for row in history if key in row]  # noqa: E731
    csv_steps = lambda name: [int(r["step"]) for r in csv.DictReader(open(run_dir / name))]  # noqa: E731
    assert steps_of("val/acc") == csv_steps("val_acc.csv") == [4, 8, 12]
    assert steps_of("train/loss") == [s for s in csv_steps("train_loss.csv") if s % 2 == 0], "W&B's step axis = train_loss.csv's steps"
    assert steps_of("lr/opt0_group0") == [s for s in csv_steps("lr_schedule.csv") if s % 2 == 0]


# ------------------------------------------------------------------ a GPU config on a machine without one


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_gpu_config_without_a_gpu_is_one_line_naming_the_cpu_flag(batches_dir: Path, tmp_path: Path) -> None:
    res = run_script("fit", "--config", ROOT / "configs/vgg.yaml", "--data.data_dir", batches_dir, "--runs_dir", tmp_path / "runs", timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "--trainer.accelerator cpu" in last and "configs/vgg.yaml" in last
    assert "--config configs/cpu.yaml" in last, "the CPU overlay"
    assert not list((tmp_path / "runs").glob("*/version_*"))


@pytest.mark.parametrize(("hardware", "first_overlay"), [(True, "configs/cpu_bf16.yaml"), (False, "configs/cpu.yaml")])
def test_a_gpu_config_without_a_gpu_names_the_cpu_overlay_that_fits_this_cpu(monkeypatch: pytest.MonkeyPatch, hardware: bool, first_overlay: str) -> None:
    """bf16-mixed is the fast choice on a CPU with bfloat16 hardware and the slow one elsewhere."""
    from jsonargparse import Namespace

    from cli.validation import accelerator_error

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("cli.validation.cpu_has_bfloat16_hardware", lambda: hardware)
    message = accelerator_error(Namespace(accelerator="gpu"), ["configs/fast_cnn_muon.yaml"])
    assert message.startswith("configs/fast_cnn_muon.yaml asks for --trainer.accelerator gpu, but no CUDA GPU is available here. "
                              f"Run it on the CPU by adding --config {first_overlay} after it")
    assert ("cpu_bf16" in message) == hardware


def test_lr_schedule_dry_run_of_a_gpu_config_needs_no_gpu(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import plot_lr_schedule

    png = plot_lr_schedule.main(["--config", str(ROOT / "configs/vgg.yaml"), "--out", str(tmp_path), "--trainer.max_epochs", "2"])
    rows = list(csv.DictReader(open(tmp_path / "lr_schedule.csv")))
    assert png.is_file() and len(rows) == 2 * (45_000 // 512)  # drop_last batches of 512 from 45,000 training images


# ------------------------------------------------------------------ messages say what is true


def test_a_yaml_file_as_ckpt_path_is_called_what_it_is(batches_dir: Path, tmp_path: Path) -> None:
    from cli.checkpoints import CheckpointFileError

    with pytest.raises(CheckpointFileError) as exc:
        run_cli("test", "--ckpt_path", ROOT / "configs/mlp.yaml", "--data.data_dir", batches_dir)
    assert "is not a checkpoint" in str(exc.value) and "pickled objects" not in str(exc.value) and "could run code" not in str(exc.value)


def test_divergence_before_any_checkpoint_does_not_claim_one(batches_dir: Path, tmp_path: Path) -> None:
    from callbacks.divergence import DivergenceError

    with pytest.raises(DivergenceError) as exc:
        run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--data.preprocessing", "mean_image", "--model.optimizer.lr", "1e30"))
    assert "no checkpoint had been saved yet" in str(exc.value) and "last.ckpt holds" not in str(exc.value)


def test_checkpoint_of_another_model_under_fit_gets_a_fit_hint(batches_dir: Path, tmp_path: Path) -> None:
    from cli.resume_changes import ResumeChangeError

    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "2", "--run_name", "a"))
    ckpt = runs / "a" / "version_0" / "checkpoints" / "last.ckpt"
    with pytest.raises(ResumeChangeError) as exc:  # refused before anything is built or written
        run_cli("fit", *base_args(batches_dir, runs, "--run_name", "b", "--ckpt_path", str(ckpt)), "--model", "VGGClassifier", "--model.layout", "[8,M]")
    assert "--model.class_path lit_models.MLPClassifier -> lit_models.VGGClassifier" in str(exc.value), str(exc.value)
    assert "without --model" not in str(exc.value) and f"--config {runs / 'a' / 'version_0' / 'config.yaml'}" in str(exc.value)


@pytest.mark.parametrize("hardware", [False, True, None])
def test_bf16_on_a_cpu_without_bfloat16_hardware_is_said_before_the_run(batches_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture, hardware: bool) -> None:
    """configs/cpu_bf16.yaml's training step is 2.6-3.0x faster than float32 on an AMX CPU and expected to be slower on one
    without: the run goes on (it is correct), and the user is told which overlay fits this CPU; None (not x86: not
    known) says nothing."""
    monkeypatch.setattr("cli.lightning_cli.cpu_has_bfloat16_hardware", lambda: hardware)
    cli = run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "2", "--trainer.precision", "bf16-mixed"))
    assert cli.trainer.global_step == 2
    said = [line for line in capsys.readouterr().err.splitlines() if "bfloat16 hardware" in line]
    assert said == ([] if hardware is not False else ["note: --trainer.precision bf16-mixed on a CPU without bfloat16 hardware (AVX512-BF16 or AMX) is emulated, "
                                         "expected to be slower than 32: on this CPU use configs/cpu.yaml (float32)"])


# ------------------------------------------------------------------ console output is signal


def test_a_run_without_a_validation_split_warns_of_nothing(batches_dir: Path, tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    """``--data.val_size 0`` (the fast CNN recipes) is asked for: Lightning's "Total length of `list` across ranks is zero.
    Please make sure this was your intention." about the empty validation loader that stands for it is a false alarm."""
    cli = run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "2", "--data.val_size", "0"))
    assert cli.trainer.global_step == 2 and cli.trainer.num_val_batches == [0]
    assert not [str(w.message) for w in recwarn if "across ranks is zero" in str(w.message)]


@pytest.mark.slow
def test_console_output_says_what_runs_and_where_outputs_are_and_nothing_false(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    noise = ["Traceback", "Tip:", "litlogger", "weights_only", "not resumable", "No seed found", "dirpath has changed",
             "sync_dist", "anonymous", "LeafSpec", "wandb:", "exists and is not empty", "Couldn't infer"]
    fit = run_script("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "2", "--run_name", "c", "--last_checkpoint.every_n_train_steps", "4", logger=None))
    assert fit.returncode == 0, fit.stderr[-3000:]
    out = fit.stdout + fit.stderr
    for expected in ("Run:", "Data:", "120 train / 30 validation / 50 test images", "Model: lit_models.mlp.MLPClassifier, 49,338 parameters",
                     "Best val/acc", "Outputs:", "wandb sync"):
        assert expected in out, f"missing {expected!r}:\n{out[-3000:]}"
    ckpt = runs / "c" / "version_0" / "checkpoints" / "last.ckpt"
    resumed = run_script("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "3", "--run_name", "c", "--ckpt_path", "last", logger=None))
    evaluated = run_script("test", "--ckpt_path", ckpt, "--data.data_dir", batches_dir, "--runs_dir", runs)
    for res in (fit, resumed, evaluated):
        text = res.stdout + res.stderr
        assert res.returncode == 0, text[-3000:]
        assert not [n for n in noise if n in text], f"false alarms: {[n for n in noise if n in text]}\n{text[-3000:]}"
    segments = sorted((runs / "c" / "version_0" / "wandb").glob("offline-run-*"))
    assert len(segments) == 2 and len({p.name.rsplit("-", 1)[1] for p in segments}) == 1, "the resumed run continues the same W&B run id"
    sync = [line for line in resumed.stdout.splitlines() if "wandb sync" in line][-1]
    assert all(str(p) in sync for p in segments), f"the printed command uploads every segment: {sync}"


# ------------------------------------------------------------------ predictions a user can use


def test_predictions_on_an_image_folder_name_each_file_and_its_class(tmp_path: Path) -> None:
    from tests.conftest import write_image_folder

    folder = write_image_folder(tmp_path / "folder", per_class=3)
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(folder, runs, "--trainer.max_steps", "2", "--data.val_size", "10", "--run_name", "f"))
    run_cli("predict", "--ckpt_path", runs / "f" / "version_0" / "checkpoints" / "last.ckpt", "--data.data_dir", folder, "--runs_dir", runs, "--trainer.logger", "false")
    rows = list(csv.DictReader(open(runs / "f-predict" / "version_0" / "predictions.csv")))
    assert len(rows) == 30 and rows[0]["image"] == "test/airplane/0000.png" and rows[0]["true_class"] == "airplane"
    assert all(r["image"].split("/")[1] == r["true_class"] for r in rows)


def test_predict_dir_classifies_any_folder_of_images(tmp_path: Path) -> None:
    from PIL import Image

    from tests.conftest import write_image_folder

    folder = write_image_folder(tmp_path / "folder", per_class=3)
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(folder, runs, "--trainer.max_steps", "2", "--data.val_size", "10", "--run_name", "f"))
    ckpt = runs / "f" / "version_0" / "checkpoints" / "last.ckpt"
    loose = tmp_path / "my photos"
    (loose / "holiday").mkdir(parents=True)
    for i, where in enumerate(["a.png", "b.jpg", "holiday/c.png"]):
        Image.fromarray(np.full((32, 32, 3), 40 * i, dtype=np.uint8)).save(loose / where)
    # Without the training data: the checkpoint carries the normalisation statistics.
    cli = run_cli("predict", "--ckpt_path", ckpt, "--data.predict_dir", loose, "--data.data_dir", tmp_path / "gone", "--runs_dir", runs, "--trainer.logger", "false")
    rows = list(csv.DictReader(open(runs / "f-predict" / "version_0" / "predictions.csv")))
    assert [r["image"] for r in rows] == ["a.png", "b.jpg", "holiday/c.png"] and {r["true_class"] for r in rows} == {""}
    assert torch.equal(cli.datamodule.mean, torch.load(ckpt, weights_only=True)["CIFAR10DataModule"]["mean"])
    # Files it cannot classify (other sizes, corrupt files, non-images): tests/test_predict_folder.py.
