"""Memory per cached net and seconds per candidate and net: exact statistics vs column sketches.

    OMP_NUM_THREADS=1 python experiments/saswot_proxy_evolution/sketch_cost.py --archs 3 --columns 256 64

Statistics of ``--archs`` random dev architectures per space (8x3x64x64 random batch, seed 0); the
candidates are SasWOT's expression and random expressions valid on every exact net.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import time
from pathlib import Path

import numpy as np
import torch

from segnas.proxies.benchmark import load
from segnas.proxies.expression import (
    SASWOT,
    Expression,
    InvalidExpression,
    LayerStats,
    layer_statistics,
    sketch_statistics,
)
from segnas.proxies.expression_space import ExpressionSpace
from segnas.spaces import transnas

CSV = Path(__file__).resolve().parents[3] / "shared/data/transnas/tnb101_segmentsemantic_dev.csv"


def _valid(e: Expression, nets: list[list[LayerStats]]) -> bool:
    try:
        for layers in nets:
            e.score(layers)
    except InvalidExpression:
        return False
    return True


def _seconds(exprs: list[Expression], nets: list[list[LayerStats]]) -> float:
    """Mean seconds per candidate and net (undefined candidates count as evaluated)."""
    start = time.perf_counter()
    for e in exprs:
        for layers in nets:
            with contextlib.suppress(InvalidExpression):
                e.score(layers)
    return (time.perf_counter() - start) / len(exprs) / len(nets)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archs", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--columns", type=int, nargs="+", default=[256])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(0)
    records = load(str(CSV), "valid_acc_final_epoch")
    chosen = [
        r for s in ("micro", "macro") for r in rng.sample([r for r in records if r.space == s], args.archs)
    ]
    gen = torch.Generator().manual_seed(0)
    batch = torch.randn(8, 3, 64, 64, generator=gen), torch.randint(0, 17, (8, 64, 64), generator=gen)
    nets = [layer_statistics(transnas.build(r.arch, seed=0), *batch) for r in chosen]
    exprs, space, np_rng = [SASWOT], ExpressionSpace(), np.random.default_rng(0)
    while len(exprs) < args.candidates:
        e = space.sample(np_rng)
        if _valid(e, nets):
            exprs.append(e)
    mb = sum(layer.nbytes() for layers in nets for layer in layers) / len(nets) / 2**20
    print(f"exact: {mb:.1f} MiB per net, {_seconds(exprs, nets):.4f} s per candidate and net")
    for columns in args.columns:
        sketches = [sketch_statistics(layers, columns, 0) for layers in nets]
        mb = sum(layer.nbytes() for layers in sketches for layer in layers) / len(sketches) / 2**20
        print(
            f"sketch {columns}: {mb:.1f} MiB per net, {_seconds(exprs, sketches):.4f} s per candidate and net"
        )


if __name__ == "__main__":
    main()
