"""Proxy expressions (segnas.proxies.expression), their evolution and stage=proxy_evolution."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from segnas.proxies import compute, get
from segnas.proxies.expression import (
    BINARY,
    LEAVES,
    SASWOT,
    UNARY,
    Expression,
    InvalidExpression,
    LayerStats,
    layer_statistics,
    load_expression_proxy,
    sketch_statistics,
)
from segnas.proxies.expression_space import SYMMETRIC, UNARY_NAMES, ExpressionSpace
from segnas.proxies.proxy_search import CachedFitness
from segnas.search.archive import Archive, ArchiveMismatch
from segnas.search.evaluator import Evaluator
from segnas.search.problem import Goal, SearchProblem
from segnas.search.topk import TopKResult, run_topk

ROOT = Path(__file__).resolve().parents[1]
DEV_CSV = ROOT.parent / "shared/data/transnas/tnb101_segmentsemantic_dev.csv"


def _layer(weight: list, grad: list, act: list | None = None) -> LayerStats:
    act_t = torch.tensor(act if act is not None else [0.0])
    return LayerStats(act_t, torch.tensor(grad), torch.tensor(weight))


def test_operation_sets_match_the_paper() -> None:
    assert len(UNARY) == 20 and len(BINARY) == 13


def test_expression_by_hand_on_tiny_tensors() -> None:
    layers = [_layer([[1.0, 2.0], [3.0, 0.0]], [[0.5, -1.0], [4.0, 0.0]]), _layer([2.0, -2.0], [1.0, 1.0])]
    # sum over layers of mean(|W| * G): layer 1 (0.5 - 2 + 12 + 0)/4 = 2.625, layer 2 (2 + 2)/2 = 2
    e = Expression(("weight", "gradient"), (("abs",), ("no_op",)), "product")
    assert e.score(layers) == pytest.approx(4.625)
    assert Expression(e.inputs, e.unary, e.binary, layer_reduce="mean").score(layers) == pytest.approx(2.3125)
    assert Expression(e.inputs, e.unary, e.binary, elem_reduce="sum").score(layers) == pytest.approx(14.5)
    # SasWOT: softmax over dim 0 of W = [[1,2],[3,0]] -> columns [e^1, e^3]/(e^1+e^3), [e^2, 1]/(e^2+1)
    sm = torch.softmax(torch.tensor([[1.0, 2.0], [3.0, 0.0]]), 0)
    expected = float((sm < torch.relu(torch.tensor([[0.5, -1.0], [4.0, 0.0]]))).float().mean())
    assert expected == pytest.approx(0.5)  # 0.119 < 0.5 and 0.881 < 4 hold; 0.881 < 0 and 0.119 < 0 fail
    assert SASWOT.score(layers[:1]) == pytest.approx(expected)
    # two-op chains and a scalar-producing unary broadcast against a tensor
    chained = Expression(("gradient", "weight"), (("relu", "to_sum_scalar"), ("pow", "no_op")), "difference")
    # layer 1: sum relu(G) = 4.5; mean(4.5 - W^2) = 4.5 - 14/4 = 1.0; layer 2: 2 - mean(4, 4) = -2
    assert chained.score(layers) == pytest.approx(-1.0)
    assert str(chained) == "sum_layers mean(difference(to_sum_scalar(relu(gradient)), pow(weight)))"


def test_invalid_expressions_are_rejected() -> None:
    layers = [_layer([[1.0, 2.0, 3.0]], [[1.0, 1.0, 1.0]], act=[[1.0, 2.0]])]
    shape = Expression(("weight", "activation"), (("no_op",), ("no_op",)), "sum")
    with pytest.raises(InvalidExpression):  # [1,3] + [1,2] does not broadcast
        shape.score(layers)
    with pytest.raises(InvalidExpression, match="square"):
        Expression(("weight", "weight"), (("slogdet",), ("no_op",)), "sum").score(layers)
    with pytest.raises(InvalidExpression, match="4-D"):
        Expression(("weight", "weight"), (("gram_matrix",), ("no_op",)), "sum").score(layers)
    with pytest.raises(InvalidExpression, match="non-finite"):
        Expression(("weight", "weight"), (("pow", "exp"), ("pow", "exp")), "product").score(
            [_layer([100.0], [1.0])]
        )
    outer = Expression(("weight", "gradient"), (("no_op",), ("no_op",)), "product")
    with pytest.raises(InvalidExpression, match="enlarges"):  # [2,1] * [1,3] would be an outer product
        outer.score([_layer([[1.0], [2.0]], [[1.0, 2.0, 3.0]])])
    assert outer.score([_layer([[1.0], [2.0]], [[3.0], [4.0]])]) == pytest.approx(5.5)
    with pytest.raises(ValueError, match="unknown"):
        Expression(("weight", "bias"), (("no_op",), ("no_op",)), "sum")
    # the search rejects constant expressions: W == W is 1 everywhere on every architecture
    fit = CachedFitness([layers, [_layer([[5.0, 1.0]], [[2.0, 0.0]])]], [1.0, 2.0])
    constant = fit(Expression(("weight", "weight"), (("no_op",), ("no_op",)), "equal_to"))
    assert not constant.valid and "constant" in (constant.reason or "")
    assert not fit(shape).valid and math.isnan(fit(shape).kendall)


def test_yaml_round_trip_and_loading_as_a_proxy(tmp_path: Path) -> None:
    e = Expression(
        ("activation", "gradient"), (("sigmoid", "abs"), ("no_op", "log")), "mse_loss", "sum", "mean", 4
    )
    e.save(tmp_path / "e.yaml", fitness=0.5)
    assert Expression.load(tmp_path / "e.yaml") == e
    assert "formula:" in (tmp_path / "e.yaml").read_text()
    # SasWOT as a loaded proxy agrees with the registered saswot_minus (fraction per layer, summed)
    SASWOT.save(tmp_path / "saswot_expr_test.yaml")
    name = load_expression_proxy(tmp_path / "saswot_expr_test.yaml")
    assert name == "saswot_expr_test" and load_expression_proxy(tmp_path / "saswot_expr_test.yaml") == name
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 5, 1))
    x, y = torch.randn(2, 3, 8, 8), torch.randint(0, 5, (2, 8, 8))
    loss = nn.CrossEntropyLoss(reduction="sum")  # large gradients, so the comparison is not all-false
    opts = {"saswot_minus": {"elem_reduce": "mean", "loss_reduction": "mean"}}  # the pass's gradient as it is
    got = compute([name, "saswot_minus"], net, x, y, loss, options=opts)
    assert got[name] == pytest.approx(got["saswot_minus"]) and got[name] > 0
    assert get(name).fn.expression == SASWOT
    stats = layer_statistics(net, x, y, activation_pool=4)
    assert [tuple(s.activation.shape) for s in stats] == [(2, 8, 4, 4), (2, 5, 4, 4)]
    assert stats[0].gradient.shape == stats[0].weight.shape == (8, 3, 3, 3)


def _conv_stats(c_in: int = 48, seed: int = 0) -> list[LayerStats]:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, c_in, 3, padding=1), nn.ReLU(), nn.Conv2d(c_in, 32, 3, padding=1))
    x, y = torch.randn(2, 3, 8, 8), torch.randint(0, 32, (2, 8, 8))
    return layer_statistics(net, x, y, nn.CrossEntropyLoss(reduction="sum"), activation_pool=4)


def test_column_sketch_shapes_and_exact_softmax_over_output_channels() -> None:
    exact = _conv_stats()
    sketch = sketch_statistics(exact, columns=90, seed=3)  # 90 // 9 = 10 of 48 input channels
    assert sketch[0].weight.shape == (48, 3, 3, 3) and sketch[0].column_fraction == 1.0  # 27 columns: kept
    w, s = exact[1].weight.to(torch.bfloat16).float(), sketch[1].leaf("weight")
    assert s.shape == (32, 10, 3, 3) and sketch[1].column_fraction == pytest.approx(10 / 48)
    assert sketch[1].weight.dtype == torch.bfloat16 and s.dtype == torch.float32
    idx = [j for j in range(48) for i in range(10) if torch.equal(w[:, j], s[:, i])]
    assert len(idx) == 10 and idx == sorted(idx)
    g = exact[1].gradient.to(torch.bfloat16).float()[:, idx]
    assert torch.equal(sketch[1].leaf("gradient"), g)  # the same columns of W and dL/dW
    assert torch.allclose(UNARY["softmax"](s), torch.softmax(w, 0)[:, idx], atol=1e-7)
    assert torch.equal(sketch[1].activation.float(), exact[1].activation.to(torch.bfloat16).float())
    again = sketch_statistics(exact, columns=90, seed=3)
    assert all(torch.equal(a.leaf(n), b.leaf(n)) for a, b in zip(sketch, again, strict=True) for n in LEAVES)
    other = sketch_statistics(exact, columns=90, seed=4)
    assert not torch.equal(other[1].weight, sketch[1].weight)


@pytest.mark.parametrize(
    ("unary", "binary", "elem_reduce"),
    [
        ((("softmax",), ("relu",)), "lesser_than", "mean"),  # SasWOT
        ((("abs",), ("abs",)), "product", "sum"),  # |W * G| summed: rescaled by 1 / fraction
        ((("pow", "to_sum_scalar"), ("frobenius_norm",)), "sum", "mean"),  # rescaled scalar reductions
        ((("no_op",), ("no_op",)), "mse_loss", "mean"),
    ],
)
def test_sketched_expression_approximates_the_exact_one(unary: tuple, binary: str, elem_reduce: str) -> None:
    exact = _conv_stats(c_in=64)
    e = Expression(("weight", "gradient"), unary, binary, elem_reduce)
    values = [e.score(sketch_statistics(exact, columns=144, seed=s)) for s in range(8)]  # 16 of 64 channels
    assert float(np.mean(values)) == pytest.approx(e.score(exact), rel=0.1)


def test_sketch_rejects_column_dependent_operations() -> None:
    sketch = sketch_statistics(_conv_stats(), columns=90, seed=0)
    for e in [
        Expression(("weight", "weight"), (("gram_matrix",), ("no_op",)), "sum"),
        Expression(("weight", "activation"), (("no_op",), ("no_op",)), "sum"),  # sketch with exact tensor
        Expression(("weight", "gradient"), (("slogdet",), ("no_op",)), "matmul"),  # 2-D sketched operand
    ]:
        with pytest.raises(InvalidExpression):
            e.score(sketch)
    scalar = Expression(("weight", "activation"), (("no_op",), ("to_mean_scalar",)), "product")
    assert math.isfinite(scalar.score(sketch))  # a sketch with an exact scalar is fine


def _synthetic(n: int, seed: int) -> list[list[LayerStats]]:
    gen = torch.Generator().manual_seed(seed)
    archs = []
    for _ in range(n):
        layers = []
        for _ in range(int(torch.randint(2, 5, (), generator=gen))):
            c = int(torch.randint(2, 6, (), generator=gen))
            scale = float(torch.rand((), generator=gen)) * 2
            layers.append(
                LayerStats(
                    torch.randn(2, c, 3, 3, generator=gen),
                    torch.randn(c, 3, 3, 3, generator=gen) * scale,
                    torch.randn(c, 3, 3, 3, generator=gen),
                )
            )
        archs.append(layers)
    return archs


def test_expression_space_encoding_sampling_and_operators() -> None:
    space = ExpressionSpace(chain=2)
    lo, hi = space.bounds()
    assert list(hi) == [2, 2, 19, 19, 19, 19, 12] and not lo.any()
    x = space.encode(SASWOT)  # one-op chains are padded with no_op (the same function)
    padded = space.decode(x)
    assert padded.unary == (("softmax", "no_op"), ("relu", "no_op")) and str(padded) == str(SASWOT)
    assert space.key(padded) == space.key(SASWOT) and (space.encode(padded) == x).all()
    assert space.violations(Expression(("weight",) * 2, (("abs",) * 3, ()), "sum"))  # chain too long
    assert space.violations(Expression(("weight",) * 2, ((), ()), "sum", elem_reduce="sum"))
    rng = np.random.default_rng(0)
    samples = [space.encode(space.sample(rng)) for _ in range(2000)]
    assert all(((s >= lo) & (s <= hi)).all() for s in samples)
    unary = np.concatenate([s[2:6] for s in samples])  # Auto-DAS weights: no_op 0.2, the others 0.1
    assert np.mean(unary == UNARY_NAMES.index("no_op")) == pytest.approx(0.2 / 2.1, abs=0.02)
    a, b = samples[:2]
    changed = 0
    for _ in range(50):
        child, other = space.crossover(a, b, rng)
        assert all(g in (p, q) for g, p, q in zip(child, a, b, strict=True))
        assert all({g, h} == {p, q} for g, h, p, q in zip(child, other, a, b, strict=True))
        mutant = space.mutate(child, rng, p=0.0)  # p = 0 still resamples exactly one gene
        assert ((mutant >= lo) & (mutant <= hi)).all()
        diff = int((mutant != child).sum())
        assert diff <= 1
        changed += diff
    assert changed > 30  # the resampled gene usually differs from the old one


def test_expression_space_key_is_canonical() -> None:
    space = ExpressionSpace(chain=2)
    e = Expression(("weight", "gradient"), (("no_op", "relu"), ("abs", "no_op")), "product")
    same = Expression(("gradient", "weight"), (("abs", "no_op"), ("relu", "no_op")), "product")
    other = Expression(("gradient", "weight"), (("abs", "no_op"), ("relu", "no_op")), "difference")
    assert space.key(e) == space.key(same) != space.key(other)
    assert space.key(other) != space.key(Expression(e.inputs, e.unary, "difference"))
    # equal keys compute equal values, exactly, on exact statistics and on column sketches
    exact = _conv_stats()
    for stats in (exact, sketch_statistics(exact, columns=90, seed=0)):
        for binary in sorted(SYMMETRIC):
            a, b = (Expression(x.inputs, x.unary, binary) for x in (e, same))
            assert space.key(a) == space.key(b)
            try:
                value = a.score(stats)
            except InvalidExpression:
                with pytest.raises(InvalidExpression):
                    b.score(stats)
            else:
                assert b.score(stats) == value


@pytest.mark.slow  # up to 100 generations, ~13 s (make test-slow)
def test_topk_evolution_finds_a_known_answer(tmp_path: Path) -> None:
    archs = _synthetic(40, seed=1)
    answer = Expression(("gradient", "weight"), (("abs", "no_op"), ("pow", "no_op")), "product")
    targets = [answer.score(a) for a in archs]
    fit = CachedFitness(archs, targets)
    assert fit(answer).kendall == pytest.approx(1.0)
    space = ExpressionSpace(chain=2)

    def search() -> tuple[TopKResult, Evaluator]:
        evaluator = Evaluator({"kendall": lambda e: fit(e).kendall}, Archive(tmp_path / "a.jsonl", space.key))
        problem = SearchProblem(space, evaluator, [Goal("kendall", maximize=True)])
        result = run_topk(problem, population=10, generations=100, top_k=4, children=8, p_mutate=0.2,
                          patience=5, random_per_generation=1, seed=0, progress=False)  # fmt: skip
        return result, evaluator

    result, evaluator = search()
    initial = [e.metrics["kendall"] for e in result.evaluated if e.generation == 0]
    assert np.nanmax(initial) < 0.9 and result.history[-1]["best"] == pytest.approx(1.0)
    assert evaluator.n_computed > 100 and any(not math.isfinite(k) for k in initial)  # invalid ones recorded
    best = [h["best"] for h in result.history]
    assert best == sorted(best)
    again, replay = search()  # the same seed on the same archive replays the search, computing nothing
    assert again.history == result.history and replay.n_computed == 0


def test_statistics_cache_is_keyed_by_its_context(tmp_path: Path) -> None:
    from segnas.proxies.evolution import cached_statistics

    calls: list[int] = []

    def build() -> list[list[LayerStats]]:
        calls.append(1)
        return [sketch_statistics(_conv_stats(), columns=90, seed=0)]

    path = tmp_path / "stats.pt"
    first = cached_statistics(build, path, {"batch_size": 2})
    loaded = cached_statistics(build, path, {"batch_size": 2})
    assert len(calls) == 1
    assert all(
        torch.equal(a.leaf(n), b.leaf(n)) and a.column_fraction == b.column_fraction
        for x, y in zip(first, loaded, strict=True)
        for a, b in zip(x, y, strict=True)
        for n in LEAVES
    )
    cached_statistics(build, path, {"batch_size": 4})  # another context: rebuilt
    assert len(calls) == 2


def _search_cfg(**overrides: Any) -> DictConfig:
    """``search=topk`` with stage=proxy_evolution's settings, as composed, and ``overrides``."""
    topk = OmegaConf.load(ROOT / "conf/search/topk.yaml")
    topk.pop("defaults")
    return OmegaConf.merge(topk, OmegaConf.load(ROOT / "conf/stage_search/proxy_evolution_topk.yaml"), overrides)


def _stage_cfg(out: Path, sketch: int | None = None, **stage_overrides: Any) -> DictConfig:
    stage = OmegaConf.load(ROOT / "conf/stage/proxy_evolution.yaml").stage
    stage.update(
        {"spaces": ["micro", "macro"], "train_archs": 3, "heldout_archs": 2, "batch_size": 2,
         "progress": False, "hand_proxies": ["params", "saswot_minus"], "seed_with_saswot": True,
         "sketch_columns": sketch, "rerank_top": 3, **stage_overrides}
    )  # fmt: skip
    benchmark = {"csv": str(DEV_CSV), "target": "valid_acc_final_epoch"}
    cfg = OmegaConf.create({"seed": 0, "paths": {"output_dir": str(out)}, "benchmark": benchmark})
    cfg.stage = stage
    cfg.search = _search_cfg(population=4, num_evals=16, children=3, top_k=2)  # 4 + 3 x (3 children + 1)
    return cfg


@pytest.mark.skipif(not DEV_CSV.exists(), reason="dev CSV not present")
@pytest.mark.slow  # 14-19 s each near idle (make test-slow); the stage also runs in the resume and refusal tests
@pytest.mark.parametrize("sketch", [None, 64])
def test_stage_end_to_end_on_a_tiny_budget(tmp_path: Path, sketch: int | None) -> None:
    from segnas.stages.proxy_evolution import run

    results = run(_stage_cfg(tmp_path, sketch))
    json.dumps(results)  # serialisable as results.json
    best = Expression.load(tmp_path / "best_proxy.yaml")
    assert str(best) == results["best_expression"]
    assert -1 <= results["kendall_heldout"] <= 1 and -1 <= results["kendall_train"] <= 1
    if sketch is None:  # the search was seeded with SasWOT's expression: at least as good on the train archs
        assert results["kendall_train"] >= results["saswot_expression_train"]
        assert results["rerank"] == [] and results["kendall_train_sketch"] is None
    else:  # the reported train Kendall is the exact one of the best of the re-ranked candidates
        assert len(results["rerank"]) == 3 and -1 <= results["kendall_train_sketch"] <= 1
        assert results["kendall_train"] == max(r["kendall_exact"] for r in results["rerank"])
    assert results["cost"]["cache_mb_per_arch"] > 0
    assert set(results["hand_designed_heldout"]) == {"params", "saswot_minus"}
    assert set(results["kendall_heldout_per_space"]) == {"micro", "macro"}
    assert results["best_hand_designed"]["name"] in {"params", "saswot_minus"}
    assert results["search"]["evaluated"] == 16 and results["search"]["iterations"] >= 2
    curve = (tmp_path / "search_curve.csv").read_text().splitlines()
    assert len(curve) == 1 + results["search"]["iterations"]
    assert (tmp_path / "search_curve.png").stat().st_size > 0
    records = (tmp_path / "archive.jsonl").read_text().splitlines()
    context = json.loads(records[0])["context"]
    assert context["sketch_columns"] == sketch and context["bn_quirk"] is True
    assert results["n_computed_this_run"] == len(records) - 1  # a fresh run computes every record


@pytest.mark.skipif(not DEV_CSV.exists(), reason="dev CSV not present")
@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_stage_resumes_a_killed_run_exactly(tmp_path: Path) -> None:
    from segnas.stages.proxy_evolution import run

    cfg = _stage_cfg(tmp_path, spaces=["micro"], hand_proxies=["params"])
    full = run(cfg)
    curve = (tmp_path / "search_curve.csv").read_text()
    archive = tmp_path / "archive.jsonl"
    lines = archive.read_text().splitlines()  # a context line, then one line per computed fitness
    kept = 1 + (len(lines) - 1) // 2
    archive.write_text("\n".join(lines[:kept]) + "\n")  # killed half-way through the search
    for name in ("results.json", "best_proxy.yaml", "search_curve.csv"):
        (tmp_path / name).unlink(missing_ok=True)
    resumed = run(cfg)
    assert resumed["n_computed_this_run"] == len(lines) - kept > 0
    for key in ("best_expression", "kendall_train", "kendall_heldout", "search"):
        assert resumed[key] == full[key]
    assert (tmp_path / "search_curve.csv").read_text() == curve
    assert sorted(archive.read_text().splitlines()) == sorted(lines)  # the same records, recomputed
    finished = run(cfg)  # re-running a finished run computes nothing
    assert finished["n_computed_this_run"] == 0 and finished["best_expression"] == full["best_expression"]


@pytest.mark.skipif(not DEV_CSV.exists(), reason="dev CSV not present")
@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_stage_refuses_an_archive_of_other_settings(tmp_path: Path) -> None:
    from segnas.stages.proxy_evolution import run

    cfg = _stage_cfg(tmp_path, spaces=["micro"], hand_proxies=["params"], heldout_archs=1)
    cfg.stage.iterations = 1  # deprecated (stage.evolution.iterations): search.num_evals = 4 + 1 x (3 + 1)
    assert run(cfg)["search"]["evaluated"] == 8
    cfg.stage.batch_size = 4
    with pytest.raises(ArchiveMismatch, match="batch_size"):
        run(cfg)
    cfg.stage.update({"batch_size": 2, "bn_quirk": False})
    with pytest.raises(ArchiveMismatch, match="bn_quirk"):
        run(cfg)


@pytest.mark.skipif(not DEV_CSV.exists(), reason="dev CSV not present")
@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_stage_searches_each_space_separately(tmp_path: Path) -> None:
    from segnas.stages.proxy_evolution import run

    cfg = _stage_cfg(tmp_path, fitness="per_space", hand_proxies=["params"], seed_with_saswot=False,
                     cache_statistics=False)  # fmt: skip
    cfg.search.update({"population": 3, "num_evals": 3})
    results = run(cfg)
    json.dumps(results)
    assert results["fitness"] == "per_space" and set(results["spaces"]) == {"micro", "macro"}
    for space, result in results["spaces"].items():
        assert set(result["kendall_heldout_per_space"]) == {space}
        assert Expression.load(tmp_path / space / "best_proxy.yaml") is not None
        context = json.loads((tmp_path / space / "archive.jsonl").read_text().splitlines()[0])["context"]
        assert context["spaces"] == [space]


def test_hydra_config_composes_search_topk_and_keeps_the_old_keys() -> None:
    from hydra import compose, initialize_config_dir

    from segnas.config_aliases import translate_aliases
    from segnas.search import TopK, build_algorithm

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["stage=proxy_evolution", "benchmark.csv=/x/y.csv"])
        old = ["stage=proxy_evolution", "stage.evolution.iterations=7", "stage.evolution.p_mutate=0.3",
               "stage.evolution.population=12", "stage.evolution.clear_pool=true"]  # fmt: skip
        aliased = compose("config", overrides=translate_aliases(old))
    assert cfg.stage._target_ == "segnas.stages.proxy_evolution.run" and cfg.benchmark.csv == "/x/y.csv"
    assert cfg.stage.chain == 2 and cfg.stage.fitness == "mean" and cfg.stage.bn_quirk is True
    algorithm = build_algorithm(cfg)  # the stage's former defaults: population 20, 50 iterations of 10 + 1
    assert isinstance(algorithm, TopK) and algorithm.seed == 0
    assert (algorithm.num_evals, algorithm.population, algorithm.top_k) == (570, 20, 5)
    assert algorithm.children == 10 and algorithm.random_per_generation == 1
    assert (algorithm.mutation_prob, algorithm.p_crossover, algorithm.patience) == (0.2, 0.5, 5)
    assert algorithm.clear_pool is False
    assert aliased.stage.iterations == 7 and aliased.search.mutation_prob == 0.3
    assert aliased.search.population == 12 and aliased.search.clear_pool is True


def test_search_random_composes_without_topk_keys_at_the_same_budget() -> None:
    """``stage=proxy_evolution search=random``: random expressions at top-k's budget, in batches of one top-k
    iteration (10 children + 1 newcomer), none of top-k's settings left over."""
    from hydra import compose, initialize_config_dir

    from segnas.search import RandomSearch, build_algorithm

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["stage=proxy_evolution", "search=random", "seed=3"])
    algorithm = build_algorithm(cfg)
    assert isinstance(algorithm, RandomSearch) and algorithm.seed == 3
    assert (algorithm.num_evals, algorithm.batch) == (570, 11) and "population" not in cfg.search


def test_search_history_of_a_search_without_its_own() -> None:
    """Random search reports no history: one row per batch (generation) from its evaluations."""
    from segnas.proxies.evolution import search_history
    from segnas.search.algorithms import SearchResult
    from segnas.search.problem import Evaluated

    values = [(0, 0.1), (0, math.nan), (1, 0.05), (1, 0.3), (2, math.nan)]
    result = SearchResult([Evaluated(None, {"kendall": v}, g, "random") for g, v in values])
    rows = search_history(result)
    assert [r["best"] for r in rows] == [0.1, 0.3, 0.3] and [r["evaluated"] for r in rows] == [2, 4, 5]
    assert rows[1]["population_mean"] == pytest.approx(0.175) and math.isnan(rows[2]["population_best"])
    assert search_history(SearchResult([], {"history": [{"generation": 1}]})) == [{"generation": 1}]
