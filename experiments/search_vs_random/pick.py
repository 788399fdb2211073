"""Pick the architectures a search study retrains, from a search run's ``archive.jsonl``.

``front``: ``n`` architectures spread along the searched (non-random) Pareto front of ``score`` (higher is
better) vs ``cost`` (lower), and for each the random-search architecture of closest cost (distinct) --
HyCTAS's NSGA-II vs random at matching cost. ``top``: the ``n`` best-scored searched architectures and the
first ``n`` random-search ones (all within the search budgets) -- SasWOT's zero-shot top-k vs random.
Writes ``DEST/searched_NN.yaml`` and ``DEST/random_NN.yaml`` (genotype, search metrics).

    python experiments/search_vs_random/pick.py RUN_DIR DEST --mode front --score miou --cost macs_g --n 3
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from segnas.search.pareto import pareto_indices
from segnas.spaces import SPACES, save_genotype


def records(run_dir: Path, score: str) -> list[dict]:
    """One record per architecture of the archive (its metrics merged over the records appended for it, its
    search and genotype from the first), in order of first appearance, kept when ``score`` is finite."""
    lines = (run_dir / "archive.jsonl").read_text().splitlines()[1:]
    merged: dict[str, dict] = {}
    for line in filter(str.strip, lines):
        record = json.loads(line)
        merged.setdefault(record["key"], {**record, "metrics": {}})["metrics"].update(record["metrics"])
    return [r for r in merged.values() if math.isfinite(r["metrics"].get(score, math.nan))]


def pick_front(recs: list[dict], score: str, cost: str, n: int) -> tuple[list[dict], list[dict]]:
    searched = [r for r in recs if r.get("search") != "random"]
    randoms = [r for r in recs if r.get("search") == "random"]
    front = [searched[i] for i in pareto_indices([r["metrics"][score] for r in searched],
                                                 [r["metrics"][cost] for r in searched])]
    front.sort(key=lambda r: r["metrics"][cost])
    chosen = [front[int(i)] for i in np.unique(np.round(np.linspace(0, len(front) - 1, n)).astype(int))]
    matched, left = [], list(randoms)
    for r in chosen:
        best = min(left, key=lambda x: abs(x["metrics"][cost] - r["metrics"][cost]))
        matched.append(best)
        left.remove(best)
    return chosen, matched


def pick_top(recs: list[dict], score: str, n: int) -> tuple[list[dict], list[dict]]:
    searched = sorted((r for r in recs if r.get("search") != "random"), key=lambda r: -r["metrics"][score])
    return searched[:n], [r for r in recs if r.get("search") == "random"][:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--mode", choices=("front", "top"), required=True)
    parser.add_argument("--score", required=True)
    parser.add_argument("--cost", default="macs_g")
    parser.add_argument("--n", type=int, default=3)
    args = parser.parse_args()
    recs = records(args.run_dir, args.score)
    searched, randoms = (pick_front(recs, args.score, args.cost, args.n) if args.mode == "front"
                         else pick_top(recs, args.score, args.n))
    for prefix, chosen in (("searched", searched), ("random", randoms)):
        for i, r in enumerate(chosen):
            space = SPACES[r["genotype"]["space"]]
            genotype = space.genotype_cls.from_dict({k: v for k, v in r["genotype"].items() if k != "space"})
            path = save_genotype(genotype, args.dest / f"{prefix}_{i:02d}.yaml", metrics=r["metrics"])
            print(path, r["metrics"])


if __name__ == "__main__":
    main()
