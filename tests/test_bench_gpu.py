"""benchmarks/gpu.py (`make bench-gpu`): its quick CPU mode fills every section; without CUDA it exits 0."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu():
    """benchmarks/gpu.py as a module (registered first: its dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench_gpu"]


def tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Section name -> rows of its Markdown table."""
    out = {}
    for name, body in re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S):
        lines = [ln for ln in body.splitlines() if ln.startswith("| ")]
        cols = [c.strip() for c in lines[0].strip("|").split("|")] if lines else []
        out[name] = [dict(zip(cols, (c.strip() for c in ln.strip("|").split("|")), strict=True)) for ln in lines[1:]]
    return out


@pytest.mark.slow  # ~25-45 s: a benchmark script's CPU dry run (make test-slow)
def test_quick_cpu_run_fills_every_section(gpu, tmp_path: Path) -> None:
    assert gpu.main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("gpu_*.md")
    text = path.read_text()
    assert "Status: complete" in text and "torch " in text
    found = tables(text)
    assert list(found) == [s.__name__ for s in gpu.SECTIONS]
    for name, rows in found.items():
        assert rows, f"section {name} has no row"
        assert all("error" not in r for r in rows), f"section {name} failed: {rows}"
    fps = found["fps"]
    assert [r["model"] for r in fps] == list(gpu.QUICK.fps_models)
    for row in fps:  # CUDA graphs need CUDA; every other variant ran (or was skipped for time on a slow machine)
        assert row["fp16 CUDA graph"].startswith(("failed: RuntimeError: CUDA graphs need", "skipped"))
        for variant in (*(v.name for v in gpu.VARIANTS if not v.graph), gpu.COMPILED):
            assert re.match(r"[\d.]+|skipped", row[variant]), (variant, row[variant])
    assert float(found["latency_table"][0]["networks"]) >= 2
    assert re.fullmatch(r"\d+", found["latency_table"][0]["within 10 %"])


def test_without_cuda_it_exits_0_and_writes_nothing(gpu, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu, "RESULTS", tmp_path / "results")
    assert gpu.main([]) == 0
    assert gpu.NO_GPU in capsys.readouterr().out
    assert not (tmp_path / "results").exists()
