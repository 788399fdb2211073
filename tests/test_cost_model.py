"""The analytic cost model equals fvcore tracing (MACs and params) on random and shipped networks."""

from __future__ import annotations

import dataclasses
import functools
import logging

import numpy as np
import pytest

from segnas.metrics.cost_model import Unsupported
from segnas.models import build_network
from segnas.search.objectives import Macs, Params
from segnas.spaces import costs as cost_model
from segnas.spaces import get_space, load_genotype
from segnas.spaces.costs import analytic_costs, builder_costs, genotype_costs, traced_costs
from segnas.spaces.hyctas import build_plan

ALL_HYCTAS_OPS = ["skip", "conv", "lightweight_conv", "lightweight_conv2x", "self_attention",
                  "self_attention_reference", "transformer"]
SIZES = [(1, 3, 32, 32), (2, 3, 40, 72)]  # the second: odd feature sizes at strides 8-32 (ceil vs floor)
SPACES = {
    "hyctas": (dict(layers=4, filter_multiplier=2, ops=ALL_HYCTAS_OPS), {"filter_multiplier": 2}),
    "hyctas_os4": (dict(layers=6, filter_multiplier=3, ops=ALL_HYCTAS_OPS),
                   {"filter_multiplier": 3, "output_stride": 4, "drop_path_rate": 0.1}),
    "fasterseg": (dict(max_depth=8), {}),
    "fasterseg_widths": (dict(max_depth=7, width=None), {"init": "default"}),
}


def _sample(name: str, n: int, seed: int = 0) -> tuple[list, dict]:
    kwargs, options = SPACES[name]
    space = get_space(name.split("_")[0], **kwargs)
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)], options


def _assert_equal(genotypes: list, options: dict, sizes: list[tuple[int, ...]]) -> None:
    for g in genotypes:
        for shape in sizes:
            assert analytic_costs(g, 19, shape, **options) == traced_costs(g, 19, shape, **options), (g, shape)


@pytest.mark.parametrize("name", ["hyctas", "fasterseg"])
def test_equals_fvcore_on_sampled_networks(name: str) -> None:
    genotypes, options = _sample(name, 3, seed=3)
    _assert_equal(genotypes, options, SIZES[1:])


def test_equals_fvcore_on_fasterseg_skip_cells() -> None:
    """Decoded genotypes drop their skips; hand-written ones may keep them (same width and a width change)."""
    (g,), options = _sample("fasterseg", 1)
    first = g.branches[0]
    ops = ("skip", *first.ops[1:-1], "skip") if not first.downs()[0] else (first.ops[0], "skip", *first.ops[2:])
    branch = dataclasses.replace(first, ops=ops)
    assert not branch.violations()
    _assert_equal([dataclasses.replace(g, branches=(branch, g.branches[1]))], options, SIZES)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPACES))
def test_equals_fvcore_on_random_networks(name: str) -> None:
    """10 random networks at 2 input sizes, covering every operator, branch count, fusion and output stride."""
    genotypes, options = _sample(name, 10)
    _assert_equal(genotypes, options, SIZES)
    if name.startswith("hyctas"):
        plans = [build_plan(g, 2) for g in genotypes]
        assert {n.op for p in plans for nodes in p.layers for n in nodes} == set(ALL_HYCTAS_OPS)
        assert {g.num_branches for g in genotypes} == {1, 2, 3}
        assert any(p.fusion_edges(i) for p in plans for i in range(len(p.layers)))
    else:  # decoded networks have no skip cells
        assert {op for g in genotypes for b in g.branches for op in b.ops} == {"conv", "conv_2x", "conv_downup",
                                                                              "conv_2x_downup"}
        assert {g.lasts[1] for g in genotypes} == {0, 1}


@pytest.mark.parametrize("arch, options", [
    ("fasterseg", {}), ("hyctas_s", {"filter_multiplier": 4}),
    pytest.param("hyctas_m", {"filter_multiplier": 2, "output_stride": 4}, marks=pytest.mark.slow),
    pytest.param("hyctas_l", {"filter_multiplier": 2}, marks=pytest.mark.slow),
])
def test_equals_fvcore_on_the_shipped_networks(arch: str, options: dict) -> None:
    g = load_genotype(f"pkg://{arch}")
    assert analytic_costs(g, 19, (1, 3, 64, 96), **options) == traced_costs(g, 19, (1, 3, 64, 96), **options)


def test_unsupported_networks_are_traced(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(cost_model, "_NOTED", set())  # each reason is logged once per process
    g = get_space("fasterseg", max_depth=6).sample(np.random.default_rng(1))
    shape = (1, 3, 32, 32)
    with pytest.raises(Unsupported, match="aux_heads"):
        analytic_costs(g, 19, shape, aux_heads=True)
    with pytest.raises(Unsupported, match="input shape"):
        analytic_costs(g, 19, (1, 1, 32, 32))
    with caplog.at_level(logging.INFO, logger=cost_model.__name__):
        with_aux = genotype_costs(g, 19, shape, aux_heads=True)
    assert with_aux == traced_costs(g, 19, shape, aux_heads=True) and "aux_heads" in caplog.text
    assert with_aux[1] > analytic_costs(g, 19, shape)[1]  # the aux heads' parameters
    custom = functools.partial(build_network, num_classes=19, aux_heads=True)
    assert builder_costs(lambda genotype: custom(genotype), g, shape) == with_aux  # any builder: traced
    with pytest.raises(TypeError, match="unknown option"):  # the builder's own error
        genotype_costs(g, 19, shape, width=2)


def test_first_network_of_a_configuration_is_checked(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    space = get_space("fasterseg", max_depth=6)
    rng = np.random.default_rng(2)
    traced: list[object] = []
    monkeypatch.setattr(cost_model, "traced_costs", lambda g, *a, **k: traced.append(g) or traced_costs(g, *a, **k))
    monkeypatch.setattr(cost_model, "_AGREES", {})
    build = functools.partial(build_network, num_classes=7, **space.build_options())
    genotypes = [space.sample(rng) for _ in range(2)]
    expected = [traced_costs(g, 7, (1, 3, 32, 32)) for g in genotypes]
    macs, params = Macs(build, (1, 3, 32, 32)), Params(build, (1, 3, 32, 32))
    assert [(macs(g), params(g)) for g in genotypes] == [(m / 1e9, p / 1e6) for m, p in expected]
    assert traced == genotypes[:1]  # one check, then analytic only
    monkeypatch.setattr(cost_model, "analytic_costs", lambda *a, **k: (1, 1))  # an edited operator, say
    monkeypatch.setattr(cost_model, "_AGREES", {})
    with caplog.at_level(logging.WARNING, logger=cost_model.__name__):
        assert [macs(g) for g in genotypes] == [m / 1e9 for m, _ in expected]
    assert "tracing this configuration" in caplog.text and traced[1:] == genotypes
