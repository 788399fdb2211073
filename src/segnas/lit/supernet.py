"""LightningModule that trains the HyCTAS weight-sharing supernet (paper section 3.4, eq. 1).

Every training step runs one sub-network drawn from the space's prior (branch count by the paper's
prior, depth and everything else uniform) with an RNG seeded by ``(seed, global_step)``, so a resumed
run draws exactly the genotypes an uninterrupted run would. Under DDP each rank draws its own sub-network,
seeded by ``(seed, global_step, rank)`` (what DDP then averages: :mod:`segnas.stages.supernet`).
Validation reports the mIoU of a fixed set of genotypes (current BN statistics, no recalibration).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from segnas.lit.losses import hard_pixel_ce
from segnas.lit.optim import exponential_scheduler, sgd
from segnas.metrics.segmentation import SegmentationMetric
from segnas.spaces import get_space
from segnas.spaces.hyctas import HyCTASGenotype
from segnas.spaces.hyctas.supernet import HyCTASSupernet

_TRAIN_STREAM, _VAL_STREAM = 0, 1


class SupernetModule(L.LightningModule):
    """Single-path-per-step supernet training with SGD and per-epoch exponential lr decay.

    Args:
        space_config: keyword config of the search space (with ``name``).
        num_classes: classifier outputs.
        ignore_index: label ignored by the loss and mIoU.
        seed: seeds the per-step genotype sampling.
        lr, momentum, weight_decay: SGD (paper: 0.02, 0.9, 5e-4).
        lr_gamma: per-epoch exponential decay of the lr (paper: 0.992).
        output_stride: 8, or 4 for heads that fuse the stem's stride-4 feature.
        top_k_percent: fraction of hardest pixels in the cross-entropy (1.0 = plain CE).
        val_archs: number of fixed genotypes evaluated at validation.
    """

    def __init__(
        self,
        space_config: dict[str, Any],
        num_classes: int,
        ignore_index: int = 255,
        seed: int = 0,
        lr: float = 0.02,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_gamma: float = 0.992,
        output_stride: int = 8,
        top_k_percent: float = 1.0,
        val_archs: int = 3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        config = dict(space_config)
        self.space = get_space(config.pop("name"), **config)
        self.supernet = HyCTASSupernet.from_space(
            self.space, num_classes=num_classes, output_stride=output_stride
        )
        val_rng = np.random.default_rng([seed, _VAL_STREAM])
        self.val_genotypes: list[HyCTASGenotype] = [self.space.sample(val_rng) for _ in range(val_archs)]
        self.val_metrics = nn.ModuleList(
            SegmentationMetric(num_classes, ignore_index) for _ in range(val_archs)
        )

    def sample_genotype(self, step: int, rank: int = 0, world_size: int = 1) -> HyCTASGenotype:
        """The genotype trained at ``step`` by ``rank`` (a pure function of the seed, the step and, when
        ``world_size`` > 1, the rank; a one-process run draws what it always drew)."""
        key = [self.hparams.seed, _TRAIN_STREAM, step, *([rank] if world_size > 1 else [])]
        return self.space.sample(np.random.default_rng(key))

    def forward(self, x: torch.Tensor, genotype: HyCTASGenotype | None = None) -> torch.Tensor:
        """Logits of ``genotype`` (default: the first validation genotype)."""
        return self.supernet(x, genotype if genotype is not None else self.val_genotypes[0])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        genotype = self.sample_genotype(self.global_step, self.global_rank, self.trainer.world_size)
        logits = self(batch["image"], genotype)
        loss = hard_pixel_ce(logits, batch["mask"], self.hparams.ignore_index, self.hparams.top_k_percent)
        batch_size = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=True)
        self.log("train/num_branches", float(genotype.num_branches), on_step=True, batch_size=batch_size)
        self.log("train/depth", float(genotype.depth), on_step=True, batch_size=batch_size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        for genotype, metric in zip(self.val_genotypes, self.val_metrics, strict=True):
            metric.update(self(batch["image"], genotype), batch["mask"])

    def on_validation_epoch_end(self) -> None:
        scores = []
        for i, metric in enumerate(self.val_metrics):
            score = float(metric.compute())
            metric.reset()
            scores.append(score)
            self.log(f"val/mIoU_arch{i}", score, sync_dist=True)
        self.log("val/mIoU", float(np.mean(scores)), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = sgd(self.supernet.parameters(), hp.lr, hp.momentum, hp.weight_decay)
        scheduler = exponential_scheduler(optimizer, hp.lr_gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
