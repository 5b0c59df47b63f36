"""The autograd MLP against the hand-derived NumPy MLP, and the course's batch-size question."""

from __future__ import annotations

import numpy as np
import pytest

from lit_models.components.autograd import AutogradMLP
from lit_models.components.numpy_bridge import NumpyNetModule
from lit_models.components.numpy_mlp import CrossEntropyModule, NumpyMLP
from lit_models.components.numpy_sgd import NumpySGD

NET_ARGS = {"in_features": 12, "hidden_sizes": (9, 7), "num_classes": 5, "seed": 4, "dtype": np.float64}


def _batches(n: int, size: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(size, 12)), rng.integers(0, 5, size)) for _ in range(n)]


@pytest.mark.parametrize("activation,init,lr", [("relu", "he", 0.2), ("sigmoid", "he", 0.5), ("tanh", "default", 0.5)])
def test_autograd_mlp_matches_numpy_mlp_for_20_sgd_steps(activation: str, init: str, lr: float, monkeypatch: pytest.MonkeyPatch) -> None:
    # The NumPy MLP guards log(p) with p + 1e-12, a relative change of ~1e-11 that is not round-off;
    # without it both compute the same function, so what is left is float64 round-off alone.
    monkeypatch.setattr(CrossEntropyModule, "eps", 0.0)
    numpy_net = NumpyMLP(activation=activation, init=init, **NET_ARGS)
    autograd_net = AutogradMLP(activation=activation, init=init, **NET_ARGS)
    for (name, a, _), (_, b, _) in zip(numpy_net.named_arrays(), autograd_net.named_arrays()):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: same seed and init must give the same weights")
    optimizers = [NumpySGD(NumpyNetModule(net).parameters(), lr=lr) for net in (numpy_net, autograd_net)]
    losses = []
    for x, y in _batches(2) * 10:  # two batches, ten times: the loss must fall clearly
        step = [net.loss_and_backward(x, y)[0] for net in (numpy_net, autograd_net)]
        for opt in optimizers:
            opt.step()
        losses.append(step)
    losses = np.array(losses)
    np.testing.assert_allclose(losses[:, 1], losses[:, 0], rtol=1e-13, atol=0)
    assert losses[-4:, 0].mean() < 0.9 * losses[:4, 0].mean(), f"the nets must actually train: {losses[:, 0]}"
    for (name, a, _), (_, b, _) in zip(numpy_net.named_arrays(), autograd_net.named_arrays()):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("net_class", [AutogradMLP, NumpyMLP])
def test_batched_gradient_is_the_mean_of_per_example_gradients(net_class: type) -> None:
    """The course's batch-size question: the loss is a mean over the batch, so its gradient is the mean of
    the examples' gradients; a larger batch averages more of them instead of adding them up."""
    net = net_class(activation="tanh", init="he", **NET_ARGS)
    (x, y), = _batches(1, size=6)
    net.loss_and_backward(x, y)
    batched = {name: grad.copy() for name, _, grad in net.named_arrays()}
    per_example = {name: np.zeros_like(g) for name, g in batched.items()}
    for i in range(len(y)):
        net.loss_and_backward(x[i : i + 1], y[i : i + 1])
        for name, _, grad in net.named_arrays():
            per_example[name] += grad / len(y)
    for name, grad in batched.items():
        np.testing.assert_allclose(grad, per_example[name], rtol=1e-12, atol=1e-15, err_msg=name)
        assert np.abs(grad).max() > 1e-3, f"{name}: gradient must not be trivially zero"
