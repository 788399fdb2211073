"""``stage=correlate``: does the supernet rank architectures like training them does? (paper Table 1, §4.5)

Samples ``stage.num_archs`` genotypes, scores each with the supernet (BN recalibration + validation
subset, as ``stage=search``) and trains each standalone from scratch for ``stage.train_epochs``; reports
Kendall tau, Spearman and Pearson between the two mIoUs (paper: tau 0.58, rho 0.79 for 10 networks
trained 40k iterations) with ``correlation.csv`` and ``correlation.png``. Both scores are kept in
``correlation.jsonl`` as they are computed, so a re-run in the same folder skips finished networks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from omegaconf import DictConfig

from segnas.callbacks.history import write_rows_csv
from segnas.metrics import rank_correlations
from segnas.search.archive import Archive
from segnas.search.evaluator import Evaluator
from segnas.spaces.hyctas import HyCTASGenotype
from segnas.stages.common import (
    build_datamodule,
    device_of,
    prepare_supernet,
    standalone_miou,
    supernet_miou,
    to_container,
    weights_sha1,
)
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def plot_correlation(rows: list[dict[str, Any]], corr: dict[str, float], path: Path) -> None:
    """Supernet-estimated vs standalone mIoU, one point per network."""
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    x = [r["supernet_miou"] for r in rows]
    y = [r["standalone_miou"] for r in rows]
    ax.scatter(x, y, c=[r["num_branches"] for r in rows], cmap="viridis", vmin=1, vmax=3, s=30)
    ax.set_xlabel("supernet mIoU (%)")
    ax.set_ylabel("standalone mIoU (%)")
    ax.set_title(f"Kendall tau {corr['kendall']:.2f}, Pearson {corr['pearson']:.2f} (n={len(rows)})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Score ``stage.num_archs`` random genotypes both ways and correlate the scores."""
    out = output_dir(cfg)
    datamodule = build_datamodule(cfg)
    module, _ = prepare_supernet(cfg, datamodule, out)
    space = module.space
    rng = np.random.default_rng([int(cfg.seed), 7])
    genotypes: list[HyCTASGenotype] = []
    while len(genotypes) < int(cfg.stage.num_archs):
        g = space.sample(rng)
        if g not in genotypes:
            genotypes.append(g)
    standalone = standalone_miou(cfg, datamodule, out / "standalone", space.key, int(cfg.stage.train_epochs),
                                 output_stride=int(module.hparams.output_stride), **space.build_options())
    evaluator = Evaluator(
        {"supernet_miou": supernet_miou(cfg, module, datamodule, device_of(cfg.stage.device)),
         "standalone_miou": standalone},
        Archive(out / "correlation.jsonl", key=space.key, context={
            "supernet_weights_sha1": weights_sha1(module.supernet), "evaluation": to_container(cfg.stage.evaluation),
            "optim": to_container(cfg.optim), "train_epochs": int(cfg.stage.train_epochs),
            "data": to_container(cfg.data), "seed": int(cfg.seed)}),
    )
    rows = []
    for i, g in enumerate(genotypes):
        metrics = evaluator(g, index=i)
        rows.append({"index": i, "num_branches": g.num_branches, "head": "_".join(map(str, g.head)), **metrics})
        log.info("network %d/%d: supernet %.2f, standalone %.2f", i + 1, len(genotypes),
                 metrics["supernet_miou"], metrics["standalone_miou"])
    corr = rank_correlations([r["supernet_miou"] for r in rows], [r["standalone_miou"] for r in rows])
    write_rows_csv(out / "correlation.csv", rows)
    plot_correlation(rows, corr, out / "correlation.png")
    log.info("Kendall tau %.3f, Pearson %.3f over %d networks", corr["kendall"], corr["pearson"], len(rows))
    return {**corr, "n": len(rows), "train_epochs": int(cfg.stage.train_epochs), "networks": rows,
            "n_computed_this_run": evaluator.n_computed}
