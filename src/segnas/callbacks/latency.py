"""Measures latency/FPS of the model being trained and logs it next to its mIoU."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L

from segnas.metrics.latency import measure_latency


class LatencyMonitor(L.Callback):
    """At the end of fit (and optionally every ``every_n_epochs``), times the model at ``input_shape``.

    Logs ``model/latency_ms`` and ``model/fps`` beside ``val/mIoU`` so speed and accuracy end up in
    the same rows of every logger and of ``history.csv``.
    """

    def __init__(self, input_shape: Sequence[int] = (1, 3, 128, 128), duration_s: float = 1.0, warmup: int = 3,
                 every_n_epochs: int = 0) -> None:
        self.input_shape = tuple(input_shape)
        self.duration_s = duration_s
        self.warmup = warmup
        self.every_n_epochs = every_n_epochs
        self.last: dict | None = None

    def _measure(self, pl_module: L.LightningModule) -> dict:
        result = measure_latency(pl_module, self.input_shape, duration_s=self.duration_s, warmup=self.warmup).as_dict()
        self.last = result
        return result

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self.every_n_epochs or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        result = self._measure(pl_module)
        pl_module.log("model/latency_ms", result["median_ms"])
        pl_module.log("model/fps", result["fps"])

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._measure(pl_module)
