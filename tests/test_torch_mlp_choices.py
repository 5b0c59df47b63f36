"""The PyTorch MLPs take the shared activation and init choices (the names the NumPy MLPs use)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from lit_models import MLPClassifier, WeightNormMLPClassifier
from lit_models.components.mlp import MLP
from lit_models.components.mlp_choices import COURSE_STD
from lit_models.components.wn_mlp import WeightNormMLP
from tests.cli_helpers import base_args, refusal, run_cli

MODULES = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_activation_is_in_the_module_tree(activation: str) -> None:
    for net, hidden in ((MLP(hidden_sizes=[20, 10], activation=activation), 2), (WeightNormMLP(hidden_sizes=[20, 10, 10], activation=activation), 3)):
        kinds = [type(m) for m in net.modules() if type(m) in MODULES.values()]
        assert kinds == [MODULES[activation]] * hidden, (type(net).__name__, kinds)


def _linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("make", [lambda init: MLP(hidden_sizes=[400, 300], init=init), lambda init: WeightNormMLP(hidden_sizes=[400, 300], dropout=0.0, init=init)])
@pytest.mark.parametrize("init", ["course", "he"])
def test_normal_inits_draw_the_documented_std_and_zero_biases(make: object, init: str) -> None:
    torch.manual_seed(0)
    for linear in _linears(make(init)):
        std = COURSE_STD if init == "course" else math.sqrt(2 / linear.in_features)
        weight = linear.weight.detach()  # the effective weight, also through weight norm's parametrisation
        assert abs(weight.std().item() / std - 1) < 0.05, (init, linear.in_features, weight.std().item(), std)
        assert not linear.bias.detach().any(), "course and he start with zero biases"


def test_default_init_is_nn_linears_own_draw_from_the_same_random_stream() -> None:
    """Runs recorded before the choice existed reproduce exactly: default redraws nothing."""
    torch.manual_seed(0)
    ours = MLP(hidden_sizes=[50], init="default")
    torch.manual_seed(0)
    reference = [nn.Linear(3072, 50), nn.Linear(50, 10)]
    for a, b in zip(_linears(ours), reference):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def _second_moments(init: str) -> list[float]:
    """E[z^2] at every Linear output of a 5-hidden-layer ReLU MLP (3072-100x5-10), at initialisation."""
    torch.manual_seed(0)
    net = MLP(hidden_sizes=[100] * 5, init=init).double()
    moments: list[float] = []
    for linear in _linears(net):
        linear.register_forward_hook(lambda _m, _i, out: moments.append(float(out.pow(2).mean())))
    with torch.no_grad():
        net(torch.randn(256, 3072, dtype=torch.float64))
    return moments


def test_he_keeps_the_second_moment_through_the_mlp_and_the_course_init_shrinks_it() -> None:
    he, course = _second_moments("he"), _second_moments("course")
    assert all(1 / 3 < m / he[0] < 3 for m in he), he
    assert all(b < 1e-3 * a for a, b in zip(course, course[1:])), course


def test_classifiers_record_the_choices_and_the_cli_takes_them(batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert MLPClassifier(activation="tanh", init="he").hparams.activation == "tanh"
    assert WeightNormMLPClassifier(hidden_sizes=[8], activation="sigmoid").hparams.init == "default"
    cli = run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--model.activation", "sigmoid", "--model.init", "course", "--trainer.fast_dev_run", "true"))
    assert any(isinstance(m, nn.Sigmoid) for m in cli.model.net.modules())
    message = refusal(capsys, "fit", *base_args(batches_dir, tmp_path / "runs", "--model.init", "xavier"))
    assert "--model.init" in message and "xavier" in message
