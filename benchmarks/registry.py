"""Benchmark registry: ``@benchmark`` registers a function returning a table (list of row dicts)."""

from __future__ import annotations

from collections.abc import Callable

Table = list[dict[str, object]]
BENCHMARKS: dict[str, Callable[[], Table]] = {}


def benchmark(fn: Callable[[], Table]) -> Callable[[], Table]:
    """Register a benchmark under its function name."""
    BENCHMARKS[fn.__name__] = fn
    return fn
