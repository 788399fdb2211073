"""Search a weighted sum of normalised hand-designed proxies on training archs; report held-out Kendall.

Reads the scores of ``collect_scores.py``. For each split seed, per space, the scored archs are shuffled
(``random.Random(seed)``) and the first ``--train`` become training archs, the rest held-out. Each proxy
of ``--terms`` is transformed (log for the size/norm proxies, identity for nwot and jacov) and normalised
with the median and std of the training archs (both spaces pooled): fixed constants, so an arch's score
never depends on the other archs scored. Every weight vector over ``--grid`` is tried
(:func:`segnas.proxies.proxy_search.search_weights`; fitness = mean over spaces of training Kendall or, with
``--baselines flops nwot``, the smallest margin over spaces above the best of those on the training archs);
the best is scored on the held-out archs beside each hand-designed proxy. Writes ``results.json``,
``results.md`` and, for the first split seed, ``--yaml`` (the proxy file, :mod:`segnas.proxies.proxy_file`).

    OMP_NUM_THREADS=1 python combine.py --scores scores_b8_r64.csv --train 100 --seeds 0 1 2 \
        --yaml ../best_proxy.yaml
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from segnas.proxies.proxy_file import TRANSFORMS, Combination, Term, fit_terms
from segnas.proxies.proxy_search import kendall, search_weights

SPACES = ("micro", "macro")
TRANSFORM = {
    "params": "log",
    "flops": "log",
    "snip": "log",
    "grad_norm": "log",
    "nwot": "identity",
    "jacov": "identity",
}


def _finite_kendall(x: np.ndarray, y: np.ndarray) -> float:
    keep = np.isfinite(x)
    return kendall(x[keep], y[keep])


def _split(rows: list[dict], train: int, seed: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    tr, held = [], []
    for space in SPACES:
        pool = [r for r in rows if r["space"] == space]
        rng.shuffle(pool)
        tr += pool[:train]
        held += pool[train:]
    return tr, held


def _matrix(rows: list[dict], terms: list[Term]) -> np.ndarray:
    return np.array([[t.value(r[t.proxy]) for t in terms] for r in rows])


def run_split(
    rows: list[dict], names: list[str], train: int, seed: int, grid: list[float], baselines: list[str]
) -> dict:
    """Search on one split's training archs; held-out Kendall of the best and of every leaf proxy.

    With ``baselines``, fitness = the smallest margin over spaces above the best of those proxies on the
    training archs; otherwise the mean Kendall over spaces."""
    tr, held = _split(rows, train, seed)
    usable = [r for r in tr if all(math.isfinite(TRANSFORMS[TRANSFORM[n]](r[n])) for n in names)]
    terms = fit_terms(names, TRANSFORM, {n: [r[n] for r in usable] for n in names})
    mats = {s: _matrix([r for r in usable if r["space"] == s], terms) for s in SPACES}
    ys = {s: np.array([r["target"] for r in usable if r["space"] == s]) for s in SPACES}
    start = time.time()
    baseline = None
    if baselines:
        baseline = {s: max(kendall(mats[s][:, names.index(b)], ys[s]) for b in baselines) for s in SPACES}
    fits = search_weights(mats, ys, grid, baseline)
    best = fits[0]
    combo = Combination(
        tuple(
            Term(t.proxy, t.transform, t.center, t.scale, w)
            for t, w in zip(terms, best.weights, strict=True)
            if w != 0
        )
    )
    heldout: dict[str, dict[str, float]] = {"evolved": {}}
    for space in SPACES:
        h = [r for r in held if r["space"] == space]
        y = np.array([r["target"] for r in h])
        heldout["evolved"][space] = _finite_kendall(np.array([combo.combine(r) for r in h]), y)
        for n in names:
            heldout.setdefault(n, {})[space] = _finite_kendall(np.array([r[n] for r in h]), y)
    return {
        "seed": seed,
        "train_per_space": {s: len(ys[s]) for s in SPACES},
        "heldout_per_space": {s: sum(r["space"] == s for r in held) for s in SPACES},
        "candidates": len(fits),
        "search_seconds": round(time.time() - start, 1),
        "fitness": best.fitness,
        "baseline_train": baseline,
        "kendall_train": best.kendall,
        "top5_train": [(f.weights, round(f.fitness, 4)) for f in fits[:5]],
        "combination": combo,
        "heldout": heldout,
    }


def main() -> None:
    """Parse the arguments, run every split, write the tables and the first split's proxy file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--train", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--terms", nargs="+", default=["flops", "nwot", "jacov", "params", "snip", "grad_norm"]
    )
    parser.add_argument("--grid", type=float, nargs="+", default=[-0.5, -0.25, 0.0, 0.25, 0.5, 1.0])
    parser.add_argument(
        "--protocol",
        type=json.loads,
        default={"inputs": "random", "batch_size": 8, "resolution": 64, "seed": 0, "bn_quirk": True},
    )
    parser.add_argument(
        "--baselines", nargs="*", default=[], help="fitness: margin above these (see run_split)"
    )
    parser.add_argument("--yaml", type=Path)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    with args.scores.open() as f:
        rows = [
            {k: (v if k in ("space", "arch") else float(v)) for k, v in r.items()} for r in csv.DictReader(f)
        ]
    results = [
        run_split(rows, args.terms, args.train, seed, args.grid, args.baselines) for seed in args.seeds
    ]
    lines = ["| split seed | proxy | micro | macro | mean |", "|---|---|---|---|---|"]
    for res in results:
        for name, per in res["heldout"].items():
            lines.append(
                f"| {res['seed']} | {name} | {per['micro']:.3f} | {per['macro']:.3f} | "
                f"{np.mean(list(per.values())):.3f} |"
            )
        lines.append(f"| {res['seed']} | (evolved: `{res['combination']}`) | | | |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    plain = [{**r, "combination": r["combination"].to_dict()} for r in results]
    (args.out / "results.json").write_text(json.dumps(plain, indent=1) + "\n")
    print("\n".join(lines))
    if args.yaml:
        first = results[0]
        data = {
            "name": args.yaml.stem,
            "kind": "combination",
            "combination": first["combination"].to_dict(),
            "protocol": args.protocol,
            "formula": str(first["combination"]),
            "provenance": {
                "command": "python " + " ".join(sys.argv),
                "scores": args.scores.name,
                "split_seed": first["seed"],
                "train_per_space": first["train_per_space"],
                "heldout_per_space": first["heldout_per_space"],
                "grid": args.grid,
                "fitness": (
                    f"min over micro/macro of (Kendall tau-b - best of {args.baselines}) on the training archs"
                    if args.baselines
                    else "mean over micro/macro of Kendall tau-b on the training archs"
                ),
                "fitness_value": first["fitness"],
                "kendall_train": first["kendall_train"],
                "kendall_heldout": first["heldout"],
            },
        }
        args.yaml.write_text(yaml.safe_dump(data, sort_keys=False))


if __name__ == "__main__":
    main()
