"""Stops training at the first non-finite loss: a diverged run fails instead of saving a NaN model."""

from __future__ import annotations

import lightning as L
import torch


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class FiniteLossCheck(L.Callback):
    """Raises :class:`NonFiniteLossError` naming the step before a non-finite loss is back-propagated, so the
    weights of the last finite step are kept and no checkpoint of the diverged model is written."""

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            raise NonFiniteLossError(
                f"training loss is {float(loss.detach().sum())} at global step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}): training diverged; lower optim.lr (the supernet: its "
                "module.lr) or check the data"
            )
