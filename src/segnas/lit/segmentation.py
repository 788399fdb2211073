"""LightningModule for semantic segmentation (training, retraining, distillation)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MeanMetric

from segnas.lit.losses import KD_REDUCTIONS, distillation_kl, hard_pixel_ce, ohem_ce
from segnas.lit.optim import exponential_scheduler, poly_scheduler, sgd
from segnas.metrics.segmentation import SegmentationMetric, miou, pixel_accuracy
from segnas.models.deeplab import DeepLabV3Plus
from segnas.models.factory import build_network, inline_genotype
from segnas.models.panoptic_deeplab import build_panoptic_hyctas

# The networks a config (and so a checkpoint) may build, by the name its `_target_` gives: nothing else is ever
# imported or called from a config's contents.
NETWORK_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "segnas.models.build_network": build_network,
    "segnas.models.deeplab.DeepLabV3Plus": DeepLabV3Plus,
    "segnas.models.panoptic_deeplab.build_panoptic_hyctas": build_panoptic_hyctas,
}


def _nested_targets(node: Any) -> bool:
    if isinstance(node, Mapping):
        return "_target_" in node or any(_nested_targets(v) for v in node.values())
    if isinstance(node, list | tuple):
        return any(_nested_targets(v) for v in node)
    return False


def build_net(net_config: Mapping[str, Any] | DictConfig, num_classes: int) -> nn.Module:
    """The network of ``net_config`` with ``num_classes`` outputs: plain data naming a registered builder
    (``_target_``, a key of :data:`NETWORK_BUILDERS`) and its keyword arguments, nothing nested that names code.
    No ``hydra.utils.instantiate``: a checkpoint's config can only choose among these builders."""
    config = OmegaConf.to_container(net_config, resolve=True) if isinstance(net_config, DictConfig) \
        else dict(net_config)
    target = config.pop("_target_", None)
    if target not in NETWORK_BUILDERS:
        raise ValueError(f"network config: _target_ {target!r} is not a registered network builder "
                         f"({sorted(NETWORK_BUILDERS)})")
    if _nested_targets(config):
        raise ValueError("network config: the builder's arguments must be plain data (a nested _target_ names code)")
    return NETWORK_BUILDERS[target](num_classes=num_classes, **config)


class SegmentationModule(L.LightningModule):
    """Trains a segmenter with SGD + poly schedule and (top-k) cross-entropy; validates dataset-level mIoU.

    The network is built from ``net_config`` (a ``_target_`` dict), which is stored in the checkpoint with
    its genotype inlined (never a path), so :meth:`load_from_checkpoint` rebuilds the model without any
    other config or file. An optional ``teacher`` adds a pixel-wise KL distillation term, reduced as
    ``distill_reduction`` says (:func:`~segnas.lit.losses.distillation_kl`: ``pixel`` or FasterSeg's ``element``).
    """

    def __init__(
        self,
        net_config: dict[str, Any],
        num_classes: int,
        class_names: list[str] | None = None,
        ignore_index: int = 255,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nesterov: bool = False,
        poly_power: float = 0.9,
        warmup_steps: int = 0,
        warmup_factor: float = 0.1,
        top_k_percent: float = 1.0,
        ohem_thresh: float | None = None,
        ohem_min_kept: float = 1 / 16,
        lr_schedule: str = "poly",
        lr_gamma: float = 0.992,
        distill_weight: float = 0.0,
        distill_temperature: float = 1.0,
        distill_reduction: str = "pixel",
        teacher: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if distill_reduction not in KD_REDUCTIONS:
            raise ValueError(f"optim.distill_reduction must be one of {list(KD_REDUCTIONS)}, got {distill_reduction!r}")
        self.save_hyperparameters(ignore=["teacher"])
        self.hparams.net_config = inline_genotype(net_config)
        self.net = build_net(self.hparams.net_config, num_classes)
        self.teacher = teacher.eval().requires_grad_(False) if teacher is not None else None
        self.val_metric = SegmentationMetric(num_classes, ignore_index)
        self.train_loss = MeanMetric()
        self.best_miou = 0.0
        self.last_per_class: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if isinstance(logits, tuple):
            raise TypeError(
                "the network returns auxiliary logits (aux_heads=true): train it with stage=retrain"
            )
        losses = {"ce": self.pixel_loss(logits, batch["mask"])}
        hp = self.hparams
        if self.teacher is not None and hp.distill_weight > 0:
            with torch.no_grad():
                teacher_logits = self.teacher(batch["image"])
            losses["kd"] = hp.distill_weight * distillation_kl(logits, teacher_logits, hp.distill_temperature,
                                                               hp.distill_reduction)
        losses["total"] = sum(losses.values())
        return losses

    def pixel_loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Top-k hard-pixel CE, or FasterSeg's OHEM CE when ``ohem_thresh`` is set."""
        hp = self.hparams
        if hp.ohem_thresh is not None:
            return ohem_ce(logits, mask, hp.ignore_index, hp.ohem_thresh, hp.ohem_min_kept)
        return hard_pixel_ce(logits, mask, hp.ignore_index, hp.top_k_percent)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self.loss(self(batch["image"]), batch)
        for name, value in losses.items():
            key = "train/loss_step" if name == "total" else f"train/loss_{name}_step"
            self.log(key, value, prog_bar=name == "total")
        self.train_loss.update(losses["total"].detach())
        return losses["total"]

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset()
        if self.teacher is not None:
            self.teacher.eval()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["image"])
        self.val_metric.update(logits, batch["mask"])

    def on_validation_epoch_end(self) -> None:
        confmat = self.val_metric.confmat.clone()
        mean_iou, per_class = miou(confmat)
        self.val_metric.reset()
        self.last_per_class = per_class
        if not self.trainer.sanity_checking:
            self.best_miou = max(self.best_miou, mean_iou)
            if self.train_loss.update_count:
                self.log("train/loss", self.train_loss.compute())
            if self.trainer.optimizers:
                self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        self.log("val/mIoU", mean_iou, prog_bar=True, sync_dist=True)
        self.log("val/pixel_acc", pixel_accuracy(confmat), sync_dist=True)
        self.log("val/mIoU_best", self.best_miou, sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = sgd(self.net.parameters(), hp.lr, hp.momentum, hp.weight_decay, hp.nesterov)
        if hp.lr_schedule == "exponential":  # per epoch (FasterSeg / SasWOT retraining)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": exponential_scheduler(optimizer, hp.lr_gamma), "interval": "epoch"}}
        if hp.lr_schedule != "poly":
            raise ValueError(f"optim.lr_schedule must be 'poly' or 'exponential', got {hp.lr_schedule!r}")
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = poly_scheduler(optimizer, total, hp.poly_power, hp.warmup_steps, hp.warmup_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["best_miou"] = self.best_miou
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("teacher.")}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_miou = checkpoint.get("best_miou", 0.0)
        if self.teacher is not None:
            prefix = "teacher."
            checkpoint["state_dict"].update({prefix + k: v for k, v in self.teacher.state_dict().items()})
