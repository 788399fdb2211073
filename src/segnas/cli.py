"""Hydra entry point: ``python -m segnas stage=NAME [overrides]`` (``--help``: stages, groups, examples;
``--version``: segnas's version)."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from segnas import __version__
from segnas.stages import run_stage

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def run(cfg: DictConfig) -> float | None:
    """Run the selected stage and return its optimised metric (for Hydra sweepers)."""
    results = run_stage(cfg)
    metric = cfg.get("optimized_metric")
    if metric and metric in results:
        return float(results[metric])
    return None


def main() -> float | None:
    """The ``segnas`` command: ``--version`` prints segnas's version, anything else goes to Hydra."""
    if "--version" in sys.argv[1:]:
        print(f"segnas {__version__}")
        return None
    return run()
