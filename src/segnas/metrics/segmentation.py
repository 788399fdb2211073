"""Dataset-level semantic segmentation metrics from a confusion matrix."""

from __future__ import annotations

import torch
from torchmetrics import Metric


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """Confusion matrix ``[target, pred]`` of integer label maps, ignoring ``ignore_index`` pixels.

    Raises ``ValueError`` if a non-ignored target or a prediction lies outside ``[0, num_classes)``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    pred = pred.reshape(-1).long()
    target = target.reshape(-1).long()
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    for name, t in (("target", target), ("pred", pred)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            bad = t[(t < 0) | (t >= num_classes)].unique()[:5].tolist()
            raise ValueError(
                f"{name} holds labels {bad} outside [0, {num_classes}) (ignore_index={ignore_index})"
            )
    index = target * num_classes + pred
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(confmat: torch.Tensor) -> torch.Tensor:
    """Per-class IoU (fraction); NaN for classes absent from both target and prediction."""
    confmat = confmat.double()
    tp = confmat.diag()
    union = confmat.sum(0) + confmat.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def miou(confmat: torch.Tensor) -> tuple[float, list[float]]:
    """Mean IoU in percent over classes present in target or prediction, and per-class IoU in percent.

    Per-class entries are NaN for classes that never occur (neither in target nor in prediction).
    """
    per_class = iou_per_class(confmat) * 100.0
    present = ~per_class.isnan()
    mean = per_class[present].mean().item() if present.any() else float("nan")
    return mean, per_class.tolist()


def pixel_accuracy(confmat: torch.Tensor) -> float:
    """Overall pixel accuracy in percent."""
    total = confmat.sum().item()
    return 100.0 * confmat.diag().sum().item() / total if total else float("nan")


class SegmentationMetric(Metric):
    """Accumulates a dataset-level confusion matrix; ``compute()`` returns mIoU in percent.

    Works with logits ``(B, C, H, W)`` or label maps ``(B, H, W)`` as predictions.
    """

    full_state_update = False

    def __init__(self, num_classes: int, ignore_index: int = 255, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.add_state("confmat", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.dim() == target.dim() + 1:
            preds = preds.argmax(1)
        self.confmat += confusion_matrix(preds, target, self.num_classes, self.ignore_index).to(self.confmat)

    def compute(self) -> torch.Tensor:
        return torch.tensor(miou(self.confmat)[0])

    def per_class(self) -> list[float]:
        """Per-class IoU in percent (NaN where a class never occurs)."""
        return miou(self.confmat)[1]
