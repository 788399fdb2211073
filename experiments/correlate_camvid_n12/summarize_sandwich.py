"""Summary of ``sandwich.sh`` (issue 24 item 3): the prior and the sandwich supernet's Kendall (95 % bootstrap
interval) against the same 12 standalone CamVid trainings, and the paired bootstrap interval of the difference.

``python experiments/correlate_camvid_n12/summarize_sandwich.py OUT`` writes ``sandwich.json`` and ``sandwich.md``
here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from segnas.metrics.correlation import paired_kendall_difference

HERE = Path(__file__).resolve().parent
VARIANTS = ("prior", "sandwich")
BRIEF = ("n", "kendall", "kendall_ci", "kendall_p", "spearman", "pearson", "pearson_ci")


def summary(out: Path) -> dict:
    """Each variant's supernet correlation and the paired Kendall difference (sandwich minus prior)."""
    results = {v: json.loads((out / f"correlate_{v}" / "results.json").read_text()) for v in VARIANTS}
    networks = {v: results[v]["networks"] for v in VARIANTS}
    truth = [r["standalone_miou"] for r in networks["prior"]]
    if [r["standalone_miou"] for r in networks["sandwich"]] != truth:
        raise SystemExit("the two variants were scored against different ground truths")
    scores = {v: [r["supernet_miou"] for r in networks[v]] for v in VARIANTS}
    return {
        "variants": {v: {k: results[v]["scores"]["supernet_miou"][k] for k in BRIEF} for v in VARIANTS},
        "sandwich_minus_prior_kendall_ci": paired_kendall_difference(scores["sandwich"], scores["prior"], truth),
        "networks": [{"index": r["index"], "num_branches": r["num_branches"], "head": r["head"], "depth": r["depth"],
                      "standalone_miou": r["standalone_miou"], **{v: scores[v][i] for v in VARIANTS}}
                     for i, r in enumerate(networks["prior"])],
    }


def markdown(data: dict) -> str:
    """The two variants as a table."""
    rows = ["| supernet | n | Kendall [95 % CI] (p) | Spearman | Pearson [95 % CI] |", "|---|---|---|---|---|"]
    for name, v in data["variants"].items():
        rows.append(f"| {name} | {v['n']} | {v['kendall']:+.3f} [{v['kendall_ci'][0]:+.2f}, {v['kendall_ci'][1]:+.2f}]"
                    f" ({v['kendall_p']:.3f}) | {v['spearman']:+.3f} | {v['pearson']:+.3f} "
                    f"[{v['pearson_ci'][0]:+.2f}, {v['pearson_ci'][1]:+.2f}] |")
    low, high = data["sandwich_minus_prior_kendall_ci"]
    return "\n".join([*rows, "", f"Kendall, sandwich minus prior (paired bootstrap, 95 %): [{low:+.2f}, {high:+.2f}]", ""])


def main(out: str) -> None:
    data = summary(Path(out))
    (HERE / "sandwich.json").write_text(json.dumps(data, indent=1) + "\n")
    (HERE / "sandwich.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main(sys.argv[1])
