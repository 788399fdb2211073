"""Search library: archive, evaluator, operators, NSGA-II/random search, Pareto front and hypervolume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pymoo.core.population import Population

from segnas.search.algorithms import PymooProblem, run_nsga2, run_random, unique
from segnas.search.archive import Archive
from segnas.search.evaluator import Evaluator
from segnas.search.goal import RelativeLatencyBudget, SearchGoal
from segnas.search.operators import GenotypeDuplicates, RejectInvalid, SpaceSampling
from segnas.search.pareto import hypervolume, pareto_indices
from segnas.search.problem import Goal, SearchProblem
from segnas.spaces import genotype_key, get_space
from segnas.spaces.hyctas import HyCTASGenotype, build_plan


@pytest.fixture(scope="module")
def space():
    return get_space("hyctas", layers=5, filter_multiplier=4)


def toy_cost(g: HyCTASGenotype) -> float:
    """A deterministic, cheap stand-in for latency: channel-weighted pixels of every cell."""
    return sum(
        n.c_out * 256 / n.out_stride**2 * (3.0 if n.op == "self_attention" else 1.0)
        for nodes in build_plan(g, 4).layers
        for n in nodes
    ) / 100


def toy_miou(g: HyCTASGenotype) -> float:
    """Rises with cost, rewards self-attention and branches: a front exists to be found."""
    attention = sum(op == "self_attention" for b in g.branches for op in b.ops)
    return 100 * (1 - np.exp(-toy_cost(g) / 15)) * (0.75 + 0.05 * g.num_branches) + attention


class Counting:
    """Wraps an objective, counts calls per genotype and optionally fails after ``fail_after`` calls."""

    def __init__(self, fn, fail_after: int | None = None) -> None:
        self.fn, self.fail_after, self.calls = fn, fail_after, []

    def __call__(self, g: HyCTASGenotype) -> float:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("killed")
        self.calls.append(genotype_key(g))
        return self.fn(g)


GOALS = (Goal("miou", maximize=True), Goal("latency_ms"))


def toy_evaluator(path: Path, miou=toy_miou) -> Evaluator:
    return Evaluator({"latency_ms": toy_cost, "miou": miou}, Archive(path, key=get_space("hyctas", layers=5).key))


def toy_problem(space, path: Path, miou=toy_miou, **kwargs) -> SearchProblem:
    """mIoU (max) vs latency (min) over ``space``; ``kwargs``: budgets, floors."""
    return SearchProblem(space, toy_evaluator(path, miou), GOALS, **kwargs)


def front_keys(evaluated) -> list[str]:
    first: dict[str, object] = {}
    for e in evaluated:
        first.setdefault(genotype_key(e.genotype), e)
    es = list(first.values())
    idx = pareto_indices([e.metrics["miou"] for e in es], [e.metrics["latency_ms"] for e in es])
    return [genotype_key(es[i].genotype) for i in idx]


# ------------------------------------------------------------------------------------------- archive
def test_archive_appends_merges_and_survives_a_cut_last_line(tmp_path: Path, space) -> None:
    g1, g2 = space.sample(np.random.default_rng(1)), space.sample(np.random.default_rng(2))
    archive = Archive(tmp_path / "a.jsonl")
    archive.append(g1, {"latency_ms": 2.0}, generation=0)
    archive.append(g1, {"miou": 40.0}, generation=3)
    archive.append(g2, {"latency_ms": 1.0, "miou": 30.0}, generation=1)
    with (tmp_path / "a.jsonl").open("a") as f:
        f.write('{"key": "half a rec')  # a kill in the middle of a write
    reloaded = Archive(tmp_path / "a.jsonl")
    assert len(reloaded) == 2 and reloaded.n_loaded == 3
    rec = reloaded.get(genotype_key(g1))
    assert rec["metrics"] == {"latency_ms": 2.0, "miou": 40.0} and rec["generation"] == 0
    assert HyCTASGenotype.from_dict(rec["genotype"]) == g1
    reloaded.append(g2, {"params_m": 0.5})
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["metrics"] == {"params_m": 0.5}
    assert Archive(tmp_path / "a.jsonl").metrics(genotype_key(g2)) == {"latency_ms": 1.0, "miou": 30.0, "params_m": 0.5}


def test_evaluator_computes_each_metric_once_and_only_missing_ones(tmp_path: Path, space) -> None:
    cost, miou = Counting(toy_cost), Counting(toy_miou)
    evaluator = Evaluator({"latency_ms": cost, "miou": miou}, Archive(tmp_path / "a.jsonl"))
    g = space.sample(np.random.default_rng(0))
    assert evaluator(g, ["latency_ms"]) == {"latency_ms": toy_cost(g)}
    full = evaluator(g)
    assert full == {"latency_ms": toy_cost(g), "miou": toy_miou(g)}
    assert evaluator(g) == full and len(cost.calls) == 1 and len(miou.calls) == 1
    again = Evaluator({"latency_ms": cost, "miou": miou}, Archive(tmp_path / "a.jsonl"))
    assert again(g) == full and again.n_computed == 0 and len(cost.calls) == 1
    with pytest.raises(KeyError, match="no objective named"):
        evaluator(g, ["flops"])


# ----------------------------------------------------------------------------------------- operators
def _problem(space, tmp_path: Path, **kwargs) -> PymooProblem:
    return PymooProblem(toy_problem(space, tmp_path / "a.jsonl", **kwargs), "nsga2", progress=False)


def test_sampling_gives_unique_valid_genotypes_with_valid_dormant_slots(space, tmp_path: Path) -> None:
    problem = _problem(space, tmp_path)
    X = SpaceSampling().do(problem, 40, random_state=np.random.default_rng(0)).get("X")
    genotypes = [space.decode(x) for x in X]
    assert len({genotype_key(g) for g in genotypes}) == 40
    assert all(not space.violations(g) for g in genotypes)
    assert {g.num_branches for g in genotypes} == {1, 2, 3}
    for x, g in zip(X, genotypes, strict=True):  # dormant slot k holds a valid stride-8*2^k branch
        y = x.copy()
        y[0] = 2
        head = space.decode(y).head
        assert head[: g.num_branches] == g.head
        assert all(head[k] == 8 * 2**k for k in range(g.num_branches, 3))


def test_crossover_takes_every_gene_from_one_parent(space, tmp_path: Path) -> None:
    problem = _problem(space, tmp_path)
    genes = space.genes
    X = SpaceSampling().do(problem, 2, random_state=np.random.default_rng(3)).get("X")
    children = space.crossover(X[0], X[1], np.random.default_rng(0))
    groups = [(genes.count,), (genes.depth,), *genes.cells, *genes.downs, *((g,) for g in genes.gates)]
    assert sorted(map(sorted, groups)) == sorted(map(sorted, space.variable_groups()))
    mixed = False
    for group in groups:
        idx = list(group)
        a, b = children[0][idx], children[1][idx]
        from_first = np.array_equal(a, X[0, idx]) and np.array_equal(b, X[1, idx])
        from_second = np.array_equal(a, X[1, idx]) and np.array_equal(b, X[0, idx])
        assert from_first or from_second
        mixed |= from_second and not np.array_equal(X[0, idx], X[1, idx])
    assert mixed


def test_mutation_rates_and_downsampling_moves(space, tmp_path: Path) -> None:
    problem = _problem(space, tmp_path)
    genes = space.genes
    X = SpaceSampling().do(problem, 30, random_state=np.random.default_rng(5)).get("X")
    rng = np.random.default_rng(0)
    unchanged = np.array([space.mutate(x, rng, 0.0) for x in X])
    assert np.array_equal(unchanged, X)
    mutated = np.array([space.mutate(x, rng, 1.0) for x in X])
    lower, upper = space.bounds()
    assert np.all(mutated >= lower) and np.all(mutated <= upper)
    for x, y in zip(X, mutated, strict=True):
        assert x[genes.count] != y[genes.count]
        assert all(tuple(x[list(c)]) != tuple(y[list(c)]) for c in genes.cells)
        assert all(x[g] != y[g] for g in genes.gates)
        assert all(not np.array_equal(x[list(d)], y[list(d)]) for d in genes.downs)
    moves = 0  # a downsampling mutation moves one flag (same count) or toggles one (count +- 1)
    for x in X:
        y = space.mutate(x, rng, 0.3)
        for d in genes.downs:
            before, after = x[list(d)], y[list(d)]
            changed = int((before != after).sum())
            assert changed in (0, 1, 2)
            if changed == 2:
                assert before.sum() == after.sum()
                moves += 1
            elif changed == 1:
                assert abs(int(before.sum()) - int(after.sum())) == 1
    assert moves > 0
    one = space.with_branches(2)
    lo, hi = one.bounds()
    x = one.sample_encoding(rng)
    assert lo[genes.count] == hi[genes.count] == 1
    assert all(one.mutate(x, rng, 1.0)[genes.count] == 1 for _ in range(5))  # a fixed count never mutates


def test_reject_invalid_and_duplicates_by_genotype(space, tmp_path: Path) -> None:
    problem = _problem(space, tmp_path)
    genes = space.genes
    X = SpaceSampling().do(problem, 6, random_state=np.random.default_rng(7)).get("X")
    bad = X[0].copy()
    bad[list(genes.downs[0])] = 1  # five downsamplings in branch 0
    dormant_twin = X[1].copy()
    n = space.decode(X[1]).num_branches
    if n < 3:
        dormant_twin[genes.slots[n][0]] = (dormant_twin[genes.slots[n][0]] + 1) % 2
    pop = Population.new("X", np.vstack([X, bad[None], dormant_twin[None]]))
    kept = RejectInvalid().do(problem, pop)
    assert len(kept) == 7
    dedup = GenotypeDuplicates(space).do(kept)
    assert len(dedup) == 6
    assert len(GenotypeDuplicates(space).do(Population.new("X", X[3:]), Population.new("X", X[:4]))) == 2


# ---------------------------------------------------------------------------------------- searches
def test_nsga2_same_seed_same_front_and_budget(space, tmp_path: Path) -> None:
    problem = toy_problem(space, tmp_path / "a.jsonl")
    a = run_nsga2(problem, population=10, generations=4, seed=3, progress=False)
    b = run_nsga2(toy_problem(space, tmp_path / "b.jsonl"), population=10, generations=4, seed=3, progress=False)
    c = run_nsga2(toy_problem(space, tmp_path / "c.jsonl"), population=10, generations=4, seed=4, progress=False)
    assert len(a) == 40 and len(unique(problem, a)) == 40
    assert [e.metrics for e in a] == [e.metrics for e in b]  # exact values
    assert all(e.metrics == {"latency_ms": toy_cost(e.genotype), "miou": toy_miou(e.genotype)} for e in a)
    assert {e.search for e in a} == {"nsga2"}
    assert front_keys(a) == front_keys(b) and front_keys(a) != front_keys(c)
    assert [e.generation for e in a] == [g for g in range(4) for _ in range(10)]


def test_killed_search_resumes_with_the_same_front_evaluating_nothing_twice(space, tmp_path: Path) -> None:
    kwargs = {"population": 8, "generations": 5, "seed": 1, "progress": False}
    straight = Counting(toy_miou)
    reference = run_nsga2(toy_problem(space, tmp_path / "ref.jsonl", straight), **kwargs)

    dying = Counting(toy_miou, fail_after=19)  # dies in the middle of the third generation
    with pytest.raises(RuntimeError, match="killed"):
        run_nsga2(toy_problem(space, tmp_path / "run.jsonl", dying), **kwargs)
    assert len(Archive(tmp_path / "run.jsonl")) == 19
    resumed_miou = Counting(toy_miou)
    resumed = run_nsga2(toy_problem(space, tmp_path / "run.jsonl", resumed_miou), **kwargs)

    assert front_keys(resumed) == front_keys(reference)
    assert [genotype_key(e.genotype) for e in resumed] == [genotype_key(e.genotype) for e in reference]
    assert len(dying.calls) + len(resumed_miou.calls) == len(straight.calls) == 40
    assert not set(dying.calls) & set(resumed_miou.calls)


def test_per_branch_search_and_latency_filter(space, tmp_path: Path) -> None:
    limit = float(np.median([toy_cost(space.sample(np.random.default_rng(i))) for i in range(30)]))
    problem = toy_problem(space, tmp_path / "a.jsonl", budgets={"latency_ms": limit})
    evaluator = problem.evaluator
    evaluated = run_nsga2(problem, population=6, generations=2, stratified=True, seed=0, progress=False)
    for n in (1, 2, 3):
        mine = [e for e in evaluated if e.search == f"nsga2_{n}branch"]
        assert len(mine) == 12 and {e.genotype.num_branches for e in mine} == {n}
    assert all(e.metrics["latency_ms"] <= limit for e in evaluated)
    over = [r for r in evaluator.archive if r["metrics"]["latency_ms"] > limit]
    assert over and all("miou" not in r["metrics"] for r in over)  # rejected before scoring
    labels = {f"nsga2_{n}branch" for n in (1, 2, 3)}
    assert all(r["search"] in labels and r["generation"] in (0, 1) for r in evaluator.archive)  # who, when


def test_sorted_set_reading_of_s_max_rejects_what_is_slower_than_the_sets_slowest(space, tmp_path: Path) -> None:
    budget = RelativeLatencyBudget(space, toy_cost, 1.0, reading="sorted_set")
    problem = toy_problem(space, tmp_path / "a.jsonl", budgets={"latency_ms": budget})
    drawn = sorted(space.draw_unique(np.random.default_rng(0), 12), key=toy_cost)
    assert all(problem.accepts(g) for g in drawn)  # no sorted set yet (the initial population): no limit
    problem.sorted_set(drawn[:8])  # S of a generation: its slowest member is drawn[7]
    assert budget(drawn[0]) == toy_cost(drawn[7]) and problem.accepts(drawn[7])
    assert not any(problem.accepts(g) for g in drawn[8:] if toy_cost(g) > toy_cost(drawn[7]))
    assert all("miou" not in problem.evaluator.archive.metrics(genotype_key(g)) for g in drawn[8:])  # unscored
    problem.sorted_set([])  # a new search
    assert all(problem.accepts(g) for g in drawn)
    space_reading = RelativeLatencyBudget(space, toy_cost, 1.0)
    space_reading.observe([0.0])  # the space reading ignores the sorted set
    assert space_reading(drawn[-1]) == max(toy_cost(g) for g in space.largest(drawn[-1].num_branches))
    with pytest.raises(ValueError, match="s_max"):
        RelativeLatencyBudget(space, toy_cost, 1.0, reading="sorted set")


def test_nsga2_with_the_sorted_set_reading_never_exceeds_its_first_generation(space, tmp_path: Path) -> None:
    budget = RelativeLatencyBudget(space, toy_cost, 1.0, reading="sorted_set")
    problem = toy_problem(space, tmp_path / "a.jsonl", budgets={"latency_ms": budget})
    evaluated = run_nsga2(problem, population=8, generations=4, seed=0, progress=False)
    first = max(e.metrics["latency_ms"] for e in evaluated if e.generation == 0)
    assert len(budget.sorted_history) == 4 and budget.sorted_history[0] == first
    assert budget.sorted_history == sorted(budget.sorted_history, reverse=True)  # S_max never grows
    assert all(e.metrics["latency_ms"] <= first for e in evaluated)
    assert budget.sorted_ms is None  # emptied when the search ends: the random baseline is not filtered
    assert budget.describe() == {"fraction": 1.0, "s_max": "sorted_set", "sorted_set_s_max_ms": budget.sorted_history}


def test_min_miou_filters_offspring_only_with_filter_initial_false(space, tmp_path: Path) -> None:
    floor = float(np.median([toy_miou(space.sample(np.random.default_rng(i))) for i in range(30)]))
    kwargs = {"floors": {"miou": floor}, "reject_below_floors": True}
    spared = _problem(space, tmp_path / "spared", filter_initial=False, **kwargs)
    X = SpaceSampling(first_population=True).do(spared, 12, random_state=np.random.default_rng(0)).get("X")
    assert any(toy_miou(space.decode(x)) < floor for x in X)  # the initial population is not filtered
    low = next(space.decode(x) for x in X if toy_miou(space.decode(x)) < floor)
    assert not spared.search.accepts(low)  # an offspring below mIoU_min is
    assert len(RejectInvalid().do(spared, Population.new(X=X))) < 12
    filtered = _problem(space, tmp_path / "filtered", **kwargs)  # filter_initial=True (filters_on=all)
    X = SpaceSampling(first_population=True).do(filtered, 12, random_state=np.random.default_rng(0)).get("X")
    assert all(toy_miou(space.decode(x)) >= floor for x in X)


def test_goal_checks_the_algorithm1_options() -> None:
    assert SearchGoal(s_max="sorted_set", filters_on="offspring").filters_on == "offspring"
    with pytest.raises(ValueError, match=r"search\.s_max"):
        SearchGoal(s_max="sorted set")
    with pytest.raises(ValueError, match=r"search\.filters_on"):
        SearchGoal(filters_on="initial")


def test_min_miou_is_a_constraint(space, tmp_path: Path) -> None:
    problem = _problem(space, tmp_path, floors={"miou": 50.0})
    assert problem.n_ieq_constr == 1
    X = SpaceSampling().do(problem, 12, random_state=np.random.default_rng(0)).get("X")
    out = problem.evaluate(X, return_as_dictionary=True)
    miou = -out["F"][:, 0]
    assert np.allclose(out["G"][:, 0], 50.0 - miou)


def matching_cells(g: HyCTASGenotype) -> float:
    """% of cells whose (operator, width) is (lightweight_conv, 0.5): one needle per cell, that evolution finds
    by climbing and random sampling only by chance (a smooth cost-driven toy front favours neither)."""
    cells = [(op, w) for b in g.branches for op, w in zip(b.ops, b.widths, strict=True)]
    return 100.0 * sum(c == ("lightweight_conv", 0.5) for c in cells) / len(cells)


def test_nsga2_beats_random_search_at_equal_budget_on_a_toy_problem(space, tmp_path: Path) -> None:
    wins = []
    for seed in range(3):
        problem = toy_problem(space, tmp_path / f"n{seed}.jsonl", miou=matching_cells)
        ours = unique(problem, run_nsga2(problem, population=12, generations=6, seed=seed, progress=False))
        rand = toy_problem(space, tmp_path / f"r{seed}.jsonl", miou=matching_cells)
        rand = unique(rand, run_random(rand, len(ours), seed=seed, progress=False))
        assert len(rand) == len(ours) == 72
        ref = max(e.metrics["latency_ms"] for e in ours + rand)
        hv = [hypervolume([e.metrics["miou"] for e in es], [e.metrics["latency_ms"] for e in es], ref)
              for es in (ours, rand)]
        wins.append(hv[0] - hv[1])
    assert np.mean(wins) > 0.05 and sum(w > 0 for w in wins) >= 2, wins


# ------------------------------------------------------------------------------------ front and HV
def test_pareto_indices_and_hypervolume_by_hand() -> None:
    miou = [50.0, 60.0, 55.0, 60.0, float("nan"), 70.0]
    cost = [1.0, 2.0, 3.0, 1.5, 0.1, 4.0]
    assert pareto_indices(miou, cost) == [0, 3, 5]
    # normalised points (0.5, 0.25), (0.4, 0.375), (0.3, 1.0 -> on the reference, adds nothing)
    expected = (1 - 0.25) * (1 - 0.5) + (0.5 - 0.4) * (1 - 0.375)
    assert hypervolume([miou[i] for i in (0, 3, 5)], [cost[i] for i in (0, 3, 5)], ref_cost=4.0) == pytest.approx(
        expected
    )
    assert hypervolume([], [], 1.0) == 0.0


def test_the_hypervolume_reference_is_fixed_per_space_and_cost_not_per_run(space) -> None:
    from segnas.search.goal import hv_reference

    def cost(genotype: HyCTASGenotype) -> float:  # grows with depth, width and branches, as MACs do
        return float(sum(sum(b.widths) for b in genotype.branches))

    auto = hv_reference(SearchGoal(), space, cost)
    largest = [g for n in (1, 2, 3) for g in space.largest(n)]
    assert auto.cost == max(cost(g) for g in largest) and "largest" in auto.source
    rng = np.random.default_rng(5)
    assert all(cost(space.sample(rng)) <= auto.cost for _ in range(200))  # nothing sampled lies beyond it
    assert hv_reference(SearchGoal(), space.with_branches(1), cost).cost == max(cost(g) for g in space.largest(1))
    assert hv_reference(SearchGoal(hv_ref_cost=3.5), space, cost).cost == 3.5
    legacy = hv_reference(SearchGoal(hv_ref_cost=None), space, cost)
    assert legacy.cost is None and legacy.resolve([1.0, 4.0]) == 4.0
    fasterseg = get_space("fasterseg")  # no largest networks: a fixed sample, the same for every run
    first, again = (hv_reference(SearchGoal(), fasterseg, lambda g: float(len(genotype_key(g)))) for _ in range(2))
    assert first == again and "32 genotypes drawn with seed 0" in first.source
    with pytest.raises(ValueError, match="hv_ref_cost"):
        SearchGoal(hv_ref_cost="largest")
