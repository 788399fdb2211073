"""Sample distinct FasterSeg-space architectures within the MACs budget and write their genotype YAMLs.

Usage: ``python sample.py OUT N [--max-macs-g 2.0] [--seed 0]`` -> ``OUT/genotypes/net_NN.yaml`` (each with its
MACs at 256x512 and params). Idempotent: existing files are kept, so a re-run adds only what is missing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from segnas.models import build_network
from segnas.search.objectives import Macs, Params
from segnas.spaces import save_genotype
from segnas.spaces.fasterseg import FasterSegSpace

NUM_CLASSES = 11  # CamVid
COST_INPUT = (1, 3, 256, 512)


def main() -> None:
    """Draw until ``N`` distinct in-budget architectures are written."""
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("--max-macs-g", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    space = FasterSegSpace()

    def build(genotype: object) -> object:
        return build_network(genotype, num_classes=NUM_CLASSES, **space.build_options())

    macs, params = Macs(build, COST_INPUT), Params(build)
    rng = np.random.default_rng(args.seed)
    folder = args.out / "genotypes"
    folder.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    kept = 0
    while kept < args.n:
        genotype = space.sample(rng)
        key = space.key(genotype)
        if key in seen:
            continue
        seen.add(key)
        cost = macs(genotype)
        if cost > args.max_macs_g:
            continue
        path = folder / f"net_{kept:02d}.yaml"
        if not path.exists():
            save_genotype(genotype, path, {"macs_g": cost, "params_m": params(genotype)})
            print(f"{path}: {cost:.3f} GMACs")
        kept += 1


if __name__ == "__main__":
    main()
