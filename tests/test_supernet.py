"""Supernet: slices equal the standalone network at every depth, shared weights, the released networks in the
default supernet, drop path of the standalone network."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from segnas.nn import DropPath
from segnas.spaces import get_space, load_genotype
from segnas.spaces.hyctas import DEFAULT_LAYERS, KNOWN_OPS, Branch, HyCTASGenotype, build_plan
from segnas.spaces.hyctas.network import HyCTASNet
from segnas.spaces.hyctas.supernet import HyCTASSupernet

OPS = KNOWN_OPS


def _randomize_bn(module: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


@pytest.fixture(scope="module")
def space():
    return get_space("hyctas", layers=6, min_layers=4, ops=OPS, filter_multiplier=2)


@pytest.mark.parametrize("output_stride", [8, 4])
def test_extracted_network_equals_supernet(space, output_stride: int) -> None:
    torch.manual_seed(0)
    supernet = HyCTASSupernet.from_space(space, num_classes=3, output_stride=output_stride)
    _randomize_bn(supernet)
    supernet.eval()
    rng = np.random.default_rng(output_stride // 4 + 1)
    x = torch.randn(2, 3, 64, 96)
    heads, depths = set(), set()
    for _ in range(12):
        g = space.sample(rng)
        heads.add(g.head)
        depths.add(g.depth)
        net = supernet.extract(g).eval()
        with torch.no_grad():
            expected = supernet(x, g)
            torch.testing.assert_close(net(x), expected, atol=1e-5, rtol=1e-5)
        assert expected.shape == (2, 3, 64, 96)
        assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in supernet.parameters())
    assert len(heads) >= 3 and len(depths) == 3


def test_fusion_changes_the_output(space) -> None:
    supernet = HyCTASSupernet.from_space(space, num_classes=3).eval()
    g = next(g for g in (space.sample(np.random.default_rng(i)) for i in range(100)) if g.num_branches == 3)
    no_fusion = type(g)(g.branches, (0,) * len(g.fusion))
    all_fusion = type(g)(g.branches, (1,) * len(g.fusion))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(supernet(x, no_fusion), supernet(x, all_fusion))


def test_training_step_touches_only_the_sampled_cells(space) -> None:
    supernet = HyCTASSupernet.from_space(space, num_classes=3).train()
    g = space.sample(np.random.default_rng(1))
    supernet(torch.randn(2, 3, 32, 32), g).mean().backward()
    used = {
        f"{layer}_{node.in_stride}_{node.down}.{node.op}"
        for layer, nodes in enumerate(build_plan(g, space.filter_multiplier).layers)
        for node in nodes
    }
    for name, p in supernet.cells.named_parameters():
        cell = ".".join(name.split(".")[:2])
        if cell not in used:
            assert p.grad is None, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in supernet.cells.parameters())


def test_supernet_rejects_genotypes_it_cannot_run(space) -> None:
    supernet = HyCTASSupernet(layers=5, ops=("conv", "skip"), filter_multiplier=2, num_classes=3)
    g = next(g for g in (space.sample(np.random.default_rng(i)) for i in range(100)) if g.depth == 5)
    g_bad_op = type(g)(
        tuple(type(b)(("self_attention",) * 5, b.widths, b.downs) for b in g.branches), g.fusion
    )
    with pytest.raises(ValueError, match="not in the supernet"):
        supernet(torch.randn(1, 3, 32, 32), g_bad_op)
    too_deep = next(g for g in (space.sample(np.random.default_rng(i)) for i in range(100)) if g.depth == 6)
    with pytest.raises(ValueError, match="exceeds"):
        supernet(torch.randn(1, 3, 32, 32), too_deep)


def test_default_supernet_holds_the_released_networks() -> None:
    torch.manual_seed(0)
    supernet = HyCTASSupernet(filter_multiplier=1, num_classes=3)
    assert supernet.layers == DEFAULT_LAYERS >= 20
    assert not any(key.startswith(f"{DEFAULT_LAYERS - 1}_") and key.endswith("_1") for key in supernet.cells)
    _randomize_bn(supernet)
    supernet.eval()
    x = torch.randn(1, 3, 64, 64)
    for name in ("hyctas_s", "hyctas_m", "hyctas_l"):
        g = load_genotype(f"pkg://{name}")
        with torch.no_grad():
            torch.testing.assert_close(supernet.extract(g).eval()(x), supernet(x, g), atol=1e-5, rtol=1e-5)


def test_released_architectures_build_and_run() -> None:
    for name in ("hyctas_s", "hyctas_m", "hyctas_l"):
        net = HyCTASNet(
            load_genotype(f"pkg://{name}"), num_classes=4, filter_multiplier=2, output_stride=4
        ).eval()
        with torch.no_grad():
            assert net(torch.randn(1, 3, 64, 64)).shape == (1, 4, 64, 64)


def test_cells_of_every_operator_are_dropped_in_training_and_never_in_eval() -> None:
    ops = tuple(o for o in OPS if o != "skip")
    depth = len(ops)  # one stride-8 branch at full width: every cell keeps its input's shape
    g = HyCTASGenotype((Branch(ops, (1.0,) * depth, (0,) * depth),), (0,) * (depth - 1))
    net = HyCTASNet(g, num_classes=3, filter_multiplier=2, drop_path_rate=0.5).train()
    dropped: Counter[str] = Counter()

    def count(op: str):
        def hook(module, inputs, output) -> None:
            live = inputs[0].flatten(1).abs().sum(1) > 0
            dropped[op] += int((live & (output.flatten(1).abs().sum(1) == 0)).sum())

        return hook

    for cell, node in zip(net.cells, (layer[0] for layer in net.plan.layers), strict=True):
        assert node.identity_skip == (node.op == "conv")
        for m in cell[0].modules():
            if isinstance(m, DropPath):
                m.register_forward_hook(count(node.op))
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        net(x)
        assert set(dropped) == set(ops) and min(dropped.values()) > 0, dropped
        net.eval()
        dropped.clear()
        torch.manual_seed(0)
        first = net(x)
        torch.manual_seed(1)
        torch.testing.assert_close(net(x), first)
    assert sum(dropped.values()) == 0


def test_drop_path_really_drops_in_training_and_never_in_eval() -> None:
    g = load_genotype("pkg://hyctas_l")
    net = HyCTASNet(g, num_classes=3, filter_multiplier=1, drop_path_rate=0.0)
    x = torch.randn(4, 3, 32, 32)
    net.train()

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        with torch.no_grad():
            return net(x)

    torch.testing.assert_close(run(0), run(1))
    net.drop_path_rate = 0.5
    assert not torch.allclose(run(0), run(1))
    net.eval()
    torch.testing.assert_close(run(0), run(1))
    eval_out = run(0)
    net.drop_path_rate = 0.0
    torch.testing.assert_close(run(0), eval_out)
    with pytest.raises(ValueError):
        net.drop_path_rate = 1.0
