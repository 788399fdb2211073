"""Search objectives (BN recalibration, supernet mIoU, latency table, MACs/params, zero-cost proxy score) and
ablation variants."""

from __future__ import annotations

import functools
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from segnas.data.synthetic import SyntheticDataModule
from segnas.metrics import count_macs, count_params
from segnas.models import build_network
from segnas.search.archive import Archive
from segnas.search.costs import agreement
from segnas.search.evaluator import Evaluator, InvalidScore
from segnas.search.objectives import (
    ActivationMemory,
    Macs,
    Params,
    ProxyScore,
    SharedStemOutputs,
    SupernetMIoU,
    bn_recalibrate,
    evaluate_miou,
    load_batches,
)
from segnas.spaces import get_space, load_genotype
from segnas.spaces.fasterseg import FasterSegSpace
from segnas.spaces.hyctas import HyCTASGenotype, build_plan
from segnas.spaces.hyctas.ablation import (
    CONVS,
    SA,
    ablation_networks,
    random_architectures,
    searched_per_branch_count,
    table8_variants,
)
from segnas.spaces.hyctas.latency_table import LatencyTable
from segnas.spaces.hyctas.network import HyCTASNet
from segnas.spaces.hyctas.supernet import HyCTASSupernet

INPUT = (1, 3, 32, 48)


@pytest.fixture(scope="module")
def space():
    return get_space("hyctas", layers=4, filter_multiplier=2)


def test_bn_recalibration_is_the_plain_average_of_batch_statistics() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    net = nn.Sequential(conv, nn.BatchNorm2d(4, momentum=0.1))
    batches = [torch.randn(2, 3, 8, 8) + i for i in range(3)]
    bn_recalibrate(net, batches)
    with torch.no_grad():
        feats = [conv(x) for x in batches]
    means = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    variances = torch.stack([f.transpose(0, 1).reshape(4, -1).var(1, unbiased=True) for f in feats]).mean(0)
    bn = net[1]
    torch.testing.assert_close(bn.running_mean, means)
    torch.testing.assert_close(bn.running_var, variances)
    assert not net.training and bn.momentum == 0.1


def test_supernet_miou_recalibrates_a_copy_and_leaves_the_supernet_untouched(space) -> None:
    dm = SyntheticDataModule(num_train=8, num_val=4, height=32, width=48, crop_size=(32, 48))
    dm.setup("fit")
    recal = load_batches(dm.train_set, range(8), batch_size=4, seed=3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(recal, load_batches(dm.train_set, range(8), 4, 3), strict=True))
    val = load_batches(dm.val_set, range(4), batch_size=2)
    torch.manual_seed(0)
    supernet = HyCTASSupernet.from_space(space, num_classes=dm.num_classes)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    objective = SupernetMIoU(supernet, recal, val, dm.num_classes)
    rng = np.random.default_rng(0)
    for g in [space.sample(rng) for _ in range(4)]:
        score = objective(g)  # the stem's outputs computed once (SharedStemOutputs): the same score exactly
        net = supernet.extract(g)
        bn_recalibrate(net, [x for x, _ in recal])
        assert score == evaluate_miou(net, val, dm.num_classes)
        assert 0.0 <= score <= 100.0 and objective(g) == score  # an untrained supernet: a range
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())


def test_shared_stem_outputs_are_the_stems_in_each_mode_and_refuse_other_inputs(space) -> None:
    from segnas.search.objectives import stem_output_mb

    torch.manual_seed(0)
    stem = HyCTASSupernet.from_space(space, num_classes=3).extract(space.sample(np.random.default_rng(0))).stem
    recal, val = [torch.randn(2, 3, 32, 48) for _ in range(2)], [torch.randn(2, 3, 32, 48)]
    shared = SharedStemOutputs(stem, recal, val)
    bn_recalibrate(stem, recal)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(shared.eval()(val[0]), stem(val[0]), strict=True))
        stem.train()
        assert all(torch.equal(a, b) for a, b in zip(shared.train()(recal[1]), stem(recal[1]), strict=True))
    with pytest.raises(KeyError, match="only answers"):
        shared.eval()(recal[0])  # a recalibration batch in eval mode: not one it holds
    per_image = sum(t.numel() * 4 for t in stem.eval()(val[0][:1])) / 2**20
    assert stem_output_mb(stem, [*recal, *val]) == pytest.approx(6 * per_image)


def test_supernet_miou_recomputes_the_stem_when_its_outputs_would_not_fit(space, monkeypatch) -> None:
    from segnas.search import objectives

    dm = SyntheticDataModule(num_train=4, num_val=2, height=32, width=48, crop_size=(32, 48))
    dm.setup("fit")
    recal, val = load_batches(dm.train_set, range(4), 2), load_batches(dm.val_set, range(2), 2)
    torch.manual_seed(0)
    supernet = HyCTASSupernet.from_space(space, num_classes=dm.num_classes)
    g = space.sample(np.random.default_rng(3))
    kept = objectives.SupernetMIoU(supernet, recal, val, dm.num_classes)
    score = kept(g)  # the stem's outputs are built at the first call
    monkeypatch.setattr(objectives, "STEM_CACHE_LIMIT_MB", 0.0)
    recomputed = objectives.SupernetMIoU(supernet, recal, val, dm.num_classes)
    assert recomputed(g) == score and recomputed.stem is False and isinstance(kept.stem, SharedStemOutputs)


def test_macs_and_params_objectives_count_the_standalone_network(space) -> None:
    build = functools.partial(build_network, num_classes=5, **space.build_options())
    g = space.sample(np.random.default_rng(1))
    net = HyCTASNet(g, 5, 2)
    assert Macs(build, INPUT)(g) == pytest.approx(count_macs(net, torch.randn(*INPUT)) / 1e9)
    assert Params(build)(g) == pytest.approx(count_params(net) / 1e6)
    assert ActivationMemory(space.memory_mb)(g) == pytest.approx(space.memory_mb(g))


def test_proxy_score_is_seeded_finite_and_invalid_when_the_proxy_fails() -> None:
    space = FasterSegSpace(min_depth=3, max_depth=6, fch=4)
    build = functools.partial(build_network, num_classes=3)
    rng = np.random.default_rng(0)
    g, other = space.sample(rng), space.sample(rng)
    torch.manual_seed(0)
    inputs, targets = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    for proxy in ("nwot", "synflow"):
        score = ProxyScore(proxy, build, inputs, targets, seed=7)
        value = score(g)
        assert math.isfinite(value)
        assert score(other) == score(other) and score(g) == value  # same seed, same value, in any order
        assert ProxyScore(proxy, build, inputs, targets, seed=7)(g) == value
    wrong_input = torch.randn(2, 5, 32, 32)  # the network expects 3 channels: its forward fails
    with pytest.raises(InvalidScore, match=r"nwot: .*3 channels"):
        ProxyScore("nwot", build, wrong_input, targets)(g)


def test_an_invalid_candidate_is_archived_as_nan_with_its_reason(tmp_path: Path) -> None:
    g = FasterSegSpace(min_depth=3, max_depth=6, fch=4).sample(np.random.default_rng(0))

    def broken(genotype):
        raise RuntimeError("cannot build")

    inputs, targets = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    archive = Archive(tmp_path / "a.jsonl")
    evaluator = Evaluator({"score": ProxyScore("nwot", broken, inputs, targets), "inf": lambda g: math.inf}, archive)
    metrics = evaluator(g)  # an invalid candidate, never fatal
    assert math.isnan(metrics["score"]) and math.isnan(metrics["inf"])
    (record,) = list(Archive(tmp_path / "a.jsonl"))
    assert "cannot build" in record["invalid"]["score"] and "non-finite" in record["invalid"]["inf"]


def test_a_diverged_network_has_no_miou() -> None:
    net = nn.Sequential(nn.Conv2d(3, 2, 1))
    nn.init.constant_(net[0].weight, math.nan)
    batches = [(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))]
    with pytest.raises(InvalidScore, match="non-finite logits"):
        evaluate_miou(net.eval(), batches, num_classes=2)


def test_latency_table_sums_cached_entries(space, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    genotypes = [space.sample(rng) for _ in range(3)]
    table = LatencyTable(tmp_path, INPUT, 2, 5, duration_s=0.0, min_iters=2, warmup=1)
    values = [table(g) for g in genotypes]
    assert table.n_measured == len(table.entries) > 0
    g = genotypes[0]
    plan = build_plan(g, 2)
    pieces = ["stem", "head/" + "_".join(map(str, plan.head)) + "/" + "_".join(map(str, plan.out_channels))]
    pieces += [f"cell/{n.op}/{n.in_stride}/{n.down}/{n.c_in}/{n.c_out}" for nodes in plan.layers for n in nodes]
    pieces += [
        f"edge/{nodes[u].out_stride}/{nodes[t].out_stride}/{nodes[u].c_out}/{nodes[t].c_out}"
        for layer, nodes in enumerate(plan.layers) for u, t in plan.fusion_edges(layer)
    ]
    assert values[0] == pytest.approx(sum(table.entries[k] for k in pieces))

    cached = LatencyTable(tmp_path, INPUT, 2, 5)
    assert [cached(g) for g in genotypes] == values and cached.n_measured == 0
    other = LatencyTable(tmp_path, (1, 3, 64, 64), 2, 5)
    assert other.path != table.path and not other.entries

    report = agreement(table, table, genotypes)
    assert report["n"] == 3 and report["kendall"] == pytest.approx(1.0) and report["lut_ms"] == values


# ------------------------------------------------------------------------------------ ablation variants
def _ops(g):
    return [op for b in g.branches for op in b.ops]


def test_table8_variants(space) -> None:
    rng = np.random.default_rng(0)
    g = next(
        g for g in (space.sample(rng) for _ in range(500))
        if g.num_branches == 3 and _ops(g).count(SA) == 1 and set(_ops(g)) & set(CONVS)
    )
    variants = table8_variants(g, space, np.random.default_rng(1))
    assert variants["searched"] == g
    assert all(v is not None and not space.violations(v) for v in variants.values())
    assert SA not in _ops(variants["sa_to_conv"]) and _ops(variants["sa_to_conv"]).count("conv") > _ops(g).count("conv")
    assert not set(_ops(variants["conv_to_sa"])) & set(CONVS)
    for name in ("shift_sa_position", "shift_sa_branch"):
        v = variants[name]
        assert Counter(_ops(v)) == Counter(_ops(g)) and v != g
        assert [b.downs for b in v.branches] == [b.downs for b in g.branches]
        assert [b.widths for b in v.branches] == [b.widths for b in g.branches]
    (i, layer), = [(i, k) for i, b in enumerate(g.branches) for k, op in enumerate(b.ops) if op == SA]
    pos = variants["shift_sa_position"]
    assert pos.branches[i].ops.count(SA) == 1 and pos.branches[i].ops[layer] != SA
    moved = variants["shift_sa_branch"]
    (j, other), = [(j, k) for j, b in enumerate(moved.branches) for k, op in enumerate(b.ops) if op == SA]
    assert (j, other) != (i, layer) and moved.branches[j].cell_strides()[other] == g.branches[i].cell_strides()[layer]


@pytest.mark.parametrize("name", ["hyctas_m", "hyctas_l"])
def test_table8_has_all_four_distortions_of_the_released_models(name: str) -> None:
    g = load_genotype(f"pkg://{name}")
    space = get_space("hyctas", layers=g.depth)
    variants = table8_variants(g, space, np.random.default_rng(0))
    assert all(v is not None and not space.violations(v) for v in variants.values())
    moved = variants["shift_sa_branch"]
    strides = lambda genotype: sorted(  # noqa: E731
        b.cell_strides()[k] for b in genotype.branches for k, op in enumerate(b.ops) if op == SA)
    assert strides(moved) == strides(g) and moved != g  # same strides, other positions


def test_searched_per_branch_count_takes_the_best_of_each() -> None:
    rng = np.random.default_rng(0)
    space = get_space("hyctas", layers=5, filter_multiplier=4)
    records = [{"genotype": g.to_dict(), "metrics": {"miou": float(i)}, "search": f"nsga2_{g.num_branches}branch"}
               for i, g in enumerate(space.sample(rng) for _ in range(40))]
    records.append({"genotype": records[0]["genotype"], "metrics": {"miou": float("nan")}, "search": "nsga2"})
    best = searched_per_branch_count(records)
    for n, g in best.items():
        same = [r for r in records if HyCTASGenotype.from_dict(r["genotype"]).num_branches == n
                and np.isfinite(r["metrics"]["miou"])]
        assert g.to_dict() == max(same, key=lambda r: r["metrics"]["miou"])["genotype"]


def test_table7_takes_nsga2_networks_only_never_the_random_baselines() -> None:
    rng = np.random.default_rng(1)
    space = get_space("hyctas", layers=5, filter_multiplier=4).with_branches(2)
    searched, lucky, warm = space.draw_unique(rng, 3)
    records = [{"genotype": searched.to_dict(), "metrics": {"miou": 40.0}, "search": "nsga2_2branch"},
               {"genotype": lucky.to_dict(), "metrics": {"miou": 90.0}, "search": "random"},  # the random baseline
               {"genotype": warm.to_dict(), "metrics": {"miou": 80.0}, "search": "warm_start"}]
    assert searched_per_branch_count(records) == {2: searched}
    assert searched_per_branch_count(records[1:]) == {}


def test_table7_random_networks_keep_their_own_sampled_depth() -> None:
    def space_of_depth(depth: int | None):
        return get_space("hyctas", layers=depth or 8, min_layers=depth or 4, filter_multiplier=2)

    rng = np.random.default_rng(0)
    genotype = space_of_depth(5).sample(rng)
    searched = {n: space_of_depth(8).with_branches(n).sample(rng) for n in (1, 2, 3)}  # all 8 cells deep
    networks, _ = ablation_networks(genotype, space_of_depth, searched, 4, rng)
    randoms = [g for group, g in networks.values() if group.startswith("random")]
    assert len(randoms) == 12 and len({g.depth for g in randoms}) > 1  # not the last searched network's 8
    assert all(4 <= g.depth <= 8 and not space_of_depth(None).violations(g) for g in randoms)
    assert all(networks[f"searched{n}"] == ("table7", g) for n, g in searched.items())


def test_variants_that_do_not_apply_are_none_and_random_architectures(space) -> None:
    rng = np.random.default_rng(0)
    g = next(g for g in (space.sample(rng) for _ in range(500)) if g.num_branches == 1 and SA not in _ops(g))
    variants = table8_variants(g, space, rng)
    assert variants["sa_to_conv"] is None and variants["shift_sa_position"] is None
    assert variants["shift_sa_branch"] is None
    randoms = random_architectures(space, 2, rng)
    assert sorted(randoms) == [f"random{n}_{k}" for n in (1, 2, 3) for k in (0, 1)]
    assert all(g.num_branches == int(name[6]) and not space.violations(g) for name, g in randoms.items())


@pytest.mark.slow  # 3-7 s (make test-slow keeps make test under 6 min on a slow host)
def test_each_branch_count_is_costed_at_its_own_deployed_network(tmp_path: Path) -> None:
    from segnas.search import build_problem

    from conftest import compose_config

    strata = {"1branch": (2, 8), "2branch": (3, 4), "3branch": (4, 4)}  # (F, OS) of each branch count
    by_stratum = ", ".join(f"{k}: {{filter_multiplier: {f}, output_stride: {os}}}" for k, (f, os) in strata.items())
    common = ["stage=search", "score=proxy", "search.objective=macs", "stage.extra_metrics=[params_m]",
              "stage.latency.calibration_archs=0", f"stage.latency.lut_dir={tmp_path / 'lut'}"]
    problem = build_problem(compose_config([*common, f"stage.cost_network_by_stratum={{{by_stratum}}}"], tmp_path),
                            tmp_path / "run")
    setup, rng = problem.assembly, np.random.default_rng(0)
    for n, (name, (f, os)) in enumerate(strata.items(), 1):
        g = problem.space.with_branches(n).sample(rng)
        build = functools.partial(build_network, num_classes=setup.num_classes, filter_multiplier=f, output_stride=os)
        shape = setup.cost_input
        assert problem.space.stratum(g) == name
        assert setup.costs.objectives["macs_g"](g) == Macs(build, shape)(g)
        assert setup.costs.objectives["params_m"](g) == Params(build, shape)(g)
    assert setup.context["cost_network"]["by_stratum"]["3branch"]["filter_multiplier"] == 4  # in the archive's context
    with pytest.raises(ValueError, match="one entry per stratum"):
        build_problem(compose_config([*common, "stage.cost_network_by_stratum={1branch: {output_stride: 4}}"],
                                     tmp_path), tmp_path / "bad")
    with pytest.raises(ValueError, match=r"stage\.cost_network_by_stratum\.1branch: \['width'\]"):
        build_problem(compose_config([*common, "stage.cost_network_by_stratum={1branch: {width: 4}}"], tmp_path),
                      tmp_path / "bad")
