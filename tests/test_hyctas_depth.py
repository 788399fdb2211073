"""Searched depth beyond the space: the latency lookup table prices genotypes of every depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segnas.spaces import get_space
from segnas.spaces.hyctas import build_plan
from segnas.spaces.hyctas.latency_table import LatencyTable


def test_latency_table_prices_every_depth(tmp_path: Path) -> None:
    space = get_space("hyctas", layers=6, min_layers=4, filter_multiplier=2)
    rng = np.random.default_rng(0)
    by_depth = {}
    while len(by_depth) < 3:
        g = space.sample(rng)
        by_depth.setdefault(g.depth, g)
    table = LatencyTable(tmp_path, (1, 3, 32, 48), 2, 5, duration_s=0.0, min_iters=2, warmup=1)
    for depth, g in sorted(by_depth.items()):
        plan = build_plan(g, 2)
        cells = [
            f"cell/{n.op}/{n.in_stride}/{n.down}/{n.c_in}/{n.c_out}" for nodes in plan.layers for n in nodes
        ]
        edges = [
            f"edge/{nodes[u].out_stride}/{nodes[t].out_stride}/{nodes[u].c_out}/{nodes[t].c_out}"
            for layer, nodes in enumerate(plan.layers)
            for u, t in plan.fusion_edges(layer)
        ]
        head = "head/" + "_".join(map(str, plan.head)) + "/" + "_".join(map(str, plan.out_channels))
        assert len(plan.layers) == depth
        assert table(g) == pytest.approx(sum(table.entries[k] for k in ["stem", head, *cells, *edges]))
