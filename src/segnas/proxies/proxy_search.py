"""Fitness of proxy expressions for their search (SasWOT §3.3).

Fitness of an :class:`~segnas.proxies.expression.Expression` = Kendall tau-b between its scores and the
ground truth over a fixed set of architectures whose per-layer statistics were computed once
(:class:`CachedFitness`), so each candidate costs only tensor math. Invalid candidates (an operation that
does not apply, NaN/inf, a constant score) are rejected early on a few probe architectures. The search
itself is the engine's top-k evolution (:func:`segnas.search.topk.run_topk`) over
:class:`~segnas.proxies.expression_space.ExpressionSpace`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from segnas.proxies.expression import Expression, InvalidExpression, LayerStats


@dataclass(frozen=True)
class Fitness:
    """Kendall tau of a candidate, or NaN with the reason it was rejected."""

    kendall: float
    reason: str | None = None

    @property
    def valid(self) -> bool:
        """True when the candidate produced a finite, non-constant score on every architecture."""
        return self.reason is None


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall tau-b (NaN when undefined, e.g. a constant input)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(stats.kendalltau(a, b, variant="b").statistic)


class CachedFitness:
    """Fitness against ground truth on architectures whose statistics are held in memory.

    ``stats[i]`` are the scored-layer statistics of architecture ``i``, ``targets[i]`` its ground truth.
    ``groups`` (optional, one label per architecture, e.g. the benchmark space) makes the fitness the mean
    Kendall over groups, each ranked separately. Results are memoised per expression.
    """

    def __init__(
        self,
        stats: Sequence[Sequence[LayerStats]],
        targets: Sequence[float],
        groups: Sequence[str] | None = None,
        probe: int = 4,
    ) -> None:
        if len(stats) != len(targets):
            raise ValueError("one target per architecture is required")
        self.stats, self.targets = list(stats), [float(t) for t in targets]
        groups = list(groups) if groups is not None else ["all"] * len(stats)
        self.groups = {g: [i for i, gi in enumerate(groups) if gi == g] for g in dict.fromkeys(groups)}
        # probes: a few archs from every group, checked before the full (costly) evaluation
        self.probe = [i for members in self.groups.values() for i in members[:probe]]
        self.cache: dict[Expression, Fitness] = {}

    def scores(self, expression: Expression, indices: Sequence[int]) -> list[float]:
        """Scores of the given architectures (raises :class:`InvalidExpression`)."""
        return [expression.score(self.stats[i]) for i in indices]

    def __call__(self, expression: Expression) -> Fitness:
        """Mean Kendall over groups; invalid when undefined anywhere or constant on the probes."""
        if expression in self.cache:
            return self.cache[expression]
        try:
            probe = self.scores(expression, self.probe)
            if np.ptp(probe) == 0:
                raise InvalidExpression("constant on the probe architectures")
            known = dict(zip(self.probe, probe, strict=True))
            taus = []
            for members in self.groups.values():
                values = [known[i] if i in known else expression.score(self.stats[i]) for i in members]
                tau = kendall(values, [self.targets[i] for i in members])
                if not math.isfinite(tau):
                    raise InvalidExpression("constant score")
                taus.append(tau)
            result = Fitness(float(np.mean(taus)))
        except InvalidExpression as exc:
            result = Fitness(math.nan, str(exc))
        self.cache[expression] = result
        return result
