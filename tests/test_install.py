"""Reproducible installs: `make` installs from requirements.lock, which pins what the tests pass with."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

from tests.cli_helpers import ROOT


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_makefile_installs_with_the_lock_as_constraints() -> None:
    assert re.search(r"pip install .*-c requirements\.lock .*-e \"\.\[dev\]\"", (ROOT / "Makefile").read_text())


def test_every_dependency_is_locked_within_its_range_and_installed_at_that_version() -> None:
    from packaging.requirements import Requirement

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    for spec in [*pyproject["dependencies"], *pyproject["optional-dependencies"]["dev"]]:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock"
        assert req.specifier.contains(pins[name]), f"requirements.lock pins {name}=={pins[name]}, outside pyproject's {req.specifier}"
        assert importlib.metadata.version(name) == pins[name], f"installed {name} {importlib.metadata.version(name)} is not the locked {pins[name]}"
