"""``stage=correlate``: does the supernet rank architectures like training them does? (paper Table 1, §4.5)

Samples ``stage.num_archs`` genotypes of the supernet's space (``stage.stratified``: in turn from each
stratum, HyCTAS: branch count), scores each with the ``score=supernet`` component (BN recalibration +
validation subset, as ``stage=search``) and with the zero-cost ``stage.proxies`` (the network at initialisation
on the ``stage.batch`` batch), kept in ``correlation.jsonl``; and trains each from scratch for
``stage.train_epochs`` once per seed of ``stage.train_seeds`` (the ground truth: their mean). Each seed's
standalone results are an archive of their own, ``<stage.truth_dir>/seed_<S>/standalone.jsonl`` (default
``truth_dir``: the run folder's ``ground_truth/``), keyed by what they depend on and not by the supernet, so
runs that compare supernets share one ground truth (a lock serialises its writers). Reports Kendall, Spearman
and Pearson against the ground truth with p-values and bootstrap intervals, overall and within each stratum,
beside the seeds' agreement with each other (the ceiling), in ``results.json`` and ``correlation.md``, with
``correlation.csv`` and ``correlation.png``. A re-run skips every finished score.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from segnas.callbacks.history import write_rows_csv
from segnas.lit.fitting import instantiate_unwrapped
from segnas.metrics.correlation import correlation_table, ranking_report
from segnas.proxies import available, proxies_options, resolved_options
from segnas.search.archive import Archive
from segnas.search.distributed import Ranks
from segnas.search.evaluator import Evaluator
from segnas.search.plot import plot_correlation
from segnas.search.scoring import RunSetup, StandaloneScoring, proxy_objective
from segnas.spaces.base import SearchSpace
from segnas.utils.config import device_of, to_container
from segnas.utils.lock import LOCK_NAME
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Score ``stage.num_archs`` random genotypes with the supernet, the proxies and training; correlate."""
    stage = cfg.stage
    unknown = sorted(set(stage.proxies) - set(available()))
    if unknown:
        raise ValueError(f"stage.proxies: {unknown} are not zero-cost proxies; choose from {available()}")
    options = proxies_options(list(stage.proxies), to_container(stage.proxy_options), "stage.proxy_options")
    seeds = [int(s) for s in stage.train_seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"stage.train_seeds: need one or more distinct seeds, got {seeds}")
    setup = RunSetup(cfg, output_dir(cfg), Ranks(), device_of(str(stage.device)))
    space, network, evaluator = _scores(cfg, setup, options)
    rng = np.random.default_rng([int(cfg.seed), 7])
    n = int(stage.num_archs)
    genotypes = space.draw_stratified(rng, n) if stage.stratified else space.draw_unique(rng, n)
    if len(genotypes) < n:
        raise ValueError(f"stage.num_archs={n}: the space has fewer distinct genotypes (found {len(genotypes)})")
    rows = []
    for i, g in enumerate(genotypes):
        metrics = evaluator(g, index=i)
        rows.append({"index": i, "num_branches": g.num_branches, "head": "_".join(map(str, g.head)),
                     "depth": g.depth, **metrics})
    truth_dir = Path(to_absolute_path(str(stage.truth_dir))) if stage.truth_dir else setup.out / "ground_truth"
    trained = 0
    for s in seeds:
        values, computed = _ground_truth(cfg, setup, space, network, s, truth_dir / f"seed_{s}", genotypes)
        trained += computed
        for row, value in zip(rows, values, strict=True):
            row[f"standalone_miou_seed{s}"] = value
    for row in rows:
        row["standalone_miou"] = float(np.mean([row[f"standalone_miou_seed{s}"] for s in seeds]))
    results = _report(cfg, setup, space, genotypes, rows, seeds, truth_dir)
    return {**results, "n_computed_this_run": evaluator.n_computed + trained, "n_trained_this_run": trained}


def _scores(cfg: DictConfig, setup: RunSetup,
            options: dict[str, dict[str, Any]]) -> tuple[SearchSpace, dict[str, Any], Evaluator]:
    """The supernet's space, its networks' options and an evaluator of ``proxy_<name>`` (with its ``options``)
    and ``supernet_miou`` over ``correlation.jsonl``."""
    stage = cfg.stage
    supernet = instantiate_unwrapped(cfg.score, _convert_="all")
    space, scored = supernet.space(setup)
    network = {**space.build_options(), **scored}
    batch = to_container(stage.batch)
    objectives = {f"proxy_{p}": proxy_objective(p, options[p], str(stage.normalize), batch, setup, space,
                                                network, {}, {}) for p in options}
    objectives["supernet_miou"] = supernet.objective(setup, space, network, {}, {})
    context = {**supernet.context(setup), "data": to_container(cfg.data), "seed": int(cfg.seed), "network": network,
               "proxy_batch": {**batch, "normalize": str(stage.normalize)} if stage.proxies else None,
               "proxy_options": {p: resolved_options(p, o) for p, o in options.items()} if options else None}
    return space, network, Evaluator(objectives, Archive(setup.out / "correlation.jsonl", key=space.key,
                                                         context=context))


def _ground_truth(cfg: DictConfig, setup: RunSetup, space: SearchSpace, network: dict[str, Any], seed: int,
                  folder: Path, genotypes: list[Any]) -> tuple[list[float], int]:
    """Each genotype's standalone mIoU trained with ``seed`` (the run's config with ``seed`` replaced: weights and
    data order), computed where ``folder``'s archive lacks it, under ``folder``'s lock; and how many were
    trained now."""
    seeded = OmegaConf.merge(cfg, {"seed": seed})
    run = RunSetup(seeded, folder, setup.ranks, setup.device)
    standalone = StandaloneScoring(int(cfg.stage.train_epochs))
    context = {**standalone.context(run), "data": to_container(seeded.data), "train_epochs": standalone.epochs,
               "seed": seed, "network": network}
    folder.mkdir(parents=True, exist_ok=True)
    log.info("ground truth, seed %d: %s", seed, folder)
    with FileLock(folder / LOCK_NAME):  # another run sharing this ground truth waits here
        archive = Archive(folder / "standalone.jsonl", key=space.key, context=context)
        evaluator = Evaluator({"standalone_miou": standalone.objective(run, space, network, {}, {})}, archive)
        values = []
        for i, g in enumerate(genotypes):
            values.append(evaluator(g)["standalone_miou"])
            log.info("network %d/%d, seed %d: standalone %.2f", i + 1, len(genotypes), seed, values[-1])
    return values, evaluator.n_computed


def _report(cfg: DictConfig, setup: RunSetup, space: SearchSpace, genotypes: list[Any], rows: list[dict[str, Any]],
            seeds: list[int], truth_dir: Path) -> dict[str, Any]:
    """Correlations overall and per stratum, against the seeds' agreement; the table, CSV and plot."""
    names = ["supernet_miou", *(f"proxy_{p}" for p in cfg.stage.proxies)]
    groups = {name: [i for i, g in enumerate(genotypes) if sub.is_valid(g)] for name, sub in space.strata()}
    report = ranking_report({m: [r[m] for r in rows] for m in names},
                            {str(s): [r[f"standalone_miou_seed{s}"] for r in rows] for s in seeds},
                            {k: v for k, v in groups.items() if v}, seed=int(cfg.seed))
    corr = report["scores"]["supernet_miou"]
    write_rows_csv(setup.out / "correlation.csv", rows)

    def table(part: dict[str, Any]) -> str:  # the scores, then the seeds' agreement
        return correlation_table({**part["scores"], **{f"seed {k}": v for k, v in part["seed_agreement"].items()}})

    tables = [table(report), *(f"\n{name} ({len(groups[name])} networks)\n\n{table(part)}"
                               for name, part in report["strata"].items())]
    (setup.out / "correlation.md").write_text("".join(tables))
    plot_correlation(rows, corr, setup.out / "correlation.png")
    log.info("Kendall tau %.3f (p %.3g), Pearson %.3f over %d networks", corr["kendall"], corr["kendall_p"],
             corr["pearson"], len(rows))
    return {**corr, "train_epochs": int(cfg.stage.train_epochs), "train_seeds": seeds, "truth_dir": str(truth_dir),
            "scores": report["scores"], "seed_agreement": report["seed_agreement"], "strata": report["strata"],
            "networks": rows}
