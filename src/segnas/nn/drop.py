"""Stochastic depth (drop path) on the residual branch of an operator or a cell."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DropPath(nn.Module):
    """Zero the whole input of a sample with probability ``p`` in training (rescaled by ``1/(1-p)``).

    ``p`` is a plain attribute so a schedule can change it between steps; in eval mode this is the
    identity.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p <= 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        return x * mask.bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class IdentitySkip(nn.Module):
    """``x + drop_path(op(x))``: a cell whose operator has no bypass of its own and keeps its input's shape,
    as the residual branch of an identity skip (so dropping it leaves the input)."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op
        self.drop_path = DropPath()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.op(x))
