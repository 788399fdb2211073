"""``stage=supernet``: train the HyCTAS weight-sharing supernet, one sampled sub-network per step.

On N processes (``trainer=ddp_cpu`` or ``trainer=ddp``, ``trainer.devices=N``: Lightning DDP) every rank draws
its own sub-network per step, seeded by ``(seed, step, rank)``, and trains it on its share of the step's
images (the data sampler's epoch order, split over the ranks by Lightning's ``DistributedSamplerWrapper``):
a step trains N paths on N x ``data.batch_size`` images, an epoch has N times fewer steps. DDP averages
every gradient over the ranks; a weight that a rank's path did not use (``find_unused_parameters``) counts
as a zero gradient there, so a weight used on k of N ranks gets k/N of the mean of its paths' gradients (a
weight no rank used gets none: no update, no weight decay, as in one process). Nothing compensates, on
purpose: this is exactly the gradient of the mean loss over all N x ``batch_size`` images, each sub-batch
through its own path, i.e. an unbiased estimate of the gradient of the expected loss over the prior (the
paper's eq. 1) from N paths instead of one; in expectation a step moves each weight as a one-process step
does. Dividing by k instead would over-weight rarely drawn paths. BatchNorm normalises with each rank's
own batch statistics (each path's own, no SyncBatchNorm: ranks run different BN layers); the running
statistics are rank 0's (DDP broadcasts buffers from rank 0), and the search re-estimates them per
candidate anyway. Only rank 0 writes checkpoints, logs and ``results.json`` (with ``world_size``).
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from segnas.lit.fitting import build_datamodule, build_trainer, checkpoint_paths, fit
from segnas.search.scoring import build_supernet_module
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
        "world_size": trainer.world_size,
        "supernet_params_m": sum(p.numel() for p in module.supernet.parameters()) / 1e6,
        **checkpoint_paths(trainer),
    }
    log.info("supernet val/mIoU %.2f after %d steps", results["val/mIoU"], results["global_step"])
    return results
