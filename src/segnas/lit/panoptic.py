"""LightningModule for Panoptic-DeepLab-style training and PQ validation.

Targets are generated on the fly from each sample's ``mask`` and ``instance`` maps (so crops and flips
need nothing special): :func:`segments_from_labels` gives segments, :class:`PanopticTargetGenerator`
the semantic/center/offset targets and weights. Losses (Panoptic-DeepLab): semantic top-k CE weighted by
the small-instance pixel weights, center MSE x 200 and offset L1 x 0.01, both normalised by their weight
sums. Validation post-processes every image and accumulates PQ (panopticapi rules) and mIoU.
Predicted thing segments carry Panoptic-DeepLab's instance score, for instance AP on the written files.
:func:`write_predictions` writes a trained module's predictions and the ground truth in COCO panoptic format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from segnas.data.base import SegmentationDataModule
from segnas.data.panoptic_targets import PanopticTargetGenerator, segments_from_labels
from segnas.lit.losses import hard_pixel_ce
from segnas.lit.optim import poly_scheduler, sgd
from segnas.lit.segmentation import build_net
from segnas.metrics.panoptic import PanopticQuality, pq_percent
from segnas.metrics.segmentation import SegmentationMetric, miou
from segnas.models.panoptic_postprocess import (
    PanopticPostProcessor,
    PanopticPredictionWriter,
    instance_scores,
    panoptic_to_segments,
)
from segnas.spaces import HyCTASGenotype, as_genotype


def weighted_mean(loss: Tensor, weights: Tensor) -> Tensor:
    """``sum(loss * weights) / sum(weights)`` (0 when no pixel has weight), as Panoptic-DeepLab normalises."""
    total = weights.sum()
    return (loss * weights).sum() / total if total > 0 else (loss * weights).sum() * 0.0


def panoptic_losses(
    outputs: dict[str, Tensor],
    targets: dict[str, Tensor],
    ignore_index: int = 255,
    top_k_percent: float = 0.2,
    center_weight: float = 200.0,
    offset_weight: float = 0.01,
) -> dict[str, Tensor]:
    """Semantic, center and offset losses (already weighted) and their ``total``."""
    semantic = hard_pixel_ce(
        outputs["semantic"],
        targets["semantic"],
        ignore_index,
        top_k_percent,
        weight=targets["semantic_weights"],
    )
    center_px = (outputs["center"] - targets["center"]).pow(2)
    center = weighted_mean(center_px, targets["center_weights"][:, None])
    offset_px = (outputs["offset"] - targets["offset"]).abs().sum(1)
    offset = weighted_mean(offset_px, targets["offset_weights"])
    losses = {"semantic": semantic, "center": center_weight * center, "offset": offset_weight * offset}
    losses["total"] = losses["semantic"] + losses["center"] + losses["offset"]
    return losses


def ground_truth_segments(
    mask: Tensor,
    instance: Tensor,
    thing_ids: Sequence[int],
    category_ids: Sequence[int],
    ignore_index: int = 255,
    label_divisor: int = 1000,
) -> tuple[np.ndarray, list[dict]]:
    """COCO-panoptic ground truth of one sample (category ids; instance 0 on a thing = crowd)."""
    ids, segments = segments_from_labels(
        mask.cpu().numpy(), instance.cpu().numpy(), thing_ids, ignore_index, label_divisor
    )
    for seg in segments:
        seg["category_id"] = int(category_ids[seg["category_id"]])
    return ids, segments


class PanopticModule(L.LightningModule):
    """Trains a panoptic network (``net_config``, stored in the checkpoint); validates PQ and mIoU.

    ``categories`` are COCO-style dicts (``id``, ``name``, ``isthing``) in train-id order; train id ``i``
    is written as ``categories[i]["id"]`` in predictions.
    """

    def __init__(
        self,
        net_config: dict[str, Any],
        categories: list[dict[str, Any]],
        ignore_index: int = 255,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nesterov: bool = False,
        poly_power: float = 0.9,
        warmup_steps: int = 0,
        warmup_factor: float = 0.1,
        top_k_percent: float = 0.2,
        center_weight: float = 200.0,
        offset_weight: float = 0.01,
        sigma: float = 8.0,
        small_instance_area: int = 4096,
        small_instance_weight: float = 3.0,
        label_divisor: int = 1000,
        stuff_area: int = 2048,
        center_threshold: float = 0.1,
        nms_kernel: int = 7,
        top_k: int = 200,
        grad_clip_norm: float | None = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.num_classes = len(categories)
        self.net = build_net(net_config, self.num_classes)
        self.category_ids = [int(c["id"]) for c in categories]
        self.thing_ids = [i for i, c in enumerate(categories) if c["isthing"]]
        self.targets = PanopticTargetGenerator(
            frozenset(self.thing_ids),
            None,
            ignore_index,
            sigma,
            small_instance_area=small_instance_area,
            small_instance_weight=small_instance_weight,
        )
        self.postprocess = PanopticPostProcessor(
            self.thing_ids, label_divisor, stuff_area, center_threshold, nms_kernel, top_k
        )
        self.val_semantic = SegmentationMetric(self.num_classes, ignore_index)
        self.val_pq = PanopticQuality(categories)
        self.last_pq: dict[str, Any] = {}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.net(x)

    def make_targets(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Panoptic-DeepLab targets of a batch (stacked, on the batch's device)."""
        hp = self.hparams
        per_image = []
        for mask, instance in zip(batch["mask"], batch["instance"], strict=True):
            ids, segments = segments_from_labels(
                mask.cpu().numpy(), instance.cpu().numpy(), self.thing_ids, hp.ignore_index, hp.label_divisor
            )
            per_image.append(self.targets(ids, segments))
        return {k: torch.stack([t[k] for t in per_image]).to(self.device) for k in per_image[0]}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        hp = self.hparams
        losses = panoptic_losses(
            self(batch["image"]),
            self.make_targets(batch),
            hp.ignore_index,
            hp.top_k_percent,
            hp.center_weight,
            hp.offset_weight,
        )
        for name, value in losses.items():
            self.log(
                f"train/loss_{name}" if name != "total" else "train/loss", value, prog_bar=name == "total"
            )
        return losses["total"]

    def predict_panoptic(self, outputs: dict[str, Tensor], index: int) -> tuple[np.ndarray, list[dict]]:
        """COCO-panoptic prediction (segment ids, segments_info) of image ``index`` of a batch's outputs;
        thing segments carry their Panoptic-DeepLab ``score`` (:func:`instance_scores`) for instance AP."""
        semantic, center = outputs["semantic"][index], outputs["center"][index]
        panoptic, _ = self.postprocess(semantic, center, outputs["offset"][index])
        divisor = self.hparams.label_divisor
        scores = instance_scores(panoptic, semantic, center, self.thing_ids, divisor)
        return panoptic_to_segments(panoptic, self.category_ids, divisor, scores=scores)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        outputs = self(batch["image"])
        self.val_semantic.update(outputs["semantic"], batch["mask"])
        hp = self.hparams
        for i, (mask, instance) in enumerate(zip(batch["mask"], batch["instance"], strict=True)):
            gt_ids, gt_segments = ground_truth_segments(
                mask, instance, self.thing_ids, self.category_ids, hp.ignore_index, hp.label_divisor
            )
            pred_ids, pred_segments = self.predict_panoptic(outputs, i)
            self.val_pq.update(
                gt_ids, gt_segments, pred_ids, pred_segments, where=f"batch {batch_idx} image {i}"
            )

    def on_validation_epoch_end(self) -> None:
        result = self.val_pq.compute()
        self.val_pq.sums[:] = 0
        mean_iou, _ = miou(self.val_semantic.confmat.clone())
        self.val_semantic.reset()
        self.last_pq = result
        percent = pq_percent(result)
        logged = {f"val/{k}": percent[k] for k in ("PQ", "PQ_th", "PQ_st", "SQ", "RQ")}
        self.log_dict({**logged, "val/mIoU": mean_iou}, prog_bar=True)

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip the global gradient norm to ``grad_clip_norm`` (the reference retraining's 1.0): with SGD, the
        x200 center loss otherwise diverges in the first steps; ``trainer.gradient_clip_val`` wins."""
        clip = gradient_clip_val if gradient_clip_val is not None else self.hparams.grad_clip_norm
        if clip:
            self.clip_gradients(optimizer, clip, gradient_clip_algorithm or "norm")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = sgd(self.net.parameters(), hp.lr, hp.momentum, hp.weight_decay, hp.nesterov)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = poly_scheduler(optimizer, total, hp.poly_power, hp.warmup_steps, hp.warmup_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def panoptic_genotype(spec: Any) -> HyCTASGenotype:
    """The HyCTAS genotype of ``spec`` (``stage.genotype``); other spaces are refused (the instance decoder
    needs the HyCTAS trunk's multi-branch features)."""
    genotype = as_genotype(spec)
    if not isinstance(genotype, HyCTASGenotype):
        raise ValueError(
            f"stage=panoptic builds its heads on a HyCTAS backbone; stage.genotype={spec} is a "
            f"{genotype.space_name} genotype (supported space: hyctas)"
        )
    return genotype


def dataset_categories(datamodule: SegmentationDataModule) -> list[dict[str, Any]]:
    """COCO-style categories in train-id order: from the dataset's metadata, or (synthetic) from its class
    names and ``thing_classes``."""
    meta = datamodule.metadata()
    if "categories" in meta:
        by_id = {int(c["id"]): c for c in meta["categories"]}
        return [
            {"id": int(i), "name": by_id[int(i)]["name"], "isthing": int(by_id[int(i)]["isthing"])}
            for i in meta["category_ids"]
        ]
    things = getattr(datamodule, "thing_classes", None)
    if things is None:
        raise ValueError(
            f"stage=panoptic needs a dataset with instance labels (data=synthetic, cityscapes_panoptic, "
            f"coco_panoptic); {type(datamodule).__name__} has no thing classes"
        )
    return [
        {"id": i, "name": name, "isthing": int(i in set(things))}
        for i, name in enumerate(meta["class_names"])
    ]


def image_names(dataset: Any) -> list[tuple[Any, str]]:
    """``(image_id, file stem)`` per validation sample, from the dataset's records when it has them."""
    records = getattr(getattr(dataset, "dataset", dataset), "records", None)
    if records:
        return [(r.image_id, Path(r.image).stem) for r in records[: len(dataset)]]
    return [(i, f"{i:06d}") for i in range(len(dataset))]


@torch.no_grad()
def write_predictions(
    module: PanopticModule, datamodule: SegmentationDataModule, categories: list[dict[str, Any]], out: Path
) -> tuple[Path, Path, Path, Path]:
    """Predict the validation split and write predictions and ground truth in COCO panoptic format.

    Returns ``(gt_json, gt_folder, pred_json, pred_folder)``. The ground truth is written from the loaded
    validation samples (at ``data.image_scale``), so it has the predictions' size.
    """
    names = image_names(datamodule.val_set)
    pred = PanopticPredictionWriter(out, categories, "panoptic_pred")
    gt = PanopticPredictionWriter(out, categories, "panoptic_gt")
    module.eval()
    hp = module.hparams
    position = 0
    for batch in datamodule.val_dataloader():
        outputs = module(batch["image"].to(module.device))
        for i in range(batch["image"].shape[0]):
            image_id, stem = names[position]
            position += 1
            gt_ids, gt_segments = ground_truth_segments(
                batch["mask"][i],
                batch["instance"][i],
                module.thing_ids,
                module.category_ids,
                hp.ignore_index,
                hp.label_divisor,
            )
            gt.add(image_id, stem, gt_ids, gt_segments)
            pred.add(image_id, stem, *module.predict_panoptic(outputs, i))
    return gt.write(), gt.folder, pred.write(), pred.folder
