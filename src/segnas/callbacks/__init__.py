"""Lightning callbacks: metric history (CSV + PNG), latency/FPS monitor."""

from segnas.callbacks.history import MetricHistory, plot_history, write_rows_csv
from segnas.callbacks.latency import LatencyMonitor

__all__ = ["LatencyMonitor", "MetricHistory", "plot_history", "write_rows_csv"]
