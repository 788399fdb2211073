"""HyCTAS search space: prior, depth range, canonical genotypes, constraints, encoding, YAML round-trip and
the released architectures."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from segnas.spaces import (
    HyCTASGenotype,
    HyCTASSpace,
    arch_path,
    get_space,
    load_genotype,
    save_genotype,
)
from segnas.spaces.hyctas import DEFAULT_LAYERS, DEFAULT_MIN_LAYERS, Branch, build_plan, num_filters
from segnas.spaces.hyctas.network import HyCTASNet

CONF = Path(__file__).parents[1] / "conf" / "space" / "hyctas.yaml"


@pytest.fixture(scope="module")
def samples() -> tuple[HyCTASSpace, list[HyCTASGenotype]]:
    space = get_space("hyctas", layers=8, min_layers=4)
    rng = np.random.default_rng(0)
    return space, [space.sample(rng) for _ in range(10_000)]


def test_branch_frequencies_follow_the_prior(samples: tuple[HyCTASSpace, list[HyCTASGenotype]]) -> None:
    space, genotypes = samples
    counts = Counter(g.num_branches for g in genotypes)
    for n, p in zip((1, 2, 3), space.branch_prior, strict=True):
        assert abs(counts[n] / len(genotypes) - p) < 0.01
    heads = Counter(g.head for g in genotypes if g.num_branches == 1)
    assert set(heads) == {(8,), (16,), (32,)}
    depths = Counter(g.depth for g in genotypes)  # uniform over [min_layers, layers]
    assert sorted(depths) == [4, 5, 6, 7, 8]
    assert all(abs(c / len(genotypes) - 0.2) < 0.015 for c in depths.values())
    assert not any(b.downs[-1] for g in genotypes for b in g.branches)  # never downsample at the last cell


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
    # every set gate fuses something (canonical genotypes)
    assert all(live for g in genotypes for f, live in zip(g.fusion, g.live_gates(), strict=True) if f)


def test_decode_any_vector_in_bounds_gives_a_genotype() -> None:
    space = get_space("hyctas", layers=7, min_layers=4)
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
        "no-downsampling-at-last-cell": _genotype([(conv4, [0, 1, 0, 1])]),
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
    space = get_space("hyctas", memory_input=(1, 512, 512))
    conv = _genotype([(["conv"] * 3, [0, 0, 0])])
    attn = _genotype([(["conv", "conv", "self_attention"], [0, 0, 0])])
    big = get_space("hyctas", memory_input=(1, 1024, 1024))
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


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d.__setitem__("fusoin", d.pop("fusion")), "fusoin"),
        (lambda d: d["branches"][0].__setitem__("width", [1.0]), "width"),
    ],
)
def test_unknown_keys_are_rejected_by_name(tmp_path: Path, edit, key: str) -> None:
    data = yaml.safe_load(arch_path("hyctas_s").read_text())
    data.update(metrics={"miou": 1.0}, retrain_command="python -m segnas stage=retrain")  # metadata is fine
    assert HyCTASGenotype.from_dict(data) == load_genotype("pkg://hyctas_s")
    edit(data)
    with pytest.raises(ValueError, match=f"unknown .*'{key}'"):
        HyCTASGenotype.from_dict(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=key):
        load_genotype(path)


def test_dead_fusion_gates_are_canonical() -> None:
    conv5 = ["conv"] * 5
    # branch 1 downsamples at cell 2: gates 0 and 1 see one resolution, gates 2 and 3 two
    g = _genotype([(conv5, [0] * 5), (conv5, [0, 0, 1, 0, 0])], [1, 1, 1, 0])
    assert g.live_gates() == (False, False, True, True) and g.fusion == (0, 0, 1, 0)
    assert g == _genotype([(conv5, [0] * 5), (conv5, [0, 0, 1, 0, 0])], [0, 0, 1, 0])
    assert _genotype([(conv5, [0, 1, 0, 0, 0])], [1, 1, 1, 1]).fusion == (0,) * 4  # one branch fuses nothing
    assert [len(build_plan(g, 4).fusion_edges(layer)) for layer in range(4)] == [0, 0, 2, 0]
    space = get_space("hyctas", layers=5)
    x = space.encode(g)
    x[list(space.genes.gates[:2])] = 1  # dead gates set in the encoding decode to the same genotype and key
    assert space.decode(x) == g and space.key(space.decode(x)) == space.key(g)


def test_defaults_are_the_conf_values_and_hold_the_released_networks() -> None:
    conf = yaml.safe_load(CONF.read_text())
    assert conf.pop("name") == "hyctas" and conf.pop("_target_") == "segnas.spaces.space_from_config"
    default, configured = HyCTASSpace(), get_space("hyctas", **conf)
    assert (conf["layers"], conf["min_layers"]) == (DEFAULT_LAYERS, DEFAULT_MIN_LAYERS)
    assert vars(default) == vars(configured)  # every setting: the code default is the conf value
    for name in ("hyctas_s", "hyctas_m", "hyctas_l"):
        g = load_genotype(f"pkg://{name}")
        assert default.violations(g) == [] and configured.violations(g) == [], name
        assert default.decode(default.encode(g)) == g
    assert get_space("hyctas", layers=6).min_layers == 6  # min_layers is capped at layers
    with pytest.raises(ValueError, match="at least 4"):
        get_space("hyctas", layers=6, min_layers=3)


def test_depth_mutation_and_crossover_move_late_downsamplings() -> None:
    space = get_space("hyctas", layers=10, min_layers=4)
    genes = space.genes
    rng = np.random.default_rng(0)
    for _ in range(300):
        x = space.sample_encoding(rng)
        g = space.decode(x)
        y = x.copy()
        y[genes.depth] = 4
        shallow = space.decode(space.fit_downs(y, rng))
        assert shallow.depth == 4 and shallow.head == g.head and space.violations(shallow) == []
        y[genes.depth] = 10  # deeper: the downsampling cells stay where they are
        deep = space.decode(space.fit_downs(y, rng))
        assert [b.down_layers for b in deep.branches] == [b.down_layers for b in g.branches]
    valid = 0
    for _ in range(300):
        a, b = space.sample_encoding(rng), space.sample_encoding(rng)
        b[genes.count] = a[genes.count]
        valid += all(not space.violations(space.decode(c)) for c in space.crossover(a, b, rng))
    assert valid > 150
    mutated = [space.decode(space.mutate(space.sample_encoding(rng), rng, 0.5)) for _ in range(300)]
    assert len({g.depth for g in mutated}) == 7
    assert not any(b.downs[-1] for g in mutated for b in g.branches)


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
        assert get_space("hyctas").violations(g) == []
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
    assert len(groups) == 2 + 3 * 5 + 3 + 4 and [genes.count] in groups and [genes.depth] in groups
    assert space.build_options() == {"filter_multiplier": 4, "output_stride": 8}
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
