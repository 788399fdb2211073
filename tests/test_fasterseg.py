"""FasterSeg space: FasterSeg's matrices decoded its way, genetic operators, YAML round trip, network builder,
shipped architecture."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pymoo.core.population import Population

from segnas.metrics import count_macs
from segnas.models import build_network, deploy_net
from segnas.search.algorithms import run_random, unique
from segnas.search.archive import Archive
from segnas.search.evaluator import Evaluator
from segnas.search.operators import GenotypeDuplicates
from segnas.search.problem import Goal, SearchProblem
from segnas.search.topk import run_topk
from segnas.spaces.fasterseg import (
    OPS,
    FasterSegBranch,
    FasterSegGenotype,
    FasterSegMatrices,
    FasterSegNet,
    FasterSegSpace,
    decode_matrices,
)

ARCH = Path(__file__).resolve().parents[1] / "src/segnas/spaces/archs/fasterseg.yaml"
# sha256 of [[key, shape], ...] of the state_dict that FasterSegNet(ARCH, 19) gave before the space held
# FasterSeg's matrices (commit b052038): the shipped architecture must still build that network.
STATE_DICT_SHA = "543f87c21d20ec72b31c6e5be0938ecb94cd59461fa2b01a0913fdee99a65b03"


def shipped() -> FasterSegGenotype:
    return FasterSegGenotype.from_dict(yaml.safe_load(ARCH.read_text()))


def op_row(op: str, level: int = 15, next_best: str | None = None) -> list[int]:
    """An alpha row choosing ``op`` with logit ``level`` (others 0; ``next_best`` at 10)."""
    row = [0] * len(OPS)
    if next_best is not None:
        row[OPS.index(next_best)] = 10
    row[OPS.index(op)] = level
    return row


def one_hot(k: int, n: int = 5) -> list[int]:
    return [15 if i == k else 0 for i in range(n)]


# ------------------------------------------------------------------------------------ shipped FasterSeg
def test_shipped_fasterseg_matrices_build_the_same_network() -> None:
    g = shipped()
    assert g.rule_violations() == [] and g.lasts == (2, 1) and g.matrices is not None
    space = FasterSegSpace(width=None)  # FasterSeg's student: widths searched with the ratio matrices
    x = space.encode(g)
    assert space.violations(g) == [] and space.decode(x) == g and np.array_equal(space.encode(space.decode(x)), x)
    net = FasterSegNet(space.decode(x), 19)
    assert net.shared == 3  # cells 0-2 shared by both branches
    shapes = [[k, list(v.shape)] for k, v in net.state_dict().items()]
    assert hashlib.sha256(json.dumps(shapes).encode()).hexdigest() == STATE_DICT_SHA
    # research notes A.7: 4,385,689 incl. aux heads, of which 32,768 are FFM attention weights unused in
    # FasterSeg's forward (not built here); every other block matches the reference breakdown exactly.
    assert sum(p.numel() for p in net.parameters()) == 4_385_689 - 32_768
    blocks = {n: sum(p.numel() for p in getattr(net, n).parameters()) for n in ("stem", "cells", "head")}
    assert blocks == {"stem": 130_464, "cells": 2_742_656, "head": 150_163}
    assert [s[1:] for s in net.specs[0]][3] == (32, 128, 2) and net.specs[1][-1][1:] == (192, 128, 1)
    # MACs scale with the area (every size divides by 64): 28.14 G at 1024x2048 (thop: 28.03 G)
    assert count_macs(net, torch.randn(1, 3, 128, 256)) * 64 == 28_137_750_528
    x = torch.randn(1, 3, 64, 128)
    out = net.eval().forward_aux(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (1, 19, 64, 128) for k in ("out", "aux16", "aux32")}
    assert torch.equal(out["out"], net(x))  # the aux heads never change the main prediction


def test_retraining_wrapper_computes_the_aux_heads_of_forward_aux_and_deploys_without_them() -> None:
    torch.manual_seed(0)
    net = FasterSegNet(shipped(), 5)  # FasterSeg's layout: aux heads inside the net
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


def test_kaiming_init_is_fasterseg_s() -> None:
    torch.manual_seed(0)
    default = FasterSegNet(shipped(), 19)
    torch.manual_seed(0)
    kaiming = FasterSegNet(shipped(), 19, init="kaiming")
    assert [(k, v.shape) for k, v in default.state_dict().items()] == [
        (k, v.shape) for k, v in kaiming.state_dict().items()
    ]
    conv = kaiming.stem[1].body[0][0]  # 3x3 conv, 32 -> 64: fan_in 288, 18,432 weights
    assert abs(conv.weight.std().item() / (2 / 288) ** 0.5 - 1) < 0.05  # kaiming_normal_(fan_in, relu)
    assert conv.weight.std() > 2 * default.stem[1].body[0][0].weight.std()  # PyTorch's default is narrower
    bns = [m for m in kaiming.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(torch.all(b.weight == 1) and torch.all(b.bias == 0) for b in bns)
    assert all(b.eps == 1e-5 and b.momentum == 0.1 for b in bns)
    with pytest.raises(ValueError, match="init must be one of"):
        FasterSegNet(shipped(), 19, init="xavier")


# ----------------------------------------------------------------------------------- FasterSeg decoding
def test_decoding_paths_follow_fasterseg_s_betas() -> None:
    """1/16: downsample at argmax(beta_1[1:-1, 0]) + 1; 1/32: at i + 1 and j + 2 maximising
    beta_1[i, 0] * beta_2[j, 0] with j < layers - 4 and 1 <= i < j - 1 (not the two argmaxes)."""
    layers, keep = 10, [0, 15]
    beta1, beta2 = [keep] * (layers - 2), [keep] * (layers - 3)
    beta1[6] = [15, 0]  # the 1/16 branch's choice; too late for the 1/32 branch (j <= 5 needs i <= 3)
    beta1[2] = [10, 0]
    beta2[5] = [15, 0]
    conv = [op_row("conv")]
    alpha = (conv * layers, conv * (layers - 1), conv * (layers - 2))
    b32, b16 = decode_matrices(FasterSegMatrices(alpha, (beta1, beta2), (), last=1), widths=(0.5,))
    assert b32.path == (0, 0, 0, 0, 1, 1, 1, 1, 2, 2) and b16.path == (0, 0, 0, 0, 0, 0, 0, 1, 1, 1)
    assert b32.ops == b16.ops == ("conv",) * layers and b32.widths == b16.widths == (0.5,) * (layers - 1)


def test_decoding_ops_and_widths_follow_fasterseg_s_skip_rules() -> None:
    """Lattice of 8 layers: the 1/32 path downsamples at layers 2 and 5 (the only (i, j)), the 1/16 path at
    layer 4 (beta_1 row 4). Hand-derived with FasterSeg's rules (see decode_matrices)."""
    zero = [0] * 5
    alpha0 = [op_row("conv_2x"), op_row("conv"), op_row("conv_downup"), op_row("conv_2x_downup"),
              op_row("skip", next_best="conv_2x")] + [zero] * 3  # fmt: skip
    alpha1 = [zero, zero, op_row("conv_2x_downup"), op_row("skip", 12),
              op_row("skip", 13, next_best="conv_2x"), op_row("skip", 14), op_row("skip", 15)]  # fmt: skip
    alpha2 = [zero] * 4 + [op_row("skip", 11), op_row("conv_downup")]
    beta1 = [[0, 15]] * 4 + [[15, 0], [0, 15]]
    beta2 = [[0, 15]] * 5
    ratio0 = [one_hot(4), one_hot(0), one_hot(1), one_hot(2), zero, zero, zero]
    ratio1 = [zero, zero, one_hot(3), one_hot(1), one_hot(2), zero, zero]
    ratio2 = [zero] * 4 + [one_hot(4), one_hot(1)]
    matrices = FasterSegMatrices((alpha0, alpha1, alpha2), (beta1, beta2), (ratio0, ratio1, ratio2), last=1)
    b32, b16 = decode_matrices(matrices)
    # 1/16 (cap: 8 - (round(8/3) + 2) = 3 skips dropped): the skip at the downsampling layer 4 becomes its next
    # best (conv_2x); layers 5-7 are all skips after the downsampling, so the least likely (layer 5) becomes
    # conv_2x and the other two are dropped (the last one with its width); widths: ratio_0 rows 0-3 and
    # ratio_1 row 4 (the node each cell outputs to)
    assert b16 == FasterSegBranch(
        ("conv_2x", "conv", "conv_downup", "conv_2x_downup", "conv_2x", "conv_2x"),
        (0, 0, 0, 0, 0, 1),
        (1.0, 4 / 12, 6 / 12, 8 / 12, 8 / 12),
    )
    # 1/32 (cap 8 - (3 + 4) = 1): of the skips at layers 4 and 6 the more likely (4) is dropped, 6 takes its
    # next best (conv); the skip of layer 5 downsamples, so it is its next best (conv_2x); widths from ratio_0
    # rows 0-1, ratio_1 rows 2-3, ratio_2 rows 4-5
    assert b32 == FasterSegBranch(
        ("conv_2x", "conv", "conv_downup", "conv_2x_downup", "conv_2x", "conv", "conv_downup"),
        (0, 0, 0, 1, 1, 2, 2),
        (1.0, 4 / 12, 10 / 12, 6 / 12, 1.0, 6 / 12),
    )
    # 1/8 (cap 5): the four skips of layers 4-7 are dropped, the last with its width
    second = decode_matrices(FasterSegMatrices((alpha0, alpha1, alpha2), (beta1, beta2), matrices.ratio, 0))
    assert second == (b32, FasterSegBranch(
        ("conv_2x", "conv", "conv_downup", "conv_2x_downup"), (0, 0, 0, 0), (1.0, 4 / 12, 6 / 12)))  # fmt: skip
    # the space decodes the same vector to the same network, keeps the matrices and encodes them back
    space = FasterSegSpace(min_depth=4, max_depth=8, width=None)
    g = space.decode(matrices.flat())
    assert g.branches == (b32, b16) and g.matrices == matrices and space.encode(g).tolist() == matrices.flat()


def test_decoding_replays_fasterseg_s_in_place_edits() -> None:
    """FasterSeg decodes the 1/8, 1/16 and 1/32 paths in turn on the same alphas, masking skips in place: the
    1/8 decoding (6 skips, cap 5) turns the least likely one (layer 2) into conv_downup, which the 1/16 branch
    then keeps instead of dropping it with the skips of layers 1 and 3 (its cap, 3, would allow all three)."""
    conv = op_row("conv")
    alpha0 = [op_row("conv_2x"), op_row("skip"), op_row("skip", 11, next_best="conv_downup"), op_row("skip"),
              op_row("skip", next_best="conv_2x_downup"), op_row("skip"), op_row("skip"), conv]  # fmt: skip
    beta1 = [[0, 15]] * 4 + [[15, 0], [0, 15]]  # 1/16 downsamples at layer 4
    m = FasterSegMatrices((alpha0, [conv] * 7, [conv] * 6), (beta1, [[0, 15]] * 5), (), last=1)
    b32, b16 = decode_matrices(m, widths=(0.5,))
    assert b16.ops == ("conv_2x", "conv_downup", "conv_2x_downup", "conv", "conv", "conv")
    assert b16.path == (0, 0, 0, 1, 1, 1)
    assert b32.ops == ("conv_2x", "conv_downup", *["conv"] * 5) and b32.path == (0, 0, 1, 1, 1, 2, 2)


# ------------------------------------------------------------------------------ encoding, operators, key
def test_sample_encode_decode_roundtrip_and_forward() -> None:
    space = FasterSegSpace(min_depth=4, max_depth=8)
    lo, hi = space.bounds()
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(30)]
    assert len(set(samples)) == 30
    for g in samples:
        assert space.violations(g) == [] and set(g.branches[0].widths) | set(g.branches[1].widths) == {0.333333}
        x = space.encode(g)
        assert x.shape == (space.n_var,) and (x >= lo).all() and (x <= hi).all()
        assert space.decode(x) == g and np.array_equal(space.encode(space.decode(x)), x)
        loaded = FasterSegGenotype.from_dict(yaml.safe_load(yaml.safe_dump(g.to_dict())))
        assert loaded == g and np.array_equal(space.encode(loaded), x)  # the YAML keeps the matrices
    assert {g.lasts[1] for g in samples} == {0, 1}
    logits = FasterSegNet(samples[0], 5, aux_heads=False)(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 5, 64, 64)
    bare = FasterSegGenotype(samples[0].branches, samples[0].fch, samples[0].stem_head_width)
    assert bare == samples[0] and "matrices" not in bare.to_dict()
    with pytest.raises(ValueError, match="no matrices"):
        space.encode(bare)
    with pytest.raises(ValueError, match="do not fit"):
        FasterSegSpace(max_depth=9).encode(samples[0])
    with pytest.raises(ValueError, match="max_depth"):
        FasterSegSpace(min_depth=3, max_depth=5)


def test_mutation_redraws_one_matrix_row() -> None:
    space = FasterSegSpace(min_depth=4, max_depth=8)  # fixed width: alpha and beta rows (and last)
    rows = space.variable_groups()
    assert sorted(i for r in rows for i in r) == list(range(space.n_var))
    assert sorted(len(r) for r in rows) == [1] + [2] * (6 + 5) + [5] * (8 + 7 + 6)
    rng = np.random.default_rng(3)
    hit = set()
    for _ in range(60):
        x = space.sample_encoding(rng)
        y = space.mutate(x, rng, 0.0)
        changed = np.flatnonzero(x != y)
        row = next(r for r in rows if changed[0] in r)
        assert set(changed) <= set(row)  # one row (or last) redrawn, nothing else
        hit.add(len(row))
    assert hit >= {2, 5}  # beta and alpha rows
    with_ratio = FasterSegSpace(min_depth=4, max_depth=8, width=None)
    assert len(with_ratio.variable_groups()) == len(rows) + 7 + 7 + 6  # + ratio rows


def test_crossover_takes_whole_matrices_from_either_parent() -> None:
    space = FasterSegSpace(min_depth=4, max_depth=8, width=None)
    units = space.crossover_groups()
    assert len(units) == 1 + 3 + 2 + 3  # last, alphas, betas, ratios
    rng = np.random.default_rng(1)
    mixed = 0
    for _ in range(10):
        a, b = space.sample_encoding(rng), space.sample_encoding(rng)
        first, second = space.crossover(a, b, rng)
        for unit in units:
            assert (np.array_equal(first[unit], a[unit]) and np.array_equal(second[unit], b[unit])) or (
                np.array_equal(first[unit], b[unit]) and np.array_equal(second[unit], a[unit])
            )
        mixed += not (np.array_equal(first, a) or np.array_equal(first, b))
        assert space.decode(first).matrices is not None
    assert mixed >= 5


def test_encodings_of_one_network_share_the_key() -> None:
    space = FasterSegSpace(min_depth=4, max_depth=8)
    rng = np.random.default_rng(2)
    x = space.sample_encoding(rng)
    g = space.decode(x)
    twin = x.copy()
    alpha2_row0 = space.crossover_groups()[3][:5]  # layer 2 at 1/32: on no path (1/32 starts at layer >= 5)
    twin[alpha2_row0] = (twin[alpha2_row0] + 7) % 16
    assert not np.array_equal(x, twin)
    assert space.decode(twin) == g and space.key(space.decode(twin)) == space.key(g)
    assert space.decode(twin).matrices != g.matrices and "matrices" not in space.key(g)
    other = x.copy()
    other[1:6] = op_row("conv_2x" if g.branches[0].ops[0] != "conv_2x" else "conv")  # layer 0: both branches
    assert space.key(space.decode(other)) != space.key(g)
    kept = GenotypeDuplicates(space).do(Population.new("X", np.stack([x, twin, other])))
    assert len(kept) == 2


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
    fixed = FasterSegSpace(min_depth=4, max_depth=8)
    assert any("fixed pruning rate" in v for v in fixed.violations(shipped()))
    assert any("do not fit" in v for v in fixed.violations(shipped()))
    assert not FasterSegSpace(width=None).violations(shipped())


def test_evolution_beats_random_on_a_known_objective(tmp_path: Path) -> None:
    space = FasterSegSpace(min_depth=4, max_depth=10)

    def score(g: FasterSegGenotype) -> float:  # more conv_2x cells is better
        return float(sum(b.ops.count("conv_2x") for b in g.branches))

    def cost(g: FasterSegGenotype) -> float:
        return float(sum(b.depth for b in g.branches))

    def problem(name: str) -> SearchProblem:
        evaluator = Evaluator({"cost": cost, "score": score}, Archive(tmp_path / f"{name}.jsonl", key=space.key))
        return SearchProblem(space, evaluator, [Goal("score", maximize=True)], budgets={"cost": 18})

    evo_problem, rand_problem = problem("evo"), problem("rand")
    evo = run_topk(evo_problem, n_evals=120, population=12, top_k=4, p_mutate=0.05, seed=1, progress=False).evaluated
    rand = run_random(rand_problem, 120, seed=1, progress=False)
    assert len(evo) == len(rand) == 120
    assert len(unique(evo_problem, evo)) == 120  # dedupe
    assert all(e.metrics["cost"] <= 18 and not space.violations(e.genotype) for e in evo)
    assert max(e.metrics["score"] for e in evo) > max(e.metrics["score"] for e in rand)
    assert {e.generation for e in evo} >= {0, 1, 2}  # random first pool, then offspring generations
