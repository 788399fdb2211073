"""``stage=supernet``: train the HyCTAS weight-sharing supernet, one sampled sub-network per step."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from segnas.stages.common import (
    build_datamodule,
    build_supernet_module,
    build_trainer,
    checkpoint_paths,
    fit,
)
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train (resuming from the run folder's ``last.ckpt``), then return the validation mIoU and checkpoints."""
    out = output_dir(cfg)
    datamodule = build_datamodule(cfg)
    module = build_supernet_module(cfg, cfg.stage, datamodule.metadata())
    trainer = build_trainer(cfg)
    fit(cfg, trainer, module, datamodule, out, "supernet")
    results: dict[str, Any] = {
        "val/mIoU": float(trainer.callback_metrics.get("val/mIoU", float("nan"))),
        "val/mIoU_archs": [
            float(trainer.callback_metrics.get(f"val/mIoU_arch{i}", float("nan")))
            for i in range(len(module.val_genotypes))
        ],
        "val_genotypes": [g.to_dict() for g in module.val_genotypes],
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "supernet_params_m": sum(p.numel() for p in module.supernet.parameters()) / 1e6,
        **checkpoint_paths(trainer),
    }
    log.info("supernet val/mIoU %.2f after %d steps", results["val/mIoU"], results["global_step"])
    return results
