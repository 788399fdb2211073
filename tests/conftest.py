"""Shared fixtures: composing configs, tiny stage budgets, the real samples in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tiny synthetic data and a CPU trainer: every training-like stage runs all its code paths in seconds.
TINY_DATA = [
    "data.num_train=16",
    "data.num_val=8",
    "data.height=64",
    "data.width=64",
    "data.crop_size=[64,64]",
    "data.batch_size=4",
    "data.val_batch_size=4",
    "num_threads=1",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "callbacks.latency_monitor.input_shape=[1,3,64,64]",
    "callbacks.latency_monitor.duration_s=0.05",
]
# stage=train with a small DeepLabV3+ for one epoch.
TINY_TRAIN = [
    *TINY_DATA,
    "model.aspp_channels=16",
    "model.decoder_channels=16",
    "model.low_level_channels=8",
    "trainer.max_epochs=1",
]


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """Compose ``segnas.conf/config.yaml`` with overrides (and a fixed output folder)."""
    GlobalHydra.instance().clear()
    extra = [f"paths.output_dir={output_dir}"] if output_dir is not None else []
    with initialize_config_module(config_module="segnas.conf", version_base="1.3"):
        return compose(config_name="config", overrides=[*overrides, *extra])


def shared_dataset(name: str) -> Path:
    """Path of a real dataset sample in ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real sample {path} not available")
    return path
