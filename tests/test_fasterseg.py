"""FasterSeg space: genotype rules, YAML round trip, encoding, network builder, shipped architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from segnas.models import build_network
from segnas.models.aux_heads import deploy_net
from segnas.models.fasterseg_net import build_fasterseg_net
from segnas.search.algorithms import run_random, unique
from segnas.search.archive import Archive
from segnas.search.evaluator import Evaluator
from segnas.search.problem import Goal, SearchProblem
from segnas.search.topk import run_topk
from segnas.spaces.fasterseg import FasterSegBranch, FasterSegGenotype, FasterSegSpace

ARCH = Path(__file__).resolve().parents[1] / "src/segnas/spaces/archs/fasterseg.yaml"


def shipped() -> FasterSegGenotype:
    return FasterSegGenotype.from_dict(yaml.safe_load(ARCH.read_text()))


def test_shipped_fasterseg_params_and_macs() -> None:
    g = shipped()
    assert g.rule_violations() == [] and g.lasts == (2, 1)
    net = build_fasterseg_net(g, 19)
    assert net.shared == 3  # cells 0-2 shared by both branches
    # research notes A.7: 4,385,689 incl. aux heads, of which 32,768 are FFM attention weights unused in
    # FasterSeg's forward (not built here); every other block matches the reference breakdown exactly.
    total = sum(p.numel() for p in net.parameters())
    assert total == 4_385_689 - 32_768
    assert abs(total - 4.4e6) / 4.4e6 < 0.02
    blocks = {n: sum(p.numel() for p in getattr(net, n).parameters()) for n in ("stem", "cells", "head")}
    assert blocks == {"stem": 130_464, "cells": 2_742_656, "head": 150_163}
    assert [s[1:] for s in net.specs[0]][3] == (32, 128, 2) and net.specs[1][-1][1:] == (192, 128, 1)
    x = torch.randn(1, 3, 64, 128)
    out = net.eval().forward_aux(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        k: (1, 19, 64, 128) for k in ("out", "aux16", "aux32")
    }
    assert torch.equal(out["out"], net(x))  # the aux heads never change the main prediction


def test_retraining_wrapper_computes_the_aux_heads_of_forward_aux_and_deploys_without_them() -> None:
    torch.manual_seed(0)
    net = build_fasterseg_net(shipped(), 5)  # FasterSeg's layout: aux heads inside the net
    wrapped = build_network(shipped(), 5, aux_heads=True)
    wrapped.net.load_state_dict(net.state_dict(), strict=False)
    for head, own in zip(wrapped.aux, (net.head16, net.head32), strict=True):
        head.load_state_dict(own.state_dict())
    x = torch.randn(2, 3, 64, 64)
    reference = net.train().forward_aux(x)
    logits, aux = wrapped.train()(x)
    assert torch.allclose(logits, reference["out"])
    assert all(torch.allclose(a, reference[k]) for a, k in zip(aux, ("aux16", "aux32"), strict=True))
    deployed = deploy_net(wrapped)
    assert not deployed.aux_heads and torch.equal(wrapped.eval()(x), deployed(x))
    assert sum(p.numel() for p in deployed.parameters()) == sum(p.numel() for p in net.parameters()) - sum(
        p.numel() for p in wrapped.aux.parameters()
    )


def test_rule_violations() -> None:
    ok = FasterSegBranch(("conv", "conv", "skip"), (0, 1, 1), (1.0, 0.5))
    assert ok.violations() == [] and ok.downs() == (1, 0, 0) and ok.last == 1
    assert "downsampling cell cannot be skip" in " ".join(
        FasterSegBranch(("skip", "conv"), (0, 1), (1.0,)).violations()
    )
    assert "all skip" in " ".join(
        FasterSegBranch(("conv", "skip", "skip"), (0, 1, 1), (1.0, 1.0)).violations()
    )
    assert "steps of at most 1" in " ".join(FasterSegBranch(("conv", "conv"), (0, 2), (1.0,)).violations())
    assert "widths" in " ".join(FasterSegBranch(("conv", "conv"), (0, 0), (0.3,)).violations())
    with pytest.raises(ValueError, match="one width per op"):
        FasterSegBranch(("conv", "conv"), (0, 0), ())
    g = FasterSegGenotype((ok, ok))
    assert any("scales (2, 0|1)" in v for v in g.rule_violations())


def test_sample_encode_decode_roundtrip_and_forward() -> None:
    space = FasterSegSpace(min_depth=4, max_depth=8)
    lo, hi = space.bounds()
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(30)]
    assert len(set(samples)) == 30
    for g in samples:
        assert space.violations(g) == []
        x = space.encode(g)
        assert x.shape == (space.n_var,) and (x >= lo).all() and (x <= hi).all()
        assert space.decode(x) == g
        assert FasterSegGenotype.from_dict(yaml.safe_load(yaml.safe_dump(g.to_dict()))) == g
    assert {g.lasts[1] for g in samples} == {0, 1}
    logits = build_fasterseg_net(samples[0], 5, aux_heads=False)(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 5, 64, 64)
    bad = space.encode(samples[0])
    bad[2], bad[3] = 1, 1  # both downsamplings of the 1/32 branch on the same cell
    assert space.violations(space.decode(bad))


def test_evolution_beats_random_on_a_known_objective(tmp_path: Path) -> None:
    space = FasterSegSpace(min_depth=4, max_depth=10)

    def score(g: FasterSegGenotype) -> float:  # more conv_2x cells is better
        return float(sum(b.ops.count("conv_2x") for b in g.branches))

    def cost(g: FasterSegGenotype) -> float:
        return float(sum(b.depth for b in g.branches))

    def problem(name: str) -> SearchProblem:
        evaluator = Evaluator({"cost": cost, "score": score}, Archive(tmp_path / f"{name}.jsonl", key=space.key))
        return SearchProblem(space, evaluator, [Goal("score", maximize=True)], budgets={"cost": 16})

    evo_problem, rand_problem = problem("evo"), problem("rand")
    evo = run_topk(evo_problem, n_evals=120, population=12, top_k=4, p_mutate=0.2, seed=1, progress=False).evaluated
    rand = run_random(rand_problem, 120, seed=1, progress=False)
    assert len(evo) == len(rand) == 120
    assert len(unique(evo_problem, evo)) == 120  # dedupe
    assert all(e.metrics["cost"] <= 16 and not space.violations(e.genotype) for e in evo)
    assert max(e.metrics["score"] for e in evo) > max(e.metrics["score"] for e in rand)
    assert {e.generation for e in evo} >= {0, 1, 2}  # random first pool, then offspring generations
