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


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Pixel-wise KL(teacher || student) on softened class distributions, scaled by ``T^2``."""
    if teacher_logits.shape[-2:] != student_logits.shape[-2:]:
        teacher_logits = F.interpolate(teacher_logits, size=student_logits.shape[-2:], mode="bilinear", align_corners=False)
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1)
    return kl.mean() * temperature**2
