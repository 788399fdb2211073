"""``stage=correlate``: does the supernet rank architectures like training them does? (paper Table 1, §4.5)

Samples ``stage.num_archs`` genotypes (``stage.stratified``: in turn from each branch count), scores each
with the supernet (BN recalibration + validation subset, as ``stage=search``) and with the zero-cost
``stage.proxies`` (the network at initialisation on one batch, as ``stage=zero_shot_search``), and trains
each standalone from scratch for ``stage.train_epochs``. Reports, for the supernet mIoU and each proxy,
Kendall tau, Spearman and Pearson against the standalone mIoU with p-values and bootstrap intervals
(paper: tau 0.58, Pearson 0.79 for 10 networks trained 40k iterations) in ``results.json`` and
``correlation.md``, with ``correlation.csv`` and ``correlation.png``. Every score is kept in
``correlation.jsonl`` as it is computed, so a re-run in the same folder skips finished networks.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from omegaconf import DictConfig

from segnas.callbacks.history import write_rows_csv
from segnas.metrics.correlation import correlation_report
from segnas.models import build_network
from segnas.proxies import available, calibrate_cached
from segnas.proxies.saswot import NORMALIZATIONS
from segnas.search.archive import Archive
from segnas.search.evaluator import Evaluator
from segnas.search.objectives import ProxyScore
from segnas.spaces.base import SearchSpace
from segnas.spaces.hyctas import HyCTASGenotype
from segnas.stages.common import (
    build_datamodule,
    device_of,
    prepare_supernet,
    scoring_batch,
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


def sample_genotypes(space: SearchSpace, n: int, seed: int, stratified: bool) -> list[HyCTASGenotype]:
    """``n`` distinct genotypes from the space's prior, or (``stratified``) from each stratum in turn."""
    rng = np.random.default_rng([seed, 7])
    strata = [sub for _, sub in space.strata()] if stratified else [space]
    genotypes: list[HyCTASGenotype] = []
    for _ in range(1000 * n):
        if len(genotypes) == n:
            return genotypes
        g = strata[len(genotypes) % len(strata)].sample(rng)
        if g not in genotypes:
            genotypes.append(g)
    raise ValueError(f"stage.num_archs={n}: the space has fewer distinct genotypes (found {len(genotypes)})")


def proxy_scores(cfg: DictConfig, space: SearchSpace, num_classes: int, out: Path,
                 **network_options: Any) -> dict[str, ProxyScore]:
    """``proxy_<name>`` objectives: each zero-cost proxy of ``stage.proxies`` on the ``stage.proxy_batch``
    batch (a training batch of ``data``), networks initialised with the run's seed; saswot normalised
    (``stage.proxy_batch.normalize``) over ``saswot_calibration_archs`` random architectures of the space."""
    pb, seed = cfg.stage.proxy_batch, int(cfg.seed)
    if not cfg.stage.proxies:
        return {}
    inputs, targets, _ = scoring_batch(cfg.data, "data", int(pb.batch_size), tuple(int(v) for v in pb.resolution),
                                       num_classes, seed)
    build = functools.partial(build_network, num_classes=num_classes, **network_options)
    sample_rng = np.random.default_rng(seed + 1)

    def sample_model(rng: Any) -> torch.nn.Module:
        torch.manual_seed(rng.randrange(2**31))
        return build(space.sample(sample_rng))

    scores = {}
    for proxy in cfg.stage.proxies:
        options: dict[str, Any] = {}
        if proxy == "saswot":
            options["ranges"] = calibrate_cached(sample_model, int(pb.saswot_calibration_archs), inputs, targets,
                                                 space=f"correlate-{space.name}", cache=out / "saswot_avt.json",
                                                 seed=seed)
            options["normalize"] = str(pb.normalize)
        scores[f"proxy_{proxy}"] = ProxyScore(str(proxy), build, inputs, targets, options, seed)
    return scores


def correlation_table(reports: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per score, its correlations with the standalone mIoU, p-values and intervals."""
    lines = ["| score | n | Kendall tau (p) [95 % CI] | Spearman rho (p) | Pearson r (p) [95 % CI] |",
             "|---|---|---|---|---|"]
    for name, r in reports.items():
        lines.append(
            f"| {name} | {r['n']} | {r['kendall']:+.3f} ({r['kendall_p']:.3f}) "
            f"[{r['kendall_ci'][0]:+.2f}, {r['kendall_ci'][1]:+.2f}] | {r['spearman']:+.3f} ({r['spearman_p']:.3f}) | "
            f"{r['pearson']:+.3f} ({r['pearson_p']:.3f}) [{r['pearson_ci'][0]:+.2f}, {r['pearson_ci'][1]:+.2f}] |")
    return "\n".join(lines) + "\n"


def run(cfg: DictConfig) -> dict[str, Any]:
    """Score ``stage.num_archs`` random genotypes with the supernet, the proxies and training; correlate."""
    unknown = sorted(set(cfg.stage.proxies) - set(available()))
    if unknown:
        raise ValueError(f"stage.proxies: {unknown} are not zero-cost proxies; choose from {available()}")
    if str(cfg.stage.proxy_batch.normalize) not in NORMALIZATIONS:
        raise ValueError(f"stage.proxy_batch.normalize must be one of {list(NORMALIZATIONS)}, "
                         f"got {cfg.stage.proxy_batch.normalize!r}")
    out = output_dir(cfg)
    datamodule = build_datamodule(cfg)
    module, _ = prepare_supernet(cfg, datamodule, out)
    space = module.space
    genotypes = sample_genotypes(space, int(cfg.stage.num_archs), int(cfg.seed), bool(cfg.stage.stratified))
    network_options = {"output_stride": int(module.hparams.output_stride), **space.build_options()}
    standalone = standalone_miou(cfg, datamodule, out / "standalone", space.key, int(cfg.stage.train_epochs),
                                 **network_options)
    num_classes = int(datamodule.metadata()["num_classes"])
    proxies = proxy_scores(cfg, space, num_classes, out, **network_options)
    evaluator = Evaluator(
        {**proxies, "supernet_miou": supernet_miou(cfg, module, datamodule, device_of(cfg.stage.device)),
         "standalone_miou": standalone},
        Archive(out / "correlation.jsonl", key=space.key, context={
            "supernet_weights_sha1": weights_sha1(module.supernet), "evaluation": to_container(cfg.stage.evaluation),
            "optim": to_container(cfg.optim), "train_epochs": int(cfg.stage.train_epochs),
            "data": to_container(cfg.data), "seed": int(cfg.seed),
            "proxy_batch": to_container(cfg.stage.proxy_batch) if proxies else None}),
    )
    rows = []
    for i, g in enumerate(genotypes):
        evaluator(g, [*proxies, "supernet_miou"], index=i)  # the cheap scores are kept before training starts
        metrics = evaluator(g, index=i)
        rows.append({"index": i, "num_branches": g.num_branches, "head": "_".join(map(str, g.head)),
                     "depth": g.depth, **metrics})
        log.info("network %d/%d: supernet %.2f, standalone %.2f", i + 1, len(genotypes),
                 metrics["supernet_miou"], metrics["standalone_miou"])
    truth = [r["standalone_miou"] for r in rows]
    reports = {name: correlation_report([r[name] for r in rows], truth, seed=int(cfg.seed))
               for name in ["supernet_miou", *proxies]}
    corr = reports["supernet_miou"]
    write_rows_csv(out / "correlation.csv", rows)
    (out / "correlation.md").write_text(correlation_table(reports))
    plot_correlation(rows, corr, out / "correlation.png")
    log.info("Kendall tau %.3f (p %.3g), Pearson %.3f over %d networks", corr["kendall"], corr["kendall_p"],
             corr["pearson"], len(rows))
    return {**corr, "train_epochs": int(cfg.stage.train_epochs), "scores": reports, "networks": rows,
            "n_computed_this_run": evaluator.n_computed}
