"""Is SasWOT- degenerate at the default? Its count per network under each ``loss_reduction``, per space.

Per space, ``--per-space`` genotypes drawn with ``np.random.default_rng(0)`` are built with seed 0 and the
space's build options, as ``stage=search score=proxy`` builds them (HyCTAS: F=8, OS 8; TNB: the BN quirk, 17
classes; the others 19 classes), and scored on the default proxy batch of ``score=proxy``
(``conf/proxy_batch/default.yaml``: 4 N(0, 1) images of 64x128, uniform labels, seed 0; TNB: 8 images of
64x64, best_proxy.yaml's protocol, as its macro space needs multiples of 64). Writes
``saswot_minus_default.md`` beside this file: how many networks score exactly 0, the median count and the
median number of scored weights.

    OMP_NUM_THREADS=1 python experiments/saswot_proxy_correlations/saswot_minus_default.py --per-space 16
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from segnas.models import build_network
from segnas.proxies import Context
from segnas.proxies.batch import scoring_batch
from segnas.proxies.saswot import LOSS_REDUCTIONS, saswot_minus
from segnas.proxies.stats import WEIGHT_GRADS, collect, default_loss, scored_layers
from segnas.spaces import get_space

HERE = Path(__file__).resolve().parent
SETTINGS = {  # space: (classes, batch size, (H, W))
    "hyctas": (19, 4, (64, 128)),
    "fasterseg": (19, 4, (64, 128)),
    "transnas_micro": (17, 8, (64, 64)),
    "transnas_macro": (17, 8, (64, 64)),
}


def counts(space_name: str, n: int) -> dict[str, list[float]]:
    """saswot_minus of ``n`` random networks of the space under every loss reduction, and their weights."""
    classes, batch, size = SETTINGS[space_name]
    space = get_space(space_name)
    options = space.build_options()
    x, y, _ = scoring_batch(None, "random", batch, size, classes, 0)
    rng = np.random.default_rng(0)
    out: dict[str, list[float]] = {how: [] for how in (*LOSS_REDUCTIONS, "weights")}
    loss = default_loss()
    for _ in range(n):
        torch.manual_seed(0)
        net = build_network(space.sample(rng), classes, **options)
        ctx = Context(net, x, y, loss, collect(net, x, y, loss, [WEIGHT_GRADS], disposable=True))  # one pass
        for how in LOSS_REDUCTIONS:
            out[how].append(saswot_minus(ctx, loss_reduction=how))
        out["weights"].append(sum(layer.weight.numel() for layer in scored_layers(net)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-space", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = ["# SasWOT- at each loss reduction (`python experiments/saswot_proxy_correlations/"
             f"saswot_minus_default.py --per-space {args.per_space}`)", "",
             "| space | batch | reduction | networks scoring 0 | median count | median scored weights |",
             "|---|---|---|---|---|---|"]
    for space_name, (_, batch, size) in SETTINGS.items():
        result = counts(space_name, args.per_space)
        weights = statistics.median(result["weights"])
        for how in LOSS_REDUCTIONS:
            values = result[how]
            zeros = sum(v == 0 for v in values)
            label = f"**{how}** (default)" if how == "image" else how
            lines.append(f"| {space_name} | {batch}x3x{size[0]}x{size[1]} | {label} | {zeros} of {len(values)} | "
                         f"{statistics.median(values):.4g} | {weights:.4g} |")
        print("\n".join(lines[-3:]), flush=True)
    (HERE / "saswot_minus_default.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
