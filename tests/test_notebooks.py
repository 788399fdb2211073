"""Every notebook in notebooks/ runs headless from a clean kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # Jupyter kernels, ~10-20 s a notebook (make test-slow, make notebooks)
NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SAVE_FIGURES", "1")
    monkeypatch.setenv("SEGNAS_OUTPUTS", str(tmp_path))
    before = sorted(path.parent.iterdir())
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") == "stream" for o in outputs)  # the tables were printed
    assert sorted(path.parent.iterdir()) == before  # figures never go into the source tree
    assert len(list((tmp_path / "notebooks" / path.stem).glob("*.png"))) == 3


def test_search_results_notebook_on_tiny_searches_made_now(tmp_path: Path, monkeypatch) -> None:
    from segnas.stages import run_stage

    from conftest import TINY_PROXY_SEARCH, compose_config

    tiny = [*TINY_PROXY_SEARCH, "search.population=3", "search.generations=2", "logger=none"]
    for seed in (0, 1):
        run_stage(compose_config([*tiny, f"seed={seed}"], tmp_path / f"seed_{seed}"))
    monkeypatch.setenv("PWD", str(tmp_path))  # Jupyter started there: relative paths are read from there
    monkeypatch.setenv("SEGNAS_SEARCH_RUNS", "seed_*")
    monkeypatch.setenv("SAVE_FIGURES", "1")
    monkeypatch.delenv("SEGNAS_OUTPUTS", raising=False)
    path = next(p for p in NOTEBOOKS if p.stem == "search_results")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "2 run(s)" in text and "mean and 95% CI over 2 run(s)" in text
    assert "seed_0 search" in text and "seed_1 random" in text  # search curves from archive.jsonl
    assert "operators of the cells of" in text  # the front's genotype files were read
    figures = tmp_path / "outputs" / "notebooks" / "search_results"
    assert sorted(p.name for p in figures.iterdir()) == ["front_composition.png", "search_curves.png",
                                                         "search_fronts.png"]
