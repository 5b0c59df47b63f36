"""bench/cpu_precision.py on a tiny network: both sides from the same weights, the bf16 side really under autocast."""

from __future__ import annotations

import pytest
import torch


def test_precision_bench_times_float32_against_bfloat16_autocast_from_the_same_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import cpu_precision

    dtypes: list[torch.dtype] = []
    real_step = cpu_precision.train_step

    def recording_step(net, opt, side, x, y):
        with cpu_precision.precision_context(side):
            dtypes.append(net.whiten(x).dtype)  # the first conv's output: bfloat16 under autocast
        return real_step(net, opt, side, x, y)

    monkeypatch.setattr(cpu_precision, "train_step", recording_step)
    report = cpu_precision.main(["--batch-size", "4", "--steps", "1", "--rounds", "2", "--widths", "8", "16", "16", "--threads", str(torch.get_num_threads())])
    assert dtypes == [torch.float32, torch.bfloat16] + [torch.float32, torch.bfloat16, torch.bfloat16, torch.float32], "untimed, then alternating"
    assert report["steps"] == 2 and report["speedup"] == pytest.approx(report["float32_step_s"] / report["bf16_step_s"], abs=1e-2)
    assert 0 < report["max_abs_logit_diff"] < 0.02, "same weights: only bfloat16 rounding apart (different seeds: ~0.16 here)"
    assert isinstance(report["bfloat16_hardware"], bool) and report["optimizer"] == "muon"


def test_precision_bench_refuses_a_batch_below_one() -> None:
    from bench import cpu_precision

    with pytest.raises(SystemExit, match=r"^error: --batch-size must be at least 1, got 0$"):
        cpu_precision.main(["--batch-size", "0"])


def test_a_zero_width_is_refused_in_one_line_naming_it() -> None:
    from bench import cpu_precision

    with pytest.raises(SystemExit, match=r"^error: --widths 2 must be at least 1, got 0$"):
        cpu_precision.main(["--widths", "8", "0", "16"])
