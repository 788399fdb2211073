"""``stage=proxy_evaluate``: zero-cost proxies vs TransNAS-Bench-101 ground truth (SasWOT Table 3).

For each space (micro, macro): ``repeats`` samples of ``sample_size`` benchmark architectures; each
architecture is built (:mod:`segnas.spaces.transnas`) and scored by every proxy on one batch (random
tensors or a dataset batch); Kendall/Spearman/Pearson against the benchmark target per sample, mean
and std over samples. Also checks the builder (our MACs/params vs the CSV's flops/params, Spearman) and
reports how our scores rank against NASLib's scores in the CSV. ``bn_quirk`` builds the macro nets with
TNB's residual BN (eps=1, momentum=1; :mod:`segnas.spaces.transnas`). Writes ``scores_<space>_<key>.csv``
(resumable; keyed by the batch, the build settings and each proxy's options and definition, recorded in
``scores_<space>_<key>.json``), ``correlations.csv``, ``correlations.md``, ``correlations.png`` and returns
the results dict (``results.json``).

An entry of ``stage.proxies`` ending in ``.yaml``/``.yml`` is a proxy file
(:mod:`segnas.proxies.proxy_file`, e.g. ``experiments/saswot_proxy_evolution/best_proxy.yaml``): it is
validated before any work starts, reported under its ``name`` (default: the file stem) and scored with its
own protocol (batch, resolution, seed, BN quirk), whatever the stage's settings for the other proxies.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig
from scipy import stats

from segnas.metrics.complexity import count_macs_params
from segnas.proxies import calibrate_cached, compute, get
from segnas.proxies.batch import benchmark_batch, scoring_batch
from segnas.proxies.benchmark import Record, load
from segnas.proxies.evaluation import (
    COEFFICIENTS,
    ScoreFile,
    batch_digest,
    draw_samples,
    score_all,
    summarize,
)
from segnas.proxies.proxy_file import ProxyFile, is_proxy_file, load_proxy_file
from segnas.spaces import transnas
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def _proxy_options(cfg: DictConfig, space: str, batch: tuple[torch.Tensor, ...], out: Path) -> dict:
    sas = cfg.stage.saswot
    reduce = {
        "elem_reduce": sas.elem_reduce,
        "layer_reduce": sas.layer_reduce,
        "loss_reduction": sas.loss_reduction,
    }
    options: dict[str, dict[str, Any]] = {"saswot_minus": dict(reduce)}
    if "saswot" in cfg.stage.proxies:
        quirk = bool(cfg.stage.bn_quirk)
        ranges = calibrate_cached(
            lambda rng: transnas.build(
                transnas.sample(rng, space), seed=rng.randrange(2**31), bn_quirk=quirk
            ),
            int(sas.calibration_archs),
            *batch,
            space=f"transnas-{space}" + ("-bn_quirk" if quirk else ""),
            cache=out / "saswot_avt.jsonl",
            seed=int(cfg.seed),
            **reduce,
        )
        log.info("saswot AVT ranges (%s): %s", space, ranges)
        options["saswot"] = {"ranges": ranges, **reduce}
    return options


def score_context(
    cfg: DictConfig,
    space: str,
    options: dict,
    batch: tuple[torch.Tensor, ...],
    files: dict[str, ProxyFile] | None = None,
) -> dict:
    """What the scores of ``space`` depend on (the :class:`ScoreFile` key): the scoring batch, how the
    networks are built and, per proxy, its options and (expression proxies) its definition; per proxy
    file (keyed by its name), its definition and protocol."""
    proxies: dict[str, Any] = {
        name: {"options": options.get(name, {}), "definition": getattr(get(name).fn, "expression", None)}
        for name in cfg.stage.proxies
        if not is_proxy_file(name)
    }
    proxies.update({name: {"file": pf.context()} for name, pf in (files or {}).items()})
    return {
        "space": space,
        "batch": batch_digest(*batch),
        "build": {"seed": int(cfg.seed), "bn_quirk": bool(cfg.stage.bn_quirk)},
        "proxies": proxies,
    }


def load_proxy_files(names: list[str]) -> dict[str, ProxyFile]:
    """The proxy files among ``names`` (paths relative to the launch directory), validated, by their
    result name; raises before any scoring if one is bad or two results would share a name."""
    files: dict[str, ProxyFile] = {}
    for entry in names:
        if is_proxy_file(entry):
            pf = load_proxy_file(to_absolute_path(entry))
            if pf.name in files or pf.name in names:
                raise ValueError(f"{entry}: result name {pf.name!r} is used twice in stage.proxies")
            files[pf.name] = pf
    return files


def _file_scorer(pf: ProxyFile) -> Callable[[str], float]:
    """``score(arch) -> float`` of a proxy file, with its own batch and network build."""
    protocol = pf.protocol
    size = (protocol.resolution, protocol.resolution)
    images, labels, _ = scoring_batch(
        None, protocol.inputs, protocol.batch_size, size, transnas.NUM_CLASSES, protocol.seed
    )

    def score(arch: str) -> float:
        model = transnas.build(arch, seed=protocol.seed, bn_quirk=protocol.bn_quirk)
        return pf.score(model, images, labels)

    return score


def _builder_check(records: list[Record], num_archs: int, resolution: int, rng: random.Random) -> dict:
    """Spearman between our MACs/params and the benchmark CSV's own flops/params columns, on up to
    ``num_archs`` archs that carry them (MACs scale uniformly with resolution, so any valid one works).
    """
    with_ref = [r for r in records if math.isfinite(r.reference.get("flops", math.nan))]
    if len(with_ref) < 3:
        return {}
    chosen = rng.sample(with_ref, min(num_archs, len(with_ref)))
    ours = [count_macs_params(transnas.build(r.arch), (1, 3, resolution, resolution)) for r in chosen]
    return {
        "flops": float(
            stats.spearmanr([m for m, _ in ours], [r.reference["flops"] for r in chosen]).statistic
        ),
        "params": float(
            stats.spearmanr([p for _, p in ours], [r.reference["params"] for r in chosen]).statistic
        ),
        "n": len(chosen),
    }


def _naslib_agreement(scores: dict[str, dict[str, float]], records: dict[str, Record]) -> dict:
    """Spearman between our scores and NASLib's scores of the same proxy in the CSV (other batch and
    inputs, so only a rough check), over the scored archs that carry both."""
    out = {}
    for name in next(iter(scores.values()), {}):
        pairs = [
            (s[name], records[a].reference.get(name, math.nan))
            for a, s in scores.items()
            if math.isfinite(s[name]) and math.isfinite(records[a].reference.get(name, math.nan))
        ]
        if len(pairs) >= 5:
            rho = stats.spearmanr(*zip(*pairs, strict=True)).statistic
            out[name] = {"spearman": float(rho), "n": len(pairs)}
    return out


def _fmt(row: dict[str, float], coef: str) -> str:
    if not math.isfinite(row[coef]):
        return "n/a"
    return f"{row[coef]:.3f} ± {row[f'{coef}_std']:.3f}"


def write_tables(results: dict[str, Any], spaces: list[str], out: Path) -> None:
    """``correlations.csv`` (one row per proxy and space) and ``correlations.md`` (paper-style)."""
    proxies = results["proxies"]
    lines = ["proxy,space,valid," + ",".join(f"{c},{c}_std" for c in COEFFICIENTS)]
    for name, per_space in proxies.items():
        for space in spaces:
            row = per_space[space]
            values = ",".join(f"{row[c]:.6f},{row[c + '_std']:.6f}" for c in COEFFICIENTS)
            lines.append(f"{name},{space},{row['valid']:.1f},{values}")
    (out / "correlations.csv").write_text("\n".join(lines) + "\n")
    head = " | ".join(f"{s} {c[:2].title()}" for s in spaces for c in ("kd", "sp", "ps"))
    md = [f"| proxy | {head} |", "|---" * (1 + 3 * len(spaces)) + "|"]
    for name, per_space in proxies.items():
        cells = " | ".join(_fmt(per_space[s], c) for s in spaces for c in COEFFICIENTS)
        md.append(f"| {name} | {cells} |")
    (out / "correlations.md").write_text("\n".join(md) + "\n")


def plot(results: dict[str, Any], spaces: list[str], out: Path) -> None:
    """Bar chart of mean Kendall tau (± std) per proxy and space: ``correlations.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["proxies"])
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names)), 4))
    width = 0.8 / len(spaces)
    for i, space in enumerate(spaces):
        rows = [results["proxies"][n][space] for n in names]
        ax.bar(
            [k + i * width for k in range(len(names))],
            [r["kendall"] for r in rows],
            width,
            yerr=[r["kendall_std"] for r in rows],
            label=space,
        )
    ax.set_xticks(
        [k + width * (len(spaces) - 1) / 2 for k in range(len(names))], names, rotation=45, ha="right"
    )
    ax.set_ylabel("Kendall tau vs ground truth")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "correlations.png", dpi=120)
    plt.close(fig)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Score sampled benchmark architectures with every proxy and correlate with the ground truth."""
    stage = cfg.stage
    files = load_proxy_files(list(stage.proxies))
    registered = [n for n in stage.proxies if not is_proxy_file(n)]
    names = [*registered, *files]
    scorers = {name: _file_scorer(pf) for name, pf in files.items()}
    out = output_dir(cfg)
    spaces = list(stage.spaces)
    csv_path = to_absolute_path(str(cfg.benchmark.csv))
    records = load(csv_path, str(cfg.benchmark.target))
    batch = benchmark_batch(cfg.get("data"), str(cfg.stage.inputs), int(cfg.stage.batch_size),
                            int(cfg.stage.resolution), transnas.NUM_CLASSES, int(cfg.seed))
    rng = random.Random(int(cfg.seed))
    results: dict[str, Any] = {
        "proxies": {n: {} for n in names},
        "builder_check": {},
        "naslib_agreement": {},
        "setup": {
            "csv": csv_path,
            "target": str(cfg.benchmark.target),
            "inputs": str(stage.inputs),
            "batch_shape": list(batch[0].shape),
            "sample_size": int(stage.sample_size),
            "repeats": int(stage.repeats),
            "pool_size": stage.pool_size,
            "bn_quirk": bool(stage.bn_quirk),
            "proxy_files": {name: {"path": str(pf.path), **pf.context()} for name, pf in files.items()},
        },
    }
    for space in spaces:
        by_arch = {r.arch: r for r in records if r.space == space}
        samples = draw_samples(
            sorted(by_arch), int(stage.sample_size), int(stage.repeats), rng, stage.pool_size
        )
        options = _proxy_options(cfg, space, batch, out)
        store = ScoreFile(
            out / f"scores_{space}.csv", names, score_context(cfg, space, options, batch, files)
        )

        def score(arch: str, options: dict = options) -> dict[str, float]:
            model = transnas.build(arch, seed=int(cfg.seed), bn_quirk=bool(stage.bn_quirk))
            values = compute(registered, model, *batch, options=options)
            return {**values, **{name: scorer(arch) for name, scorer in scorers.items()}}

        scores = score_all([a for sample in samples for a in sample], score, store, bool(stage.progress))
        summary = summarize(samples, scores, {a: by_arch[a].target for a in scores}, names)
        for name in names:
            results["proxies"][name][space] = summary[name]
        results["builder_check"][space] = _builder_check(
            list(by_arch.values()), int(stage.builder_check_archs), int(stage.resolution), rng
        )
        results["naslib_agreement"][space] = _naslib_agreement(scores, by_arch)
        results["setup"][f"num_scored_{space}"] = len(scores)
        log.info("%s: builder check %s", space, results["builder_check"][space])
    write_tables(results, spaces, out)
    plot(results, spaces, out)
    return results
