"""Summary of the TransNAS-Bench-101 search study (run.py's folders) -> summary.json, results.md, plots.

Per space and budget (25/50/100/200 queries, read from each run's evaluation order): regret (dev table's best
accuracy minus the best found), the found architecture's percentile in the table and the hypervolume of
(accuracy up, params down) with a fixed reference (the table's accuracy range, the space's largest params);
mean +- standard error over seeds, and each algorithm against random search paired by seed (mean difference +-
SE, paired t-test and Wilcoxon signed-rank p, wins/ties/losses). Zero-shot: per seed a pool of 50 archs drawn
from the scored subset; the ground-truth percentile of each proxy's top pick against a random pick of the same
pool (its expectation: the pool's mean percentile; paired), and each proxy's Kendall tau over the subset.

    python experiments/tnb_search/summarize.py [--out outputs/tnb_search]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from segnas.proxies.benchmark import load
from segnas.search.pareto import hypervolume
from segnas.spaces import analytic_costs, get_space
from segnas.utils.jsonl import RecordLog

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CSV = REPO / "../shared/data/transnas/tnb101_segmentsemantic_dev.csv"
SPACES = ("micro", "macro")
VARIANTS = ("random", "topk", "nsga2", "topk_warm")
LABELS = {"random": "random search", "topk": "top-k evolution", "nsga2": "NSGA-II (acc vs params)",
          "topk_warm": "top-k + nwot warm start"}
BUDGETS = (25, 50, 100, 200)
ZERO_SHOT = ("flops", "nwot", "saswot", "best_proxy")
POOL = 50
METRIC = "valid_acc_final_epoch"


class Table:
    """One space's dev-table accuracies and params (M, at any input: params do not depend on it)."""

    def __init__(self, space: str) -> None:
        self.acc = {r.arch: r.target for r in load(CSV, space=space)}
        self.sorted = np.sort(list(self.acc.values()))
        sp = get_space(f"transnas_{space}")
        self.params = {a: analytic_costs(sp.genotype_cls(a), 17, (1, 3, 256, 256))[1] / 1e6 for a in self.acc}
        self.best, self.worst, self.max_params = float(self.sorted[-1]), float(self.sorted[0]), max(self.params.values())

    def percentile(self, value: float) -> float:
        return 100.0 * np.searchsorted(self.sorted, value, side="right") / len(self.sorted)

    def hv(self, archs: list[str]) -> float:
        return hypervolume([self.acc[a] for a in archs], [self.params[a] for a in archs], self.max_params,
                           (self.worst, self.best))


def mean_se(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "se": float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan,
            "n": len(v)}


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """``a - b`` paired by seed: mean +- SE, wins/ties/losses of ``a``, paired t-test and Wilcoxon p."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    nonzero = d[d != 0]
    return {**mean_se(d.tolist()), "wins": int((d > 0).sum()), "ties": int((d == 0).sum()),
            "losses": int((d < 0).sum()),
            "t_test_p": float(stats.ttest_rel(a, b).pvalue) if nonzero.size else 1.0,
            "wilcoxon_p": float(stats.wilcoxon(nonzero).pvalue) if nonzero.size else 1.0}


def run_archs(folder: Path) -> list[str]:
    with (folder / "evaluations.csv").open() as f:
        return [r["arch"] for r in csv.DictReader(f)]


def searches(out: Path, tables: dict[str, Table]) -> tuple[dict, list[dict], dict]:
    per_run, curves, summary = [], {}, {}
    for space in SPACES:
        t = tables[space]
        for variant in VARIANTS:
            folders = sorted((out / "runs" / space / variant).glob("seed_*"), key=lambda p: int(p.name[5:]))
            folders = [f for f in folders if (f / "results.json").is_file()]
            best_curves, hv_curves = [], []
            for folder in folders:
                archs = run_archs(folder)
                best = np.maximum.accumulate([t.acc[a] for a in archs])
                best_curves.append(t.best - best)
                hv_curves.append([t.hv(archs[:n]) for n in BUDGETS])
                results = json.loads((folder / "results.json").read_text())
                per_run.append({"space": space, "variant": variant, "seed": int(folder.name[5:]),
                                "command": (folder / "command.txt").read_text().strip(),
                                "n_evaluated": results["n_evaluated"], "best_score": results["best_score"],
                                "regret": {n: float(t.best - best[n - 1]) for n in BUDGETS if n <= len(best)},
                                "hypervolume": dict(zip(BUDGETS, hv_curves[-1], strict=True)),
                                **({"warm_start": results["warm_start"]} if "warm_start" in results else {})})
            if not folders:
                continue
            regret = np.array([c[:BUDGETS[-1]] for c in best_curves])
            curves[(space, variant)] = regret
            summary.setdefault(space, {})[variant] = {
                "seeds": len(folders),
                **{str(n): {"regret": mean_se(regret[:, n - 1].tolist()),
                            "percentile": mean_se([t.percentile(t.best - r) for r in regret[:, n - 1]]),
                            "hypervolume": mean_se([h[i] for h in hv_curves])}
                   for i, n in enumerate(BUDGETS)},
            }
    for space in summary:  # each algorithm against random search, paired by seed
        runs = {(r["variant"], r["seed"]): r for r in per_run if r["space"] == space}
        for variant in VARIANTS[1:]:
            seeds = sorted(s for v, s in runs if v == variant and ("random", s) in runs)
            if not seeds:
                continue
            vs = summary[space][variant]["vs_random"] = {"seeds": len(seeds)}
            for n in BUDGETS:
                rand, mine = (runs[("random", s)] for s in seeds), (runs[(variant, s)] for s in seeds)
                rand, mine = list(rand), list(mine)
                vs[str(n)] = {
                    "regret_reduction": paired([r["regret"][n] for r in rand], [m["regret"][n] for m in mine]),
                    "hypervolume_gain": paired([m["hypervolume"][n] for m in mine],
                                               [r["hypervolume"][n] for r in rand]),
                }
    return summary, per_run, curves


def zero_shot(out: Path, tables: dict[str, Table], seeds: int) -> dict:
    path = out / "zeroshot" / "scores.jsonl"
    if not path.is_file():
        return {}
    records = list(RecordLog(path))
    proxies = ZERO_SHOT
    extra = out / "zeroshot" / "saswot_image.jsonl"  # saswot at today's default loss_reduction, when scored
    if extra.is_file():
        image = {r["arch"]: r["saswot_image"] for r in RecordLog(extra)}
        if all(r["arch"] in image for r in records):
            records = [{**r, "saswot_image": image[r["arch"]]} for r in records]
            proxies = (*ZERO_SHOT, "saswot_image")
    summary = {}
    for k, space in enumerate(SPACES):
        t = tables[space]
        rows = [r for r in records if r["space"] == space]
        if len(rows) < POOL:
            continue
        truth = np.array([t.acc[r["arch"]] for r in rows])
        scores = {p: np.array([r[p] if r[p] is not None else math.nan for r in rows], dtype=float) for p in proxies}
        picks: dict[str, list[float]] = {p: [] for p in (*proxies, "random", "oracle")}
        for seed in range(seeds):
            pool = np.random.default_rng([seed, k]).choice(len(rows), POOL, replace=False)
            picks["random"].append(float(np.mean([t.percentile(v) for v in truth[pool]])))  # expected random pick
            picks["oracle"].append(t.percentile(truth[pool].max()))
            for p in proxies:
                s = np.where(np.isfinite(scores[p][pool]), scores[p][pool], -np.inf)
                picks[p].append(t.percentile(truth[pool[int(np.argmax(s))]]))
        kendall = {}
        for p in proxies:
            ok = np.isfinite(scores[p])
            kendall[p] = {"tau": float(stats.kendalltau(scores[p][ok], truth[ok]).statistic), "n": int(ok.sum())}
        summary[space] = {
            "scored_archs": len(rows), "pool": POOL, "seeds": seeds, "proxies": list(proxies),
            "kendall_over_scored": kendall,
            "pick_percentile": {p: mean_se(v) for p, v in picks.items()},
            "vs_random_pick": {p: paired(picks[p], picks["random"]) for p in (*proxies, "oracle")},
        }
    return summary


def zero_shot_search(out: Path) -> dict:
    """The engine's proxy-scored top-k runs: the ground truth (percentile) of their top pick, best evaluated."""
    summary = {}
    for space in SPACES:
        runs = []
        for folder in sorted((out / "zeroshot_search" / space).glob("seed_*/results.json")):
            r = json.loads(folder.read_text())
            truth = r["ground_truth"]
            runs.append({"seed": int(folder.parent.name[5:]),
                         "command": (folder.parent / "command.txt").read_text().strip(),
                         "n_evaluated": r["n_evaluated"], "seconds_per_evaluation": r["seconds_per_evaluation"],
                         "top_pick": truth["top"][0], "top_pick_percentile": truth["top"][0]["percentile"],
                         "best_evaluated_percentile": truth["best_evaluated_percentile"]})
        if runs:
            summary[space] = {"runs": runs, **{k: mean_se([r[k] for r in runs]) for k in
                                               ("top_pick_percentile", "best_evaluated_percentile")}}
    return summary


def plot_curves(curves: dict, summary: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, space in zip(axes, SPACES, strict=True):
        x = np.arange(1, BUDGETS[-1] + 1)
        for variant in VARIANTS:
            if (space, variant) not in curves:
                continue
            r = curves[(space, variant)]
            mean, se = r.mean(0), r.std(0, ddof=1) / math.sqrt(len(r))
            ax.plot(x, mean, label=f"{LABELS[variant]} ({len(r)} seeds)")
            ax.fill_between(x, mean - se, mean + se, alpha=0.25)
        ax.set(xscale="log", yscale="log", xlabel="queries (architectures scored)",
               ylabel="regret (table best - best found, acc %)", title=f"TNB-101 {space} (dev table)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_zero_shot(summary: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, space in zip(axes, SPACES, strict=True):
        if space not in summary:
            continue
        names = ("random", *summary[space]["proxies"], "oracle")
        stats_ = summary[space]["pick_percentile"]
        ax.bar(names, [stats_[n]["mean"] for n in names], yerr=[stats_[n]["se"] for n in names], capsize=3)
        ax.axhline(50, color="grey", lw=0.8, ls="--")
        ax.set(ylim=(0, 100), ylabel="ground-truth percentile of the pick",
               title=f"{space}: top-1 of a {POOL}-arch pool, {summary[space]['seeds']} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(summary: dict) -> str:
    lines = []
    for space, variants in summary["searches"].items():
        lines += [f"### {space}: regret (acc % points below the table's best), mean +- SE over seeds", "",
                  "| algorithm | " + " | ".join(f"{n} queries" for n in BUDGETS) + " |", "|---" * 5 + "|"]
        for variant, s in variants.items():
            lines.append(f"| {LABELS[variant]} | " + " | ".join(
                f"{s[str(n)]['regret']['mean']:.3f} +- {s[str(n)]['regret']['se']:.3f}" for n in BUDGETS) + " |")
        lines += ["", f"{space}: regret reduction vs random (paired by seed; + = better than random), Wilcoxon p, "
                  "wins/ties/losses", "", "| algorithm | " + " | ".join(f"{n}" for n in BUDGETS) + " |",
                  "|---" * 5 + "|"]
        for variant, s in variants.items():
            if "vs_random" not in s:
                continue
            cells = []
            for n in BUDGETS:
                d = s["vs_random"][str(n)]["regret_reduction"]
                cells.append(f"{d['mean']:+.3f} +- {d['se']:.3f} (p={d['wilcoxon_p']:.2g}; "
                             f"{d['wins']}/{d['ties']}/{d['losses']})")
            lines.append(f"| {LABELS[variant]} | " + " | ".join(cells) + " |")
        lines += ["", f"{space}: hypervolume (acc vs params, fixed reference), mean +- SE; gain vs random paired", "",
                  "| algorithm | " + " | ".join(f"{n}" for n in BUDGETS) + " |", "|---" * 5 + "|"]
        for variant, s in variants.items():
            cells = []
            for n in BUDGETS:
                h = s[str(n)]["hypervolume"]
                cell = f"{h['mean']:.4f} +- {h['se']:.4f}"
                if "vs_random" in s:
                    d = s["vs_random"][str(n)]["hypervolume_gain"]
                    cell += f" ({d['mean']:+.4f}, p={d['wilcoxon_p']:.2g})"
                cells.append(cell)
            lines.append(f"| {LABELS[variant]} | " + " | ".join(cells) + " |")
        lines.append("")
    for space, z in summary["zero_shot"].items():
        lines += [f"### {space}: zero-shot picks (top-1 of a {z['pool']}-arch pool, {z['seeds']} seeds; "
                  f"{z['scored_archs']} scored archs)", "",
                  "| proxy | Kendall tau (scored archs) | pick percentile | vs random pick (paired) | Wilcoxon p |"
                  " wins/ties/losses |", "|---|---|---|---|---|---|"]
        for p in (*z["proxies"], "random", "oracle"):
            pct = z["pick_percentile"][p]
            tau = f"{z['kendall_over_scored'][p]['tau']:.3f}" if p in z["kendall_over_scored"] else "-"
            d = z["vs_random_pick"].get(p)
            vs = (f"{d['mean']:+.1f} +- {d['se']:.1f} | {d['wilcoxon_p']:.2g} | {d['wins']}/{d['ties']}/{d['losses']}"
                  if d else "- | - | -")
            lines.append(f"| {p} | {tau} | {pct['mean']:.1f} +- {pct['se']:.1f} | {vs} |")
        lines.append("")
    for space, z in summary["zero_shot_search"].items():
        top, best = z["top_pick_percentile"], z["best_evaluated_percentile"]
        lines += [f"### {space}: zero-shot search (top-k over best_proxy, {z['runs'][0]['n_evaluated']} networks), "
                  f"{top['n']} seeds", "",
                  f"- ground-truth percentile of the top pick: {top['mean']:.1f} +- {top['se']:.1f} (per seed: "
                  + ", ".join(f"{r['top_pick_percentile']:.1f}" for r in z["runs"]) + ")",
                  f"- best ground truth among the evaluated (oracle of the searched set): {best['mean']:.1f} +- "
                  f"{best['se']:.1f}; {z['runs'][0]['seconds_per_evaluation']:.1f} s per network", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "tnb_search")
    parser.add_argument("--zero-shot-seeds", type=int, default=25)
    args = parser.parse_args()
    tables = {s: Table(s) for s in SPACES}
    search_summary, per_run, curves = searches(args.out, tables)
    summary = {
        "ground_truth": {"csv": "../shared/data/transnas/tnb101_segmentsemantic_dev.csv", "metric": METRIC,
                         **{s: {"space_size": len(t.acc), "table_best": t.best, "table_worst": t.worst,
                                "max_params_m": t.max_params} for s, t in tables.items()}},
        "budgets": list(BUDGETS),
        "searches": search_summary,
        "zero_shot": zero_shot(args.out, tables, args.zero_shot_seeds),
        "zero_shot_search": zero_shot_search(args.out),
        "prefix_check": json.loads(c.read_text()) if (c := args.out / "check.json").is_file() else None,
        "runs": per_run,
    }
    (HERE / "summary.json").write_text(json.dumps(summary, indent=1))
    (HERE / "results.md").write_text(markdown(summary) + "\n")
    plot_curves(curves, search_summary, HERE / "regret_curves.png")
    plot_zero_shot(summary["zero_shot"], HERE / "zero_shot_picks.png")
    print(markdown(summary))


if __name__ == "__main__":
    main()
