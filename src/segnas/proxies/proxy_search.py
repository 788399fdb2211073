"""Fitness of proxy expressions for their search (SasWOT §3.3).

Fitness of an :class:`~segnas.proxies.expression.Expression` = Kendall tau-b between its scores and the
ground truth over a fixed set of architectures whose per-layer statistics were computed once
(:class:`CachedFitness`), so each candidate costs only tensor math. Invalid candidates (an operation that
does not apply, NaN/inf, a constant score) are rejected early on a few probe architectures. The search
itself is the engine's top-k evolution (:func:`segnas.search.topk.run_topk`) over
:class:`~segnas.proxies.expression_space.ExpressionSpace`. :func:`search_weights` searches the weights of a
:class:`~segnas.proxies.proxy_file.Combination` of normalised hand-designed proxies exhaustively over a grid.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
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


@dataclass(frozen=True)
class WeightedFit:
    """A weight vector of a combination's terms with its Kendall tau per group and its fitness."""

    weights: tuple[float, ...]
    kendall: dict[str, float]
    fitness: float


def _pair_signs(values: np.ndarray) -> np.ndarray:
    """``sign(values[i] - values[j])`` for every pair ``i < j`` (along dim 0)."""
    i, j = np.triu_indices(len(values), 1)
    return np.sign(values[i] - values[j])


def search_weights(
    terms: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    grid: Sequence[float],
    baseline: Mapping[str, float] | None = None,
    chunk: int = 256,
) -> list[WeightedFit]:
    """Every weight vector over ``grid`` (one weight per term, the largest ``|w|`` equal to 1 so that no
    two vectors give the same ranking by scale), ranked by fitness, best first.

    ``terms[g]`` is the ``[archs, terms]`` matrix of normalised term values of group ``g`` (e.g. a space),
    ``targets[g]`` the ground truth. Fitness: the mean Kendall tau-b over groups or, given ``baseline`` (a
    Kendall per group, e.g. the best hand-designed proxy's), the smallest margin ``kendall[g] -
    baseline[g]`` over groups. Kendall tau-b is computed for ``chunk`` vectors at once from pair signs;
    vectors undefined in a group (a constant score) are dropped. Ties keep the enumeration order.
    """
    k = next(iter(terms.values())).shape[1]
    candidates = np.array(
        [w for w in itertools.product(grid, repeat=k) if max(abs(x) for x in w) == 1], float
    )
    taus = {}
    for g in terms:
        i, j = np.triu_indices(len(terms[g]), 1)
        diffs, ys = terms[g][i] - terms[g][j], _pair_signs(np.asarray(targets[g], dtype=float))
        out = []
        for start in range(0, len(candidates), chunk):
            xs = np.sign(diffs @ candidates[start : start + chunk].T)  # [pairs, chunk]
            denom = np.sqrt(np.count_nonzero(xs, axis=0) * float(np.count_nonzero(ys)))
            with np.errstate(invalid="ignore", divide="ignore"):
                out.append((ys @ xs) / denom)
        taus[g] = np.concatenate(out)
    fits = []
    for n, weights in enumerate(candidates):
        tau = {g: float(taus[g][n]) for g in terms}
        if not all(math.isfinite(t) for t in tau.values()):
            continue
        if baseline is None:
            fitness = float(np.mean(list(tau.values())))
        else:
            fitness = min(tau[g] - baseline[g] for g in tau)
        fits.append(WeightedFit(tuple(float(x) for x in weights), tau, fitness))
    return sorted(fits, key=lambda f: -f.fitness)
