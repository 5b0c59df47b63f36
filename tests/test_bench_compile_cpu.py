"""bench/compile_cpu.py's arithmetic, with torch.compile stood in by the eager network (Inductor is too slow for CI)."""

from __future__ import annotations

import pytest
import torch


def test_compile_bench_compares_the_same_weights_and_reports_when_compiling_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import compile_cpu

    compiled: list[torch.nn.Module] = []
    monkeypatch.setattr(torch, "compile", lambda net: compiled.append(net) or net)
    report = compile_cpu.main(["--batch-size", "2", "--steps", "1", "--rounds", "2", "--recipe-steps", "10", "--recipe-batch-size", "4"])
    assert len(compiled) == 1 and compiled[0].whiten.weight.is_contiguous(memory_format=torch.channels_last), "the network, as the recipe lays it out"
    assert report["max_abs_logit_diff"] == 0.0, "both sides start from the same weights"
    assert report["steps"] == 2 and report["speedup"] == pytest.approx(report["eager_step_s"] / report["compiled_step_s"], abs=1e-3)
    saved = report["eager_step_s"] - report["compiled_step_s"]
    assert report["pays_over_recipe"] == (saved > 0 and 10 * saved * 2 > report["compile_s"])
    assert (report["break_even_steps"] is None) == (saved <= 0)


def test_compile_bench_refuses_a_step_count_below_one() -> None:
    from bench import compile_cpu

    with pytest.raises(SystemExit, match=r"^error: --steps must be at least 1, got 0$"):
        compile_cpu.main(["--steps", "0"])
