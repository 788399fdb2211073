"""Recorded studies reproduce: every ``experiments/<study>/guard.json`` (a small configuration of the study's
recorded command and the numbers it gave) is re-run and must give the same numbers (``experiments/guard.py``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import REPO

GUARDS = sorted((REPO / "experiments").glob("*/guard.json"))


def _guard_module():
    spec = importlib.util.spec_from_file_location("guard", REPO / "experiments" / "guard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_guard_replaces_the_recorded_values_of_its_keys(tmp_path: Path) -> None:
    guard = json.loads(GUARDS[0].read_text())
    args = _guard_module().guard_args(guard, GUARDS[0].parent, tmp_path)
    keys = [a.split("=", 1)[0] for a in args]
    assert len(keys) == len(set(keys)) and f"seed={guard['seed']}" in args
    assert set(guard["overrides"]) <= set(args) and f"hydra.run.dir={tmp_path / 'run'}" in args
    assert _guard_module().moved({"hypervolume": 0.5, "miou": [1.0, 2.0]}, {"hypervolume": 0.5, "miou": [1.0, 2.1]},
                                 1e-7) == ["miou: recorded [1.0, 2.0], now [1.0, 2.1]"]


@pytest.mark.slow  # ~25 s a guard near idle (make test-slow)
@pytest.mark.parametrize("path", GUARDS, ids=[p.parent.name for p in GUARDS])
def test_a_recorded_study_still_gives_its_numbers(path: Path, tmp_path: Path) -> None:
    guard, module = json.loads(path.read_text()), _guard_module()
    recorded, here = guard["recorded_with"], module.machine()
    kernels = ("torch", "cpu_capability")
    if any(recorded[k] != here[k] for k in kernels):  # other kernels give other numbers (see guard.json)
        pytest.skip(f"recorded with {[recorded[k] for k in kernels]}, this machine has {[here[k] for k in kernels]}")
    moved = module.moved(guard["expected"], module.run_guard(path, tmp_path), guard["tolerance"])
    assert not moved, (f"{path.parent.name} no longer reproduces (recorded with {guard['recorded_with']}, run on "
                       f"{module.machine()}): {moved}. "
                       f"If the change is a fix, regenerate the study, then `python experiments/guard.py {path} "
                       "--write`, and say in CHANGELOG.md which numbers moved; else restore the old behaviour.")
