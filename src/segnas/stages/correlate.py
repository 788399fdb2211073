"""``stage=correlate``: does the supernet rank architectures like training them does? (paper Table 1, §4.5)

Samples ``stage.num_archs`` genotypes of the supernet's space (``stage.stratified``: in turn from each
stratum, HyCTAS: branch count), scores each with the ``score=supernet`` component (BN recalibration +
validation subset, as ``stage=search``), with the zero-cost ``stage.proxies`` (the network at initialisation
on the ``stage.batch`` batch) and trains each from scratch for ``stage.train_epochs``. Reports Kendall,
Spearman and Pearson against the standalone mIoU with p-values and bootstrap intervals in ``results.json``
and ``correlation.md``, with ``correlation.csv`` and ``correlation.png``. Every score is kept in
``correlation.jsonl`` as it is computed, so a re-run in the same folder skips finished networks.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from omegaconf import DictConfig

from segnas.callbacks.history import write_rows_csv
from segnas.lit.fitting import instantiate_unwrapped
from segnas.metrics.correlation import correlation_report, correlation_table
from segnas.proxies import available
from segnas.search.archive import Archive
from segnas.search.distributed import Ranks
from segnas.search.evaluator import Evaluator
from segnas.search.plot import plot_correlation
from segnas.search.scoring import RunSetup, StandaloneScoring, proxy_objective
from segnas.spaces.base import SearchSpace
from segnas.utils.config import device_of, to_container
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Score ``stage.num_archs`` random genotypes with the supernet, the proxies and training; correlate."""
    stage = cfg.stage
    unknown = sorted(set(stage.proxies) - set(available()))
    if unknown:
        raise ValueError(f"stage.proxies: {unknown} are not zero-cost proxies; choose from {available()}")
    setup = RunSetup(cfg, output_dir(cfg), Ranks(), device_of(str(stage.device)))
    space, evaluator = _evaluator(cfg, setup)
    rng = np.random.default_rng([int(cfg.seed), 7])
    n = int(stage.num_archs)
    genotypes = space.draw_stratified(rng, n) if stage.stratified else space.draw_unique(rng, n)
    if len(genotypes) < n:
        raise ValueError(f"stage.num_archs={n}: the space has fewer distinct genotypes (found {len(genotypes)})")
    rows = []
    for i, g in enumerate(genotypes):
        evaluator(g, [m for m in evaluator.objectives if m != "standalone_miou"], index=i)  # cheap scores first
        metrics = evaluator(g, index=i)
        rows.append({"index": i, "num_branches": g.num_branches, "head": "_".join(map(str, g.head)),
                     "depth": g.depth, **metrics})
        log.info("network %d/%d: supernet %.2f, standalone %.2f", i + 1, n, metrics["supernet_miou"],
                 metrics["standalone_miou"])
    truth = [r["standalone_miou"] for r in rows]
    reports = {name: correlation_report([r[name] for r in rows], truth, seed=int(cfg.seed))
               for name in ["supernet_miou", *(m for m in evaluator.objectives if m.startswith("proxy_"))]}
    corr = reports["supernet_miou"]
    write_rows_csv(setup.out / "correlation.csv", rows)
    (setup.out / "correlation.md").write_text(correlation_table(reports))
    plot_correlation(rows, corr, setup.out / "correlation.png")
    log.info("Kendall tau %.3f (p %.3g), Pearson %.3f over %d networks", corr["kendall"], corr["kendall_p"],
             corr["pearson"], len(rows))
    return {**corr, "train_epochs": int(stage.train_epochs), "scores": reports, "networks": rows,
            "n_computed_this_run": evaluator.n_computed}


def _evaluator(cfg: DictConfig, setup: RunSetup) -> tuple[SearchSpace, Evaluator]:
    """The supernet's space and an evaluator of ``proxy_<name>``, ``supernet_miou`` and ``standalone_miou``
    over ``correlation.jsonl``."""
    stage = cfg.stage
    supernet = instantiate_unwrapped(cfg.score, _convert_="all")
    space, scored = supernet.space(setup)
    network = {**space.build_options(), **scored}
    batch = to_container(stage.batch)
    objectives = {f"proxy_{p}": proxy_objective(str(p), {}, str(stage.normalize), batch, setup, space,
                                                network, {}, {}) for p in stage.proxies}
    objectives["supernet_miou"] = supernet.objective(setup, space, network, {}, {})
    standalone = StandaloneScoring(int(stage.train_epochs))
    objectives["standalone_miou"] = standalone.objective(setup, space, network, {}, {})
    context = {**supernet.context(setup), **standalone.context(setup), "data": to_container(cfg.data),
               "train_epochs": int(stage.train_epochs), "seed": int(cfg.seed), "network": network,
               "proxy_batch": {**batch, "normalize": str(stage.normalize)} if stage.proxies else None}
    return space, Evaluator(objectives, Archive(setup.out / "correlation.jsonl", key=space.key, context=context))
