"""Evolutionary search of proxy expressions (SasWOT Algorithm 1; Auto-DAS-style operators).

Fitness of an :class:`~segnas.proxies.expression.Expression` = Kendall tau-b between its scores and the
ground truth over a fixed set of architectures whose per-layer statistics were computed once
(:class:`CachedFitness`), so each candidate costs only tensor math. Invalid candidates (an operation that
does not apply, NaN/inf, a constant score) are rejected early on a few probe architectures.

:func:`evolve` is greedy top-k evolution: each iteration breeds ``children`` offspring from random pairs
of the ``top_k`` best (uniform crossover with probability ``p_crossover``, then per-gene mutation), adds
one fresh random individual (diversity), and keeps the ``population`` best distinct valid expressions.
After ``patience`` iterations without a new best, the population is reset to random individuals plus
the best so far.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from segnas.proxies.expression import BINARY, LEAVES, UNARY, Expression, InvalidExpression, LayerStats

log = logging.getLogger(__name__)

UNARY_NAMES = tuple(UNARY)
BINARY_NAMES = tuple(BINARY)
# Auto-DAS sampling weights: 0.1 per unary op, 0.2 for no_op
UNARY_WEIGHTS = tuple(0.2 if n == "no_op" else 0.1 for n in UNARY_NAMES)


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


def random_expression(rng: random.Random, chain: int = 2, base: Expression | None = None) -> Expression:
    """A random expression: leaves uniform, unary ops with Auto-DAS weights, binary op uniform
    (reductions and pooling copied from ``base``)."""
    base = base or Expression(("weight", "weight"), (("no_op",), ("no_op",)), "sum")
    return Expression(
        (rng.choice(LEAVES), rng.choice(LEAVES)),
        tuple(tuple(rng.choices(UNARY_NAMES, UNARY_WEIGHTS, k=chain)) for _ in range(2)),
        rng.choice(BINARY_NAMES),
        base.elem_reduce,
        base.layer_reduce,
        base.activation_pool,
    )


def pad_chains(e: Expression, chain: int) -> Expression:
    """``e`` with both unary chains padded with ``no_op`` to ``chain`` operations (the same function), so
    that it can be crossed with expressions of that chain length."""
    if max(len(c) for c in e.unary) > chain:
        raise ValueError(f"{e} has a unary chain longer than {chain}")
    unary = tuple((*c, *["no_op"] * (chain - len(c))) for c in e.unary)
    return Expression(e.inputs, unary, e.binary, e.elem_reduce, e.layer_reduce, e.activation_pool)


def _genes(e: Expression) -> list[str]:
    return [*e.inputs, *e.unary[0], *e.unary[1], e.binary]


def _from_genes(genes: list[str], like: Expression) -> Expression:
    n = len(like.unary[0])
    return Expression(
        (genes[0], genes[1]),
        (tuple(genes[2 : 2 + n]), tuple(genes[2 + n : 2 + 2 * n])),
        genes[-1],
        like.elem_reduce,
        like.layer_reduce,
        like.activation_pool,
    )


def crossover(a: Expression, b: Expression, rng: random.Random) -> Expression:
    """Uniform crossover: every gene (leaf, unary op, binary op) from either parent with p = 0.5."""
    return _from_genes([x if rng.random() < 0.5 else y for x, y in zip(_genes(a), _genes(b), strict=True)], a)


def mutate(e: Expression, rng: random.Random, p: float = 0.2) -> Expression:
    """Resample each gene with probability ``p`` (at least one gene is resampled)."""
    genes = _genes(e)
    n = len(e.unary[0])
    pools: list[Sequence[str]] = [LEAVES, LEAVES, *[UNARY_NAMES] * (2 * n), BINARY_NAMES]
    chosen = [i for i in range(len(genes)) if rng.random() < p] or [rng.randrange(len(genes))]
    for i in chosen:
        if pools[i] is UNARY_NAMES:
            genes[i] = rng.choices(UNARY_NAMES, UNARY_WEIGHTS)[0]
        else:
            genes[i] = rng.choice(pools[i])
    return _from_genes(genes, e)


@dataclass
class SearchResult:
    """Best expression, its fitness, the search curve (one row per iteration) and every valid candidate
    evaluated, best first (``ranking``)."""

    best: Expression
    fitness: float
    history: list[dict[str, float]] = field(default_factory=list)
    ranking: list[tuple[Expression, float]] = field(default_factory=list)
    evaluated: int = 0
    rejected: int = 0
    resets: int = 0


def evolve(
    fitness: Callable[[Expression], Fitness],
    rng: random.Random,
    population: int = 20,
    iterations: int = 50,
    top_k: int = 5,
    children: int = 10,
    p_crossover: float = 0.5,
    p_mutate: float = 0.2,
    patience: int = 5,
    base: Expression | None = None,
    max_tries: int = 200,
    seeds: Sequence[Expression] = (),
    chain: int = 2,
) -> SearchResult:
    """Greedy top-k evolution maximising ``fitness`` (see the module docstring).

    ``seeds`` are inserted into the initial population (e.g. a hand-designed expression; their unary
    chains padded with ``no_op`` to ``chain`` ops, the length of the random ones); ``max_tries`` bounds the
    random draws spent finding valid individuals for one (re)initialisation.
    """
    seeds = [pad_chains(e, chain) for e in seeds]
    counts = {"evaluated": 0, "rejected": 0}
    seen: dict[Expression, float] = {}

    def judge(e: Expression) -> float:
        if e not in seen:
            f = fitness(e)
            counts["evaluated"] += 1
            counts["rejected"] += not f.valid
            seen[e] = f.kendall if f.valid else math.nan
        return seen[e]

    def fill(pop: dict[Expression, float]) -> None:
        for _ in range(max_tries):
            if len(pop) >= population:
                break
            e = random_expression(rng, chain, base)
            if math.isfinite(judge(e)):
                pop[e] = seen[e]

    pop: dict[Expression, float] = {e: judge(e) for e in seeds if math.isfinite(judge(e))}
    fill(pop)
    if not pop:
        raise RuntimeError(f"no valid expression found in {max_tries} random draws")
    best = max(pop, key=pop.__getitem__)
    result = SearchResult(best, pop[best])
    stagnant = 0
    for it in range(iterations):
        ranked = sorted(pop, key=pop.__getitem__, reverse=True)
        parents = ranked[:top_k]
        offspring = []
        for _ in range(children):
            a, b = rng.choice(parents), rng.choice(parents)
            child = crossover(a, b, rng) if rng.random() < p_crossover else a
            offspring.append(mutate(child, rng, p_mutate))
        offspring.append(random_expression(rng, chain, base))
        for e in offspring:
            if math.isfinite(judge(e)):
                pop[e] = seen[e]
        pop = dict(sorted(pop.items(), key=lambda kv: kv[1], reverse=True)[:population])
        top = next(iter(pop))
        if pop[top] > result.fitness:
            result.best, result.fitness, stagnant = top, pop[top], 0
        else:
            stagnant += 1
        values = list(pop.values())
        result.history.append(
            {
                "iteration": it,
                "best": result.fitness,
                "population_best": max(values),
                "population_mean": float(np.mean(values)),
                "evaluated": counts["evaluated"],
            }
        )
        log.info(
            "iteration %d: best %.4f (%s), %d evaluated", it, result.fitness, result.best, counts["evaluated"]
        )
        if stagnant >= patience:
            pop = {result.best: result.fitness}
            fill(pop)
            result.resets += 1
            stagnant = 0
    result.evaluated, result.rejected = counts["evaluated"], counts["rejected"]
    result.ranking = sorted(((e, f) for e, f in seen.items() if math.isfinite(f)), key=lambda ef: -ef[1])
    return result
