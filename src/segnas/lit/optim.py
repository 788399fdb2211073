"""Optimiser and learning-rate schedules shared by the LightningModules."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR


def sgd(params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.9, weight_decay: float = 5e-4,
        nesterov: bool = False) -> torch.optim.SGD:
    """SGD with momentum; weight decay is not applied to biases and normalisation parameters."""
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)


def poly_lambda(total_steps: int, power: float = 0.9, warmup_steps: int = 0, warmup_factor: float = 0.1):
    """Multiplier of the base lr at a step: linear warm-up from ``warmup_factor``, then polynomial decay."""
    total_steps = max(1, total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return warmup_factor + (1.0 - warmup_factor) * step / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 1.0 - progress) ** power

    return factor


def poly_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, power: float = 0.9, warmup_steps: int = 0,
                   warmup_factor: float = 0.1) -> LambdaLR:
    """Per-step poly schedule with warm-up (see :func:`poly_lambda`)."""
    return LambdaLR(optimizer, poly_lambda(total_steps, power, warmup_steps, warmup_factor))


def exponential_scheduler(optimizer: torch.optim.Optimizer, gamma: float) -> torch.optim.lr_scheduler.ExponentialLR:
    """Per-epoch exponential decay (HyCTAS supernet: gamma 0.992)."""
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
