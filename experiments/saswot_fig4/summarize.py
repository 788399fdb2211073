"""Summarise the Figure 4 study (``run.py``): per seed, the best training Kendall found by top-k evolution and by
random expression search after 25, 50, 100, 200 and all scored expressions (read from each run's
``archive.jsonl`` in evaluation order: the search's own fitness, on column sketches), the chosen expression's
exact training Kendall and its held-out Kendall beside flops and nwot; paired differences top-k - random over
the seeds (mean +- SE, wins, Wilcoxon signed-rank p). Writes ``summary.json``, ``results.md`` and
``search_curves.png``.

    python experiments/saswot_fig4/summarize.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import wilcoxon

HERE = Path(__file__).resolve().parent
ALGORITHMS = ("topk", "random")
CHECKPOINTS = (25, 50, 100, 200, 300)


def best_so_far(archive: Path) -> list[float]:
    """The best (finite) fitness after each scored expression of the search, in evaluation order."""
    best, curve = -math.inf, []
    for line in archive.read_text().splitlines():
        record = json.loads(line)
        if "metrics" not in record or record.get("search") == "saswot_reference":
            continue
        value = record["metrics"]["kendall"]
        best = max(best, value) if value is not None and math.isfinite(value) else best
        curve.append(best)
    return curve


def run_summary(folder: Path) -> dict[str, Any]:
    """One run's curve checkpoints and its results."""
    results = json.loads((folder / "results.json").read_text())
    curve = best_so_far(folder / "archive.jsonl")
    hand = results["hand_designed_heldout"]
    return {
        "best_train_sketch_at": {str(n): curve[n - 1] for n in CHECKPOINTS if n <= len(curve)},
        "evaluated": len(curve),
        "rejected": results["search"]["rejected"],
        "best_expression": results["best_expression"],
        "kendall_train_exact": results["kendall_train"],
        "kendall_heldout": results["kendall_heldout"],
        "kendall_heldout_per_space": results["kendall_heldout_per_space"],
        "heldout_flops": hand["flops"]["mean"],
        "heldout_nwot": hand["nwot"]["mean"],
        "seconds": {k: round(v, 1) for k, v in results["cost"].items() if k.startswith("seconds")},
        "curve": curve,
    }


def paired(top: list[float], rand: list[float]) -> dict[str, Any]:
    """top-k - random over seeds: mean, SE, wins/ties/losses and the Wilcoxon signed-rank p (two-sided)."""
    diff = np.array(top) - np.array(rand)
    nonzero = diff[diff != 0]
    p = float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else math.nan
    return {"mean": float(diff.mean()), "se": float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1
            else math.nan, "wins": int((diff > 0).sum()), "ties": int((diff == 0).sum()),
            "losses": int((diff < 0).sum()), "wilcoxon_p": p, "n": len(diff)}


def compare(runs: dict[int, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Paired comparisons at each checkpoint and on the chosen expression's exact train / held-out Kendall."""
    seeds = sorted(runs)
    out: dict[str, Any] = {}
    for n in CHECKPOINTS:
        key = str(n)
        if all(key in runs[s][a]["best_train_sketch_at"] for s in seeds for a in ALGORITHMS):
            out[f"best_train_sketch_at_{n}"] = paired(*([runs[s][a]["best_train_sketch_at"][key] for s in seeds]
                                                        for a in ALGORITHMS))
    for metric in ("kendall_train_exact", "kendall_heldout"):
        out[metric] = paired(*([runs[s][a][metric] for s in seeds] for a in ALGORITHMS))
    return out


def plot(runs: dict[int, dict[str, dict[str, Any]]], path: Path) -> None:
    """Mean +- SE over seeds of the best training Kendall vs scored expressions, per algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for algorithm in ALGORITHMS:
        curves = [runs[s][algorithm]["curve"] for s in sorted(runs)]
        length = min(len(c) for c in curves)
        values = np.array([c[:length] for c in curves])
        mean = values.mean(0)
        se = values.std(0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else np.zeros(length)
        x = np.arange(1, length + 1)
        ax.plot(x, mean, label=f"{algorithm} ({len(values)} seeds)")
        ax.fill_between(x, mean - se, mean + se, alpha=0.25)
    ax.set_xlabel("scored expressions")
    ax.set_ylabel("best training Kendall tau (sketch)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(runs: dict[int, dict[str, dict[str, Any]]], comparison: dict[str, Any]) -> str:
    """Markdown: one row per seed and algorithm, then the paired differences."""
    lines = ["| seed | algorithm | best train (sketch) @100 | @300 | chosen train (exact) | held-out | "
             "held-out flops | held-out nwot | rejected |", "|" + "---|" * 9]
    for seed in sorted(runs):
        for algorithm in ALGORITHMS:
            r = runs[seed][algorithm]
            at = r["best_train_sketch_at"]
            lines.append(f"| {seed} | {algorithm} | {at.get('100', math.nan):.3f} | {at.get('300', math.nan):.3f} | "
                         f"{r['kendall_train_exact']:.3f} | {r['kendall_heldout']:.3f} | {r['heldout_flops']:.3f} | "
                         f"{r['heldout_nwot']:.3f} | {r['rejected']}/{r['evaluated']} |")
    lines += ["", "| top-k - random | mean | SE | wins/ties/losses | Wilcoxon p |", "|---|---|---|---|---|"]
    for name, c in comparison.items():
        lines.append(f"| {name} | {c['mean']:+.3f} | {c['se']:.3f} | {c['wins']}/{c['ties']}/{c['losses']} | "
                     f"{c['wilcoxon_p']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    runs: dict[int, dict[str, dict[str, Any]]] = {}
    for folder in sorted(p for p in (HERE / "runs").glob("topk_s*") if p.is_dir()):
        seed = int(folder.name.split("_s")[1])
        pair = {a: HERE / "runs" / f"{a}_s{seed}" for a in ALGORITHMS}
        if all((p / "results.json").is_file() for p in pair.values()):
            runs[seed] = {a: run_summary(p) for a, p in pair.items()}
    comparison = compare(runs)
    summary = {"seeds": sorted(runs), "runs": {s: {a: {k: v for k, v in r.items() if k != "curve"}
                                                   for a, r in pair.items()} for s, pair in runs.items()},
               "topk_minus_random": comparison}
    (HERE / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (HERE / "results.md").write_text(table(runs, comparison))
    plot(runs, HERE / "search_curves.png")
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
