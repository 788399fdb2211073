"""Score random TransNAS-Bench-101 dev architectures with hand-designed proxies (one CSV row each).

``n`` archs per space are drawn (``random.Random(123)``, from the archs sorted by name) and scored
alternately micro/macro, so a partial file is balanced; the file is appended to and a rerun resumes.
Networks: ``transnas.build(arch, seed=0, bn_quirk=True)``; batch: ``scoring_batch(None, "random", ...)``
with seed 0 (what ``stage=proxy_evaluate`` uses with its defaults and ``seed=0``).

    OMP_NUM_THREADS=1 python collect_scores.py --batch-size 8 --resolution 64 --per-space 300 \
        --out scores_b8_r64.csv
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

from segnas.proxies import compute
from segnas.proxies.batch import scoring_batch
from segnas.proxies.benchmark import load
from segnas.spaces import transnas

PROXIES = ["params", "flops", "nwot", "jacov", "snip", "grad_norm"]
DEV_CSV = Path(__file__).resolve().parents[4] / "shared/data/transnas/tnb101_segmentsemantic_dev.csv"


def main() -> None:
    """Parse the arguments and append the scores of the not yet scored archs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEV_CSV)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--per-space", type=int, default=300)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    records = load(args.csv)
    rng = random.Random(123)
    per_space = [
        rng.sample(sorted((r for r in records if r.space == s), key=lambda r: r.arch), args.per_space)
        for s in ("micro", "macro")
    ]
    order = [r for pair in zip(*per_space, strict=True) for r in pair]
    size = (args.resolution, args.resolution)
    images, labels, _ = scoring_batch(None, "random", args.batch_size, size, transnas.NUM_CLASSES, 0)
    done = {row["arch"] for row in csv.DictReader(args.out.open())} if args.out.exists() else set()
    new = not args.out.exists()
    start = time.time()
    with args.out.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["space", "arch", "target", *PROXIES])
        for i, r in enumerate(order):
            if r.arch in done:
                continue
            scores = compute(PROXIES, transnas.build(r.arch, seed=0, bn_quirk=True), images, labels)
            writer.writerow([r.space, r.arch, r.target, *(scores[p] for p in PROXIES)])
            f.flush()
            if i % 20 == 0:
                print(i, round(time.time() - start), flush=True)


if __name__ == "__main__":
    main()
