"""Stages: thin scripts that wire library pieces together from a Hydra config.

Each stage is a module with ``run(cfg) -> dict`` named by ``cfg.stage._target_``. :func:`run_stage`
prepares the output folder (resolved config), seeds everything, calls the stage and writes
``results.json``.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.utils import get_method
from omegaconf import DictConfig

from segnas.utils.run import finish_loggers, prepare_run, write_results

log = logging.getLogger(__name__)


def run_stage(cfg: DictConfig, **kwargs: Any) -> dict[str, Any]:
    """Run the stage selected in ``cfg.stage`` and write its ``results.json``."""
    out_dir = prepare_run(cfg)
    stage_fn = get_method(cfg.stage._target_)
    try:
        results = stage_fn(cfg, **kwargs)
    finally:
        finish_loggers()
    write_results(out_dir, results)
    log.info("Results written to %s", out_dir / "results.json")
    return results
