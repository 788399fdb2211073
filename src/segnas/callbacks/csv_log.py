"""A CSV logger that keeps the rows of earlier attempts when a run resumes in its folder."""

from __future__ import annotations

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _ResumingWriter(ExperimentWriter):
    """Lightning's writer, except that an existing ``metrics.csv`` is continued: on the first save its rows
    before the first step logged now are kept (later ones were logged after the checkpoint a killed
    attempt resumes from, and are logged again) and the new rows are appended."""

    def _check_log_dir_exists(self) -> None:
        """Lightning deletes an existing ``metrics.csv`` here; it is continued in :meth:`save` instead."""

    def save(self) -> None:
        if self.metrics and not self.metrics_keys and self._fs.isfile(self.metrics_file_path):
            first = min(int(m["step"]) for m in self.metrics)
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(float(row["step"])) < first]
            self._fs.rm_file(self.metrics_file_path)
            self.metrics = kept + self.metrics
        super().save()


class ResumingCSVLogger(CSVLogger):
    """:class:`~lightning.pytorch.loggers.CSVLogger` whose ``metrics.csv`` survives a resume (rows appended)."""

    @classmethod
    def continuing(cls, logger: CSVLogger) -> ResumingCSVLogger:
        """This logger with all settings of ``logger`` (a CSVLogger whose files were not opened yet)."""
        resuming = cls.__new__(cls)
        resuming.__dict__.update(vars(logger))
        return resuming

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumingWriter(log_dir=self.log_dir)
        return self._experiment
