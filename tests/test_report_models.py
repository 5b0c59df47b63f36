"""The model-side building blocks of the course reports' recipes (issue 19): the tutorial CNN and the
tutorial's per-class print (report 003b), the Sapienza two-layer net's L2 loss and per-epoch LR decay
(002a), fixed-std normal init (002a/b) and the BGU linear LR schedule (004)."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from callbacks.per_class import TUTORIAL_TEXT, tutorial_report
from lit_models.components.autograd import AutogradMLP, ops
from lit_models.components.numpy_init import sample_linear
from lit_models.components.numpy_mlp import NumpyMLP
from lit_models.components.torch_init import init_linear_
from lit_models.components.tutorial_cnn import TutorialCNN
from tests.cli_helpers import ROOT, refusal, run_cli

TUTORIAL_NAMES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Report 004 (BGU 2023), question 4.b.ii: the learning rates its schedule printed for 10 epochs.
BGU_RATES = "[0.10000, 0.09833, 0.09667, 0.09500, 0.09333, 0.09167, 0.09000, 0.08833, 0.08667, 0.08500]"


def write_pattern_folder(root: Path, train_per_class: int, test_per_class: int) -> Path:
    """``train/<class>/*.png`` and ``test/<class>/*.png``: each class a fixed blocky colour pattern plus noise, so
    a CNN or an MLP separates the classes in a few dozen steps (the brightness-coded fake batches of
    ``conftest.py`` take a CNN hundreds)."""
    from datamodules.sources import CLASSES

    patterns = np.random.default_rng(0).normal(0.0, 1.0, (10, 8, 8, 3)).repeat(4, axis=1).repeat(4, axis=2)  # 4x4 blocks
    rng = np.random.default_rng(1)
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for y, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = 128 + 50 * patterns[y] + 25 * rng.normal(0.0, 1.0, (32, 32, 3))
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _quiet(runs: Path) -> list[str]:
    return ["--runs_dir", str(runs), "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.accelerator", "cpu"]  # fmt: skip


# ---------------------------------------------------------------- the tutorial CNN (report 003b)
def test_tutorial_cnn_is_the_tutorials_net() -> None:
    net = TutorialCNN()
    assert sum(p.numel() for p in net.parameters()) == 62_006
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes == {  # the tutorial's names: its saved cifar_net.pth loads as is
        "conv1.weight": (6, 3, 5, 5), "conv1.bias": (6,), "conv2.weight": (16, 6, 5, 5), "conv2.bias": (16,),
        "fc1.weight": (120, 400), "fc1.bias": (120,), "fc2.weight": (84, 120), "fc2.bias": (84,),
        "fc3.weight": (10, 84), "fc3.bias": (10,),
    }  # fmt: skip
    x = torch.randn(2, 3, 32, 32)
    by_hand = nn.functional.max_pool2d(torch.relu(net.conv1(x)), 2)
    by_hand = nn.functional.max_pool2d(torch.relu(net.conv2(by_hand)), 2).flatten(1)
    by_hand = net.fc3(torch.relu(net.fc2(torch.relu(net.fc1(by_hand)))))
    assert torch.equal(net(x), by_hand)


def test_tutorial_cnn_learns_through_train_py_and_prints_like_the_tutorial(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Adam (the report's variant b; lr 3e-3) on class patterns: from chance (0.1) to >= 0.9 test accuracy in 25
    steps (1.0 by the 4th epoch for seeds 0-2; SGD needs ~60 steps to leave this net's initial plateau);
    ``test --per_class.print_format tutorial`` prints and writes the tutorial's lines."""
    data = write_pattern_folder(tmp_path / "patterns", train_per_class=10, test_per_class=5)
    runs = tmp_path / "runs"
    run_cli("fit", "--model", "TutorialCNNClassifier", "--model.optimizer", "torch.optim.Adam", "--model.optimizer.lr", "3e-3",
            "--data.data_dir", str(data), "--data.download", "false", "--data.val_size", "20", "--data.batch_size", "16",
            "--trainer.max_epochs", "5", "--trainer.check_val_every_n_epoch", "5", "--seed_everything", "0", "--run_name", "cnn",
            *_quiet(runs))  # fmt: skip
    capsys.readouterr()
    ev = run_cli("test", "--ckpt_path", str(runs / "cnn" / "version_0" / "checkpoints" / "last.ckpt"), "--data.data_dir", str(data),
                 "--per_class.print_format", "tutorial", *_quiet(runs))  # fmt: skip
    printed = capsys.readouterr().out
    acc = float(ev.trainer.callback_metrics["test/acc"])
    assert acc >= 0.9, f"the tutorial CNN did not learn the class patterns: test accuracy {acc}"
    out = runs / "cnn-test" / "version_0"
    cm = torch.tensor(json.loads((out / "per_class_accuracy.json").read_text())["test"]["confusion_matrix"])
    text = (out / TUTORIAL_TEXT).read_text()
    assert text == tutorial_report(cm, TUTORIAL_NAMES, "tutorial") + "\n" and text in printed
    lines = text.splitlines()
    assert lines[0] == f"Accuracy of the network on the 50 test images: {int(round(acc * 50)) * 100 // 50} %"
    assert [line.split()[3] for line in lines[1:]] == TUTORIAL_NAMES


def test_tutorial_report_exact_text() -> None:
    """The tutorial's two formats, from a confusion matrix with 1,000 images per class."""
    correct = [573, 736, 398, 351, 402, 484, 660, 594, 697, 652]  # 5,547 of 10,000: 55 %
    cm = torch.zeros(10, 10, dtype=torch.float64)
    for c, k in enumerate(correct):
        cm[c, c], cm[c, (c + 1) % 10] = k, 1000 - k
    assert tutorial_report(cm, TUTORIAL_NAMES, "tutorial") == "\n".join([
        "Accuracy of the network on the 10000 test images: 55 %",
        "Accuracy for class: plane is 57.3 %",
        "Accuracy for class: car   is 73.6 %",
        "Accuracy for class: bird  is 39.8 %",
        "Accuracy for class: cat   is 35.1 %",
        "Accuracy for class: deer  is 40.2 %",
        "Accuracy for class: dog   is 48.4 %",
        "Accuracy for class: frog  is 66.0 %",
        "Accuracy for class: horse is 59.4 %",
        "Accuracy for class: ship  is 69.7 %",
        "Accuracy for class: truck is 65.2 %",
    ])  # fmt: skip
    cm[0, 0], cm[0, 1] = 5, 995  # a whole percent below 1: the 2020 tutorial's %2d floors it
    assert tutorial_report(cm, TUTORIAL_NAMES, "tutorial_2020") == "\n".join([
        "Accuracy of the network on the 10000 test images: 49 %",
        "Accuracy of plane :  0 %",
        "Accuracy of   car : 73 %",
        "Accuracy of  bird : 39 %",
        "Accuracy of   cat : 35 %",
        "Accuracy of  deer : 40 %",
        "Accuracy of   dog : 48 %",
        "Accuracy of  frog : 66 %",
        "Accuracy of horse : 59 %",
        "Accuracy of  ship : 69 %",
        "Accuracy of truck : 65 %",
    ])  # fmt: skip


# ---------------------------------------------------------------- the Sapienza two-layer net (report 002a)
@pytest.mark.parametrize("l2", [0.0, 0.25, 3.0])
def test_two_layer_net_loss_and_gradient_match_autograd(l2: float) -> None:
    """NumpyMLP(l2) against the autograd engine computing mean cross-entropy + l2 * (||W1||^2 + ||W2||^2)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 12)), rng.integers(0, 4, 7)
    options = {"in_features": 12, "hidden_sizes": [5], "num_classes": 4, "init": 0.3, "seed": 3, "dtype": np.float64}
    numpy_net, engine = NumpyMLP(**options, l2=l2), AutogradMLP(**options)
    loss, _ = numpy_net.loss_and_backward(x, y)
    engine.zero_grad()
    w1, w2 = engine.linears[0].weight, engine.linears[1].weight
    reference = ops.cross_entropy(engine.forward(x), y) + l2 * ((w1 * w1).sum() + (w2 * w2).sum())
    reference.backward()
    assert loss == pytest.approx(float(reference.data), rel=1e-9)  # NumpyMLP takes log(p + 1e-12)
    for (name, _, grad), node in zip(numpy_net.named_arrays(), engine.parameters()):
        np.testing.assert_allclose(grad, node.grad, rtol=1e-9, atol=1e-14, err_msg=name)


def test_l2_is_lambda_times_the_squared_norm_without_a_half_and_spares_the_biases() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 9)), rng.integers(0, 3, 6)
    options = {"in_features": 9, "hidden_sizes": [4], "num_classes": 3, "init": "default", "seed": 1, "dtype": np.float64}
    plain, penalised = NumpyMLP(**options), NumpyMLP(**options, l2=0.25)
    loss0, _ = plain.loss_and_backward(x, y)
    loss1, _ = penalised.loss_and_backward(x, y)
    weights = [layer.params["weight"] for layer in plain.linears]
    assert loss1 - loss0 == pytest.approx(0.25 * sum(float((w**2).sum()) for w in weights), rel=1e-12)
    for a, b in zip(plain.linears, penalised.linears):
        np.testing.assert_allclose(b.grads["weight"] - a.grads["weight"], 2 * 0.25 * a.params["weight"], rtol=1e-12)
        np.testing.assert_array_equal(b.grads["bias"], a.grads["bias"])
    with pytest.raises(ValueError, match=r"--model.l2 must be a finite number >= 0"):
        NumpyMLP(**options, l2=-1.0)


def test_two_layer_net_recipe_through_train_py(tmp_path: Path) -> None:
    """Report 002a's net as flags: 3072-50-10, N(0, 1e-4^2) weights, l2 0.25, NumPy SGD with the LR x0.95 after
    every epoch. It learns the class patterns; after k epochs lr = lr0 * 0.95^k; the logged training loss
    includes the penalty; the checkpoint keeps l2."""
    data = write_pattern_folder(tmp_path / "patterns", train_per_class=10, test_per_class=1)
    runs = tmp_path / "runs"
    cli = run_cli("fit", "--model", "NumpyMLPClassifier", "--model.hidden_sizes", "[50]", "--model.init", "course", "--model.l2", "0.25",
                  "--model.optimizer", "lit_models.components.numpy_sgd.NumpySGD", "--model.optimizer.lr", "1e-3",
                  "--model.scheduler", "torch.optim.lr_scheduler.ExponentialLR", "--model.scheduler.gamma", "0.95",
                  "--model.scheduler_interval", "epoch", "--data.data_dir", str(data), "--data.download", "false",
                  "--data.val_size", "20", "--data.batch_size", "20", "--data.preprocessing", "mean_image",
                  "--trainer.max_epochs", "4", "--trainer.log_every_n_steps", "1",
                  "--seed_everything", "0", "--run_name", "two_layer", *_quiet(runs))  # fmt: skip
    run = runs / "two_layer" / "version_0"
    per_epoch = {int(r["epoch"]): float(r["opt0_group0"]) for r in _rows(run / "lr_schedule.csv")}
    assert per_epoch == pytest.approx({k: 1e-3 * 0.95**k for k in range(4)}, rel=1e-12)
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.95**4, rel=1e-12), "stepped after the 4th epoch too"
    val = [float(r["val_acc"]) for r in _rows(run / "val_acc.csv")]
    assert len(val) == 4 and max(val) >= 0.9, f"the two-layer net did not learn the class patterns (chance 0.1): {val}"
    net = cli.model.net.numpy_net
    assert net.l2 == 0.25
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["l2"] == 0.25
    losses = [float(r["train_loss"]) for r in _rows(run / "train_loss.csv")]
    assert len(losses) == 16 and losses[-1] < losses[0]
    # What training_step logs as train/loss is what the bridge returns: cross-entropy + the penalty.
    x, y = torch.randn(5, 3072), torch.tensor([0, 1, 2, 3, 4])
    loss, probabilities = cli.model.net.loss_and_backward(x, y)
    cross_entropy = float(nn.functional.nll_loss(torch.log(probabilities.double()), y))
    penalty = 0.25 * sum(float((layer.params["weight"].astype(np.float64) ** 2).sum()) for layer in net.linears)
    assert penalty > 0.25 * 50 * 3072 * 1e-8, "SGD moved the weights away from their 1e-4 start"
    assert float(loss) == pytest.approx(cross_entropy + penalty, rel=1e-5)


def test_l2_flag_refuses_a_negative_lambda(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    message = refusal(capsys, "fit", "--model", "NumpyMLPClassifier", "--model.l2", "-0.5", "--runs_dir", str(tmp_path))
    assert "--model.l2" in message


# ---------------------------------------------------------------- fixed-std normal init (002a: 1e-4, 002b: 1e-3)
def test_a_number_as_init_is_the_std_of_a_normal_draw_with_zero_biases() -> None:
    for std in (1e-3, 0.05):
        weight, bias = sample_linear(np.random.default_rng(0), 500, 400, std, np.float64)
        linear = init_linear_(nn.Linear(500, 400), std, torch.Generator().manual_seed(0))
        for w, b in ((weight, bias), (linear.weight.detach().numpy(), linear.bias.detach().numpy())):
            assert abs(w.std() / std - 1) < 0.01 and abs(w.mean()) < 0.01 * std and not b.any()
    # 1e-4 is the course scheme, draw for draw
    for a, b in zip(sample_linear(np.random.default_rng(5), 30, 20, 1e-4), sample_linear(np.random.default_rng(5), 30, 20, "course")):
        np.testing.assert_array_equal(a, b)
    course = init_linear_(nn.Linear(30, 20), "course", torch.Generator().manual_seed(5))
    number = init_linear_(nn.Linear(30, 20), 1e-4, torch.Generator().manual_seed(5))
    assert torch.equal(course.weight, number.weight) and torch.equal(course.bias, number.bias)


@pytest.mark.parametrize("model", ["MLPClassifier", "NumpyMLPClassifier", "AutogradMLPClassifier"])
def test_init_number_through_the_cli(model: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import lit_models

    with pytest.raises(SystemExit) as exc:
        run_cli("fit", "--model", model, "--model.init", "1e-3", "--runs_dir", str(tmp_path), "--print_config")
    assert exc.value.code in (0, None) and "init: 0.001" in capsys.readouterr().out
    torch.manual_seed(0)
    first = next(p for name, p in getattr(lit_models, model)(hidden_sizes=[64], init=1e-3).net.named_parameters() if "weight" in name)
    assert abs(float(first.detach().double().std()) / 1e-3 - 1) < 0.01
    assert "--model.init" in refusal(capsys, "fit", "--model", model, "--model.init", "0", "--runs_dir", str(tmp_path))


# ---------------------------------------------------------------- per-epoch LR schedules (002b, 004)
def _dry_run_rates(tmp_path: Path, *flags: str) -> dict[int, float]:
    """The LR of each epoch's first step, from ``scripts/plot_lr_schedule.py`` (no data, no training)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import plot_lr_schedule

    plot_lr_schedule.main([*flags, "--out", str(tmp_path), "--train_images", "50000"])
    rates: dict[int, float] = {}
    for row in _rows(tmp_path / "lr_schedule.csv"):
        rates.setdefault(int(row["epoch"]), float(row["opt0_group0"]))
    return rates


def test_bgu_linear_schedule_prints_the_reports_ten_rates(tmp_path: Path) -> None:
    """Report 004: lr = 0.1 x (1 - epoch/60), stepped per epoch, is torch's LinearLR from factor 1 to 0 over 60 epochs."""
    rates = _dry_run_rates(
        tmp_path, "--model", "MLPClassifier", "--model.hidden_sizes", "[128]", "--model.optimizer", "torch.optim.SGD",
        "--model.optimizer.lr", "0.1", "--model.scheduler", "torch.optim.lr_scheduler.LinearLR", "--model.scheduler.start_factor", "1.0",
        "--model.scheduler.end_factor", "0.0", "--model.scheduler.total_iters", "60", "--model.scheduler_interval", "epoch",
        "--data.batch_size", "128", "--data.val_size", "5000", "--trainer.max_epochs", "10",
    )  # fmt: skip
    printed = "[" + ", ".join(f"{rates[e]:.5f}" for e in range(10)) + "]"
    print(printed)
    assert printed == BGU_RATES
    assert [rates[e] for e in range(10)] == pytest.approx([0.1 * (1 - e / 60) for e in range(10)], rel=1e-12)


def test_exponential_decay_per_epoch_with_adam_for_report_002b(tmp_path: Path) -> None:
    """Report 002b: Adam 1e-3, weight decay 1e-3, LR x0.95 per epoch for 10 epochs of batch 200 (245 steps each)."""
    rates = _dry_run_rates(
        tmp_path, "--model", "MLPClassifier", "--model.hidden_sizes", "[50]", "--model.init", "1e-3",
        "--model.optimizer", "torch.optim.Adam", "--model.optimizer.lr", "1e-3", "--model.optimizer.weight_decay", "1e-3",
        "--model.scheduler", "torch.optim.lr_scheduler.ExponentialLR", "--model.scheduler.gamma", "0.95",
        "--model.scheduler_interval", "epoch", "--data.batch_size", "200", "--data.val_size", "1000", "--trainer.max_epochs", "10",
    )  # fmt: skip
    assert rates == pytest.approx({k: 1e-3 * 0.95**k for k in range(10)}, rel=1e-12)
    steps_per_epoch = sum(1 for r in _rows(tmp_path / "lr_schedule.csv") if r["epoch"] == "0")
    assert steps_per_epoch == math.ceil(49_000 / 200) == 245
