"""Lightning callbacks: metric history (CSV + PNG), latency/FPS monitor, divergence check; a resuming CSV
logger."""

from segnas.callbacks.csv_log import ResumingCSVLogger
from segnas.callbacks.finite_loss import FiniteLossCheck, NonFiniteLossError
from segnas.callbacks.history import MetricHistory, plot_history, write_rows_csv
from segnas.callbacks.latency import LatencyMonitor

__all__ = [
    "FiniteLossCheck",
    "LatencyMonitor",
    "MetricHistory",
    "NonFiniteLossError",
    "ResumingCSVLogger",
    "plot_history",
    "write_rows_csv",
]
