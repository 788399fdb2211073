"""Evaluation through the archive: every metric of every genotype is computed at most once, and a batch of
new candidates is shared out over the ranks of a distributed job."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from segnas.search.archive import Archive
from segnas.search.distributed import Ranks, RankZeroObjective

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
            A :class:`~segnas.search.distributed.RankZeroObjective` is computed by rank 0 for every candidate.
    """

    def __init__(self, objectives: dict[str, Objective], archive: Archive, ranks: Ranks | None = None) -> None:
        self.objectives = dict(objectives)
        self.archive = archive
        self.ranks = ranks or Ranks()
        self.n_computed = 0  # records computed in this run (all ranks together)
        self.n_computed_here = 0  # of those, computed by this process
        self.on_main = [n for n, fn in self.objectives.items() if isinstance(fn, RankZeroObjective)]

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
        metrics, invalid = {}, {}
        for n in names:
            fn = self.objectives[n]
            try:
                metrics[n] = float(fn.on_main(genotype) if isinstance(fn, RankZeroObjective) else fn(genotype))
            except InvalidScore as err:
                metrics[n], invalid[n] = math.nan, str(err)
            if not math.isfinite(metrics[n]):
                invalid.setdefault(n, f"non-finite value {metrics[n]}")
                metrics[n] = math.nan
        if invalid:
            log.warning("invalid candidate: %s", invalid)
        return metrics, invalid

    def _on_main(self, chunk: list[tuple[Any, list[str]]]) -> list[tuple[dict[str, float], dict[str, str]]]:
        """The rank-0 metrics of a round's candidates, computed on rank 0 and broadcast (none to compute: empty
        results, no broadcast; every rank knows the same)."""
        if not any(n in self.on_main for _, missing in chunk for n in missing):
            return [({}, {})] * len(chunk)
        computed = [self._compute(g, [n for n in missing if n in self.on_main]) for g, missing in chunk] \
            if self.ranks.is_main else None
        return self.ranks.broadcast(computed)

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
        self.n_computed_here += int(self.ranks.is_main)
        return self._append(genotype, self.ranks.broadcast(new), **info)["metrics"]

    def evaluate_all(
        self, genotypes: Sequence[Any], names: Sequence[str] | None = None, **info: Any
    ) -> list[dict[str, float]]:
        """The metrics of every genotype; the missing ones are shared out over the ranks in rounds (in round
        ``r`` rank ``k`` computes candidate ``r * world_size + k``), and each round's results are gathered and
        appended at once, so a kill loses at most one round. Rank 0 computes the round's rank-0 metrics
        (:class:`~segnas.search.distributed.RankZeroObjective`) of every candidate first and broadcasts them."""
        names = self._names(names)
        todo: dict[str, tuple[Any, list[str]]] = {}
        for genotype in genotypes:
            missing = self._missing(genotype, names)
            if missing:
                todo.setdefault(self.archive.key(genotype), (genotype, missing))
        pending = list(todo.values())
        size = self.ranks.world_size
        for start in range(0, len(pending), size):
            chunk = pending[start : start + size]
            shared = self._on_main(chunk)
            i = start + self.ranks.rank
            mine = None
            if i < len(pending):
                genotype, missing = pending[i]
                mine = self._compute(genotype, [n for n in missing if n not in self.on_main])
                self.n_computed_here += 1
            results = self.ranks.gather(mine)
            for (genotype, _), theirs, first in zip(chunk, results, shared, strict=False):
                self._append(genotype, ({**first[0], **theirs[0]}, {**first[1], **theirs[1]}), **info)
        self.n_computed += len(pending)
        return [self.archive.metrics(self.archive.key(g)) for g in genotypes]
