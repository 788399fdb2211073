"""Lightning callbacks: metric history (CSV + PNG), latency/FPS monitor, divergence check, linked checkpoints;
a resuming CSV logger and an atomic checkpoint writer."""

from segnas.callbacks.checkpoints import AtomicCheckpointIO, LinkedModelCheckpoint
from segnas.callbacks.csv_log import ResumingCSVLogger
from segnas.callbacks.finite_loss import FiniteLossCheck, NonFiniteLossError
from segnas.callbacks.history import MetricHistory, plot_history, write_rows_csv
from segnas.callbacks.latency import LatencyMonitor

__all__ = [
    "AtomicCheckpointIO",
    "FiniteLossCheck",
    "LatencyMonitor",
    "LinkedModelCheckpoint",
    "MetricHistory",
    "NonFiniteLossError",
    "ResumingCSVLogger",
    "plot_history",
    "write_rows_csv",
]
