"""DDP supernet training: ``python -m segnas stage=supernet trainer=ddp_cpu trainer.devices=2`` (Lightning
re-launches the command for rank 1, gloo) trains one sub-network per rank and step, rank 0 alone writes, and a
run stopped after epoch 1 and re-run in its folder ends with the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.strategies import DDPStrategy

from segnas.lit.supernet import _TRAIN_STREAM, SupernetModule
from segnas.stages import run_stage

from conftest import REPO, compose_config

TINY_SUPERNET = ["stage=supernet", "debug=tiny", "logger=none"]


def _supernet_ddp(folder: Path, epochs: int) -> tuple[dict, str]:
    """``stage=supernet`` on 2 CPU processes in ``folder``: its results.json and its log."""
    command = [sys.executable, "-m", "segnas", *TINY_SUPERNET, "trainer=ddp_cpu", "trainer.devices=2",
               f"trainer.max_epochs={epochs}", f"hydra.run.dir={folder}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((folder / "results.json").read_text()), proc.stdout + proc.stderr


def _weights(results: dict) -> dict[str, torch.Tensor]:
    return torch.load(results["last_ckpt"], map_location="cpu", weights_only=True)["state_dict"]


def test_each_rank_draws_its_own_genotype_and_one_process_draws_as_before() -> None:
    module = SupernetModule({"name": "hyctas", "layers": 4, "min_layers": 4, "filter_multiplier": 2},
                            num_classes=3, seed=5, val_archs=1)
    for step in range(4):
        before = module.space.sample(np.random.default_rng([5, _TRAIN_STREAM, step]))  # the one-process stream
        assert module.sample_genotype(step) == before
        ranks = [module.sample_genotype(step, rank, 4) for rank in range(4)]
        assert ranks == [module.sample_genotype(step, rank, 4) for rank in range(4)]  # a pure function
    assert len({str(module.sample_genotype(step, rank, 4)) for step in range(4) for rank in range(4)}) > 4


def test_ddp_trainers_handle_unused_parameters_without_sync_batchnorm(tmp_path: Path) -> None:
    cpu = instantiate(compose_config(["trainer=ddp_cpu", "trainer.devices=3"], tmp_path).trainer)
    assert isinstance(cpu.strategy, DDPStrategy) and cpu.world_size == 3
    assert cpu.strategy._ddp_kwargs["find_unused_parameters"] and cpu.strategy._process_group_backend == "gloo"
    gpu = compose_config(["trainer=ddp"], tmp_path).trainer
    assert gpu.strategy.find_unused_parameters and gpu.strategy.process_group_backend == "nccl"
    assert not gpu.sync_batchnorm and gpu.precision == "16-mixed"


def test_search_refuses_to_train_its_supernet_on_several_processes(tmp_path: Path) -> None:
    cfg = compose_config(["stage=search", "debug=tiny", "trainer=ddp_cpu", "score.supernet.epochs=1"], tmp_path)
    with pytest.raises(ValueError, match="stage=supernet trainer=ddp"):
        run_stage(cfg)


@pytest.mark.slow  # three 2-process runs (make test-slow)
def test_two_process_supernet_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    straight, _ = _supernet_ddp(tmp_path / "straight", epochs=2)
    first, _ = _supernet_ddp(tmp_path / "resumed", epochs=1)
    resumed, log = _supernet_ddp(tmp_path / "resumed", epochs=2)
    assert log.count("Resuming from") == 2  # both ranks continue from epoch 1's last.ckpt
    # 16 images, 2 ranks x 4 per step: 2 steps per epoch
    assert (first["global_step"], straight["global_step"], resumed["global_step"]) == (2, 4, 4)
    assert straight["world_size"] == resumed["world_size"] == 2
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    # rank 0 alone recorded the two attempts and moved the first one's results aside
    folder = tmp_path / "resumed"
    assert sorted(p.name for p in (folder / "configs").iterdir()) == ["attempt_1.yaml", "attempt_2.yaml"]
    assert json.loads((folder / "previous" / "attempt_1" / "results.json").read_text())["global_step"] == 2
