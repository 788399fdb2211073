"""The contract every registered search space keeps: a new space is done when it passes this file.

Parametrised over :data:`segnas.spaces.SPACES`: sampling, the genetic operators, constraints, the canonical
key, the YAML round trip, the network (built through :func:`segnas.models.build_network`, forward), the
analytic cost model against fvcore and a zero-cost proxy score. ``TINY`` keeps known spaces small; a space
not listed there is tested with its defaults.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from segnas import proxies
from segnas.metrics import count_macs_params
from segnas.models import build_network
from segnas.spaces import (
    SPACES,
    SearchSpace,
    analytic_costs,
    as_genotype,
    genotype_costs,
    genotype_key,
    get_space,
    load_genotype,
    network_options,
    save_genotype,
    space_entry,
)

NUM_CLASSES = 3
INPUT = (1, 3, 64, 64)
SAMPLES = 3
TINY: dict[str, dict[str, Any]] = {  # space settings that keep the networks small
    "hyctas": {"layers": 5, "min_layers": 4, "filter_multiplier": 2},
    "fasterseg": {"max_depth": 7},
}
NAMES = sorted(SPACES)


@pytest.fixture(scope="module", params=NAMES)
def case(request: pytest.FixtureRequest) -> tuple[SearchSpace, list[Any]]:
    """A tiny space of each registered name and a few of its samples."""
    space = get_space(request.param, **TINY.get(request.param, {}))
    return space, [space.sample(np.random.default_rng(seed)) for seed in range(SAMPLES)]


def _build(space: SearchSpace, genotype: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(genotype, NUM_CLASSES, **space.build_options()).eval()


def test_registration_is_consistent(case: tuple[SearchSpace, list[Any]]) -> None:
    space, samples = case
    entry = space_entry(space.name)
    assert entry.space_cls is type(space) and entry.genotype_cls is space.genotype_cls
    assert all(isinstance(g, entry.genotype_cls) and g.space_name == space.name for g in samples)
    assert set(space.build_options()) <= set(network_options(space.name))
    if entry.costs is not None:  # the cost walk takes exactly the builder's options
        assert list(inspect.signature(entry.costs).parameters)[4:] == network_options(space.name)


def test_samples_are_valid_and_within_bounds(case: tuple[SearchSpace, list[Any]]) -> None:
    space, samples = case
    lo, hi = space.bounds()
    for genotype in samples:
        assert space.violations(genotype) == [] and space.is_valid(genotype)
        x = space.encode(genotype)
        assert x.shape == (space.n_var,) and np.all(lo <= x) and np.all(x <= hi)
    x = space.sample_encoding(np.random.default_rng(7))
    assert np.all(lo <= x) and np.all(x <= hi) and space.is_valid(space.decode(x))


def test_mutation_and_crossover_children_decode_within_bounds(case: tuple[SearchSpace, list[Any]]) -> None:
    space, samples = case
    rng = np.random.default_rng(1)
    lo, hi = space.bounds()
    a, b = (space.encode(g) for g in samples[:2])
    children = [space.mutate(a, rng, 0.3) for _ in range(5)] + list(space.crossover(a, b, rng))
    for x in children:
        assert x.shape == a.shape and np.all(lo <= x) and np.all(x <= hi)
        problems = space.violations(space.decode(x))  # valid, or rejected by the space's own constraints
        assert isinstance(problems, list) and all(isinstance(p, str) and p for p in problems)
    assert any(not np.array_equal(x, a) for x in children[:5])


def test_keys_are_canonical_and_stable(case: tuple[SearchSpace, list[Any]]) -> None:
    space, samples = case
    for genotype in samples:
        key = space.key(genotype)
        assert space.key(space.decode(space.encode(genotype))) == key
        assert space.key(as_genotype(genotype.to_dict())) == key == genotype_key(genotype)
    keys = [space.key(g) for g in samples]
    assert len(set(keys)) == len({str(g.to_dict()) for g in samples})
    drawn = space.draw_unique(np.random.default_rng(2), 4)
    assert len({space.key(g) for g in drawn}) == len(drawn) == 4


def test_yaml_round_trip(case: tuple[SearchSpace, list[Any]], tmp_path: Path) -> None:
    space, samples = case
    for i, genotype in enumerate(samples):
        path = save_genotype(genotype, tmp_path / f"g{i}.yaml", metrics={"score": 1.5}, command="retrain")
        loaded = load_genotype(path)
        assert loaded == genotype and space.key(loaded) == space.key(genotype)


def test_network_forward_costs_and_proxy(case: tuple[SearchSpace, list[Any]]) -> None:
    """The built network runs at a tiny input; analytic costs equal fvcore's; a proxy score is finite."""
    space, samples = case
    genotype, options = samples[0], space.build_options()
    net = _build(space, genotype)
    with torch.no_grad():
        logits = net(torch.randn(*INPUT))
    assert logits.shape == (INPUT[0], NUM_CLASSES, *INPUT[2:]) and torch.isfinite(logits).all()
    traced = count_macs_params(net, INPUT)
    assert genotype_costs(genotype, NUM_CLASSES, INPUT, **options) == traced
    if space_entry(space.name).costs is not None:
        assert analytic_costs(genotype, NUM_CLASSES, INPUT, **options) == traced
    x, y = torch.randn(2, *INPUT[1:]), torch.randint(0, NUM_CLASSES, (2, *INPUT[2:]))
    score = proxies.compute(["nwot"], _build(space, genotype), x, y)["nwot"]
    assert math.isfinite(score)
