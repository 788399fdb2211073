"""A tabular benchmark as a score (``score=benchmark``) and as the ground truth reported beside any search.

TransNAS-Bench-101 has trained every network of its two segmentation spaces; its table (a CSV with the columns
``space``, ``tnb_arch_str`` and the metrics, :mod:`segnas.proxies.benchmark`) scores an architecture in
microseconds. :class:`BenchmarkScoring` restricts the ``space=transnas_micro|transnas_macro`` space to the
table's architectures (tabular mode: sampling only draws them, every other architecture is a violation, so the
algorithms redraw) and scores each by its recorded metric; an architecture missing from the table is never
scored (:class:`~segnas.search.evaluator.InvalidScore`). ``stage.ground_truth`` reports the same table's
values beside the top picks of a search scored by something else (e.g. a zero-cost proxy), never used by it.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from segnas.proxies.benchmark import DEFAULT_TARGET, load
from segnas.search.evaluator import InvalidScore, Objective
from segnas.search.scoring import RunSetup, space_of
from segnas.spaces.base import SearchSpace
from segnas.spaces.transnas import INPUT_SIZE, NUM_CLASSES, TransNASSpace
from segnas.utils.hashing import file_sha256


def existing_csv(path: str | Path, key: str) -> Path:
    """``path`` (absolute, or relative to the launch directory) when it is a file; else ``FileNotFoundError``
    naming the config ``key``."""
    resolved = Path(to_absolute_path(str(path))).resolve()
    if not resolved.is_file():
        raise FileNotFoundError(
            f"{key}={path}: no such file ({resolved}). It is a TransNAS-Bench-101 segmentsemantic table (columns "
            "space, tnb_arch_str and the metric); the development checkout has it in ../shared/data/transnas/"
        )
    return resolved


@dataclass(frozen=True)
class BenchmarkTable:
    """One space's rows of a benchmark CSV: architecture string -> recorded ``metric``."""

    path: Path
    metric: str
    space: str
    values: Mapping[str, float]
    ordered: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ordered", tuple(sorted(self.values.values())))

    def __len__(self) -> int:
        return len(self.values)

    @property
    def best(self) -> float:
        return self.ordered[-1]

    def percentile(self, value: float) -> float:
        """Percent of the table's architectures whose metric is at most ``value``."""
        return 100.0 * bisect.bisect_right(self.ordered, value) / len(self.ordered)

    def describe(self) -> dict[str, Any]:
        return {"csv": str(self.path), "metric": self.metric, "space_size": len(self), "table_best": self.best}

    def picks(self, keys: Sequence[str], top_n: int) -> dict[str, Any]:
        """The ground truth of the first ``top_n`` of ``keys`` (a search's ranking, best first) with its percentile,
        and the best ground truth among all of them (what an oracle would have picked from the evaluated)."""
        known = [k for k in keys if k in self.values]
        top = [{"arch": k, self.metric: self.values.get(k),
                "percentile": self.percentile(self.values[k]) if k in self.values else None} for k in keys[:top_n]]
        best = max((self.values[k] for k in known), default=None)
        return {**self.describe(), "top": top, "n_evaluated_in_table": len(known), "best_evaluated": best,
                "best_evaluated_percentile": self.percentile(best) if best is not None else None}


def load_table(csv: str | Path, metric: str, space: SearchSpace, key: str) -> BenchmarkTable:
    """The rows of ``space`` (a TransNAS-Bench-101 space) in the CSV ``csv`` with a finite ``metric``."""
    if not isinstance(space, TransNASSpace):
        raise ValueError(f"{key}: a TransNAS-Bench-101 table scores space=transnas_micro or space=transnas_macro, "
                         f"not space={space.name}")
    path = existing_csv(csv, key)
    values = {r.arch: r.target for r in load(path, metric, space.tnb_space)}
    if not values:
        raise ValueError(f"{key}={csv}: no {space.tnb_space} rows with a finite {metric}")
    return BenchmarkTable(path, metric, space.tnb_space, values)


def ground_truth_table(settings: DictConfig | Mapping[str, Any] | None, space: SearchSpace) -> BenchmarkTable | None:
    """``stage.ground_truth`` (``csv``, ``metric``) of ``space``; None without a ``csv``."""
    if not settings or not settings.get("csv"):
        return None
    return load_table(settings["csv"], str(settings.get("metric", DEFAULT_TARGET)), space, "stage.ground_truth.csv")


class TableScore:
    """The recorded metric of a genotype's architecture; :class:`InvalidScore` when the table lacks it."""

    def __init__(self, table: BenchmarkTable) -> None:
        self.table = table

    def __call__(self, genotype: Any) -> float:
        if genotype.arch not in self.table.values:
            raise InvalidScore(f"{genotype.arch} has no {self.table.metric} in {self.table.path}: not scored")
        return self.table.values[genotype.arch]


class BenchmarkScoring:
    """Score = the benchmark table's ``metric`` (module docstring); the space becomes the table's architectures.

    Args:
        csv: the table (absolute, or relative to the launch directory); checked when the score is made.
        metric: the column maximised (TransNAS-Bench-101: ``valid_acc_final_epoch``, pixel accuracy %).
    """

    name: ClassVar[str] = "benchmark"

    def __init__(self, csv: str, metric: str = DEFAULT_TARGET) -> None:
        self.csv, self.metric = existing_csv(csv, "score.csv"), str(metric)
        load(self.csv, self.metric)  # columns checked before any work
        self.table: BenchmarkTable | None = None

    def uses_data(self, data: DictConfig | None) -> bool:
        return False

    def num_classes(self, run: RunSetup) -> int:
        """The benchmark networks' classes (TNB segmentsemantic: 17)."""
        return NUM_CLASSES

    def cost_input(self) -> list[int]:
        """The benchmark's input: one 256 x 256 image."""
        return [1, 3, *INPUT_SIZE]

    def space(self, run: RunSetup) -> tuple[SearchSpace, dict[str, Any]]:
        """The ``space`` group's space restricted to the table's architectures."""
        space = space_of(run.cfg)
        self.table = load_table(self.csv, self.metric, space, "score.csv")
        return space.restrict(self.table.values), {}

    def objective(self, run: RunSetup, space: SearchSpace, network: Mapping[str, Any],
                  costs: Mapping[str, Objective], budgets: Mapping[str, float]) -> TableScore:
        assert self.table is not None, "call space() first"
        return TableScore(self.table)

    def context(self, run: RunSetup) -> dict[str, Any]:
        return {"benchmark_sha256": file_sha256(self.csv)}

    def report(self) -> dict[str, Any]:
        """``space_size`` (the table's architectures of the space) and the table."""
        assert self.table is not None, "call space() first"
        return {"space_size": len(self.table), "benchmark": self.table.describe()}

    def loggers(self) -> list[Any]:
        return []
