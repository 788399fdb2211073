"""Hydra entry point: ``python -m segnas stage=NAME [overrides]``."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from segnas.stages import run_stage

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run the selected stage and return its optimised metric (for Hydra sweepers)."""
    results = run_stage(cfg)
    metric = cfg.get("optimized_metric")
    if metric and metric in results:
        return float(results[metric])
    return None
