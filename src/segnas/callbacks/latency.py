"""Measures latency/FPS of the model being trained and logs it next to its mIoU."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L

from segnas.data.base import SegmentationDataModule
from segnas.metrics.latency import SpeedProtocol


class LatencyMonitor(L.Callback):
    """At the end of fit (and optionally every ``every_n_epochs``), times the model at ``input_shape`` with the
    ``speed`` protocol (the one every stage reports FPS with).

    Logs ``model/latency_ms`` and ``model/fps`` beside ``val/mIoU`` so speed and accuracy end up in
    the same rows of every logger and of ``history.csv``. ``input_shape`` None: the first validation image of
    the trainer's datamodule (the input ``stage=retrain`` and ``stage=evaluate`` report at).
    """

    def __init__(self, input_shape: Sequence[int] | None = None, speed: SpeedProtocol | None = None,
                 every_n_epochs: int = 0) -> None:
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.speed = speed or SpeedProtocol()
        self.every_n_epochs = every_n_epochs
        self.last: dict | None = None

    def _shape(self, trainer: L.Trainer) -> tuple[int, ...]:
        if self.input_shape is not None:
            return self.input_shape
        datamodule = trainer.datamodule
        if not isinstance(datamodule, SegmentationDataModule) or datamodule.val_set is None:
            raise ValueError("callbacks.latency_monitor.input_shape is needed when the trainer has no segnas "
                             "datamodule with a validation set")
        return datamodule.eval_input_shape()

    def _measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        result = self.speed.measure(pl_module, self._shape(trainer)).as_dict()
        self.last = result
        return result

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self.every_n_epochs or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        result = self._measure(trainer, pl_module)
        pl_module.log("model/latency_ms", result["median_ms"])
        pl_module.log("model/fps", result["fps"])

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._measure(trainer, pl_module)
