"""Live dashboards of a running search: per-generation metrics and the current front to W&B and TensorBoard.

:class:`LiveSearch` is the ``on_generation`` callback of :func:`~segnas.search.algorithms.run_nsga2`,
:func:`~segnas.search.algorithms.run_random` and :func:`~segnas.search.topk.run_topk`. Per search label
and generation it logs ``search/<label>/{hypervolume,evaluated,front_size,best_<score>}`` (W&B: against
``search/<label>/generation``; TensorBoard: at step = generation) and the current front, as a W&B table,
an interactive scatter and a figure coloured by branch count (TensorBoard: the figure);
:meth:`LiveSearch.finish` logs the final front, ``pareto.png`` and the headline numbers. Loggers other
than Lightning's ``WandbLogger`` and ``TensorBoardLogger`` are ignored, so no logger is a no-op.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger

from segnas.search import report
from segnas.search.pareto import hypervolume
from segnas.search.plot import plot_front
from segnas.search.problem import Evaluated


class LiveSearch:
    """Logs a search while it runs (see the module doc).

    Args:
        loggers: Lightning loggers (any; only W&B and TensorBoard ones are written to).
        score: the score metric (maximised).
        cost: the cost metric (minimised); ``None`` for a single-objective search (no hypervolume, no front).
        ref_cost: hypervolume reference cost; ``None``: the largest cost evaluated so far by that search.
        score_range: ``(bottom, top)`` of the score for the hypervolume; ``None``: the range evaluated so far.
        min_score: evaluations below it are left off the front.
        prefix: the first part of every key.
    """

    def __init__(
        self,
        loggers: Sequence[Logger],
        score: str,
        cost: str | None = None,
        ref_cost: float | None = None,
        score_range: tuple[float, float] | None = None,
        min_score: float | None = None,
        prefix: str = "search",
    ) -> None:
        self.wandb = [lg for lg in loggers if isinstance(lg, WandbLogger)]
        self.tensorboard = [lg for lg in loggers if isinstance(lg, TensorBoardLogger)]
        self.score, self.cost, self.ref_cost = score, cost, ref_cost
        self.score_range, self.min_score, self.prefix = score_range, min_score, prefix
        self._labels: set[str] = set()

    @property
    def active(self) -> bool:
        """Whether any logger is written to."""
        return bool(self.wandb or self.tensorboard)

    def metrics(self, evaluations: Sequence[Evaluated]) -> tuple[dict[str, float], list[Evaluated]]:
        """The per-generation numbers of ``evaluations`` and their current front."""
        scores = [e.metrics[self.score] for e in evaluations if math.isfinite(e.metrics[self.score])]
        values = {"evaluated": float(len(evaluations)), f"best_{self.score}": max(scores, default=math.nan)}
        if self.cost is None:
            return values, []
        front = report.front_of(evaluations, self.score, self.cost, self.min_score)
        costs = [e.metrics[self.cost] for e in evaluations if math.isfinite(e.metrics[self.cost])]
        ref = self.ref_cost or max(costs, default=0.0)
        low, high = self.score_range or (min(scores, default=0.0), max(scores, default=1.0))
        if not high > low:
            low, high = 0.0, 1.0
        values["front_size"] = float(len(front))
        values["hypervolume"] = hypervolume([e.metrics[self.score] for e in front],
                                            [e.metrics[self.cost] for e in front], ref, (low, high)) \
            if ref > 0 else math.nan
        return values, front

    def __call__(self, label: str, generation: int, evaluations: list[Evaluated]) -> None:
        """Log generation ``generation`` of search ``label`` (every evaluation so far in ``evaluations``)."""
        if not self.active:
            return
        values, front = self.metrics(evaluations)
        key = f"{self.prefix}/{label}"
        figure = plot_front(evaluations, front, self.cost, self.score, f"{label}, generation {generation}") \
            if self.cost is not None else None
        for logger in self.wandb:
            import wandb

            run = logger.experiment
            if label not in self._labels:
                run.define_metric(f"{key}/*", step_metric=f"{key}/generation")
            data: dict[str, Any] = {f"{key}/{name}": value for name, value in values.items()}
            data[f"{key}/generation"] = generation
            if figure is not None:
                table = self._table(front)
                data[f"{key}/front"] = table
                data[f"{key}/front_scatter"] = wandb.plot.scatter(table, self.cost, self.score,
                                                                  title=f"{label}: {self.score} vs {self.cost}")
                data[f"{key}/front_plot"] = wandb.Image(figure)
            run.log(data)
        for logger in self.tensorboard:
            writer = logger.experiment
            for name, value in values.items():
                writer.add_scalar(f"{key}/{name}", value, generation)
            if figure is not None:
                writer.add_figure(f"{key}/front", figure, generation, close=False)
            writer.flush()
        self._labels.add(label)
        if figure is not None:
            import matplotlib.pyplot as plt

            plt.close(figure)

    def finish(self, summary: Mapping[str, float | None], front_rows: Sequence[Mapping[str, Any]] = (),
               images: Mapping[str, Path] | None = None) -> None:  # fmt: skip
        """The run's headline numbers (W&B summary; TensorBoard scalars at step 0), the final front
        (``front_rows``: a table and a scatter on W&B, a Markdown table on TensorBoard) and ``images``
        (name -> PNG file)."""
        numbers = {f"{self.prefix}/{k}": float(v) for k, v in summary.items() if v is not None}
        images = images or {}
        for logger in self.wandb:
            import wandb

            run = logger.experiment
            data: dict[str, Any] = {f"{self.prefix}/{name}": wandb.Image(str(p)) for name, p in images.items()}
            if front_rows and self.cost is not None:
                columns = list(dict.fromkeys(c for row in front_rows for c in row))
                table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in front_rows])
                data[f"{self.prefix}/pareto"] = table
                data[f"{self.prefix}/pareto_scatter"] = wandb.plot.scatter(
                    table, self.cost, self.score, title=f"Pareto front: {self.score} vs {self.cost}")
            if data:
                run.log(data)
            run.summary.update(numbers)
        for logger in self.tensorboard:
            import matplotlib.image

            writer = logger.experiment
            for name, value in numbers.items():
                writer.add_scalar(name, value, 0)
            for name, path in images.items():
                writer.add_image(f"{self.prefix}/{name}", matplotlib.image.imread(path)[..., :3], 0,
                                 dataformats="HWC")
            if front_rows:
                writer.add_text(f"{self.prefix}/pareto", _markdown(front_rows), 0)
            writer.flush()

    def _table(self, front: Sequence[Evaluated]) -> Any:
        import wandb

        rows = report.rows(front, [f"arch_{i:02d}" for i in range(len(front))])
        columns = list(dict.fromkeys(c for row in rows for c in row)) or ["name", self.score, self.cost]
        return wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])


def _markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = list(dict.fromkeys(c for row in rows for c in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows])


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
