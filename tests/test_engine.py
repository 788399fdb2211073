"""The one search engine over any space: the space's default genetic operators (FasterSeg), NSGA-II and
top-k evolution over a toy problem, budgets, NaN scores, resume, archive contexts and problem checks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pymoo.core.population import Population

from segnas.search.algorithms import run_nsga2, run_random, unique
from segnas.search.archive import Archive, ArchiveMismatch
from segnas.search.evaluator import Evaluator
from segnas.search.operators import GenotypeDuplicates
from segnas.search.problem import Goal, SearchProblem
from segnas.search.topk import run_topk
from segnas.spaces.fasterseg import FasterSegGenotype, FasterSegSpace


@pytest.fixture(scope="module")
def space() -> FasterSegSpace:
    return FasterSegSpace(min_depth=4, max_depth=8)


def toy_score(g: FasterSegGenotype) -> float:
    """More conv_2x (then conv) cells is better: a landscape evolution can climb."""
    ops = [o for b in g.branches for o in b.ops]
    return float(ops.count("conv_2x") + 0.25 * ops.count("conv"))


def toy_cost(g: FasterSegGenotype) -> float:
    """Cells in both branches (the budget metric)."""
    return float(sum(b.depth for b in g.branches))


def nan_when_odd_cells(g: FasterSegGenotype) -> float:
    """The toy score, NaN (an invalid score) for about half the genotypes."""
    return math.nan if toy_cost(g) % 2 else toy_score(g)


class Counting:
    """Counts the genotypes an objective is called on; raises after ``fail_after`` calls (a kill)."""

    def __init__(self, fn, key, fail_after: int | None = None) -> None:
        self.fn, self.key, self.fail_after, self.calls = fn, key, fail_after, []

    def __call__(self, g):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("killed")
        self.calls.append(self.key(g))
        return self.fn(g)


def problem_of(space, path: Path, score=toy_score, cost=toy_cost, goals=("score",), **kwargs) -> SearchProblem:
    evaluator = Evaluator({"cost": cost, "score": score}, Archive(path, key=space.key))
    wanted = [Goal(m, maximize=(m == "score")) for m in goals]
    return SearchProblem(space, evaluator, wanted, **kwargs)


def keys(problem: SearchProblem, evaluated) -> list[str]:
    return [problem.key(e.genotype) for e in evaluated]


# ------------------------------------------------------------------------------ default operators
def test_default_mutation_changes_a_group_within_bounds(space) -> None:
    rng = np.random.default_rng(0)
    lo, hi = space.bounds()
    groups = space.variable_groups()
    assert sorted(i for g in groups for i in g) == list(range(space.n_var))
    for p in (0.0, 0.1, 1.0):
        for _ in range(40):
            x = space.sample_encoding(rng)
            y = space.mutate(x, rng, p)
            assert y.shape == x.shape and np.all(y >= lo) and np.all(y <= hi)
            changed = [g for g in groups if not np.array_equal(x[g], y[g])]
            assert changed
            if p == 0.0:
                assert len(changed) == 1
            if p == 1.0:  # every group that has another value to take
                assert len(changed) == sum(np.any(hi[g] > lo[g]) for g in groups)
            assert np.array_equal(x, space.encode(space.decode(x)))  # mutate never edits its input


def test_default_crossover_takes_each_group_from_one_parent(space) -> None:
    rng = np.random.default_rng(1)
    mixed = 0
    for _ in range(10):
        a, b = space.sample_encoding(rng), space.sample_encoding(rng)
        first, second = space.crossover(a, b, rng)
        for g in space.variable_groups():
            from_a = np.array_equal(first[g], a[g]) and np.array_equal(second[g], b[g])
            from_b = np.array_equal(first[g], b[g]) and np.array_equal(second[g], a[g])
            assert from_a or from_b
            mixed += from_b and not np.array_equal(a[g], b[g])
    assert mixed > 10


def test_key_is_equal_when_dormant_slots_differ(space) -> None:
    rng = np.random.default_rng(2)
    x = space.sample_encoding(rng)
    g = space.decode(x)
    twin = x.copy()
    twin[-1] = (twin[-1] + 1) % 16  # last row of beta_2: FasterSeg's 1/32 path search stops before it
    assert not np.array_equal(x, twin)
    assert space.decode(twin) == g and space.key(space.decode(twin)) == space.key(g)
    other = x.copy()
    other[1:6] = [0, 0, 0, 15, 0] if g.branches[0].ops[0] == "conv" else [0, 15, 0, 0, 0]  # alpha of layer 0
    assert space.key(space.decode(other)) != space.key(g)
    kept = GenotypeDuplicates(space).do(Population.new("X", np.stack([x, twin, other])))
    assert len(kept) == 2


# ------------------------------------------------------------------------------------ NSGA-II, random
def test_nsga2_over_fasterseg_returns_unique_valid_genotypes(space, tmp_path: Path) -> None:
    problem = problem_of(space, tmp_path / "a.jsonl", goals=("score", "cost"), budgets={"cost": 14})
    evaluated = run_nsga2(problem, population=8, generations=3, seed=0, progress=False)
    assert len(evaluated) == 24 and len(unique(problem, evaluated)) == 24
    assert all(not space.violations(e.genotype) and e.metrics["cost"] <= 14 for e in evaluated)
    assert all(e.metrics["score"] == toy_score(e.genotype) for e in evaluated)
    assert [e.generation for e in evaluated] == [g for g in range(3) for _ in range(8)]
    rand = run_random(problem, 10, batch=5, seed=0, label="random", progress=False)
    assert len(unique(problem, rand)) == 10 and {e.generation for e in rand} == {0, 1}


# ------------------------------------------------------------------------------------------- top-k
TOPK = {"population": 6, "top_k": 3, "p_mutate": 0.2, "progress": False}


def test_topk_same_seed_same_result_and_it_climbs(space, tmp_path: Path) -> None:
    pa, pb, pc = (problem_of(space, tmp_path / f"{i}.jsonl") for i in range(3))
    a, b, c = (run_topk(p, n_evals=30, seed=seed, **TOPK) for p, seed in ((pa, 0), (pb, 0), (pc, 1)))
    assert len(a.evaluated) == 30 and len(unique(pa, a.evaluated)) == 30
    assert keys(pa, a.evaluated) == keys(pb, b.evaluated) and a.history == b.history
    assert keys(pa, a.evaluated) != keys(pc, c.evaluated)
    bests = [h["best"] for h in a.history]
    assert bests == sorted(bests) and bests[-1] > max(e.metrics["score"] for e in a.evaluated[:6])
    assert [h["evaluated"] for h in a.history][-1] == 30
    g = space.sample(np.random.default_rng(9))
    seeded = run_topk(problem_of(space, tmp_path / "init.jsonl"), n_evals=8, initial=[g], **TOPK)
    assert seeded.evaluated[0].genotype == g


def test_topk_never_scores_genotypes_over_budget_but_archives_their_cost(space, tmp_path: Path) -> None:
    score = Counting(toy_score, space.key)
    problem = problem_of(space, tmp_path / "a.jsonl", score=score, budgets={"cost": 12})
    result = run_topk(problem, n_evals=20, seed=0, **TOPK)
    assert len(result.evaluated) == 20 and all(e.metrics["cost"] <= 12 for e in result.evaluated)
    archive = Archive(tmp_path / "a.jsonl")
    assert sorted(score.calls) == sorted(r["key"] for r in archive if "score" in r["metrics"])
    assert all(archive.metrics(k)["cost"] <= 12 for k in score.calls)
    rejected = [r for r in archive if "score" not in r["metrics"]]
    assert rejected and all(r["metrics"]["cost"] > 12 for r in rejected)
    assert len(archive) == 20 + len(rejected)


def test_topk_nan_score_never_becomes_a_parent(tmp_path: Path) -> None:
    class Spy(FasterSegSpace):
        """Records the genotypes encoded: in run_topk, the parents of each generation."""

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.parents: list[FasterSegGenotype] = []

        def encode(self, genotype):
            self.parents.append(genotype)
            return super().encode(genotype)

        def sample_encoding(self, rng):
            return FasterSegSpace.encode(self, self.sample(rng))

    spy = Spy(min_depth=4, max_depth=8)
    problem = problem_of(spy, tmp_path / "a.jsonl", score=nan_when_odd_cells)
    result = run_topk(problem, n_evals=40, seed=3, clear_pool=True, **{**TOPK, "top_k": 6})  # every member
    invalid = [e for e in result.evaluated if math.isnan(e.metrics["score"])]
    assert len(invalid) >= 5 and spy.parents
    assert all(math.isfinite(nan_when_odd_cells(g)) for g in spy.parents)
    assert all(math.isfinite(h["best"]) for h in result.history)


def test_topk_clear_pool_and_patience_run(space, tmp_path: Path) -> None:
    result = run_topk(problem_of(space, tmp_path / "a.jsonl"), generations=6, seed=0, clear_pool=True,
                      patience=1, random_per_generation=1, **TOPK)  # fmt: skip
    assert len(result.history) == 6 and result.resets >= 1
    assert [h["generation"] for h in result.history] == list(range(1, 7))
    bests = [h["best"] for h in result.history]
    assert bests == sorted(bests)
    assert all(h["population_best"] <= h["best"] for h in result.history)
    counts = [h["evaluated"] for h in result.history]
    assert counts == sorted(counts) and counts[-1] == len(result.evaluated)


def test_killed_topk_resumes_to_the_uninterrupted_result_computing_only_the_missing(space, tmp_path: Path) -> None:
    kwargs = {"n_evals": 24, "seed": 5, "budgets": {"cost": 13}}

    def run(path: Path, score: Counting, cost: Counting):
        problem = problem_of(space, path, score=score, cost=cost, budgets=kwargs["budgets"])
        return problem, run_topk(problem, n_evals=kwargs["n_evals"], seed=kwargs["seed"], **TOPK)

    ref_score, ref_cost = Counting(toy_score, space.key), Counting(toy_cost, space.key)
    problem, reference = run(tmp_path / "ref.jsonl", ref_score, ref_cost)

    dying, dying_cost = Counting(toy_score, space.key, fail_after=11), Counting(toy_cost, space.key)
    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path / "run.jsonl", dying, dying_cost)
    again, again_cost = Counting(toy_score, space.key), Counting(toy_cost, space.key)
    _, resumed = run(tmp_path / "run.jsonl", again, again_cost)

    assert keys(problem, resumed.evaluated) == keys(problem, reference.evaluated)
    assert [e.metrics for e in resumed.evaluated] == [e.metrics for e in reference.evaluated]
    assert resumed.history == reference.history and resumed.resets == reference.resets
    assert len(dying.calls) == 11 and len(again.calls) == len(ref_score.calls) - 11
    assert not set(dying.calls) & set(again.calls)
    assert not set(dying_cost.calls) & set(again_cost.calls)
    assert len(dying_cost.calls) + len(again_cost.calls) == len(ref_cost.calls)
    finished, finished_cost = Counting(toy_score, space.key), Counting(toy_cost, space.key)
    _, replay = run(tmp_path / "run.jsonl", finished, finished_cost)
    assert not finished.calls and not finished_cost.calls and replay.history == reference.history


# ---------------------------------------------------------------------------------- archive, problem
def test_archive_context_mismatch_names_the_differing_key(space, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    context = {"proxy": "nwot", "batch": [4, 3, 32, 32], "seed": 0}
    g = space.sample(np.random.default_rng(0))
    Archive(path, key=space.key, context=context).append(g, {"score": 1.0})
    with pytest.raises(ArchiveMismatch, match="batch") as err:
        Archive(path, key=space.key, context={**context, "batch": [4, 3, 64, 64]})
    assert "proxy" not in str(err.value) and "seed" not in str(err.value)
    with pytest.raises(ArchiveMismatch, match="extra"):
        Archive(path, key=space.key, context={**context, "extra": 1})
    same = Archive(path, key=space.key, context=dict(context))
    evaluator = Evaluator({"score": Counting(toy_score, space.key, fail_after=0)}, same)
    assert evaluator(g) == {"score": 1.0} and evaluator.n_computed == 0
    assert len(Archive(path)) == 1  # no context: not checked
    fresh = Archive(tmp_path / "new.jsonl", key=space.key, context=context)
    fresh.append(g, {"score": 2.0})
    assert Archive(tmp_path / "new.jsonl", context=context).metrics(space.key(g)) == {"score": 2.0}


def test_search_problem_rejects_unknown_metrics(space, tmp_path: Path) -> None:
    evaluator = Evaluator({"cost": toy_cost, "score": toy_score}, Archive(tmp_path / "a.jsonl"))
    with pytest.raises(KeyError, match="latency_ms"):
        SearchProblem(space, evaluator, [Goal("latency_ms")])
    with pytest.raises(KeyError, match="macs_g"):
        SearchProblem(space, evaluator, [Goal("score", maximize=True)], budgets={"macs_g": 1.0})
    with pytest.raises(KeyError, match="miou"):
        SearchProblem(space, evaluator, [Goal("score", maximize=True)], floors={"miou": 50.0})
    with pytest.raises(ValueError, match="at least one goal"):
        SearchProblem(space, evaluator, [])
    with pytest.raises(ValueError, match="one goal"):
        run_topk(SearchProblem(space, evaluator, [Goal("score", True), Goal("cost")]), n_evals=4, progress=False)
    assert Goal("score", maximize=True).loss(math.nan) == math.inf and Goal("cost").loss(2.0) == 2.0


def test_warm_start_selection_top_and_pareto() -> None:
    from segnas.search.warm_start import select_initial

    rng = np.random.default_rng(0)
    proxy = [5.0, 4.0, float("nan"), 1.0, 3.0, 0.5]
    cost = [10.0, 9.0, 0.1, 1.0, 8.0, 0.5]
    assert select_initial(proxy, cost, 3, "top", rng) == [0, 1, 4]
    assert select_initial(proxy, cost, 6, "top", rng)[-1] == 2  # NaN last
    # pareto keeps the front spread: the cheapest valid member survives, which top drops
    picked = select_initial(proxy, cost, 3, "pareto", rng)
    assert {0, 5} <= set(picked)  # the extremes of the front (crowding distance inf)
    assert 2 not in picked
    with pytest.raises(ValueError, match="selection"):
        select_initial(proxy, cost, 3, "best", rng)


def test_weighted_crowding_changes_the_survivors_and_equal_weights_are_nsga2() -> None:
    from pymoo.core.problem import Problem
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance

    from segnas.search.survival import weighted_crowding_distance, weighted_rank_and_crowding

    # one front: f2 = 1 / f1, with points dense in f1 at one end and dense in f2 at the other
    f1 = np.array([1.0, 1.1, 1.2, 1.3, 2.0, 3.0, 5.0, 8.0, 9.0, 10.0])
    F = np.column_stack([f1, 1.0 / f1])
    assert np.allclose(weighted_crowding_distance(F, [1, 1]), calc_crowding_distance(F))

    def survivors(weights):
        pop = Population.new(X=np.arange(len(F))[:, None], F=F)
        out = weighted_rank_and_crowding(weights).do(Problem(n_var=1, n_obj=2), pop, n_survive=5,
                                                      random_state=np.random.default_rng(0))
        return sorted(out.get("X")[:, 0].tolist())

    by_f1, by_f2 = survivors([1.0, 0.0]), survivors([0.0, 1.0])
    assert by_f1 != by_f2
    assert {0, 9} <= set(by_f1) and {0, 9} <= set(by_f2)  # the extremes always survive
    with pytest.raises(ValueError, match="weight"):
        weighted_crowding_distance(F, [1.0])


def test_floor_rejects_below_it_and_budget_function_rejects_over_it(space, tmp_path: Path) -> None:
    """Algorithm 1's filters reject (never enter the population), they do not just rank."""
    floor = 4.0
    problem = problem_of(space, tmp_path / "a.jsonl", goals=("score", "cost"), floors={"score": floor},
                         reject_below_floors=True, budgets={"cost": lambda g: 2.0 * len(g.branches[0].ops) + 4})
    assert problem.shortfalls({"score": 0.0}) == []
    evaluated = run_nsga2(problem, population=6, generations=3, seed=0, progress=False)
    assert evaluated and all(e.metrics["score"] >= floor for e in evaluated)
    assert all(e.metrics["cost"] <= 2.0 * len(e.genotype.branches[0].ops) + 4 for e in evaluated)
    archived = list(problem.evaluator.archive)
    below = [r for r in archived if r["metrics"].get("score", math.inf) < floor]
    assert below  # they were scored (Algorithm 1 evaluates, then filters) but never joined the population
    constrained = problem_of(space, tmp_path / "b.jsonl", goals=("score", "cost"), floors={"score": floor})
    assert constrained.shortfalls({"score": 1.0}) == [floor - 1.0]


def test_uniform_initial_population_and_largest_networks() -> None:
    from segnas.search.algorithms import PymooProblem
    from segnas.search.operators import SpaceSampling
    from segnas.spaces import get_space

    space = get_space("hyctas", layers=6, filter_multiplier=2)
    assert space.uniform().branch_prior == pytest.approx((1 / 3,) * 3) and space.with_branches(2).uniform().fixed_branches == 2
    problem = SearchProblem(space, Evaluator({"score": lambda g: 0.0}, Archive(Path("/nonexistent"), writable=False)),
                            [Goal("score", maximize=True)])
    pymoo_problem = PymooProblem(problem, "nsga2", progress=False)
    counts = {}
    for uniform in (False, True):
        X = SpaceSampling(uniform=uniform).do(pymoo_problem, 300, random_state=np.random.default_rng(0)).get("X")
        counts[uniform] = np.bincount([space.decode(x).num_branches for x in X], minlength=4)[1:] / 300
    assert counts[False][2] > 0.4 and np.all(np.abs(counts[True] - 1 / 3) < 0.08)  # prior 0.2/0.3/0.5 vs uniform
    for n in (1, 2, 3):
        largest = space.largest(n)
        assert largest and all(g.num_branches == n and g.depth == 6 and not space.violations(g) for g in largest)
        assert {g.branches[0].ops[0] for g in largest} == set(space.ops) - {"skip"}
