"""``configs/cpu.yaml`` (or ``configs/cpu_bf16.yaml``) after any GPU recipe gives that recipe's CPU run: float32
(bf16-mixed), no compile, no cuDNN autotuning, everything else the recipe's, under the run name ``<recipe>_cpu``
(``<recipe>_cpu_bf16``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.argv import default_run_name
from tests.cli_helpers import ROOT, run_cli

GPU_RECIPES = sorted(p for p in (ROOT / "configs").glob("*.yaml") if (yaml.safe_load(p.read_text()).get("trainer") or {}).get("accelerator") == "gpu")
OVERLAYS = {  # each CPU overlay and what it sets; the rest of a recipe stays
    "cpu": {"trainer.accelerator": "cpu", "trainer.precision": 32, "trainer.benchmark": None, "model.init_args.compile": False},
    "cpu_bf16": {"trainer.accelerator": "cpu", "trainer.precision": "bf16-mixed", "trainer.benchmark": None, "model.init_args.compile": False},
}


def _resolved(capsys: pytest.CaptureFixture, *configs: Path) -> dict[str, Any]:
    with pytest.raises(SystemExit):
        run_cli("fit", *[a for c in configs for a in ("--config", c)], "--print_config")
    return yaml.safe_load(capsys.readouterr().out)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_the_gpu_recipes_are_found() -> None:
    assert {p.name for p in GPU_RECIPES} >= {"fast_cnn.yaml", "vgg.yaml"}


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.stem)
def test_cpu_overlay_changes_only_what_a_cpu_run_needs_and_names_the_run_recipe_overlay(recipe: Path, overlay: str, capsys: pytest.CaptureFixture) -> None:
    gpu = _flat(_resolved(capsys, recipe))
    cpu = _flat(_resolved(capsys, recipe, ROOT / f"configs/{overlay}.yaml"))
    changed = {k: cpu[k] for k in cpu if gpu.get(k) != cpu[k]}
    assert {k: cpu[k] for k in OVERLAYS[overlay]} == OVERLAYS[overlay], "what the overlay sets, whatever the recipe had"
    assert changed == {**{k: v for k, v in OVERLAYS[overlay].items() if gpu.get(k) != v}, "run_name": f"{recipe.stem}_{overlay}"}
    assert set(gpu) == set(cpu)


def test_the_run_name_joins_every_config_file_stem_once(tmp_path: Path) -> None:
    recipe, overlay = tmp_path / "fast_cnn.yaml", tmp_path / "cpu.yaml"
    recipe.write_text("{}\n")
    overlay.write_text("{}\n")
    assert default_run_name(["--config", str(recipe), f"--config={overlay}"]) == "fast_cnn_cpu"
    assert default_run_name(["--config", str(recipe), "--config", str(recipe)]) == "fast_cnn"
    assert default_run_name(["--config", "trainer: {max_steps: 3}", "--model", "lit_models.VGGClassifier"]) == "vggclassifier", "YAML text is not a file"
