"""Optimiser and learning-rate schedules shared by the LightningModules."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LinearLR, LRScheduler, PolynomialLR, SequentialLR


def sgd(params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.9, weight_decay: float = 5e-4,
        nesterov: bool = False) -> torch.optim.SGD:
    """SGD with momentum; weight decay is not applied to biases and normalisation parameters."""
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)


def poly_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, power: float = 0.9, warmup_steps: int = 0,
                   warmup_factor: float = 0.1) -> LRScheduler:
    """Per-step lr: linear warm-up from ``warmup_factor`` x the base lr over ``warmup_steps`` steps, then
    polynomial decay ``(1 - t / (total_steps - warmup_steps)) ** power`` to 0 (torch's LinearLR, PolynomialLR)."""
    poly = PolynomialLR(optimizer, total_iters=max(1, total_steps - warmup_steps), power=power)
    if warmup_steps <= 0:
        return poly
    warmup = LinearLR(optimizer, start_factor=warmup_factor, end_factor=1.0, total_iters=warmup_steps)
    return SequentialLR(optimizer, [warmup, poly], milestones=[warmup_steps])


def exponential_scheduler(optimizer: torch.optim.Optimizer, gamma: float) -> torch.optim.lr_scheduler.ExponentialLR:
    """Per-epoch exponential decay (HyCTAS supernet: gamma 0.992)."""
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
