"""The layout rules the composition relies on: thin stages and instantiable component groups."""

from __future__ import annotations

import ast

import pytest
import yaml

from conftest import REPO

STAGES = sorted((REPO / "src" / "segnas" / "stages").glob("*.py"))


@pytest.mark.parametrize("path", STAGES, ids=[p.name for p in STAGES])
def test_a_stage_is_short_wiring(path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= 150, f"{path.name}: move library code out of the stage"
    functions = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    long = {f.name: f.end_lineno - f.lineno + 1 for f in functions if f.end_lineno - f.lineno + 1 > 60}
    assert not long, f"{path.name}: functions over 60 lines {long}"
    imports = [n.module for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in imports if m.startswith("segnas.stages.")], f"{path.name} imports another stage"


@pytest.mark.parametrize("group", ["space", "score", "search"])
def test_every_component_config_is_instantiable(group: str) -> None:
    for path in sorted((REPO / "conf" / group).glob("*.yaml")):
        assert "_target_" in yaml.safe_load(path.read_text()), f"conf/{group}/{path.name} names no _target_"
