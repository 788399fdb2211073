"""HyCTAS search space: prior, constraints, encoding, YAML round-trip and the released architectures."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from segnas.models.hyctas_net import HyCTASNet
from segnas.spaces import (
    HyCTASGenotype,
    HyCTASSpace,
    arch_path,
    get_space,
    load_genotype,
    save_genotype,
)
from segnas.spaces.hyctas import Branch, build_plan, num_filters


@pytest.fixture(scope="module")
def samples() -> tuple[HyCTASSpace, list[HyCTASGenotype]]:
    space = get_space("hyctas", layers=8)
    rng = np.random.default_rng(0)
    return space, [space.sample(rng) for _ in range(10_000)]


def test_branch_frequencies_follow_the_prior(samples: tuple[HyCTASSpace, list[HyCTASGenotype]]) -> None:
    space, genotypes = samples
    counts = Counter(g.num_branches for g in genotypes)
    for n, p in zip((1, 2, 3), space.branch_prior, strict=True):
        assert abs(counts[n] / len(genotypes) - p) < 0.01
    heads = Counter(g.head for g in genotypes if g.num_branches == 1)
    assert set(heads) == {(8,), (16,), (32,)}


def test_samples_are_valid_and_round_trip(samples: tuple[HyCTASSpace, list[HyCTASGenotype]]) -> None:
    space, genotypes = samples
    lower, upper = space.bounds()
    for g in genotypes:
        assert space.violations(g) == []
        x = space.encode(g)
        assert np.all(lower <= x) and np.all(x <= upper)
        assert space.decode(x) == g
    assert len(set(genotypes)) > 9_900


def test_samples_cover_operators_widths_and_fusion(samples: tuple[HyCTASSpace, list[HyCTASGenotype]]) -> None:
    space, genotypes = samples
    ops = Counter(o for g in genotypes for b in g.branches for o in b.ops)
    assert set(ops) == set(space.ops)
    widths = Counter(w for g in genotypes for b in g.branches for w in b.widths)
    assert set(widths) == set(space.width_mults)
    assert all(not any(g.fusion) for g in genotypes if g.num_branches == 1)
    assert any(any(g.fusion) for g in genotypes)


def test_decode_any_vector_in_bounds_gives_a_genotype() -> None:
    space = get_space("hyctas", layers=5)
    lower, upper = space.bounds()
    rng = np.random.default_rng(1)
    for _ in range(200):
        g = space.decode(rng.integers(lower, upper + 1))
        assert isinstance(space.violations(g), list)
    with pytest.raises(ValueError, match="within bounds"):
        space.decode(upper + 1)


def _genotype(branches: list[tuple[list[str], list[int]]], fusion: list[int] | None = None) -> HyCTASGenotype:
    depth = len(branches[0][0])
    return HyCTASGenotype(
        tuple(Branch(tuple(ops), (1.0,) * depth, tuple(downs)) for ops, downs in branches),
        tuple(fusion or [0] * (depth - 1)),
    )


def test_constraints_are_reported_by_name() -> None:
    space = get_space("hyctas", layers=4)
    conv4 = ["conv"] * 4
    cases = {
        "no-skip-at-downsampling": _genotype([(["conv", "skip", "conv", "conv"], [0, 1, 0, 0])]),
        "distinct-downsampling": _genotype(
            [(conv4, [0, 0, 0, 0]), (conv4, [0, 1, 0, 0]), (conv4, [0, 1, 1, 0])]
        ),
        "head": _genotype([(conv4, [1, 0, 0, 0]), (conv4, [0, 1, 1, 0])]),
        "max-stride-32": _genotype([(conv4, [1, 1, 1, 0])]),
        "fusion-needs-branches": _genotype([(conv4, [0, 0, 0, 0])], [1, 0, 0]),
        "depth": _genotype([(["conv"] * 3, [0, 0, 0])]),
        "space-ops": _genotype([(["transformer", "conv", "conv", "conv"], [0, 0, 0, 0])]),
    }
    for rule, g in cases.items():
        problems = space.violations(g)
        assert any(p.startswith(rule) for p in problems), (rule, problems)
    assert space.violations(HyCTASGenotype((), ())) == ["at-least-one-path: the sub-network has no branch"]
    assert space.violations(_genotype([(conv4, [0, 1, 0, 0])])) == []


def test_memory_limit() -> None:
    big = get_space("hyctas", layers=6, memory_input=(16, 256, 512))
    g = big.sample(np.random.default_rng(0))
    limit = big.memory_mb(g) * 0.99
    limited = get_space("hyctas", layers=6, memory_limit_mb=limit, memory_input=(16, 256, 512))
    assert any(p.startswith("memory-limit") for p in limited.violations(g))
    rng = np.random.default_rng(3)
    assert all(limited.memory_mb(limited.sample(rng)) <= limit for _ in range(50))


def test_attention_memory_is_quadratic() -> None:
    space = get_space("hyctas", layers=3, memory_input=(1, 512, 512))
    conv = _genotype([(["conv"] * 3, [0, 0, 0])])
    attn = _genotype([(["conv", "conv", "self_attention"], [0, 0, 0])])
    big = get_space("hyctas", layers=3, memory_input=(1, 1024, 1024))
    assert big.memory_mb(conv) == pytest.approx(4 * space.memory_mb(conv))
    assert big.memory_mb(attn) > 8 * space.memory_mb(attn)


def test_genotype_is_immutable_hashable_and_yaml_round_trips(tmp_path: Path) -> None:
    space = get_space("hyctas", layers=6)
    g = space.sample(np.random.default_rng(5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.fusion = ()  # type: ignore[misc]
    assert hash(g) == hash(space.decode(space.encode(g)))
    path = save_genotype(g, tmp_path / "arch.yaml")
    loaded = load_genotype(path)
    assert loaded == g and hash(loaded) == hash(g)
    assert yaml.safe_load(path.read_text())["space"] == "hyctas"


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        (lambda d: d["branches"][0]["ops"].__setitem__(1, "skip"), "no-skip-at-downsampling"),
        (lambda d: d["branches"][0]["downs"].__setitem__(0, 1), "max-stride-32"),
        (lambda d: d["branches"][0]["ops"].pop(), "one op, width and down flag per cell"),
        (lambda d: d.__setitem__("branches", []), "at-least-one-path"),
    ],
)
def test_invalid_yaml_is_rejected_naming_file_and_rule(tmp_path: Path, edit, rule: str) -> None:
    data = yaml.safe_load(arch_path("hyctas_s").read_text())
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=rule) as err:
        load_genotype(path)
    assert str(path) in str(err.value)


def test_unknown_space_and_name_handling() -> None:
    with pytest.raises(KeyError, match="unknown search space"):
        get_space("nope")
    assert get_space("hyctas", name="hyctas", layers=5).layers == 5
    with pytest.raises(ValueError, match="disagrees"):
        get_space("hyctas", name="fasterseg")


def test_released_architectures() -> None:
    s, m, l_ = (load_genotype(f"pkg://hyctas_{n}") for n in "sml")
    assert (s.num_branches, s.depth, s.head) == (1, 11, (32,))
    assert (m.num_branches, m.depth, m.head) == (1, 17, (32,))
    assert (l_.num_branches, l_.depth, l_.head) == (3, 20, (8, 16, 32))
    assert s.branches[0].down_layers == (1, 3) and m.branches[0].down_layers == (1, 15)
    assert [b.down_layers for b in l_.branches] == [(), (9,), (5, 11)]
    for g in (s, m, l_):
        assert get_space("hyctas", layers=g.depth).violations(g) == []
    # Shared trunk: all three branches share cells 0-3, branches 0 and 1 share cells 4-7.
    nodes = [len(layer) for layer in build_plan(l_, 16).layers]
    assert nodes == [1] * 4 + [2] * 4 + [3] * 12
    # Channel rounding of the reference: round(16 * 16 * 2/3) = 171, round(8 * 16 * 2/3) = 85.
    assert num_filters(16, 2 / 3, 16) == 171 and num_filters(8, 2 / 3, 16) == 85
    assert [n.c_out for layer in build_plan(s, 16).layers for n in layer][:6] == [85, 171, 171, 171, 341, 427]


def test_hyctas_l_params_near_paper() -> None:
    net = HyCTASNet(load_genotype("pkg://hyctas_l"), num_classes=19, filter_multiplier=16, output_stride=4)
    params = sum(p.numel() for p in net.parameters())
    assert abs(params / 43.2e6 - 1) < 0.10


def test_genetic_vocabulary_strata_and_build_options() -> None:
    space = get_space("hyctas", layers=5, filter_multiplier=4)
    genes = space.genes
    groups = space.variable_groups()
    assert sorted(i for g in groups for i in g) == list(range(space.n_var))  # every variable in one group
    assert len(groups) == 1 + 3 * 5 + 3 + 4 and [genes.count] in groups
    assert space.build_options() == {"filter_multiplier": 4}
    strata = space.strata()
    assert [name for name, _ in strata] == ["1branch", "2branch", "3branch"]
    rng = np.random.default_rng(0)
    for n, (_, sub) in enumerate(strata, start=1):
        lo, hi = sub.bounds()
        assert lo[genes.count] == hi[genes.count] == n - 1 and sub.branch_prior[n - 1] == 1.0
        assert all(sub.sample(rng).num_branches == n for _ in range(5))
        other = space.with_branches(n % 3 + 1).sample(rng)
        assert any(v.startswith("branches") for v in sub.violations(other)) and not space.violations(other)
    assert space.fixed_branches is None  # with_branches copies
    with pytest.raises(ValueError, match="num_branches"):
        space.with_branches(4)
    x = space.sample_encoding(rng)
    while x[genes.count] == 2:  # a genotype with dormant branch slots
        x = space.sample_encoding(rng)
    g = space.decode(x)
    y = space.encode(g)  # dormant slots zeroed
    assert not np.array_equal(x, y) and space.decode(y) == g and space.key(space.decode(y)) == space.key(g)
