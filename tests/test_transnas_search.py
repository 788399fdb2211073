"""TransNAS-Bench-101 as search spaces (``transnas_micro``, ``transnas_macro``) scored by its table
(``score=benchmark``): the spaces' genetic operators, tabular mode, every algorithm end to end, the ground truth
beside a proxy-scored search. A tiny CSV written here keeps every code path tested without ../shared/data."""

from __future__ import annotations

import csv
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from segnas.search import build_problem
from segnas.search.evaluator import InvalidScore
from segnas.spaces import analytic_costs, get_space, traced_costs, transnas
from segnas.spaces.transnas import TransNASMacroGenotype, TransNASMicroGenotype
from segnas.stages import run_stage

from conftest import REPO, SHARED_DATA, compose_config

DEV_CSV = SHARED_DATA / "transnas" / "tnb101_segmentsemantic_dev.csv"
BEST_PROXY = REPO / "experiments" / "saswot_proxy_evolution" / "best_proxy.yaml"
FRACTION = 0.7  # of each space in the table, as in the dev CSV (sparser tables starve NSGA-II's mating)


def _accuracy(arch: str) -> float:
    """A made-up ground truth: larger codes (more convs, more downsampling) score higher, no ties."""
    return 90.0 + sum(int(c) for c in arch if c.isdigit()) / 10 + zlib.crc32(arch.encode()) % 997 / 1e5


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table with the benchmark's columns and a random ``FRACTION`` of each space's architectures."""
    path = tmp_path_factory.mktemp("tnb") / "tiny.csv"
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["space", "tnb_arch_str", "valid_acc_final_epoch", "flops"])
        for space in transnas.SPACES:
            archs = transnas.all_archs(space)
            for i in rng.choice(len(archs), round(FRACTION * len(archs)), replace=False):
                writer.writerow([space, archs[i], _accuracy(archs[i]), ""])
    return path


def _table(path: Path, space: str) -> dict[str, float]:
    with path.open() as f:
        return {r["tnb_arch_str"]: float(r["valid_acc_final_epoch"]) for r in csv.DictReader(f) if r["space"] == space}


def _levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@pytest.mark.parametrize("name", ["transnas_micro", "transnas_macro"])
def test_every_benchmark_architecture_encodes_decodes_and_is_valid(name: str) -> None:
    space = get_space(name)
    archs = transnas.all_archs(space.tnb_space)
    assert space.size == len(archs) == {"transnas_micro": 4096, "transnas_macro": 3256}[name]
    lo, hi = space.bounds()
    for arch in archs:
        genotype = space.genotype_cls(arch)
        x = space.encode(genotype)
        assert np.all(lo <= x) and np.all(x <= hi) and space.decode(x) == genotype and space.key(genotype) == arch
        assert not space.violations(genotype)
    assert space.violations(space.genotype_cls("64-41414-0_00_00")) and space.violations(TransNASMicroGenotype("x"))


def test_micro_mutation_changes_exactly_one_op() -> None:
    space, rng = get_space("transnas_micro"), np.random.default_rng(0)
    for _ in range(200):
        x = space.encode(space.sample(rng))
        child = space.mutate(x, rng, 0.5)
        assert int((child != x).sum()) == 1 and space.is_valid(space.decode(child))


def test_macro_mutation_changes_one_module_and_stays_in_the_space() -> None:
    space, rng = get_space("transnas_macro"), np.random.default_rng(0)
    lengths = set()
    for _ in range(300):
        parent = space.sample(rng)
        child = space.decode(space.mutate(space.encode(parent), rng, 0.1))
        modules = [transnas.parse(g.arch)[1] for g in (parent, child)]
        assert space.is_valid(child) and _levenshtein(*modules) == 1
        lengths.add(len(modules[1]) - len(modules[0]))
    assert lengths == {-1, 0, 1}  # a module replaced, removed or added


def test_restricted_space_samples_mutates_and_breeds_inside_the_table() -> None:
    full = get_space("transnas_micro")
    allowed = {full.sample(np.random.default_rng(i)).arch for i in range(30)}
    space = full.restrict(allowed | {"not-an-arch"})
    assert space.size == len(allowed) and full.size == 4096
    rng = np.random.default_rng(1)
    assert {g.arch for g in space.draw_unique(rng, 100)} == allowed
    outside = next(a for a in transnas.all_archs("micro") if a not in allowed)
    assert "benchmark table" in space.violations(TransNASMicroGenotype(outside))[0]
    children = [space.decode(space.mutate(space.encode(space.sample(rng)), rng, 0.1)) for _ in range(50)]
    assert all(space.is_valid(c) == (c.arch in allowed) for c in children)


@pytest.mark.parametrize("arch", ["64-41414-0_00_000", "64-41414-1_11_111", "64-41414-3_03_120", "64-443311-basic",
                                  "64-2134-basic", "64-121213-basic"])
def test_cost_walk_equals_tracing(arch: str) -> None:
    genotype = (TransNASMacroGenotype if arch.endswith("basic") else TransNASMicroGenotype)(arch)
    for quirk in (True, False):
        assert analytic_costs(genotype, 17, (1, 3, 64, 128), bn_quirk=quirk) == traced_costs(
            genotype, 17, (1, 3, 64, 128), bn_quirk=quirk)


def test_benchmark_score_sets_tabular_defaults_that_overrides_still_beat() -> None:
    cfg = compose_config(["stage=search", "space=transnas_micro", "score=benchmark", "search=topk"])
    assert cfg.search.objective == "params" and list(cfg.stage.extra_metrics) == ["params_m", "macs_g"]
    assert cfg.score.csv.endswith("tnb101_segmentsemantic_dev.csv") and cfg.score.metric == "valid_acc_final_epoch"
    cfg = compose_config(["stage=search", "space=transnas_micro", "score=benchmark", "search.objective=macs"])
    assert cfg.search.objective == "macs"
    assert compose_config(["stage=search"]).search.objective == "latency"


def _benchmark_run(tiny_csv: Path, out: Path, *overrides: str) -> dict:
    return run_stage(compose_config(["stage=search", "score=benchmark", f"score.csv={tiny_csv}", "stage.progress=false",
                                     "logger=csv", *overrides], out))


@pytest.mark.parametrize(("space", "search"), [("transnas_micro", "topk"), ("transnas_macro", "random"),
                                               ("transnas_macro", "nsga2")])
def test_every_algorithm_searches_only_the_table(tiny_csv: Path, tmp_path: Path, space: str, search: str) -> None:
    budget = ["search.population=6", "search.generations=3"] if search == "nsga2" else ["search.num_evals=20"]
    results = _benchmark_run(tiny_csv, tmp_path, f"space={space}", f"search={search}", *budget, "seed=3")
    table = _table(tiny_csv, space.removeprefix("transnas_"))
    with (tmp_path / "evaluations.csv").open() as f:
        rows = list(csv.DictReader(f))
    searched = [r for r in rows if r["search"] == search]
    assert results["n_evaluated"] == len(searched) == (18 if search == "nsga2" else 20)
    assert results["space_size"] == len(table) and all(r["arch"] in table for r in rows)
    assert all(float(r["valid_acc_final_epoch"]) == pytest.approx(table[r["arch"]]) for r in rows)
    assert results["best_score"] == pytest.approx(max(float(r["valid_acc_final_epoch"]) for r in searched))
    with (tmp_path / "best_so_far.csv").open() as f:
        curve = [float(r["best_valid_acc_final_epoch"]) for r in csv.DictReader(f)]
    assert len(curve) == results["n_evaluated"] and curve == sorted(curve) and curve[-1] == results["best_score"]
    truth = results["ground_truth"]
    assert truth["space_size"] == len(table) and truth["table_best"] == pytest.approx(max(table.values()))
    assert truth["top"][0]["valid_acc_final_epoch"] == results["best_score"] and truth["top"][0]["percentile"] > 50
    assert results["cost_metric"] == "params_m" and "latency_ms" not in rows[0]
    assert json.loads((tmp_path / "results.json").read_text())["space_size"] == len(table)


def test_missing_table_fails_before_any_work(tiny_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"score\.csv=.*missing\.csv"):
        _benchmark_run(tmp_path / "missing.csv", tmp_path / "out", "space=transnas_micro", "search=topk")
    assert not (tmp_path / "out" / "archive.jsonl").exists()
    with pytest.raises(ValueError, match="space=transnas_micro or space=transnas_macro"):
        _benchmark_run(tiny_csv, tmp_path / "out", "space=hyctas")


def test_an_architecture_outside_the_table_is_never_scored(tiny_csv: Path, tmp_path: Path) -> None:
    cfg = compose_config(["stage=search", "space=transnas_micro", "score=benchmark", f"score.csv={tiny_csv}",
                          "search=topk"], tmp_path)
    problem = build_problem(cfg, tmp_path, single_objective=True)
    table = _table(tiny_csv, "micro")
    outside = TransNASMicroGenotype(next(a for a in transnas.all_archs("micro") if a not in table))
    assert not problem.accepts(outside)
    with pytest.raises(InvalidScore, match="not scored"):
        problem.evaluator.objectives["valid_acc_final_epoch"](outside)


def test_proxy_warm_start_on_a_benchmark_space(tiny_csv: Path, tmp_path: Path) -> None:
    results = _benchmark_run(tiny_csv, tmp_path, "space=transnas_macro", "search=topk", "search.num_evals=10",
                             "search.population=4", "search.warm_start=proxy", "search.warm_start_proxy=params",
                             "search.warm_start_pool=8", "search.warm_start_select=top",
                             "search.random_baseline=false")
    assert results["warm_start"]["picked"] == 4 and results["warm_start"]["pool"] == 8
    assert results["n_evaluated"] == 10


def test_proxy_scored_search_reports_the_ground_truth_beside_its_picks(tiny_csv: Path, tmp_path: Path) -> None:
    proxy = tmp_path / "size.yaml"  # a cheap proxy file: the smaller the network, the higher the score
    proxy.write_text(yaml.safe_dump({
        "name": "size", "kind": "combination",
        "combination": {"terms": [{"proxy": "params", "transform": "log", "center": 16.0, "scale": 1.0,
                                   "weight": -1.0}]},
        "protocol": {"inputs": "random", "batch_size": 2, "resolution": 64, "seed": 0, "bn_quirk": True}}))
    results = run_stage(compose_config([
        "stage=search", "space=transnas_micro", "score=proxy", f"score.proxy={proxy}", "search=topk",
        "search.num_evals=6", "search.population=3", "search.top_k=2", "search.objective=params",
        "stage.extra_metrics=[params_m]", "search.random_baseline=false", "stage.progress=false",
        f"stage.ground_truth.csv={tiny_csv}"], tmp_path / "run"))
    table = _table(tiny_csv, "micro")
    truth = results["ground_truth"]
    assert results["proxy_file"] == str(proxy) and truth["n_evaluated_in_table"] == results["n_evaluated"] == 6
    ranked = sorted(results["top"], key=lambda r: -r["score"])
    assert [t["arch"] for t in truth["top"]] == [r["arch"] for r in ranked]
    assert all(t["valid_acc_final_epoch"] == pytest.approx(table[t["arch"]]) for t in truth["top"])
    params = {t["arch"]: r["params_m"] for t, r in zip(truth["top"], ranked, strict=True)}
    assert list(params.values()) == sorted(params.values())  # the proxy ranked them, not the ground truth
    assert all(math.isfinite(r["score"]) for r in results["top"])


@pytest.mark.skipif(not DEV_CSV.is_file(), reason=f"{DEV_CSV} not present (no shared data)")
@pytest.mark.parametrize(("space", "size"), [("transnas_micro", 2867), ("transnas_macro", 2279)])
def test_dev_table_search(tmp_path: Path, space: str, size: int) -> None:
    results = run_stage(compose_config(["stage=search", f"space={space}", "score=benchmark", "search=topk",
                                        "search.num_evals=50", "seed=1", "stage.progress=false"], tmp_path))
    assert results["space_size"] == size == results["ground_truth"]["space_size"] and results["n_evaluated"] == 50
    assert 90 < results["best_score"] <= results["ground_truth"]["table_best"] < 100
    assert results["best_score_beats_random"] in (True, False) and results["n_evaluated_random"] == 50


@pytest.mark.skipif(not BEST_PROXY.is_file(), reason="no best_proxy.yaml")
def test_best_proxy_file_is_accepted_as_the_search_score() -> None:
    from segnas.search.scoring import ProxyScoring

    score = ProxyScoring(proxy=str(BEST_PROXY))
    assert score.file is not None and score.file.name == "best_proxy" and score.cost_input() == [1, 3, 256, 256]
    with pytest.raises(ValueError, match="takes none"):
        ProxyScoring(proxy=str(BEST_PROXY), options={"x": 1})
