"""Segmentation losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hard_pixel_ce(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255, top_k_percent: float = 1.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy averaged over the ``top_k_percent`` hardest valid pixels (1.0 = plain CE).

    ``weight`` optionally scales each pixel's loss (e.g. small-instance weights for panoptic).
    """
    if not 0.0 < top_k_percent <= 1.0:
        raise ValueError(f"top_k_percent must be in (0, 1], got {top_k_percent}")
    pixel_loss = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    if weight is not None:
        pixel_loss = pixel_loss * weight
    pixel_loss = pixel_loss[target != ignore_index]
    if pixel_loss.numel() == 0:
        return logits.sum() * 0.0
    if top_k_percent < 1.0:
        k = max(1, int(top_k_percent * pixel_loss.numel()))
        pixel_loss = pixel_loss.topk(k, sorted=False).values
    return pixel_loss.mean()


def ohem_ce(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255, thresh: float = 0.7,
    min_kept: float = 1 / 16,
) -> torch.Tensor:
    """FasterSeg's OHEM cross-entropy: averaged over the valid pixels whose probability of the true class is
    below ``thresh``, or over the ``min_kept`` (a fraction of all pixels; FasterSeg: batch x H x W / 16) least
    confident ones when fewer are below it."""
    if not 0.0 < thresh <= 1.0 or not 0.0 < min_kept <= 1.0:
        raise ValueError(f"need 0 < thresh <= 1 and 0 < min_kept <= 1, got {thresh}, {min_kept}")
    pixel_loss = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    valid = target != ignore_index
    if not valid.any():
        return logits.sum() * 0.0
    with torch.no_grad():
        prob = F.softmax(logits, dim=1).gather(1, target.clamp(0, logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
        prob = prob[valid]
        k = min(prob.numel(), max(1, int(min_kept * target.numel())))
        threshold = max(thresh, float(prob.kthvalue(k).values))
    kept = pixel_loss[valid][prob <= threshold]
    return kept.mean()


KD_REDUCTIONS = ("pixel", "element")


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
                    reduction: str = "pixel") -> torch.Tensor:
    """Pixel-wise KL(teacher || student) on softened class distributions, scaled by ``T^2``: summed over the
    classes and averaged over the pixels (``pixel``: a per-pixel KL), or averaged over every element, N x C x H
    x W (``element``: ``nn.KLDivLoss()``'s default ``mean``, FasterSeg's, i.e. the ``pixel`` value / C)."""
    if reduction not in KD_REDUCTIONS:
        raise ValueError(f"the distillation reduction must be one of {list(KD_REDUCTIONS)}, got {reduction!r}")
    if teacher_logits.shape[-2:] != student_logits.shape[-2:]:
        teacher_logits = F.interpolate(teacher_logits, size=student_logits.shape[-2:], mode="bilinear", align_corners=False)
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = log_p_teacher.exp() * (log_p_teacher - log_p_student)
    per_pixel = kl.sum(dim=1) if reduction == "pixel" else kl
    return per_pixel.mean() * temperature**2
