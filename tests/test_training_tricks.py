"""The fast CNN and the training tricks every model can use: alternating flip, reflect padding, weight
averaging (EMA/lookahead) with bit-identical resume, test-time augmentation, LR multipliers, the
triangular schedule, and the whitening layer."""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import pytest
import torch

from datamodules import CIFAR10DataModule
from datamodules.augment import normalize, random_crop
from datamodules.in_memory_loader import InMemoryLoader
from lit_models import FastCNNClassifier, VGGClassifier
from cli.resume_changes import ResumeChangeError
from lit_models.base import CheckpointMismatchError
from lit_models.components.fast_cnn import FastCNN, patch_whitening_weights
from lit_models.schedules import TriangularLR
from lit_models.tta import tta_logits
from tests.cli_helpers import ROOT, only_run_dir, run_cli

TINY_FAST = ["--model.widths", "[8,16,16]"]


def _fit_args(data_dir: Path, runs: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(ROOT / "configs/fast_cnn.yaml"), "--config", str(ROOT / "configs/cpu.yaml"), *TINY_FAST,
        "--data.data_dir", str(data_dir), "--data.download", "false", "--data.val_size", "30", "--data.batch_size", "20",
        "--runs_dir", str(runs), "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", *extra,
    ]


# ------------------------------------------------------------------ alternating flip, reflect padding


def _mirrored_by_index(loader: InMemoryLoader, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> dict[int, bool]:
    """For every image the loader yields (crop_padding 0): was it mirrored? Checked against the pixels."""
    seen: dict[int, bool] = {}
    for x, _, index in loader:
        for img, i in zip(x, index.tolist()):
            plain = normalize(images[i : i + 1], mean, std)[0]
            assert torch.equal(img, plain) or torch.equal(img, plain.flip(-1)), "only mirrored or not, no other change"
            mirrored = torch.equal(img, plain.flip(-1))
            assert seen.setdefault(i, mirrored) == mirrored, "a padded (repeated) image gets the same flip"
    return seen


def test_alternate_flip_mirrors_each_image_in_exactly_one_of_two_consecutive_epochs() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (61, 3, 6, 5), dtype=torch.uint8, generator=g)  # asymmetric with certainty
    labels = torch.zeros(61, dtype=torch.long)
    subset = torch.arange(3, 58)  # a split of 55 images
    mean, std = torch.full((3, 1, 1), 100.0), torch.full((3, 1, 1), 50.0)

    def loader(rank: int, epoch: int) -> InMemoryLoader:
        it = InMemoryLoader(images, labels, 4, mean, std, shuffle=True, augment=True, crop_padding=0, flip="alternate",
                            seed=3, rank=rank, world_size=2, subset=subset, with_index=True)
        it.sampler.set_epoch(epoch)
        return it

    per_epoch = []
    for epoch in range(4):
        flips: dict[int, bool] = {}
        for rank in range(2):  # DDP: each rank's shard, flips decided by position, not by rank
            flips.update(_mirrored_by_index(loader(rank, epoch), images, mean, std))
        assert sorted(flips) == subset.tolist(), "the two shards cover the split"
        per_epoch.append(flips)
    assert 15 < sum(per_epoch[0].values()) < 40, "about half the images are mirrored in an epoch"
    for a, b in zip(per_epoch, per_epoch[1:]):
        assert all(a[i] != b[i] for i in a), "each image is mirrored in exactly one of two consecutive epochs"

    full = list(loader(1, 2))
    resumed = loader(1, 2)
    resumed.start_batch = 3
    rest = list(resumed)
    assert len(rest) == len(full) - 3 and all(torch.equal(a[0], b[0]) for a, b in zip(rest, full[3:])), "mid-epoch resume"


def test_reflect_padding_crops_windows_of_the_reflected_batch() -> None:
    x = torch.randn(20, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    out = random_crop(x, padding=2, generator=torch.Generator().manual_seed(2), padding_mode="reflect")
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(20):
        assert any(torch.equal(out[i], padded[i, :, dy : dy + 5, dx : dx + 5]) for dy in range(5) for dx in range(5))
    assert not (out == 0).any(), "no zero border"


def test_datamodule_flip_flag_and_training_images(batches_dir: Path) -> None:
    dm = CIFAR10DataModule(str(batches_dir), download=False, val_size=30, batch_size=16, augment=True, flip="alternate", crop_padding_mode="reflect")
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.flip == "alternate" and loader.padding_mode == "reflect"
    assert next(iter(loader))[0].shape == (16, 3, 32, 32)
    some = dm.train_images(50)
    assert some.dtype == torch.float32 and some.shape == (50, 3, 32, 32)
    train = normalize(dm.train_x, dm.mean, dm.std)
    rows = {bytes(t.numpy().tobytes()) for t in train}
    assert all(bytes(t.numpy().tobytes()) in rows for t in some), "training-split images only, normalised as the loader does"
    assert torch.equal(dm.train_images(50), some) and torch.equal(dm.train_images(), train), "fixed subset; all without max_n"


BAD_FLAGS = [
    (["--data.flip", "sometimes"], "--data.flip"),
    (["--data.crop_padding_mode", "wrap"], "--data.crop_padding_mode"),
    (["--model.tta", "rotate"], "--model.tta"),
    (["--model.lr_multipliers", "{norm_bias: 0}"], "--model.lr_multipliers must map selectors to positive factors"),
    (["--model.lr_multipliers", "{'(': 2}"], "--model.lr_multipliers must have keys"),
    (["--model.lr_multipliers", "{nothing_here: 2}"], "--model.lr_multipliers must select trainable parameters: 'nothing_here' matches none"),
    (["--model.widths", "[8,0,16]"], "--model.widths"),
    (["--model.widths", "[]"], "--model.widths must be a non-empty list"),
    (["--model.bn_momentum", "0"], "--model.bn_momentum"),
    (["--model.whiten_eps", "0"], "--model.whiten_eps"),
    (["--model.whiten_bias_epochs", "-1"], "--model.whiten_bias_epochs"),
    (["--model.scheduler.warmup_fraction", "1.5"], "--model.scheduler.warmup_fraction must be in [0, 1)"),
    (["--model.scheduler.end_factor", "-0.1"], "--model.scheduler.end_factor must be >= 0"),
]


@pytest.mark.parametrize("flags,expected", BAD_FLAGS)
def test_bad_fast_cnn_and_trick_flags_are_one_line_errors_before_any_data_is_read(flags: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tests.cli_helpers import refusal

    # data_dir does not exist: a value refused only after reading the data would fail with a data error instead.
    message = refusal(capsys, *_fit_args(tmp_path / "no_data_here", tmp_path / "runs", *flags))
    assert expected in message and "\n" not in message, message
    assert "No CIFAR-10 data" not in message
    assert not list((tmp_path / "runs").glob("*/version_*")), "a refused run leaves no run directory"


@pytest.mark.parametrize("init_args,flag", [("{decay: 1.0}", "decay"), ("{mode: swa}", "mode"), ("{every_n_steps: 0}", "every_n_steps"), ("{ramp_power: -1}", "ramp_power")])
def test_bad_weight_average_flags_are_one_line_errors(init_args: str, flag: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tests.cli_helpers import refusal

    cfg = tmp_path / "wa.yaml"
    cfg.write_text(f"trainer:\n  callbacks:\n  - class_path: callbacks.weight_average.WeightAverage\n    init_args: {init_args}\n")
    message = refusal(capsys, *_fit_args(tmp_path / "no_data_here", tmp_path / "runs", "--config", str(cfg)))
    assert flag in message and "\n" not in message and "No CIFAR-10 data" not in message, message


# ------------------------------------------------------------------ whitening, TTA


def test_whitening_layer_whitens_its_patches() -> None:
    g = torch.Generator().manual_seed(0)
    # Correlated channels and smooth images (neighbouring pixels alike), plus a little noise.
    base = torch.nn.functional.interpolate(torch.randn(300, 3, 8, 8, generator=g), size=16, mode="bilinear")
    mix = torch.tensor([[1.0, 0.5, 0.2], [0.4, 1.0, 0.1], [0.3, 0.6, 1.0]])
    images = torch.einsum("oc,nchw->nohw", mix, base) + 0.1 * torch.randn(300, 3, 16, 16, generator=g)
    net = FastCNN(widths=[8])
    net.init_whitening(images, eps=1e-6)
    out = torch.nn.functional.conv2d(images.double(), net.whiten.weight.double())  # the layer before its (zero) bias
    flat = out.permute(0, 2, 3, 1).reshape(-1, 24)
    moment = flat.T @ flat / len(flat)
    assert torch.allclose(moment[:12, :12], torch.eye(12, dtype=torch.float64), atol=2e-3), "whitened: identity second moment"
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12]), "the second half is the negation"
    raw = torch.nn.functional.unfold(images.double(), 2).transpose(1, 2).reshape(-1, 12)
    assert (raw.T @ raw / len(raw) - torch.eye(12, dtype=torch.float64)).abs().max() > 0.5, "the input patches were not white"


def _trained_bn_net() -> FastCNN:
    torch.manual_seed(0)
    net = FastCNN(widths=[8, 16])
    net.init_whitening(torch.randn(20, 3, 32, 32))
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(16, 3, 32, 32) * 2 + 0.5)  # non-trivial BatchNorm running statistics
    return net.eval()


def test_tta_on_a_symmetric_input_equals_no_tta() -> None:
    net = _trained_bn_net()
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    symmetric = (x + x.flip(-1)) / 2  # mirror-symmetric images
    constant = torch.randn(6, 3, 1, 1, generator=torch.Generator().manual_seed(2)).expand(6, 3, 32, 32).contiguous()
    with torch.no_grad():
        assert torch.equal(tta_logits(net, symmetric, "flip"), net(symmetric))
        assert torch.allclose(tta_logits(net, constant, "flip+translate"), net(constant), atol=1e-6), "shifts of a constant image change nothing"
        assert not torch.allclose(tta_logits(net, x, "flip"), net(x), atol=1e-4), "but TTA does change asymmetric inputs"
        assert not torch.allclose(tta_logits(net, symmetric, "flip+translate"), net(symmetric), atol=1e-4)
        model = FastCNNClassifier(widths=[8, 16], tta="flip+translate")
        model.net = net
        assert torch.allclose(model.eval_logits(constant), net(constant), atol=1e-6), "validate/test/predict use eval_logits"
    with pytest.raises(ValueError, match="--model.tta must be one of none, flip, flip\\+translate"):
        tta_logits(net, x, "rotate")  # the CLI refuses it from the annotation (test_bad_fast_cnn_and_trick_flags...)


# ------------------------------------------------------------------ optimisation


def _optimizer_and_scheduler(model: FastCNNClassifier, total: int = 100) -> tuple[torch.optim.Optimizer, object]:
    model.total_training_steps = lambda: total  # no Trainer here
    config = model.configure_optimizers()
    return config["optimizer"], config["lr_scheduler"]["scheduler"]


def _group_of(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter) -> dict:
    return next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))


def test_lr_multipliers_scale_the_lr_of_selected_groups_but_not_their_decay() -> None:
    sgd = functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    model = FastCNNClassifier(widths=[8, 16], optimizer=sgd, scheduler=functools.partial(TriangularLR),
                              lr_multipliers={"norm_bias": 64.0, r"net\.head\.": 0.5})
    optimizer, scheduler = _optimizer_and_scheduler(model)
    bias, head, conv = model.net.blocks[0].norm1.bias, model.net.head.weight, model.net.blocks[0].conv1.weight
    assert all(not g.get("lr_multiplier") for g in optimizer.param_groups if any(p is model.net.whiten.bias for p in g["params"]))
    for param, factor in ((bias, 64.0), (head, 0.5), (conv, 1.0)):
        group = _group_of(optimizer, param)
        assert group["lr"] == pytest.approx(0.1 * 0.2 * factor), "start of the triangle, times the factor"
        assert group["lr"] * group["weight_decay"] == pytest.approx(0.1 * 0.2 * 0.01), "decay per step unchanged"
    assert not any(p is model.net.blocks[0].norm1.weight for g in optimizer.param_groups for p in g["params"]), "BN scale is frozen"
    for _ in range(50):
        optimizer.step()
        scheduler.step()
    assert _group_of(optimizer, bias)["lr"] == pytest.approx(64 * _group_of(optimizer, conv)["lr"])

    onecycle = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.4)
    model = FastCNNClassifier(widths=[8], optimizer=sgd, scheduler=onecycle, lr_multipliers={"norm_bias": 8.0})
    optimizer, _ = _optimizer_and_scheduler(model)
    assert _group_of(optimizer, model.net.blocks[0].norm1.bias)["max_lr"] == pytest.approx(3.2), "OneCycleLR keeps the factor"

    assert len(FastCNNClassifier(widths=[8], optimizer=sgd).configure_optimizers().param_groups) == 1, "no multipliers: one group as before"
    for bad, message in (({"norm_bias": 0.0}, "positive factors"), ({"(": 2.0}, "regular expressions")):
        with pytest.raises(ValueError, match=f"--model.lr_multipliers must .*{message}"):
            FastCNNClassifier(lr_multipliers=bad)
    with pytest.raises(ValueError, match="--model.lr_multipliers must select trainable parameters: 'nothing_here' matches none"):
        VGGClassifier(layout=[8, "M"], optimizer=sgd, lr_multipliers={"nothing_here": 2.0}).configure_optimizers()


def test_triangular_schedule() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = TriangularLR(optimizer, total_steps=101, warmup_fraction=0.2, start_factor=0.2, end_factor=0.05)
    lrs = []
    for _ in range(101):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.4) and max(lrs) == pytest.approx(2.0) and lrs.index(max(lrs)) == 20
    assert lrs[-1] == pytest.approx(2.0 + (0.1 - 2.0) * 80 / 81) and lrs[100] > 0.1
    assert all(b > a for a, b in zip(lrs[:20], lrs[1:21])) and all(b < a for a, b in zip(lrs[20:], lrs[21:]))


# ------------------------------------------------------------------ the fast CNN through train.py


def test_fit_whitens_from_the_training_split_and_freezes_the_whitening_bias(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cli = run_cli(*_fit_args(batches_dir, runs, "--trainer.max_epochs", "3", "--model.whiten_bias_epochs", "1", "--trainer.callbacks", "[]"))
    expected = patch_whitening_weights(cli.datamodule.train_images(5000), 2, 5e-4)
    assert torch.equal(cli.model.net.whiten.weight, expected), "filters from the training split (the 120 training images)"
    ckpts = only_run_dir(runs) / "checkpoints"
    bias = [torch.load(ckpts / f"epoch{e:02d}.ckpt", weights_only=True)["state_dict"]["net.whiten.bias"] for e in range(3)]
    assert bias[0].abs().sum() > 0, "trained in epoch 0"
    assert torch.equal(bias[0], bias[1]) and torch.equal(bias[1], bias[2]), "frozen from epoch 1 on"

    from scripts.evaluate_checkpoints import main as evaluate_checkpoints

    rows = evaluate_checkpoints([str(only_run_dir(runs)), "--data.data_dir", str(batches_dir)])
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "final"] and [r["tta"] for r in rows] == ["none"] * 3 + ["flip+translate"]
    assert all(0 <= float(r["test_acc"]) <= 1 for r in rows) and (only_run_dir(runs) / "epoch_test.csv").is_file()


def test_a_frozen_whitening_bias_stops_requiring_a_gradient_and_training_is_bit_identical(batches_dir: Path, tmp_path: Path,
                                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """After ``whiten_bias_epochs`` the backward pass skips the first conv's input gradient (airbench94's saving);
    the weights come out exactly as when that gradient was computed and dropped."""
    from lit_models.fast_cnn import FastCNNClassifier

    args = ("--trainer.max_epochs", "3", "--model.whiten_bias_epochs", "1", "--trainer.callbacks", "[]", "--trainer.deterministic", "true")
    tracked: list[bool] = []
    real_step = FastCNNClassifier.on_before_optimizer_step
    monkeypatch.setattr(FastCNNClassifier, "on_before_optimizer_step",
                        lambda self, opt: (tracked.append(self.net.whiten.bias.requires_grad), real_step(self, opt))[1])
    new = run_cli(*_fit_args(batches_dir, tmp_path / "new", *args))
    steps_per_epoch = new.trainer.global_step // 3
    assert tracked == [True] * steps_per_epoch + [False] * 2 * steps_per_epoch, tracked
    monkeypatch.setattr(FastCNNClassifier, "on_train_epoch_start", lambda self: None)  # before: always tracked, then dropped
    old = run_cli(*_fit_args(batches_dir, tmp_path / "old", *args))
    assert all(tracked[3 * steps_per_epoch:]), "the old path tracked the bias in every epoch"
    new_state, old_state = new.model.state_dict(), old.model.state_dict()
    assert all(torch.equal(new_state[k], old_state[k]) for k in new_state), [k for k in new_state if not torch.equal(new_state[k], old_state[k])]


def test_under_ddp_the_frozen_whitening_bias_keeps_its_gradient_and_is_still_not_moved(batches_dir: Path, tmp_path: Path) -> None:
    """DDP's reducer (one process too) expects a gradient for every parameter that required one when it was built:
    turning the bias's off mid-run failed with "parameters that were not used in producing the loss"."""
    from tests.cli_helpers import run_script  # its own process: DDP's process group and MASTER_PORT stay out of this one

    runs = tmp_path / "runs"
    res = run_script(*_fit_args(batches_dir, runs, "--trainer.max_epochs", "3", "--model.whiten_bias_epochs", "1", "--trainer.callbacks", "[]",
                                "--trainer.strategy", "ddp", "--trainer.devices", "1"), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpts = only_run_dir(runs) / "checkpoints"
    bias = [torch.load(ckpts / f"epoch{e:02d}.ckpt", weights_only=True)["state_dict"]["net.whiten.bias"] for e in range(3)]
    assert torch.equal(bias[0], bias[1]) and torch.equal(bias[1], bias[2]), "its gradient is dropped instead"


def test_evaluating_a_checkpoint_does_not_ask_for_the_callbacks_that_trained_it(batches_dir: Path, tmp_path: Path) -> None:
    """Evaluation reads weights only (WeightAverage saved the averaged ones), so Lightning's "callbacks used to
    create the checkpoint need to be provided" is a false alarm there; resuming a fit without them keeps it."""
    import warnings

    runs = tmp_path / "runs"
    run_cli(*_fit_args(batches_dir, runs, "--trainer.max_epochs", "1"))
    last = only_run_dir(runs) / "checkpoints" / "last.ckpt"
    saved = " ".join(torch.load(last, weights_only=True)["callbacks"])
    assert "WeightAverage" in saved and "EpochLog" in saved, saved
    for subcommand in ("validate", "test"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_cli(subcommand, "--ckpt_path", str(last), "--data.data_dir", str(batches_dir), "--data.download", "false",
                    "--data.val_size", "30", "--runs_dir", str(tmp_path / "eval"), "--trainer.logger", "false",
                    "--trainer.enable_progress_bar", "false")
            assert not [f for f in warnings.filters if f[1] is not None and "callbacks used to create" in f[1].pattern], \
                "the filter ends with the evaluation: a later fit resume in the same process still gets the warning"
        assert not [str(w.message) for w in caught if "callbacks used to create the checkpoint" in str(w.message)], subcommand


# Every argument given: a second config's callback list may inherit init_args from the first one's.
WEIGHT_AVERAGES = {
    "ema": "{mode: ema, decay: 0.8, every_n_steps: 1, ramp_power: 0.0, start_step: 0}",
    "lookahead": "{mode: lookahead, decay: 0.95, every_n_steps: 4, ramp_power: 3.0, start_step: 0}",  # 18 steps: 2 raw steps after the last
}


@pytest.mark.parametrize("mode", sorted(WEIGHT_AVERAGES))
def test_weight_average_resume_is_bit_identical(mode: str, batches_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    callbacks = f"  - class_path: callbacks.weight_average.WeightAverage\n    init_args: {WEIGHT_AVERAGES[mode]}\n"
    crash_cfg, plain_cfg = tmp_path / "crash.yaml", tmp_path / "plain.yaml"
    plain_cfg.write_text("trainer:\n  callbacks:\n" + callbacks)
    crash_cfg.write_text("trainer:\n  callbacks:\n" + callbacks + "  - class_path: tests.helpers.kill.RaiseAtStep\n    init_args: {step: 9}\n")
    # 120 train images / batch 20 = 6 steps per epoch; crash mid-way through epoch 1, after the step-8 checkpoint.
    common = ["--trainer.max_epochs", "3", "--trainer.deterministic", "true", "--last_checkpoint.every_n_train_steps", "2", "--model.whiten_bias_epochs", "1"]
    with pytest.raises(RuntimeError, match="crash at step 9"):
        run_cli(*_fit_args(batches_dir, runs, *common, "--run_name", "crash", "--config", str(crash_cfg)))
    last = runs / "crash" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 8

    def no_whitening(self: FastCNNClassifier) -> None:
        raise AssertionError("a resumed fit must keep the checkpoint's whitening filters")

    with monkeypatch.context() as patch:
        patch.setattr(FastCNNClassifier, "init_whitening", no_whitening)
        run_cli(*_fit_args(batches_dir, runs, *common, "--run_name", "crash", "--config", str(plain_cfg), "--ckpt_path", "last"))
    clean = run_cli(*_fit_args(batches_dir, runs, *common, "--run_name", "clean", "--config", str(plain_cfg)))
    a = torch.load(last, weights_only=True)
    b = torch.load(runs / "clean" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 18
    for key in ("state_dict", "raw_state_dict"):
        assert a[key].keys() == b[key].keys()
        for name, value in b[key].items():
            assert torch.equal(a[key][name], value), f"{key}[{name}] differs after crash + resume"
    averaged, raw = b["state_dict"], b["raw_state_dict"]
    assert not torch.equal(averaged["net.blocks.0.conv1.weight"], raw["net.blocks.0.conv1.weight"]), "the average is not the raw weights"
    # Float entries only: the integer accuracy counters are not averaged, and last.ckpt is written at the final
    # validation (main's LastCheckpoint), before on_train_epoch_end resets them in the model.
    floats = {k: v for k, v in clean.model.state_dict().items() if v.is_floating_point()}
    assert floats and not [k for k, v in floats.items() if not torch.equal(v, averaged[k])], "after fit the model holds the average"
    ev = run_cli("validate", "--ckpt_path", runs / "clean" / "version_0" / "checkpoints" / "last.ckpt", "--data.data_dir", batches_dir,
                 "--runs_dir", runs, "--trainer.logger", "false")
    assert float(ev.trainer.callback_metrics["val/acc"]) == float(clean.trainer.callback_metrics["val/acc"]), "validation ran on the average"
    no_average = tmp_path / "no_average.yaml"
    no_average.write_text("trainer:\n  callbacks: []\n")
    status = runs / "crash" / "version_0" / "status.json"
    before = json.loads(status.read_text())
    with pytest.raises(ResumeChangeError, match="trained with callbacks.weight_average.WeightAverage"):  # it would train on from the average, silently
        run_cli(*_fit_args(batches_dir, runs, *common, "--run_name", "crash", "--config", str(no_average), "--ckpt_path", "last", "--trainer.max_epochs", "4"))
    assert json.loads(status.read_text()) == before, "a refused resume leaves the run's record (status, step, wall time, segments) as it was"
    assert [p.name for p in (runs / "crash" / "version_0").glob("config.resume-*.yaml")] == ["config.resume-1.yaml"], "no config file of the refused resume"


@pytest.mark.parametrize("sig,step", [("SIGINT", 9), ("SIGTERM", 6)])
def test_signal_stop_and_resume_keeps_averaging_and_epoch_log_exact(sig: str, step: int, batches_dir: Path, tmp_path: Path) -> None:
    """LastCheckpoint saves at the step boundary on SIGINT/SIGTERM (step 9: mid-epoch 1; step 6: the last step of
    epoch 0, followed by its validation); the resumed run's weights, averages and epoch log equal an uninterrupted run's."""

    from callbacks.interrupts import RunInterrupted

    runs = tmp_path / "runs"
    callbacks = ("  - class_path: callbacks.weight_average.WeightAverage\n    init_args: " + WEIGHT_AVERAGES["lookahead"] + "\n"
                 "  - class_path: callbacks.epoch_log.EpochLog\n")
    plain_cfg, signal_cfg = tmp_path / "plain.yaml", tmp_path / "signal.yaml"
    plain_cfg.write_text("trainer:\n  callbacks:\n" + callbacks)
    signal_cfg.write_text("trainer:\n  callbacks:\n" + callbacks + f"  - class_path: tests.helpers.kill.SignalAtStep\n    init_args: {{step: {step}, signal: {sig}}}\n")
    common = ["--trainer.max_epochs", "3", "--trainer.deterministic", "true", "--model.whiten_bias_epochs", "1"]
    with pytest.raises(RunInterrupted):
        run_cli(*_fit_args(batches_dir, runs, *common, "--run_name", "sig", "--config", str(signal_cfg)))
    last = runs / "sig" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == step, "saved at the step it was stopped"
    run_cli(*_fit_args(batches_dir, runs, *common, "--run_name", "sig", "--config", str(plain_cfg), "--ckpt_path", "last"))
    run_cli(*_fit_args(batches_dir, runs, *common, "--run_name", "clean", "--config", str(plain_cfg)))
    a = torch.load(last, weights_only=True)
    b = torch.load(runs / "clean" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 18
    for key in ("state_dict", "raw_state_dict"):
        for name, value in b[key].items():
            assert torch.equal(a[key][name], value), f"{key}[{name}] differs after {sig} + resume"
    exact = ["epoch", "step", "train_loss", "train_acc", "val_acc"]  # the seconds are wall time

    def log(run: str) -> list[list[str]]:
        return [[r[c] for c in exact] for r in csv.DictReader(open(runs / run / "version_0" / "epoch_log.csv"))]

    assert log("sig") == log("clean") and len(log("clean")) == 3


def test_bad_weight_average_values_name_the_flag() -> None:
    from callbacks.weight_average import WeightAverage

    for kw, flag in (({"decay": 1.0}, "decay"), ({"mode": "swa"}, "mode"), ({"every_n_steps": 0}, "every_n_steps")):
        with pytest.raises(ValueError, match=f"--trainer.callbacks.{flag} must"):
            WeightAverage(**kw)


@pytest.mark.slow
def test_fast_cnn_ddp_replicas_agree_and_epoch_log_averages_all_ranks(batches_dir: Path, tmp_path: Path) -> None:
    """Whitening (rank 0's, broadcast), alternating flip and lookahead stay identical on 2 CPU processes;
    EpochLog's train_loss is the mean over both ranks' steps, not rank 0's alone."""
    from tests.cli_helpers import run_script

    cfg = tmp_path / "callbacks.yaml"
    cfg.write_text("trainer:\n  callbacks:\n  - class_path: callbacks.weight_average.WeightAverage\n"
                   "    init_args: {mode: lookahead, decay: 0.95, every_n_steps: 2, ramp_power: 3.0, start_step: 0}\n"
                   "  - class_path: tests.helpers.replicas.ReplicasAgree\n"
                   "  - class_path: callbacks.epoch_log.EpochLog\n"
                   "  - class_path: tests.helpers.rank_losses.RankLosses\n")
    res = run_script(*_fit_args(batches_dir, tmp_path / "runs", "--trainer.max_epochs", "2", "--trainer.devices", "2",
                                "--trainer.strategy", "ddp", "--run_name", "ddp", "--config", str(cfg)), timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "replicas agree" in res.stdout
    run = tmp_path / "runs" / "ddp" / "version_0"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 6 and "raw_state_dict" in ckpt, "120 images, batch 20, 2 ranks: 3 steps per epoch"
    per_rank = [[float(v) for v in line.split(",")] for line in (run / "rank_losses.csv").read_text().split()]
    logged = [float(r["train_loss"]) for r in csv.DictReader(open(run / "epoch_log.csv"))]
    assert len(per_rank) == len(logged) == 2 and all(len(r) == 2 for r in per_rank)
    for epoch, ((rank0, rank1), loss) in enumerate(zip(per_rank, logged)):
        assert abs(rank0 - rank1) > 1e-3, "the ranks' shards must give different losses for this test to tell them apart"
        assert loss == pytest.approx((rank0 + rank1) / 2, rel=1e-5), f"epoch {epoch}: {loss} is not the mean of {rank0} and {rank1}"
