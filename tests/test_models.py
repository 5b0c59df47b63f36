"""Every model: fast_dev_run through train.py, fit -> test from checkpoint, parameter counts, norms."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

import lit_models
from lit_models.components.autograd import Node
from lit_models.components.fast_cnn import FastCNN
from lit_models.components.vgg import MiniVGG
from lit_models.components.wn_mlp import WeightNormMLP
from tests.cli_helpers import ROOT, only_run_dir, refusal, run_cli

CPU = "configs/cpu.yaml"  # the GPU recipes run here through the CPU overlay, as on any machine without a GPU
TINY = {
    # config files, overrides that make the model small enough for CPU tests
    "mlp": (["configs/mlp.yaml"], ["--model.hidden_sizes", "[16]"]),
    "wn_mlp": (["configs/wn_mlp.yaml"], ["--model.hidden_sizes", "[32,16,16]"]),
    "vgg_course": (["configs/vgg_course.yaml"], ["--model.layout", "[8,M,16,M,M,M,M]"]),
    # check_val_every_n_epoch null: validation every val_check_interval global steps, so the fit test's last
    # validation is at its last step (as in vgg_course) and sees the weights last.ckpt holds
    "vgg": (["configs/vgg.yaml", CPU], ["--model.layout", "[8,M,16,M,M,M,M]", "--trainer.check_val_every_n_epoch", "null"]),
    "numpy_mlp": (["configs/numpy_mlp.yaml"], ["--model.hidden_sizes", "[16]"]),
    "autograd_mlp": (["configs/autograd_mlp.yaml"], ["--model.hidden_sizes", "[16]"]),
    "fast_cnn": (["configs/fast_cnn.yaml", CPU], ["--model.widths", "[8,16,16]", "--trainer.check_val_every_n_epoch", "null"]),
}


def _args(name: str, data_dir: Path, runs: Path, *extra: str) -> list[str]:
    configs, overrides = TINY[name]
    return [
        "fit", *[arg for config in configs for arg in ("--config", str(ROOT / config))], *overrides,
        "--data.data_dir", str(data_dir), "--data.download", "false", "--data.val_size", "30", "--data.batch_size", "20",
        "--runs_dir", str(runs), "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", *extra,
    ]


@pytest.mark.parametrize("name", sorted(TINY))
def test_fast_dev_run(name: str, batches_dir: Path, tmp_path: Path) -> None:
    cli = run_cli(*_args(name, batches_dir, tmp_path / "runs", "--trainer.fast_dev_run", "true"))
    assert cli.trainer.global_step == 1


@pytest.mark.parametrize("name", sorted(TINY))
def test_fit_then_test_from_checkpoint(name: str, batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cli = run_cli(*_args(name, batches_dir, runs, "--trainer.max_steps", "8", "--trainer.val_check_interval", "4", "--trainer.max_epochs", "2"))
    ckpt = only_run_dir(runs) / "checkpoints" / "last.ckpt"
    trained = {k: v.clone() for k, v in cli.model.state_dict().items()}
    ev = run_cli("validate", "--ckpt_path", ckpt, "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false", "--trainer.accelerator", "cpu", "--trainer.precision", "32")
    assert type(ev.model) is type(cli.model)
    for k, v in ev.model.state_dict().items():
        if k.startswith("net."):  # the weights; metric counters are training state, saved at the checkpoint's step
            assert torch.equal(v.cpu(), trained[k].cpu()), f"{k} not restored"
    assert float(ev.trainer.callback_metrics["val/acc"]) == float(cli.trainer.callback_metrics["val/acc"])
    te = run_cli("test", "--ckpt_path", ckpt, "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false", "--trainer.accelerator", "cpu", "--trainer.precision", "32")
    assert 0.0 <= float(te.trainer.callback_metrics["test/acc"]) <= 1.0


def test_numpy_training_changes_the_shared_weights(batches_dir: Path, tmp_path: Path) -> None:
    cli = run_cli(*_args("numpy_mlp", batches_dir, tmp_path / "runs", "--trainer.max_steps", "5"))
    net = cli.model.net
    assert cli.trainer.global_step == 5, "NumpySGD steps must count as optimizer steps"
    assert net.linear0_weight.data_ptr() == net.numpy_net.linears[0].params["weight"].ctypes.data
    assert net.linear1_bias.abs().sum() > 0, "SGD must have moved the zero-initialised bias"


def test_numpy_model_resumes_identically_with_momentum(batches_dir: Path, tmp_path: Path) -> None:
    """NumPy SGD's momentum buffers live in the checkpoint (as tensors): stop at step 4, resume to 10 = 10 straight."""
    runs = tmp_path / "runs"
    sgd = ["--model.optimizer.init_args.momentum", "0.9", "--model.optimizer.init_args.weight_decay", "0.01", "--trainer.val_check_interval", "4"]
    run_cli(*_args("numpy_mlp", batches_dir, runs, *sgd, "--run_name", "cut", "--trainer.max_steps", "4"))
    resumed = run_cli(*_args("numpy_mlp", batches_dir, runs, *sgd, "--run_name", "cut", "--trainer.max_steps", "10", "--ckpt_path", "last"))
    straight = run_cli(*_args("numpy_mlp", batches_dir, runs, *sgd, "--run_name", "straight", "--trainer.max_steps", "10"))
    assert resumed.trainer.global_step == straight.trainer.global_step == 10
    a = torch.load(runs / "cut" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(runs / "straight" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    for key, value in b["state_dict"].items():
        assert torch.equal(a["state_dict"][key], value), f"{key} differs after resume"
    buffers = [(a["optimizer_states"][0]["state"][i]["momentum_buffer"], s["momentum_buffer"]) for i, s in b["optimizer_states"][0]["state"].items()]
    assert len(buffers) == 4 and all(torch.equal(x, y) for x, y in buffers)


def test_numpy_model_steps_its_scheduler_per_step_or_per_epoch(batches_dir: Path, tmp_path: Path) -> None:
    """Manual optimisation: the NumPy base steps the scheduler itself, honouring ``scheduler_interval``."""
    runs = tmp_path / "runs"
    lr = ["--model.optimizer.init_args.lr", "0.01"]
    run_cli(*_args("numpy_mlp", batches_dir, runs, *lr, "--run_name", "step", "--trainer.max_steps", "7",
                   "--model.scheduler", "torch.optim.lr_scheduler.StepLR", "--model.scheduler.step_size", "2", "--model.scheduler.gamma", "0.5"))
    rows = list(csv.DictReader(open(runs / "step" / "version_0" / "lr_schedule.csv")))
    assert [float(r["opt0_group0"]) for r in rows] == pytest.approx([0.01 * 0.5 ** (k // 2) for k in range(7)], rel=1e-12)
    run_cli(*_args("numpy_mlp", batches_dir, runs, *lr, "--run_name", "epoch", "--trainer.max_steps", "12", "--model.scheduler_interval", "epoch",
                   "--model.scheduler", "torch.optim.lr_scheduler.ExponentialLR", "--model.scheduler.gamma", "0.1"))
    per_epoch = {int(r["epoch"]): float(r["opt0_group0"]) for r in csv.DictReader(open(runs / "epoch" / "version_0" / "lr_schedule.csv"))}
    assert list(per_epoch.values()) == pytest.approx([0.01, 0.001], rel=1e-12), "6 steps per epoch: one decay between the two epochs"


@pytest.mark.parametrize(
    "flags,expected",
    [
        (["--model.activation", "swish"], "Expected a typing.Literal['relu', 'sigmoid', 'tanh']. Got value: swish"),
        (["--model.init", "xavier"], "Expected a typing.Literal['default', 'course', 'he'] - Expected a <class 'float'> Given value type: <class 'str'> Given value: xavier"),
        (["--model.optimizer.init_args.momentum", "1.5"], "--model.optimizer.init_args.momentum must be in [0, 1), got 1.5"),
        (["--model.lr", "0.1"], "--model.lr: no such flag (lit_models.NumpyMLPClassifier has no parameter 'lr')"),  # the learning rate is the optimizer's, as for every model
        (["--model.label_smoothing", "0.1"], "--model.label_smoothing must be 0 for the NumPy models (their cross-entropy has none), got 0.1"),
    ],
)
def test_numpy_model_flags_are_checked_before_any_data_is_read(flags: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    message = refusal(capsys, *_args("numpy_mlp", tmp_path / "no_data_here", tmp_path / "runs", *flags))
    assert expected in message and "No CIFAR-10 data" not in message


def test_numpy_models_take_lr_activation_and_init_flags(batches_dir: Path, tmp_path: Path) -> None:
    """One of the two NumPy models: both get these flags from ``NumpyMLPBase``."""
    cli = run_cli(*_args("autograd_mlp", batches_dir, tmp_path / "runs", "--trainer.fast_dev_run", "true", "--model.optimizer.init_args.lr", "1e-9",
                         "--model.activation", "tanh", "--model.init", "he"))
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == 1e-9  # tiny: the one step leaves the init measurable
    np.testing.assert_allclose(cli.model.net.numpy_net.activation(Node(np.array([-1.0, 2.0]))).data, np.tanh([-1.0, 2.0]))
    first_weight = cli.model.net.linear0_weight.detach().numpy()
    assert abs(first_weight.std() / (2 / 3072) ** 0.5 - 1) < 0.05, "He init: std sqrt(2 / fan_in)"


def test_parameter_counts() -> None:
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(lit_models.MLPClassifier().net) == 3072 * 100 + 100 + 100 * 10 + 10
    widths = [3072, 2000, 1000, *[200] * 7, 10]
    linear = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    assert count(WeightNormMLP()) == linear + sum(widths[1:]), "weight norm adds one magnitude per output unit"
    convs = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    assert count(MiniVGG()) == sum(9 * a * b + 2 * b for a, b in convs) + 512 * 10 + 10
    fast = [(24, 64), (64, 64), (64, 256), (256, 256), (256, 256), (256, 256)]  # 3x3 convs, each followed by a BN
    assert count(FastCNN()) == (24 * 3 * 4 + 24) + sum(9 * a * b + 2 * b for a, b in fast) + 256 * 10 == 1_972_792


def test_wn_mlp_structure() -> None:
    net = WeightNormMLP()
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [2000, 1000, *[200] * 7, 10]
    assert all(hasattr(m.parametrizations, "weight") for m in linears), "every Linear is weight-normalised"
    kinds = [type(m).__name__ for m in net.layers]
    assert kinds.count("Dropout") == 5 and kinds.index("Dropout") == 1
    drop_positions = [i for i, k in enumerate(kinds) if k == "Dropout"]
    assert all(kinds[i + 1] == "ParametrizedLinear" for i in drop_positions), "dropout sits on layer inputs"


@pytest.mark.parametrize("norm", ["torch", "custom", "none"])
def test_vgg_shapes_and_norm_choice(norm: str) -> None:
    net = MiniVGG(norm=norm)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    names = {type(m).__name__ for m in net.modules()}
    assert ("BatchNorm2d" in names) == (norm != "none")


def test_running_train_accuracy_matches_torchmetrics() -> None:
    from torchmetrics.classification import MulticlassAccuracy

    from lit_models.base import RunningAccuracy

    ours, reference = RunningAccuracy(), MulticlassAccuracy(10, average="micro")
    g = torch.Generator().manual_seed(0)
    for n in (7, 200, 31):  # unequal batches: the count-weighted mean, not the mean of batch accuracies
        logits, y = torch.randn(n, 10, generator=g), torch.randint(0, 10, (n,), generator=g)
        logits[: n // 2, 3] += 5  # push accuracy away from chance
        ours.update(logits, y)
        reference.update(logits, y)
    assert torch.isclose(ours.compute(), reference.compute())
    ours.reset()
    assert ours.compute() == 0
