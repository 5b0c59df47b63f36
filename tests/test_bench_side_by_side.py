"""bench/fast_cnn_vs_airbench.py on tiny data, with a stand-in for airbench94.py (the real one is not in CI)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

# Holds every line the bench patches, in airbench94.py's spelling; reads the data it was given and prints a
# table in airbench94's format (run number on the first row only, an "eval" row with the TTA accuracy).
FAKE_AIRBENCH = '''
import os, sys, math, torch
hyp = {'opt': {'train_epochs': 9.9, 'batch_size': 1024}}
# .half().cuda() .half() torch.device(gpu) torch.cuda.Event(enable_timing=True) torch.cuda.synchronize()
def main(run):
    train = torch.load('cifar10/train.pt'); test = torch.load('cifar10/test.pt')
    assert train['images'].dtype == torch.uint8 and train['images'].shape[1:] == (32, 32, 3), train['images'].shape
    assert len(train['classes']) == 10 and len(test['labels']) == len(test['images'])
    epochs = hyp['opt']['train_epochs']
    for epoch in range(math.ceil(epochs)):
        print('|  %s  |  %d  |  1.0  |  0.5  |  0.%d  |      |  %.4f  |' % (run if epoch == 0 else '', epoch, 40 + epoch, 10.0 * (epoch + 1)))
    print('|     |  eval  |  1.0  |  0.5  |  0.6  |  0.65  |  %.4f  |' % (10.0 * math.ceil(epochs) + 1))
    return 0.65
def train_step(model, loss_fn, inputs, labels):  # airbench94's spelling and indentation
    for _ in [0]:
            outputs = model(inputs)
            loss = loss_fn(outputs, labels).sum()
    return outputs, loss
if __name__ == "__main__":
    with open(sys.argv[0]) as f:
        code = f.read()
    accs = [main(run) for run in range(25)]
'''


def test_side_by_side_runs_both_on_the_same_data_and_reports_the_ratio(batches_dir: Path, tmp_path: Path) -> None:
    from bench.fast_cnn_vs_airbench import main

    fake = tmp_path / "airbench94.py"
    fake.write_text(FAKE_AIRBENCH)
    out = tmp_path / "out"
    report = main(["--airbench", str(fake), "--data-dir", str(batches_dir), "--out", str(out), "--epochs", "2.5", "--batch-size", "50",
                   "--threads", "1", "--per-epoch", "--model.widths", "[8,16,16]", "--trainer.logger", "false"])
    patched = (out / "airbench" / "airbench94_patched.py").read_text()
    assert "'train_epochs': 2.5" in patched and "range(1)" in patched and "'batch_size': 50" in patched and ".half()" not in patched
    assert report["steps"] == math.ceil(2.5 * (150 // 50)) == 8
    ab, ours = report["airbench"], report["fast_cnn"]
    assert ab["runs"][0]["val_acc_per_epoch"] == [0.40, 0.41, 0.42] and ab["runs"][0]["test_acc_tta"] == 0.65
    assert ab["runs"][0]["train_seconds_per_epoch"] == [10.0, 10.0, 10.0] and ab["seconds_per_epoch"] == 10.0, "first and partial last left out"
    assert len(ours["runs"][0]["train_seconds_per_epoch"]) == 3, "3 epochs (the last one partial) in epoch_log.csv"
    assert 0 <= ours["test_acc"]["mean"] <= 1 and 0 <= ours["test_acc_tta"]["mean"] <= 1
    assert len(ours["runs"][0]["val_acc_per_epoch"]) == 3, "--per-epoch: one test accuracy per epoch checkpoint"
    assert abs(ours["runs"][0]["val_acc_per_epoch"][-1] - ours["test_acc"]["mean"]) < 1e-4, "the last epoch's checkpoint is the final model"
    assert report["seconds_per_epoch_ratio"] == pytest.approx(ours["seconds_per_epoch"] / 10.0)
    assert json.loads((out / "side_by_side.json").read_text())["steps"] == 8
    assert "| airbench94 | 1 | 2.5 (50) | 32 | 0.6000 | 0.6500 | 10.0 |" in (out / "side_by_side.md").read_text()
    assert report["precision"] == {"airbench": "32", "fast_cnn": "32"}, "configs/cpu.yaml's 32 on both sides by default"


def test_an_airbench_source_it_does_not_know_is_refused_in_one_line() -> None:
    from bench.fast_cnn_vs_airbench import patch_airbench

    with pytest.raises(SystemExit, match=r"--airbench: \"'train_epochs': 9.9\" not found"):
        patch_airbench("print('some other script')", "cpu", 9.9, 1, 2)



def test_a_data_folder_it_cannot_read_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    from bench.fast_cnn_vs_airbench import main

    with pytest.raises(SystemExit, match=r"^error: --data-dir .*nothing"):
        main(["--airbench", str(tmp_path), "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])


# airbench94_muon.py's lines the bench patches, in its spelling; prints its 6-column table (a warm-up run first,
# which the CPU patch removes along with compile). It trains only once our side has made its runs folder, so it
# finishes only if both sides run at the same time (--concurrent).
FAKE_AIRBENCH_MUON = '''
import os, sys, torch
from math import ceil
with open(sys.argv[0]) as f:
    code = f.read()
@torch.compile
def zeropower_via_newtonschulz5(G):
    X = G.bfloat16()
    return X
# map_location=torch.device("cuda") self.images.half() mod.half() torch.cuda.Event(enable_timing=True) torch.cuda.synchronize()
class CifarNet:
    pass
def main(run, model):
    import time
    deadline = time.monotonic() + 120  # with --concurrent our side starts meanwhile: wait for its runs folder
    while not os.path.isdir('../runs'):
        if time.monotonic() > deadline:
            sys.exit('our side never started while this one ran')
        time.sleep(0.2)
    batch_size = 2000
    train = torch.load('cifar10/train.pt')
    train_loader = range(len(train['labels']) // batch_size)
    total_train_steps = ceil(8 * len(train_loader))
    assert zeropower_via_newtonschulz5(torch.ones(2, 2)).dtype == torch.float32
    for epoch in range(ceil(total_train_steps / len(train_loader))):
        print('|  %s  |  %d  |  1.0  |  0.%d  |      |  %.4f  |' % (run if epoch == 0 else '', epoch, 40 + epoch, 5.0 * (epoch + 1)))
    print('|     |  eval  |  1.0  |  0.6  |  0.65  |  %.4f  |' % (5.0 * epoch + 6))
    return 0.65
if __name__ == "__main__":
    model = CifarNet().cuda()
    model.compile(mode="max-autotune")
    main("warmup", model)
    accs = torch.tensor([main(run, model) for run in range(200)])
'''


def test_muon_recipe_runs_our_muon_config_against_airbench94_muon_patched_for_the_cpu_at_the_same_time(batches_dir: Path, tmp_path: Path) -> None:
    from bench.fast_cnn_vs_airbench import main

    fake = tmp_path / "airbench94_muon.py"
    fake.write_text(FAKE_AIRBENCH_MUON)
    out = tmp_path / "out"
    report = main(["--recipe", "muon", "--airbench", str(fake), "--data-dir", str(batches_dir), "--out", str(out), "--epochs", "2", "--batch-size", "40",
                   "--threads", "1", "--concurrent", "--model.widths", "[8,16,16]", "--trainer.logger", "false"])
    patched = (out / "airbench" / "airbench94_muon_patched.py").read_text()
    assert "ceil(2.0 * len(train_loader))" in patched and "batch_size = 40" in patched and "range(1)" in patched
    assert "@torch.compile" not in patched and "bfloat16" not in patched and ".cuda()" not in patched and 'main("warmup"' not in patched
    assert report["recipe"] == "muon" and report["steps"] == 2 * (150 // 40) == 6
    ab, ours = report["airbench"], report["fast_cnn"]
    assert ab["runs"][0]["val_acc_per_epoch"] == [0.40, 0.41] and ab["runs"][0]["test_acc_tta"] == 0.65, "run 0 only: no warm-up rows"
    assert ab["runs"][0]["train_seconds_per_epoch"] == [5.0, 5.0]
    assert Path(ours["runs"][0]["run_dir"]).parent.name == "fast_cnn_muon_seed0" and len(ours["runs"][0]["train_seconds_per_epoch"]) == 2
    assert "optimizer:\n      class_path: lit_models.components.muon.MuonWithSGD" in (Path(ours["runs"][0]["run_dir"]) / "config.yaml").read_text()
    assert report["concurrent"] and "both sides at the same time" in (out / "side_by_side.md").read_text()
    assert "| airbench94_muon | 1 | 2 (40) | 32 | 0.6000 | 0.6500 | 5.0 |" in (out / "side_by_side.md").read_text()


def test_muon_recipe_against_airbench94_runs_each_side_its_own_epochs_and_batch_and_compares_training_seconds(batches_dir: Path, tmp_path: Path) -> None:
    """The cross pairing (8 Muon epochs against airbench94's 9.9): our seeds back to back while airbench94 runs once."""
    from bench.fast_cnn_vs_airbench import main

    fake = tmp_path / "airbench94.py"
    fake.write_text(FAKE_AIRBENCH)
    out = tmp_path / "out"
    root = Path(__file__).resolve().parents[1]
    report = main(["--recipe", "muon", "--baseline", "airbench94", "--airbench", str(fake), "--data-dir", str(batches_dir), "--out", str(out),
                   "--config", str(root / "configs/fast_cnn_muon.yaml"), "--config", str(root / "configs/cpu_bf16.yaml"), "--epochs", "1", "--batch-size", "40", "--baseline-epochs", "3", "--baseline-batch-size", "50", "--seeds", "2", "--first-seed", "1",
                   "--baseline-runs", "1", "--baseline-precision", "bf16-mixed", "--threads", "1", "--concurrent", "--model.widths", "[8,16,16]",
                   "--trainer.logger", "false"])
    patched = (out / "airbench" / "airbench94_patched.py").read_text()
    assert "with torch.autocast('cpu', torch.bfloat16):\n                outputs = model(inputs)" in patched
    assert "'train_epochs': 3.0" in patched and "'batch_size': 50" in patched and "range(1)" in patched
    assert (report["baseline"], report["steps"], report["baseline_epochs"]) == ("airbench94", 150 // 40, 3.0)
    ab, ours = report["airbench"], report["fast_cnn"]
    assert len(ab["runs"]) == 1 and ab["train_seconds"]["mean"] == 30.0, "one airbench94 run of 3 epochs, 10 s each"
    assert [Path(r["run_dir"]).parent.name for r in ours["runs"]] == ["fast_cnn_muon_seed1", "fast_cnn_muon_seed2"]
    assert "seed_everything: 2" in (Path(ours["runs"][1]["run_dir"]) / "config.yaml").read_text(), "--first-seed 1, the second run"
    assert ours["test_acc_tta"]["n"] == 2
    assert report["train_seconds_ratio"] == pytest.approx(ours["train_seconds"]["mean"] / 30.0)
    wall = report["wall_seconds"]
    assert 0 < wall["overlap"] <= min(wall["airbench"], wall["fast_cnn"])
    assert report["train_seconds_ratio_after_epoch0"] == pytest.approx(ours["train_seconds_after_epoch0"]["mean"] / 20.0), "airbench's epochs 1-2"
    md = (out / "side_by_side.md").read_text()
    assert "| airbench94 | 1 | 3 (50) | bf16-mixed |" in md and "| fast_cnn_muon | 2 | 1 (40) | bf16-mixed |" in md and "training seconds **" in md
    assert report["precision"] == {"airbench": "bf16-mixed", "fast_cnn": "bf16-mixed"}, "ours read from its runs' configs (configs/cpu_bf16.yaml)"
    assert "different precisions" not in md


def test_a_baseline_batch_larger_than_the_data_is_one_line_naming_the_flag(batches_dir: Path, tmp_path: Path) -> None:
    """The other baseline's published batch (airbench94's 1,024) is the default, and the error says so."""
    from bench.fast_cnn_vs_airbench import main

    with pytest.raises(SystemExit, match=r"^error: --baseline-batch-size 1024 \(the default for --recipe muon --baseline airbench94; "
                                         r"give --baseline-batch-size\) is larger than the 150 training images"):
        main(["--recipe", "muon", "--baseline", "airbench94", "--airbench", str(tmp_path), "--data-dir", str(batches_dir),
              "--out", str(tmp_path / "out"), "--batch-size", "40"])
    with pytest.raises(SystemExit, match=r"^error: --batch-size 200 is larger than"):  # given: no "default" note
        main(["--airbench", str(tmp_path), "--data-dir", str(batches_dir), "--out", str(tmp_path / "out"), "--batch-size", "200"])


def test_a_negative_first_seed_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from bench.fast_cnn_vs_airbench import main

    with pytest.raises(SystemExit, match=r"^error: --first-seed must be >= 0, got -1$"):
        main(["--airbench", str(tmp_path), "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--first-seed", "-1"])


def test_without_concurrent_the_sides_alternate_run_by_run_and_the_longer_side_ends_last() -> None:
    from bench.fast_cnn_vs_airbench import alternate

    order: list[str] = []

    def run(name: str):
        return lambda: order.append(name) or {"name": name}

    ab, ours = alternate([run("ab0")], [run("ours0"), run("ours1"), run("ours2")])
    assert order == ["ab0", "ours0", "ours1", "ours2"] and [r["name"] for r in ab["runs"]] == ["ab0"] and len(ours["runs"]) == 3
    order.clear()
    alternate([run("ab0"), run("ab1")], [run("ours0"), run("ours1")])
    assert order == ["ab0", "ours0", "ab1", "ours1"]


@pytest.mark.parametrize(("a", "b", "expected"), [((0, 10), (20, 30), 0.0), ((0, 30), (10, 20), 10.0), ((0, 20), (10, 40), 10.0), ((10, 40), (0, 20), 10.0)])
def test_overlap_is_the_time_both_spans_ran(a: tuple, b: tuple, expected: float) -> None:
    from bench.fast_cnn_vs_airbench import overlap_seconds

    assert overlap_seconds(a, b) == expected


def test_an_airbench94_muon_source_it_does_not_know_is_refused_in_one_line() -> None:
    from bench.fast_cnn_vs_airbench import patch_airbench_muon

    with pytest.raises(SystemExit, match=r"--airbench: 'ceil\(8 \* len\(train_loader\)\)' not found; this script knows airbench94_muon.py"):
        patch_airbench_muon("print('some other script')", "cpu", 8, 1, 2)


# Fails as soon as our side has started (its runs folder exists), while our side has thousands of steps to go.
FAILING_AIRBENCH_MUON = FAKE_AIRBENCH_MUON.replace("    batch_size = 2000\n", "    time.sleep(1)\n    sys.exit('airbench broke')\n    batch_size = 2000\n")


def test_with_concurrent_one_side_failing_stops_the_other_at_once(batches_dir: Path, tmp_path: Path) -> None:
    """Not after the other side's hours: our train.py gets SIGTERM, saves and records ``interrupted``."""
    import json

    import pytest

    from bench.fast_cnn_vs_airbench import main

    fake = tmp_path / "airbench94_muon.py"
    fake.write_text(FAILING_AIRBENCH_MUON)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as failed:
        main(["--recipe", "muon", "--airbench", str(fake), "--data-dir", str(batches_dir), "--out", str(out), "--epochs", "20000", "--batch-size", "40",
              "--threads", "1", "--concurrent", "--model.widths", "[8,16,16]", "--trainer.logger", "false"])
    assert "airbench94_muon_patched.py failed" in str(failed.value), failed.value
    (status,) = (out / "runs").glob("*/version_0/status.json")
    assert json.loads(status.read_text())["status"] == "interrupted", "our side was stopped, not left to train its 60,000 steps"


def _patched_namespace(source: str, patch, precision: str) -> dict:
    import torch

    namespace: dict = {"__name__": "patched"}  # defines its functions, skips its __main__ block
    exec(patch(source, "cpu", 1.0, 1, torch.get_num_threads(), precision=precision), namespace)
    return namespace




@pytest.mark.parametrize(("precision", "dtype"), [("32", "float32"), ("bf16-mixed", "bfloat16")])
def test_baseline_precision_runs_airbench94s_training_forward_in_that_precision(precision: str, dtype: str) -> None:
    import torch

    from bench.fast_cnn_vs_airbench import patch_airbench

    ns = _patched_namespace(FAKE_AIRBENCH, patch_airbench, precision)
    model, x = torch.nn.Linear(4, 3), torch.randn(5, 4)
    outputs, loss = ns["train_step"](model, torch.nn.CrossEntropyLoss(reduction="none"), x, torch.tensor([0, 1, 2, 0, 1]))
    loss.backward()
    assert outputs.dtype == getattr(torch, dtype)
    assert model.weight.dtype == torch.float32 and model.weight.grad.dtype == torch.float32, "float32 weights: autocast, not a bfloat16 copy"


AIRBENCH_MUON_STEP = """
import torch.nn.functional as F
def train_step(model, inputs, labels, step=0, whiten_bias_train_steps=1):
    for _ in [0]:
            outputs = model(inputs, whiten_bias_grad=(step < whiten_bias_train_steps))
            F.cross_entropy(outputs, labels, label_smoothing=0.2, reduction="sum").backward()
    return outputs
"""


@pytest.mark.parametrize(("precision", "dtype"), [("32", "float32"), ("bf16-mixed", "bfloat16")])
def test_baseline_precision_runs_airbench94_muons_training_forward_in_that_precision(precision: str, dtype: str) -> None:
    import torch

    from bench.fast_cnn_vs_airbench import patch_airbench_muon

    class Net(torch.nn.Linear):
        def forward(self, x, whiten_bias_grad):
            return super().forward(x)

    ns = _patched_namespace(FAKE_AIRBENCH_MUON + AIRBENCH_MUON_STEP, patch_airbench_muon, precision)
    model, x = Net(4, 3), torch.randn(5, 4)
    outputs = ns["train_step"](model, x, torch.tensor([0, 1, 2, 0, 1]))
    assert outputs.dtype == getattr(torch, dtype)
    assert model.weight.grad is not None and model.weight.grad.dtype == torch.float32, "the backward still runs, on float32 weights"


def test_a_baseline_precision_it_cannot_honour_on_cuda_is_refused_in_one_line(tmp_path: Path) -> None:
    from bench.fast_cnn_vs_airbench import main

    with pytest.raises(SystemExit, match=r"^error: --baseline-precision is for --device cpu"):
        main(["--airbench", str(tmp_path), "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--device", "cuda", "--baseline-precision", "bf16-mixed"])


def test_sides_in_different_precisions_are_said_under_the_ratio() -> None:
    from bench.fast_cnn_vs_airbench import markdown

    side = {"test_acc": {"mean": 0.9, "std": 0.0, "n": 1}, "test_acc_tta": {"mean": 0.9, "std": 0.0, "n": 1}, "seconds_per_epoch": 1.0,
            "train_seconds": {"mean": 8.0}, "runs": []}
    report = {"recipe": "muon", "baseline": "airbench94", "steps": 8, "device": "cpu", "threads": 1, "baseline_runs": 1, "seeds": 1,
              "baseline_epochs": 9.9, "baseline_batch_size": 1024, "epochs": 8, "batch_size": 2000, "airbench": side, "fast_cnn": side,
              "seconds_per_epoch_ratio": 1.0, "train_seconds_ratio": 1.0, "train_seconds_ratio_after_epoch0": 1.0,
              "precision": {"airbench": "32", "fast_cnn": "bf16-mixed"}}
    assert "The sides trained in different precisions (airbench94 32, fast_cnn_muon bf16-mixed)" in markdown(report)
