"""LightningModule that trains the HyCTAS weight-sharing supernet (paper section 3.4, eq. 1).

Every training step runs the paths of ``sampling`` with an RNG seeded by ``(seed, global_step)``, so a resumed
run draws exactly the genotypes an uninterrupted run would:

- ``prior`` (the paper's): one sub-network from the space's prior (branch count 0.2/0.3/0.5, depth and
  everything else uniform);
- ``uniform``: one sub-network with a uniform branch count (SPOS-style uniform single path);
- ``sandwich`` (BigNAS): the largest and the smallest network plus ``sandwich_random`` prior draws.

With ``inplace_distill`` (BigNAS, OFA) the largest network runs first on the labels and every other path
learns from its soft predictions (pixel-wise KL, teacher detached) instead of the labels. The paths' losses are
summed into one backward pass, so the step's gradient is the sum of the per-path gradients (BigNAS's gradient
accumulation; activation memory grows with the paths per step) and one optimizer step follows.
Under DDP each rank draws its own paths, seeded by ``(seed, global_step, rank)`` (what DDP then averages:
:mod:`segnas.stages.supernet`). Validation reports the mIoU of a fixed set of genotypes (current BN
statistics, no recalibration).
"""

from __future__ import annotations

import functools
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torchmetrics import MeanMetric

from segnas.lit.losses import distillation_kl, hard_pixel_ce
from segnas.lit.optim import exponential_scheduler, sgd
from segnas.metrics.segmentation import SegmentationMetric
from segnas.spaces import get_space
from segnas.spaces.costs import genotype_costs
from segnas.spaces.hyctas import HyCTASGenotype
from segnas.spaces.hyctas.supernet import HyCTASSupernet

_TRAIN_STREAM, _VAL_STREAM = 0, 1
SAMPLINGS = ("prior", "uniform", "sandwich")


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
        sampling: the paths of a step: ``prior``, ``uniform`` or ``sandwich``.
        sandwich_random: the random paths of a sandwich step (besides the largest and the smallest).
        inplace_distill: the largest network teaches every other path of the step.
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
        sampling: str = "prior",
        sandwich_random: int = 2,
        inplace_distill: bool = False,
    ) -> None:
        super().__init__()
        if sampling not in SAMPLINGS:
            raise ValueError(f"supernet sampling={sampling!r}: choose one of {list(SAMPLINGS)}")
        if sandwich_random < 0:
            raise ValueError(f"supernet sandwich_random={sandwich_random}: must be >= 0")
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
        self.train_loss = MeanMetric()  # the epoch's mean training loss (all ranks), logged at validation

    def sample_genotype(self, step: int, rank: int = 0, world_size: int = 1) -> HyCTASGenotype:
        """The last path trained at ``step`` by ``rank`` (with ``prior`` or ``uniform`` sampling its one random
        path; a pure function of the seed, the step and, when ``world_size`` > 1, the rank)."""
        return self.step_paths(step, rank, world_size)[-1]

    def _random_paths(self) -> int:
        return self.hparams.sandwich_random if self.hparams.sampling == "sandwich" else 1

    def step_paths(self, step: int, rank: int = 0, world_size: int = 1) -> list[HyCTASGenotype]:
        """The genotypes trained at ``step`` by ``rank``, in order (with in-place distillation the teacher, the
        largest network, comes first); a pure function of the seed, the step and, under DDP, the rank."""
        key = [self.hparams.seed, _TRAIN_STREAM, step, *([rank] if world_size > 1 else [])]
        rng = np.random.default_rng(key)
        space = self.space.uniform() if self.hparams.sampling == "uniform" else self.space
        drawn = [space.sample(rng) for _ in range(self._random_paths())]
        if self.hparams.sampling == "sandwich":
            return [self.largest, self.smallest, *drawn]
        return [self.largest, *drawn] if self.hparams.inplace_distill else drawn

    @property
    def paths_per_step(self) -> int:
        """Sub-networks trained per step (training compute = images x paths)."""
        return len(self.step_paths(0))

    @functools.cached_property
    def largest(self) -> HyCTASGenotype:
        """The three-branch network with the most MACs (at the space's ``memory_input`` resolution)."""
        return max(self.space.largest(3), key=self._macs_params)

    @functools.cached_property
    def smallest(self) -> HyCTASGenotype:
        """The one-branch network with the fewest MACs among those whose cells all compute."""
        return min(self.space.smallest(), key=self._macs_params)

    def _macs_params(self, genotype: HyCTASGenotype) -> tuple[int, int]:
        return genotype_costs(genotype, self.hparams.num_classes, (1, 3, *self.space.memory_input[1:]),
                              filter_multiplier=self.space.filter_multiplier, output_stride=self.hparams.output_stride)

    def forward(self, x: torch.Tensor, genotype: HyCTASGenotype | None = None) -> torch.Tensor:
        """Logits of ``genotype`` (default: the first validation genotype)."""
        return self.supernet(x, genotype if genotype is not None else self.val_genotypes[0])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        paths = self.step_paths(self.global_step, self.global_rank, self.trainer.world_size)
        losses = self.path_losses(batch, paths)
        loss = torch.stack(losses).sum()
        batch_size = batch["image"].shape[0]
        self.log("train/loss_step", loss, prog_bar=True, batch_size=batch_size)
        if self.hparams.inplace_distill:
            self.log("train/distill_loss_step", torch.stack(losses[1:]).mean(), batch_size=batch_size)
        self.train_loss.update(loss.detach())
        self.log("train/num_branches", float(np.mean([g.num_branches for g in paths])), on_step=True,
                 batch_size=batch_size)
        self.log("train/depth", float(np.mean([g.depth for g in paths])), on_step=True, batch_size=batch_size)
        return loss

    def path_losses(self, batch: dict[str, torch.Tensor], paths: list[HyCTASGenotype]) -> list[torch.Tensor]:
        """Each path's loss on ``batch``: cross-entropy with the labels, or with in-place distillation (after the
        first path, the teacher) the KL divergence from the teacher's detached predictions."""
        hp, teacher, losses = self.hparams, None, []
        for genotype in paths:
            logits = self(batch["image"], genotype)
            if teacher is None:
                losses.append(hard_pixel_ce(logits, batch["mask"], hp.ignore_index, hp.top_k_percent))
                teacher = logits.detach() if hp.inplace_distill else None
            else:
                losses.append(distillation_kl(logits, teacher))
        return losses

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset()

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
        if not self.trainer.sanity_checking and self.train_loss.update_count:
            self.log("train/loss", self.train_loss.compute())  # this epoch's mean, in this epoch's history row

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = sgd(self.supernet.parameters(), hp.lr, hp.momentum, hp.weight_decay)
        scheduler = exponential_scheduler(optimizer, hp.lr_gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
