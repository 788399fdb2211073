"""Evaluation through the archive: every metric of every genotype is computed at most once, and a batch of
new candidates is shared out over the ranks of a distributed job."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from segnas.search.archive import Archive
from segnas.search.distributed import Ranks

log = logging.getLogger(__name__)

Objective = Callable[[Any], float]


class InvalidScore(ValueError):
    """Raised by an objective whose value would be meaningless; the evaluator records NaN and the reason."""


class Evaluator:
    """Named objectives evaluated through an :class:`Archive`.

    Args:
        objectives: metric name -> callable ``genotype -> float``, computed in this order (put the
            cheap cost metrics before the expensive score).
        archive: where results are looked up first (by the archive's canonical key) and appended as soon
            as they are computed.
        ranks: the processes a batch is shared out to (:mod:`segnas.search.distributed`); default: this one.
    """

    def __init__(self, objectives: dict[str, Objective], archive: Archive, ranks: Ranks | None = None) -> None:
        self.objectives = dict(objectives)
        self.archive = archive
        self.ranks = ranks or Ranks()
        self.n_computed = 0  # records computed in this run (all ranks together)
        self.n_computed_here = 0  # of those, computed by this process

    def _names(self, names: Sequence[str] | None) -> list[str]:
        names = list(self.objectives if names is None else names)
        unknown = [n for n in names if n not in self.objectives]
        if unknown:
            raise KeyError(f"no objective named {unknown}; known: {sorted(self.objectives)}")
        return names

    def _missing(self, genotype: Any, names: list[str]) -> list[str]:
        known = self.archive.metrics(self.archive.key(genotype))
        return [n for n in names if n not in known]

    def _compute(self, genotype: Any, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        """The metrics, and why each invalid one (NaN: an :class:`InvalidScore` or a non-finite value) is."""
        self.n_computed_here += 1
        metrics, invalid = {}, {}
        for n in names:
            try:
                metrics[n] = float(self.objectives[n](genotype))
            except InvalidScore as err:
                metrics[n], invalid[n] = math.nan, str(err)
            if not math.isfinite(metrics[n]):
                invalid.setdefault(n, f"non-finite value {metrics[n]}")
                metrics[n] = math.nan
        if invalid:
            log.warning("invalid candidate: %s", invalid)
        return metrics, invalid

    def _append(self, genotype: Any, computed: tuple[dict[str, float], dict[str, str]], **info: Any) -> dict:
        metrics, invalid = computed
        return self.archive.append(genotype, metrics, **info, **({"invalid": invalid} if invalid else {}))

    def __call__(self, genotype: Any, names: Sequence[str] | None = None, **info: Any) -> dict[str, float]:
        """The metrics ``names`` (default: all objectives) of ``genotype``; missing ones are computed (by
        rank 0, broadcast to the others) and appended to the archive with ``info`` before returning."""
        names = self._names(names)
        missing = self._missing(genotype, names)
        if not missing:
            return self.archive.metrics(self.archive.key(genotype))
        new = self._compute(genotype, missing) if self.ranks.is_main else None
        self.n_computed += 1
        return self._append(genotype, self.ranks.broadcast(new), **info)["metrics"]

    def evaluate_all(
        self, genotypes: Sequence[Any], names: Sequence[str] | None = None, **info: Any
    ) -> list[dict[str, float]]:
        """The metrics of every genotype; the missing ones are shared out over the ranks in rounds (in round
        ``r`` rank ``k`` computes candidate ``r * world_size + k``), and each round's results are gathered and
        appended at once, so a kill loses at most one round."""
        names = self._names(names)
        todo: dict[str, tuple[Any, list[str]]] = {}
        for genotype in genotypes:
            missing = self._missing(genotype, names)
            if missing:
                todo.setdefault(self.archive.key(genotype), (genotype, missing))
        pending = list(todo.values())
        size = self.ranks.world_size
        for start in range(0, len(pending), size):
            i = start + self.ranks.rank
            results = self.ranks.gather(self._compute(*pending[i]) if i < len(pending) else None)
            for (genotype, _), metrics in zip(pending[start : start + size], results, strict=False):
                self._append(genotype, metrics, **info)
        self.n_computed += len(pending)
        return [self.archive.metrics(self.archive.key(g)) for g in genotypes]
