"""Evaluation through the archive: every metric of every genotype is computed at most once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from segnas.search.archive import Archive

Objective = Callable[[Any], float]


class Evaluator:
    """Named objectives evaluated through an :class:`Archive`.

    Args:
        objectives: metric name -> callable ``genotype -> float``, computed in this order (put the
            cheap cost metrics before the expensive score).
        archive: where results are looked up first (by the archive's canonical key) and appended as soon
            as they are computed.
    """

    def __init__(self, objectives: dict[str, Objective], archive: Archive) -> None:
        self.objectives = dict(objectives)
        self.archive = archive
        self.n_computed = 0

    def __call__(self, genotype: Any, names: Sequence[str] | None = None, **info: Any) -> dict[str, float]:
        """The metrics ``names`` (default: all objectives) of ``genotype``; missing ones are computed and
        appended to the archive with ``info`` (e.g. generation) before returning."""
        names = list(self.objectives if names is None else names)
        unknown = [n for n in names if n not in self.objectives]
        if unknown:
            raise KeyError(f"no objective named {unknown}; known: {sorted(self.objectives)}")
        known = self.archive.metrics(self.archive.key(genotype))
        missing = [n for n in names if n not in known]
        if not missing:
            return known
        new = {n: float(self.objectives[n](genotype)) for n in missing}
        self.n_computed += 1
        return self.archive.append(genotype, new, **info)["metrics"]
