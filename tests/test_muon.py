"""MuonWithSGD (``lit_models.components.muon``): Muon on conv filters + SGD on the rest, as one optimizer.

Its Muon update is checked against a direct computation written here (airbench94_muon's maths), its SGD part
against ``torch.optim.SGD``; its state round-trips through ``weights_only`` loading, a fit resumed through
``train.py`` is bit-identical, and ``configs/fast_cnn_muon.yaml`` builds airbench94_muon's hyperparameters.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import pytest
import torch
from torch import nn

from lit_models import FastCNNClassifier, VGGClassifier
from lit_models.components.muon import MuonWithSGD
from tests.cli_helpers import ROOT, run_cli

COEFFICIENTS = (3.4445, -4.775, 2.0315)


def direct_muon(p0: torch.Tensor, grads: list[torch.Tensor], lr: float, momentum: float, nesterov: bool, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """airbench94_muon's Muon, written out: momentum, Nesterov, normalise, 3 Newton-Schulz steps, no extra scale."""
    p, buf = p0.clone(), torch.zeros_like(p0)
    a, b, c = COEFFICIENTS
    for g in grads:
        buf = momentum * buf + g
        u = g + momentum * buf if nesterov else buf
        p = p * (p.shape[0] ** 0.5 / torch.linalg.vector_norm(p))  # Frobenius norm sqrt(out channels)
        x = u.reshape(u.shape[0], -1).to(dtype)
        x = x / (torch.linalg.vector_norm(x) + 1e-7)
        tall = x.shape[0] > x.shape[1]
        if tall:
            x = x.T
        for _ in range(3):
            gram = x @ x.T
            x = a * x + (b * gram + c * gram @ gram) @ x  # airbench's association (it matters in bfloat16)
        if tall:
            x = x.T
        scale = 1.0  # airbench: no shape factor (torch.optim.Muon's "original" would be max(1, rows / cols) ** 0.5)
        p = p - lr * scale * x.reshape(p.shape).to(p.dtype)
    return p


def _steps(opt: torch.optim.Optimizer, params: list[nn.Parameter], grads: list[list[torch.Tensor]]) -> None:
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()


@pytest.mark.parametrize("shape", [(10, 6), (6, 10), (8, 3, 3, 3), (32, 2, 1, 1)], ids=["2d-tall", "2d-wide", "4d", "4d-tall"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_update_matches_a_direct_computation(shape: tuple[int, ...], nesterov: bool) -> None:
    torch.manual_seed(0)
    p0 = torch.randn(shape)
    grads = [torch.randn(shape) for _ in range(4)]
    p = nn.Parameter(p0.clone())
    opt = MuonWithSGD([p], lr=0.24, momentum=0.6, nesterov=nesterov, muon_ndims=(len(shape),))
    assert [g["algorithm"] for g in opt.param_groups] == ["muon"]
    _steps(opt, [p], [[g] for g in grads])
    expected = direct_muon(p0, grads, 0.24, 0.6, nesterov)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(p.detach(), p0 * (shape[0] ** 0.5 / p0.norm()), atol=1e-3), "the step moved the weights"


def test_muon_in_bfloat16_orthogonalises_in_bfloat16() -> None:
    torch.manual_seed(1)
    p0, grads = torch.randn(16, 4, 3, 3), [torch.randn(16, 4, 3, 3) for _ in range(2)]
    p = nn.Parameter(p0.clone())
    _steps(MuonWithSGD([p], newton_schulz_dtype="bfloat16"), [p], [[g] for g in grads])
    in_bf16, in_fp32 = direct_muon(p0, grads, 0.24, 0.6, True, torch.bfloat16), direct_muon(p0, grads, 0.24, 0.6, True)
    torch.testing.assert_close(p.detach(), in_bf16, rtol=1e-5, atol=1e-5)
    assert (p.detach() - in_fp32).abs().max() > 1e-3, "bfloat16 round-off, not float32's"


def test_the_sgd_part_is_torch_sgd_step_for_step() -> None:
    torch.manual_seed(2)
    shapes = [(5,), (10, 7), (3, 2, 2, 2)]
    start = [torch.randn(s) for s in shapes]
    grads = [[torch.randn(s) for s in shapes] for _ in range(5)]
    ours = [nn.Parameter(t.clone()) for t in start]
    ref = [nn.Parameter(t.clone()) for t in start]
    groups = [{"params": ours[:2]}, {"params": ours[2:], "weight_decay": 0.3, "lr": 0.05}]
    opt = MuonWithSGD(groups, muon_ndims=(3,), sgd_lr=0.1, sgd_momentum=0.85, sgd_nesterov=True, sgd_weight_decay=0.01)
    sgd = torch.optim.SGD([{"params": ref[:2]}, {"params": ref[2:], "weight_decay": 0.3, "lr": 0.05}], lr=0.1, momentum=0.85, nesterov=True, weight_decay=0.01, foreach=False)
    _steps(opt, ours, grads)
    _steps(sgd, ref, grads)
    assert [g["algorithm"] for g in opt.param_groups] == ["sgd", "sgd"], "no 3-D parameter: no Muon part"
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)


def test_which_parameters_go_to_muon_and_which_to_sgd_in_the_fast_cnn_and_the_vgg() -> None:
    factory = functools.partial(MuonWithSGD, lr=0.24, sgd_lr=2.0, sgd_weight_decay=0.01)
    model = FastCNNClassifier(widths=[8, 16], optimizer=factory, lr_multipliers={"norm_bias": 50.0, "bias": 50.0})
    opt = model.configure_optimizers()
    names = {id(p): n for n, p in model.named_parameters()}
    by_group = [(g["algorithm"], g["lr"], g.get("weight_decay"), sorted(names[id(p)] for p in g["params"])) for g in opt.param_groups]
    convs = sorted(n for n, p in model.named_parameters() if p.ndim == 4 and p.requires_grad)
    assert convs == ["net.blocks.0.conv1.weight", "net.blocks.0.conv2.weight", "net.blocks.1.conv1.weight", "net.blocks.1.conv2.weight"]
    biases = sorted(["net.whiten.bias"] + [f"net.blocks.{i}.norm{j}.bias" for i in (0, 1) for j in (1, 2)])
    assert by_group == [("muon", 0.24, None, convs), ("sgd", 2.0, 0.01, ["net.head.weight"]), ("sgd", 100.0, 0.01 / 50, biases)]
    assert "net.whiten.weight" not in {n for *_, ns in by_group for n in ns}, "frozen parameters are in no group"

    vgg = VGGClassifier(layout=[8, "M", 16], optimizer=factory)
    groups = {g["algorithm"]: sorted(n for n, p in vgg.named_parameters() if any(p is q for q in g["params"])) for g in vgg.configure_optimizers().param_groups}
    assert groups == {"muon": ["net.features.0.weight", "net.features.4.weight"],
                      "sgd": ["net.classifier.bias", "net.classifier.weight", "net.features.1.bias", "net.features.1.weight", "net.features.5.bias", "net.features.5.weight"]}


def test_state_survives_a_weights_only_checkpoint_round_trip() -> None:
    torch.manual_seed(3)
    shapes = [(8, 3, 3, 3), (8,), (10, 8)]
    start = [torch.randn(s) for s in shapes]
    grads = [[torch.randn(s) for s in shapes] for _ in range(4)]

    def make() -> tuple[list[nn.Parameter], MuonWithSGD]:
        params = [nn.Parameter(t.clone()) for t in start]
        return params, MuonWithSGD([{"params": params[:2]}, {"params": params[2:], "lr_multiplier": 3.0}], sgd_lr=0.1)

    straight, opt = make()
    _steps(opt, straight, grads)
    resumed, first = make()
    _steps(first, resumed, grads[:2])
    buffer = io.BytesIO()
    torch.save({"optimizer": first.state_dict(), "params": [p.detach() for p in resumed]}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    params, second = make()
    with torch.no_grad():
        for p, value in zip(params, saved["params"]):
            p.copy_(value)
    second.load_state_dict(saved["optimizer"])
    assert [g["algorithm"] for g in second.param_groups] == ["muon", "sgd", "sgd"] and second.param_groups[2]["lr_multiplier"] == 3.0
    _steps(second, params, grads[2:])
    for a, b in zip(params, straight):
        assert torch.equal(a, b), "the resumed optimizer continued exactly"


def test_it_learns_a_small_synthetic_task() -> None:
    torch.manual_seed(4)
    templates = torch.randn(4, 3, 8, 8)
    labels = torch.arange(256) % 4
    images = templates[labels] + 1.5 * torch.randn(256, 3, 8, 8)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    opt = MuonWithSGD(net.parameters(), lr=0.05, sgd_lr=0.05)
    assert sorted(g["algorithm"] for g in opt.param_groups) == ["muon", "sgd"]
    losses = []
    for _ in range(60):
        loss = nn.functional.cross_entropy(net(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::10]


@pytest.mark.parametrize("kwargs,message", [
    ({"lr": -1.0}, "lr must be >= 0"), ({"momentum": 1.0}, "momentum must be in"), ({"sgd_momentum": 0.0}, "Nesterov needs a momentum > 0: sgd_momentum"),
    ({"newton_schulz_steps": 0}, "newton_schulz_steps must be >= 1"), ({"muon_ndims": (1,)}, "muon_ndims must be"),
    ({"newton_schulz_dtype": "float16"}, "newton_schulz_dtype must be"), ({"newton_schulz_coefficients": (1.0, 2.0)}, "three numbers"),
])
def test_bad_values_are_refused_naming_the_argument(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MuonWithSGD([nn.Parameter(torch.zeros(2, 2))], **kwargs)


# ------------------------------------------------------------------ through train.py

TINY = ["--model.widths", "[8,16,16]"]


def _fit_args(data_dir: Path, runs: Path, *extra: str) -> list[str]:
    return ["fit", "--config", str(ROOT / "configs/fast_cnn_muon.yaml"), "--config", str(ROOT / "configs/cpu.yaml"), *TINY,
            "--data.data_dir", str(data_dir), "--data.download", "false", "--data.val_size", "30", "--data.batch_size", "20",
            "--runs_dir", str(runs), "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", *extra]


def test_the_muon_recipe_builds_airbench94_muons_hyperparameters(batches_dir: Path, tmp_path: Path) -> None:
    cli = run_cli(*_fit_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "1"))
    groups = cli.trainer.optimizers[0].param_groups
    assert [g["algorithm"] for g in groups] == ["muon", "sgd", "sgd"]
    muon, head, biases = groups
    assert muon["initial_lr"] == 0.24 and muon["momentum"] == 0.6 and muon["nesterov"] and muon["newton_schulz_coefficients"] == COEFFICIENTS
    assert [p.ndim for p in muon["params"]] == [4] * 6 and head["params"] == [cli.model.net.head.weight]
    sigma = 768 ** -0.5  # std of PyTorch's default init of the 256-wide head; airbench's head has std 1 and logits / 256
    assert cli.model.net.logit_scale == pytest.approx((1 / 256) / sigma, rel=1e-12)
    assert head["initial_lr"] == pytest.approx(0.67 * 2000 * sigma**2, rel=1e-12), "airbench's head lr 0.67 on a summed loss of 2,000"
    assert biases["initial_lr"] == pytest.approx(0.053 * 2000, rel=1e-12), "airbench's bias lr 0.053 on a summed loss of 2,000"
    for g in (head, biases):
        assert g["initial_lr"] * g["weight_decay"] == pytest.approx(2e-6 * 2000, rel=1e-12) and g["momentum"] == 0.85 and g["nesterov"]


def test_a_resumed_muon_fit_is_bit_identical_to_an_uninterrupted_one(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plain_cfg, crash_cfg = tmp_path / "plain.yaml", tmp_path / "crash.yaml"
    plain_cfg.write_text("trainer:\n  callbacks:\n  - class_path: callbacks.epoch_log.EpochLog\n")
    crash_cfg.write_text(plain_cfg.read_text() + "  - class_path: tests.helpers.kill.RaiseAtStep\n    init_args: {step: 9}\n")
    # 120 train images / batch 20 = 6 steps per epoch; the crash comes mid-epoch 1, after the step-8 last.ckpt.
    common = ["--trainer.max_epochs", "3", "--trainer.deterministic", "true", "--last_checkpoint.every_n_train_steps", "2", "--model.whiten_bias_epochs", "1"]
    with pytest.raises(RuntimeError, match="crash at step 9"):
        run_cli(*_fit_args(batches_dir, runs, *common, "--run_name", "crash", "--config", str(crash_cfg)))
    last = runs / "crash" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 8 and {len(s) for s in saved["optimizer_states"][0]["state"].values()} == {1}, "momentum buffers saved"
    run_cli(*_fit_args(batches_dir, runs, *common, "--run_name", "crash", "--config", str(plain_cfg), "--ckpt_path", "last"))
    run_cli(*_fit_args(batches_dir, runs, *common, "--run_name", "clean", "--config", str(plain_cfg)))
    a = torch.load(last, weights_only=True)
    b = torch.load(runs / "clean" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 18
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, value in b["state_dict"].items():
        assert torch.equal(a["state_dict"][name], value), f"{name} differs after crash + resume"
    sa, sb = a["optimizer_states"][0], b["optimizer_states"][0]
    assert sa["param_groups"] == sb["param_groups"] and sa["state"].keys() == sb["state"].keys()
    for i, state in sb["state"].items():
        assert torch.equal(sa["state"][i]["momentum_buffer"], state["momentum_buffer"]), f"momentum buffer {i} differs"
    assert (runs / "crash" / "version_0" / "epoch_log.csv").read_text().count("\n") == (runs / "clean" / "version_0" / "epoch_log.csv").read_text().count("\n")
