"""Writes every epoch's logged metrics to ``history.csv`` and plots them to ``curves.png``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib
from lightning.pytorch.trainer.states import TrainerFn

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def write_rows_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write dict rows as CSV with the union of their keys as columns (first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


class MetricHistory(L.Callback):
    """Keeps one row of epoch-level metrics per validation; the rows live in the checkpoint for resume.

    Rows are taken at ``on_validation_end`` while fitting, after the LightningModule's epoch-end logging, so
    a module should log its epoch-level training statistics from ``on_validation_epoch_end`` too. A resumed
    run restores the rows of its checkpoint and continues them.

    The CSV and PNG are written whatever loggers are configured, so every run leaves plain files.
    """

    def __init__(self, output_dir: str, filename: str = "history.csv", plot: str = "curves.png") -> None:
        self.output_dir = Path(output_dir)
        self.filename = filename
        self.plot = plot
        self.rows: list[dict[str, Any]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != TrainerFn.FITTING:
            return
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in sorted(trainer.callback_metrics.items()):
            if not key.endswith("_step"):
                row[key.removesuffix("_epoch")] = round(float(value), 6)
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        self.write()

    def write(self) -> None:
        write_rows_csv(self.output_dir / self.filename, self.rows)
        plot_history(self.rows, self.output_dir / self.plot)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))


def plot_history(rows: list[dict[str, Any]], path: Path) -> None:
    """One panel per metric family (loss, mIoU, everything else) against epoch."""
    if not rows:
        return
    epochs = [r["epoch"] for r in rows]
    keys = sorted({k for r in rows for k in r} - {"epoch", "step"})
    panels = {
        "loss": [k for k in keys if "loss" in k],
        "mIoU / accuracy (%)": [k for k in keys if "mIoU" in k or "acc" in k],
    }
    panels = {title: ks for title, ks in panels.items() if ks}
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (title, ks) in zip(axes[0], panels.items(), strict=True):
        for k in ks:
            ax.plot(epochs, [r.get(k, float("nan")) for r in rows], marker="o", label=k)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
