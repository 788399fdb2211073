"""Cost model benchmark: analytic MACs and params of genotypes vs building and tracing their networks."""

from __future__ import annotations

import os
import time

import numpy as np
from registry import Table, benchmark

from segnas.spaces import analytic_costs, get_space, traced_costs

SHAPE = (1, 3, 256, 512)  # stage=zero_shot_search's cost_input
SETTINGS = (("fasterseg", 16), ("hyctas", 8))  # default spaces, networks per space
REPEATS = 20


@benchmark
def search_cost_model() -> Table:
    """Milliseconds per network to get its (MACs, params): tracing (build the network, fvcore trace: what every
    search and budget check did) vs the analytic cost model (segnas.spaces.costs; first call on each
    genotype, and the median of repeated passes), the speed-up (tracing / the slower of the two), whether every result was
    equal, and the machine's load average (other jobs share its cores)."""
    rows: Table = []
    for name, n in SETTINGS:
        space = get_space(name)
        options = space.build_options()
        rng = np.random.default_rng(0)
        genotypes = [space.sample(rng) for _ in range(n)]
        start = time.perf_counter()
        traced = [traced_costs(g, 19, SHAPE, **options) for g in genotypes]
        trace_ms = (time.perf_counter() - start) / n * 1e3
        start = time.perf_counter()
        analytic = [analytic_costs(g, 19, SHAPE, **options) for g in genotypes]
        first_ms = (time.perf_counter() - start) / n * 1e3
        passes = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            for g in genotypes:
                analytic_costs(g, 19, SHAPE, **options)
            passes.append(time.perf_counter() - start)
        repeat_ms = float(np.median(passes)) / n * 1e3
        rows.append({
            "space": name, "networks": n, "input": "x".join(map(str, SHAPE[2:])),
            "mean GMACs": f"{np.mean([m for m, _ in traced]) / 1e9:.3f}",
            "tracing ms/net": f"{trace_ms:.0f}", "cost model ms/net (first)": f"{first_ms:.3f}",
            "cost model ms/net (repeat)": f"{repeat_ms:.3f}", "speed-up": f"{trace_ms / max(first_ms, repeat_ms):.0f}x",
            "exact (all equal)": "yes" if analytic == traced else "NO", "load": f"{os.getloadavg()[0]:.1f}",
        })
    return rows
