"""The supernet ranking study (issue 24): its commands, and its summary.

``python experiments/supernet_ranking/study.py commands OUT [VARIANT ...]`` prints each variant's command (the
template of ``variants.json`` filled in); ``... replicates OUT`` gathers the supernet-seed replicates
(``replicates.sh``) into ``replicates.json``. ``... summary OUT`` reads every variant's ``OUT/<name>/results.json``
and writes ``summary.json`` here (and a copy in ``truth_e<epochs>/``, one per ground truth): per variant its Kendall (with the 95 % bootstrap interval), Spearman, Pearson,
the same within each branch count, its training compute (epochs x paths per step) and the paired bootstrap
interval of its Kendall minus that of the paper's sampling at the same compute (``equal_compute_prior``: same
networks, same resamples); beside them the ground truth's own seed-to-seed agreement (the ceiling).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import yaml

from segnas.metrics.correlation import paired_kendall_difference

HERE = Path(__file__).resolve().parent
SPEC = json.loads((HERE / "variants.json").read_text())
PAPER_KENDALL = 0.58  # HyCTAS Table 1 (10 networks, Cityscapes, 40k iterations): a target, not an input
BOOTSTRAP, SEED = 2000, 0


def commands(out: str, names: list[str], train_epochs: int) -> list[str]:
    """The command of every variant (or of ``names``), in the file's order, with the ground truth trained for
    ``train_epochs`` epochs (into ``OUT/ground_truth_e<epochs>``)."""
    unknown = set(names) - {v["name"] for v in SPEC["variants"]}
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}")
    defaults = {"proxies": "[]", "proxy_options": "null"}  # a variant that scores no proxy sets no options
    return [SPEC["command"].format(**{**defaults, **v, "out": out, "train_epochs": train_epochs})
            for v in SPEC["variants"] if not names or v["name"] in names]


def paths_per_step(supernet: dict) -> int:
    """Sub-networks a step of this supernet config trains (``SupernetModule.paths_per_step``)."""
    if supernet["sampling"] == "sandwich":
        return 2 + int(supernet["sandwich_random"])
    return 1 + bool(supernet["inplace_distill"])


def _brief(report: dict) -> dict:
    return {k: report[k] for k in ("n", "kendall", "kendall_ci", "kendall_p", "spearman", "spearman_ci",
                                   "pearson", "pearson_ci")}


def summary(out: Path) -> dict:
    """The summary of the variants finished in ``out``."""
    variants, scores, truth, first = {}, {}, None, None
    for spec in SPEC["variants"]:
        path = out / spec["name"] / "results.json"
        if not path.is_file():
            continue
        results = json.loads(path.read_text())
        supernet = yaml.safe_load((path.parent / "config.yaml").read_text())["score"]["supernet"]
        paths = paths_per_step(supernet)
        rows = results["networks"]
        scores[spec["name"]] = np.array([r["supernet_miou"] for r in rows])
        standalone = np.array([r["standalone_miou"] for r in rows])
        if truth is not None and not np.array_equal(truth, standalone):
            raise SystemExit(f"{path}: another ground truth than the first variant's (not the same networks?)")
        truth = standalone
        first = first or results
        variants[spec["name"]] = {
            "sampling": supernet["sampling"], "inplace_distill": bool(supernet["inplace_distill"]),
            "sandwich_random": int(supernet["sandwich_random"]) if supernet["sampling"] == "sandwich" else None,
            "epochs": int(supernet["epochs"]), "paths_per_step": paths, "compute_path_epochs": paths * int(supernet["epochs"]),
            **_brief(results["scores"]["supernet_miou"]),
            "strata": {k: _brief(v["scores"]["supernet_miou"]) for k, v in results["strata"].items()},
        }
    if first is None:
        raise SystemExit(f"no finished variant under {out}")
    for name, variant in variants.items():  # against the paper's sampling at the same training compute
        prior = next((k for k, v in variants.items() if v["sampling"] == "prior" and not v["inplace_distill"]
                      and v["compute_path_epochs"] == variant["compute_path_epochs"]), None)
        if prior is not None:
            variant["equal_compute_prior"] = prior
            variant["kendall_minus_prior_ci"] = paired_kendall_difference(scores[name], scores[prior], truth,
                                                                          BOOTSTRAP, seed=SEED)
    agreement = next(iter(first["seed_agreement"].values()), None)
    return {
        "command": SPEC["command"], "networks": len(truth), "train_epochs": first["train_epochs"],
        "train_seeds": first["train_seeds"], "paper_kendall": PAPER_KENDALL,
        "ceiling": _brief(agreement) if agreement else None,
        "ceiling_strata": {k: _brief(next(iter(v["seed_agreement"].values())))
                           for k, v in first["strata"].items() if v["seed_agreement"]},
        "proxies": {k: _brief(v) for k, v in first["scores"].items() if k.startswith("proxy_")},
        "variants": variants,
    }


def table(summary: dict) -> str:
    """The variants as markdown rows (Kendall with intervals, Spearman, Pearson, the paired difference, strata)."""
    def ci(values: list[float]) -> str:
        return f"[{values[0]:+.2f}, {values[1]:+.2f}]"

    rows = []
    for name, v in summary["variants"].items():
        diff = ci(v["kendall_minus_prior_ci"]) + f" vs {v['equal_compute_prior']}" \
            if "kendall_minus_prior_ci" in v and v["equal_compute_prior"] != name else "-"
        strata = " / ".join(f"{s['kendall']:+.2f}" for s in v["strata"].values())
        rows.append(f"| {name} | {v['compute_path_epochs']} | {v['kendall']:+.3f} {ci(v['kendall_ci'])} | "
                    f"{v['spearman']:+.3f} | {v['pearson']:+.3f} | {diff} | {strata} |")
    return "\n".join(rows) + "\n"


def replicates(out: Path) -> dict:
    """Per replicated variant (``OUT/replicates/<variant>_s<seed>/truth_e<epochs>/results.json``), each supernet
    seed's Kendall against each ground truth, and their mean and range."""
    found: dict = {}
    for path in sorted(out.glob("replicates/*_s*/truth_e*/results.json")):
        variant, seed = path.parents[1].name.rsplit("_s", 1)
        truth = path.parent.name.removeprefix("truth_")
        found.setdefault(variant, {}).setdefault(truth, {})[f"seed_{seed}"] = json.loads(path.read_text())["kendall"]
    for truths in found.values():
        for seeds in truths.values():
            values = list(seeds.values())
            seeds.update({"mean": float(np.mean(values)), "range": [min(values), max(values)]})
    return found


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] not in ("commands", "summary", "replicates"):
        raise SystemExit(__doc__)
    if argv[0] == "replicates":
        result = replicates(Path(argv[1]))
        (HERE / "replicates.json").write_text(json.dumps(result, indent=1) + "\n")
        for variant, truths in result.items():
            for truth, seeds in truths.items():
                print(variant, truth, {k: round(v, 3) for k, v in seeds.items() if k.startswith("seed")},
                      f"mean {seeds['mean']:+.3f}")
        return
    if argv[0] == "commands":
        print("\n".join(commands(argv[1], argv[2:], int(os.environ.get("TRAIN_EPOCHS", SPEC["train_epochs"])))))
        return
    result = summary(Path(argv[1]))
    text = json.dumps(result, indent=1) + "\n"
    (HERE / "summary.json").write_text(text)  # the latest ground truth's; each one's kept in truth_e<epochs>/
    (HERE / f"truth_e{result['train_epochs']}").mkdir(exist_ok=True)
    (HERE / f"truth_e{result['train_epochs']}" / "summary.json").write_text(text)
    print(table(result), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
