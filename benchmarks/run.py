"""`make bench`: speed and memory benchmarks, written as Markdown tables to benchmarks/results/.

Each benchmark module registers functions with ``@registry.benchmark``. Run all, or a subset by name:
``python benchmarks/run.py [name ...]``. Set SEGNAS_DATA to find CamVid (default: ../shared/data).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import bench_costs  # noqa: F401
import bench_distributed  # noqa: F401
import bench_foundation  # noqa: F401  (registers benchmarks)
import bench_hyctas  # noqa: F401
import bench_proxies  # noqa: F401
import bench_search  # noqa: F401
import torch
from registry import BENCHMARKS, Table

RESULTS = Path(__file__).resolve().parent / "results"


def to_markdown(rows: Table) -> str:
    """Rows -> a Markdown table."""
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def machine() -> str:
    """One line describing where the numbers were measured."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return f"{device}, {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {sorted(BENCHMARKS)})")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        sys.exit(f"unknown benchmark(s) {sorted(unknown)}; choose from {sorted(BENCHMARKS)}")
    RESULTS.mkdir(exist_ok=True)
    for name in args.names or list(BENCHMARKS):
        fn = BENCHMARKS[name]
        start = time.perf_counter()
        rows = fn()
        text = f"# {name}\n\n{fn.__doc__}\n\nMachine: {machine()}. Took {time.perf_counter() - start:.0f} s.\n\n"
        text += to_markdown(rows)
        (RESULTS / f"{name}.md").write_text(text)
        print(text)


if __name__ == "__main__":
    main()
