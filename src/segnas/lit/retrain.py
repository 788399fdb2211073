"""LightningModule of ``stage=retrain``: :class:`SegmentationModule` plus auxiliary-head losses and
multi-scale + flip validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from segnas.lit.inference import multi_scale_probs
from segnas.lit.segmentation import SegmentationModule


class RetrainModule(SegmentationModule):
    """Adds ``aux_weight`` x (top-k) CE of every auxiliary output to the loss, and validates with
    ``eval_scales`` / ``eval_flip`` (plain single-scale when ``[1.0]`` and no flip).

    Its checkpoints load with :class:`SegmentationModule` too (``stage=evaluate``, ``stage=export``): the
    extra hyper-parameters are dropped and the network is rebuilt from ``net_config``.
    """

    def __init__(
        self,
        *args: Any,
        aux_weight: float = 0.2,
        eval_scales: Sequence[float] = (1.0,),
        eval_flip: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.aux_weight = aux_weight
        self.eval_scales = [float(s) for s in eval_scales]
        self.eval_flip = eval_flip

    def loss(
        self, output: torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]], batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        logits, aux = output if isinstance(output, tuple) else (output, [])
        losses = super().loss(logits, batch)
        for i, aux_logits in enumerate(aux):
            losses[f"aux{i}"] = self.aux_weight * self.pixel_loss(aux_logits, batch["mask"])
        losses["total"] = sum(v for k, v in losses.items() if k != "total")
        return losses

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self.eval_scales == [1.0] and not self.eval_flip:
            super().validation_step(batch, batch_idx)
            return
        probs = multi_scale_probs(self.net, batch["image"], self.eval_scales, self.eval_flip)
        self.val_metric.update(probs, batch["mask"])
