"""Scheduled drop path (stochastic depth) for retraining: the rate grows linearly to ``max_rate``."""

from __future__ import annotations

import logging

import lightning as L
from torch import nn

from segnas.nn.drop import DropPath

log = logging.getLogger(__name__)


def set_drop_path_rate(module: nn.Module, rate: float) -> int:
    """Set ``p`` of every :class:`DropPath` inside ``module``; returns how many were set."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop path rate must be in [0, 1), got {rate}")
    count = 0
    for m in module.modules():
        if isinstance(m, DropPath):
            m.p = rate
            count += 1
    return count


class DropPathSchedule(L.Callback):
    """Sets the drop-path rate of ``pl_module.net`` before every training batch.

    ``interval="epoch"``: ``max_rate * epoch / max_epochs`` (the reference schedule); ``"step"``:
    ``max_rate * global_step / total_steps``. DropPath is the identity in eval mode, so validation and
    inference never drop. The rate is logged as ``train/drop_path_rate``. A network without DropPath
    modules (e.g. FasterSeg) is trained without drop path: the schedule logs so and does nothing.
    """

    def __init__(self, max_rate: float = 0.2, interval: str = "epoch") -> None:
        if interval not in ("epoch", "step"):
            raise ValueError(f"interval must be 'epoch' or 'step', got {interval!r}")
        if not 0.0 <= max_rate < 1.0:
            raise ValueError(f"max_rate must be in [0, 1), got {max_rate}")
        self.max_rate = max_rate
        self.interval = interval
        self.active = True

    def rate(self, trainer: L.Trainer) -> float:
        """The scheduled rate at the trainer's current epoch or step."""
        if self.interval == "epoch":
            if not trainer.max_epochs or trainer.max_epochs < 1:
                raise ValueError(
                    "DropPathSchedule(interval='epoch') needs trainer.max_epochs >= 1; use 'step'"
                )
            return self.max_rate * min(1.0, trainer.current_epoch / trainer.max_epochs)
        total = max(1, int(trainer.estimated_stepping_batches))
        return self.max_rate * min(1.0, trainer.global_step / total)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = getattr(pl_module, "net", pl_module)
        self.active = any(isinstance(m, DropPath) for m in net.modules())
        if not self.active:
            log.warning("%s has no DropPath module: drop path schedule disabled", type(net).__name__)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        if not self.active:
            return
        rate = self.rate(trainer)
        set_drop_path_rate(getattr(pl_module, "net", pl_module), rate)
        pl_module.log("train/drop_path_rate", rate)
