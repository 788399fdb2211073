"""Shared fixtures: composing configs, tiny budgets (debug=tiny), the session's tiny supernet and latency table,
the real samples in ../shared/data."""

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

# debug=tiny (conf/debug/) runs every stage on tiny synthetic data, one CPU thread, one epoch and the stage's own
# tiny budgets; these lists add what depends on the model, score or algorithm chosen.
# stage=train with a small DeepLabV3+ (a 0.4 M-parameter backbone).
TINY_TRAIN = [
    "debug=tiny",
    "model.backbone=mobilenetv3_small_050",
    "model.aspp_channels=16",
    "model.decoder_channels=16",
    "model.low_level_channels=8",
]
# score=supernet (stage=search's default): BN recalibration on 8 images, mIoU on 8.
TINY_EVALUATION = [
    "score.evaluation.recalibration_images=8",
    "score.evaluation.val_images=8",
    "score.evaluation.batch_size=8",
]
# NSGA-II over a proxy score vs params in a small HyCTAS space: no supernet, seconds on a CPU.
TINY_PROXY_SEARCH = [
    "stage=search",
    "debug=tiny",
    "score=proxy",
    "score.proxy=synflow",
    "search.objective=params",
    "space.layers=4",
    "space.filter_multiplier=2",
    "score.batch.resolution=[32,32]",
    "score.batch.batch_size=2",
    "stage.cost_input=[1,3,32,32]",
    "stage.latency.model=measured",
    "stage.extra_metrics=[]",
]
# stage=zero_shot_search: top-k over nwot for 6 scored networks of a shallow FasterSeg space.
TINY_ZERO_SHOT = [
    "stage=zero_shot_search",
    "debug=tiny",
    "score.proxy=nwot",
    "search.num_evals=6",
    "search.population=3",
    "search.top_k=2",
    "space.max_depth=6",
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


@pytest.fixture(scope="session")
def tiny_supernet(tmp_path_factory) -> Path:
    """The checkpoint of ``stage=supernet debug=tiny`` (one epoch), trained once per session."""
    from segnas.stages import run_stage

    out = tmp_path_factory.mktemp("tiny_supernet")
    return Path(run_stage(compose_config(["stage=supernet", "debug=tiny"], out))["last_ckpt"])


@pytest.fixture(scope="session")
def tiny_lut(tmp_path_factory) -> Path:
    """The latency-table folder of the session's searches on debug=tiny: an entry is measured once, by the
    first search that needs it, and read by every later one."""
    return tmp_path_factory.mktemp("latency_lut")


@pytest.fixture
def tiny_search(tiny_supernet: Path, tiny_lut: Path) -> list[str]:
    """``stage=search debug=tiny`` scored by the session's supernet, on the session's latency table."""
    return ["stage=search", "debug=tiny", *TINY_EVALUATION, f"score.supernet.ckpt={tiny_supernet}",
            f"stage.latency.lut_dir={tiny_lut}"]
