"""The model summary under train.py: Lightning's table, without a FLOPs column and total that read 0 when nothing counted them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.cli_helpers import base_args, run_cli

SUMMARY_LOGGER = "lightning.pytorch.callbacks.model_summary"


def _summary_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == SUMMARY_LOGGER)


def test_a_runs_summary_has_no_flops_that_were_never_counted(batches_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SUMMARY_LOGGER)
    run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "1", "--trainer.enable_model_summary", "true"))
    text = _summary_text(caplog)
    assert "Trainable params" in text and "| net " in text, text
    assert "FLOPs" not in text and "Total Flops" not in text, text


def test_a_summary_callback_given_in_the_config_keeps_its_depth(batches_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from callbacks.model_summary import CountedFlopsSummary

    caplog.set_level(logging.INFO, logger=SUMMARY_LOGGER)
    cli = run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "1", "--trainer.enable_model_summary", "true",
                                    "--trainer.callbacks+=ModelSummary", "--trainer.callbacks.max_depth", "2"))
    (summary,) = [c for c in cli.trainer.callbacks if isinstance(c, CountedFlopsSummary)]
    assert summary._max_depth == 2
    text = _summary_text(caplog)
    assert "| net.layers " in text, "depth 2 shows the network's own layers"
    assert "Total Flops" not in text


def test_where_flops_were_counted_the_table_is_lightnings(caplog: pytest.LogCaptureFixture) -> None:
    from lightning.pytorch.utilities.model_summary import summarize

    from callbacks.model_summary import CountedFlopsSummary
    from tests.test_lightning_internals import _WithExample

    caplog.set_level(logging.INFO, logger=SUMMARY_LOGGER)
    s = summarize(_WithExample())
    assert s.total_flops > 0
    CountedFlopsSummary.summarize(s._get_summary_data(), s.total_parameters, s.trainable_parameters, s.model_size, s.total_training_modes, s.total_flops)
    text = _summary_text(caplog)
    assert "FLOPs" in text and "Total Flops" in text and "| 0     | Total Flops" not in text
