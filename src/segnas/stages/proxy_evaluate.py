"""``stage=proxy_evaluate``: zero-cost proxies vs TransNAS-Bench-101 ground truth (SasWOT Table 3).

For each space (micro, macro): ``repeats`` samples of ``sample_size`` benchmark architectures; each
architecture is built (:mod:`segnas.spaces.transnas`) and scored by every proxy on one batch (random
tensors or a dataset batch); Kendall/Spearman/Pearson against the benchmark target per sample, mean
and std over samples (:mod:`segnas.proxies.evaluation`). Also checks the builder (our MACs/params vs the
CSV's flops/params, Spearman) and reports how our scores rank against NASLib's scores in the CSV
(:mod:`segnas.proxies.report`). ``bn_quirk`` builds the macro nets with TNB's residual BN (eps=1,
momentum=1). Writes ``scores_<space>_<key>.jsonl`` (resumable; keyed by the batch, the build settings and
each proxy's options and definition, recorded on its first line), ``correlations.csv``,
``correlations.md``, ``correlations.png`` and returns the results dict (``results.json``).

An entry of ``stage.proxies`` ending in ``.yaml``/``.yml`` is a proxy file
(:mod:`segnas.proxies.proxy_file`, e.g. ``experiments/saswot_proxy_evolution/best_proxy.yaml``): it is
validated before any work starts, reported under its ``name`` (default: the file stem) and scored with its
own protocol (batch, resolution, seed, BN quirk), whatever the stage's settings for the other proxies.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from segnas.proxies import report
from segnas.proxies.batch import benchmark_batch
from segnas.proxies.benchmark import load
from segnas.proxies.evaluation import ScoreFile, draw_samples, score_all, summarize
from segnas.proxies.proxy_file import ProxyFile, is_proxy_file, load_proxy_files
from segnas.spaces import transnas
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def _setup(cfg: DictConfig, csv_path: str, batch: tuple[torch.Tensor, ...],
           files: dict[str, ProxyFile]) -> dict[str, Any]:  # fmt: skip
    """The ``setup`` entry of the results: benchmark, batch, sampling and the proxy files."""
    stage = cfg.stage
    return {
        "csv": csv_path,
        "target": str(cfg.benchmark.target),
        "inputs": str(stage.inputs),
        "batch_shape": list(batch[0].shape),
        "sample_size": int(stage.sample_size),
        "repeats": int(stage.repeats),
        "pool_size": stage.pool_size,
        "bn_quirk": bool(stage.bn_quirk),
        "proxy_files": {name: {"path": str(pf.path), **pf.context()} for name, pf in files.items()},
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    """Score sampled benchmark architectures with every proxy and correlate with the ground truth."""
    stage, seed = cfg.stage, int(cfg.seed)
    files = load_proxy_files(list(stage.proxies), to_absolute_path)  # validated before any work
    registered = [n for n in stage.proxies if not is_proxy_file(n)]
    names = [*registered, *files]
    scorers = {name: report.file_scorer(pf) for name, pf in files.items()}
    out = output_dir(cfg)
    spaces = list(stage.spaces)
    csv_path = to_absolute_path(str(cfg.benchmark.csv))
    records = load(csv_path, str(cfg.benchmark.target))
    batch = benchmark_batch(cfg.get("data"), str(stage.inputs), int(stage.batch_size), int(stage.resolution),
                            transnas.NUM_CLASSES, seed)  # fmt: skip
    log.info(report.plan(cfg, names, batch[0].shape, out))
    rng = random.Random(seed)
    results: dict[str, Any] = {"proxies": {n: {} for n in names}, "builder_check": {}, "naslib_agreement": {},
                               "setup": _setup(cfg, csv_path, batch, files)}  # fmt: skip
    for space in spaces:
        by_arch = {r.arch: r for r in records if r.space == space}
        samples = draw_samples(sorted(by_arch), int(stage.sample_size), int(stage.repeats), rng,
                               stage.pool_size)  # fmt: skip
        options = report.proxy_options(cfg, space, batch, out)
        context = report.score_context(cfg, space, options, batch, files)
        score = report.arch_scorer(registered, options, batch, seed, bool(stage.bn_quirk), scorers)
        store = ScoreFile(out / f"scores_{space}.csv", names, context)
        scores = score_all([a for sample in samples for a in sample], score, store, bool(stage.progress))
        summary = summarize(samples, scores, {a: by_arch[a].target for a in scores}, names)
        for name in names:
            results["proxies"][name][space] = summary[name]
        results["builder_check"][space] = report.builder_check(
            list(by_arch.values()), int(stage.builder_check_archs), int(stage.resolution), rng
        )
        results["naslib_agreement"][space] = report.naslib_agreement(scores, by_arch)
        results["setup"][f"num_scored_{space}"] = len(scores)
        log.info("%s: builder check %s", space, results["builder_check"][space])
    report.write_tables(results, spaces, out)
    report.plot(results, spaces, out)
    return results
