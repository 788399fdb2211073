"""The workflow around the stages: readable genotype files, stock lr schedules, errors that say what to do,
quiet consoles."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from segnas.lit.optim import poly_scheduler
from segnas.spaces import get_space, load_genotype, save_genotype
from segnas.stages import run_stage
from segnas.stages.export import export_torchscript

from conftest import REPO, compose_config


def test_genotype_widths_are_written_as_twelfths_and_read_back_exactly(tmp_path: Path) -> None:
    space = get_space("hyctas", layers=6)
    for seed in range(10):
        genotype = space.sample(np.random.default_rng(seed))
        path = save_genotype(genotype, tmp_path / f"{seed}.yaml", metrics={"miou": 1 / 3})
        assert load_genotype(path) == genotype
    text = save_genotype(load_genotype("pkg://hyctas_s"), tmp_path / "s.yaml").read_text()
    assert "widths: [8/12, 8/12, 8/12, 4/12, 8/12, 10/12, 4/12, 10/12, 4/12, 8/12, 1]" in text
    assert "0.33333" not in text and "0.66666" not in text


def _reference_poly(step: int, total: int, power: float, warmup: int, factor: float) -> float:
    """The hand-written LambdaLR multiplier that poly_scheduler replaced."""
    if step < warmup:
        return factor + (1.0 - factor) * step / warmup
    return max(0.0, 1.0 - (step - warmup) / max(1, total - warmup)) ** power


@pytest.mark.parametrize(("total", "power", "warmup", "factor"), [(60, 0.9, 6, 0.1), (40, 0.9, 0, 0.1), (30, 1.0, 3, 0.3),
                                                                   (8, 0.9, 10, 0.1)])  # fmt: skip
def test_poly_scheduler_gives_the_same_lr_sequence_as_the_hand_written_schedule(total: int, power: float,
                                                                                warmup: int, factor: float) -> None:  # fmt: skip
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    scheduler = poly_scheduler(optimizer, total, power, warmup, factor)
    for step in range(total + 5):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * _reference_poly(step, total, power, warmup,
                                                                                      factor), rel=1e-12, abs=1e-15)
        optimizer.step()
        scheduler.step()


def test_a_missing_benchmark_csv_says_which_key_to_set_and_where_it_comes_from(tmp_path: Path) -> None:
    cfg = compose_config(["stage=proxy_evaluate", f"benchmark.csv={tmp_path / 'missing.csv'}"], tmp_path)
    with pytest.raises(FileNotFoundError, match=r"benchmark\.csv=PATH.*NASLib"):
        run_stage(cfg)


def test_export_without_onnx_says_to_install_the_extra(tmp_path: Path, monkeypatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else find_spec(name, *a))
    cfg = compose_config(["stage=export", "ckpt_path=unused.ckpt"], tmp_path)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'segnas\[export\]'"):
        run_stage(cfg)


def test_torchscript_export_raises_no_deprecation_future_warnings(tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_torchscript(net, torch.randn(1, 3, 8, 8), tmp_path / "net.pt")
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]


@pytest.mark.slow  # a subprocess training 8 networks (make test-slow)
def test_ablate_console_shows_the_lightning_banner_once(tmp_path: Path) -> None:
    args = ["stage=ablate", "debug=tiny", "data.num_train=8", "data.num_val=4", "data.height=32", "data.width=32",
            "data.crop_size=[32,32]", "trainer.enable_progress_bar=true", "logger=none", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run([sys.executable, "-m", "segnas", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    assert console.count("GPU available") == 1 and console.count("Trainer.fit` stopped") == 1
    assert "Total FLOPs" not in console and "LeafSpec" not in console
