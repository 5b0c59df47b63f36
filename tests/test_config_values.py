"""Values carried from one model class to another on the command line keep the config dumpable."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.cli_helpers import base_args, only_run_dir, run_cli
from tests.conftest import write_batches


def test_switching_model_class_after_setting_its_arguments_trains_and_saves_the_config(tmp_path: Path) -> None:
    """``--model MLPClassifier --model.hidden_sizes [16] --model NumpyMLPClassifier`` was a 106-line
    RepresenterError traceback: the PositiveInt values checked for the MLP went into the YAML dump."""
    write_batches(tmp_path / "data")
    args = base_args(tmp_path / "data", tmp_path / "runs", "--trainer.max_steps", "1", "--model", "NumpyMLPClassifier")
    args.remove("--model.optimizer"), args.remove("torch.optim.SGD"), args.remove("--model.optimizer.lr"), args.remove("0.05")  # the NumPy SGD
    run_cli("fit", *args)
    saved = yaml.safe_load((only_run_dir(tmp_path / "runs") / "config.yaml").read_text())
    assert saved["model"]["class_path"].endswith("NumpyMLPClassifier") and saved["model"]["init_args"]["hidden_sizes"] == [16]
