"""Stages: thin scripts that wire library pieces together from a Hydra config.

Each stage is a module with ``run(cfg) -> dict`` named by ``cfg.stage._target_``. :func:`run_stage`
checks the config's budgets (:mod:`segnas.config_checks`), starts an attempt in the output folder
(:func:`segnas.utils.run.prepare_run`: config recorded, ``resume=false`` moves earlier outputs aside),
seeds everything, calls the stage and writes ``results.json``, holding the folder's lock
(:mod:`segnas.utils.lock`: a second process in the same folder fails at once); an attempt the folder refuses is
undone (:func:`segnas.utils.run.undone_when_refused`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import get_method
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from segnas.config_checks import check_config
from segnas.utils.lock import run_folder_lock
from segnas.utils.run import finish_loggers, finished_results, prepare_run, undone_when_refused, write_results

log = logging.getLogger(__name__)

# Training stages: a finished attempt re-run with the same config (resume=true) only reports its
# results.json, since its checkpoints hold the final state; any other setting runs a new attempt.
REPORT_WHEN_FINISHED = frozenset(
    f"segnas.stages.{name}.run" for name in ("train", "supernet", "retrain", "panoptic")
)


def run_stage(cfg: DictConfig, **kwargs: Any) -> dict[str, Any]:
    """Run the stage selected in ``cfg.stage`` and write its ``results.json``."""
    check_config(cfg)
    if cfg.stage._target_ in REPORT_WHEN_FINISHED:
        finished = finished_results(cfg)
        if finished is not None:
            log.info("%s already holds the results of this config: nothing to do (resume=false starts over)",
                     cfg.paths.output_dir)
            return finished
    out = Path(cfg.paths.output_dir)
    with run_folder_lock(out, rank_zero_only.rank), undone_when_refused(out):  # one writer per folder
        out_dir = prepare_run(cfg)
        stage_fn = get_method(cfg.stage._target_)
        try:
            results = stage_fn(cfg, **kwargs)
        finally:
            finish_loggers()
        if rank_zero_only.rank == 0:  # in a multi-process job (torchrun, srun) rank 0 writes the results
            write_results(out_dir, results)
            log.info("Results written to %s", out_dir / "results.json")
    return results
