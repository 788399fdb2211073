"""Zero-cost proxies against TransNAS-Bench-101 ground truth (SasWOT Table 3): the pieces of
``stage=proxy_evaluate`` around the sampling and correlation protocol of :mod:`segnas.proxies.evaluation`.

How a benchmark architecture is scored (:func:`arch_scorer`: built by :mod:`segnas.spaces.transnas`, every
registered proxy on one batch, every proxy file with its own protocol, :func:`file_scorer`), the proxies'
options (:func:`proxy_options`: saswot's AVT ranges, calibrated and cached), what the scores depend on
(:func:`score_context`, the key of a :class:`~segnas.proxies.evaluation.ScoreFile`), and the report: our
MACs/params against the benchmark's (:func:`builder_check`), our scores against NASLib's
(:func:`naslib_agreement`), ``correlations.csv``/``.md`` (:func:`write_tables`) and ``correlations.png``
(:func:`plot`).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from scipy import stats

from segnas.metrics.complexity import count_macs_params
from segnas.proxies import calibrate_cached, compute, get
from segnas.proxies.batch import scoring_batch
from segnas.proxies.benchmark import Record
from segnas.proxies.evaluation import COEFFICIENTS, batch_digest
from segnas.proxies.proxy_file import ProxyFile, is_proxy_file
from segnas.spaces import transnas

log = logging.getLogger(__name__)


def plan(cfg: DictConfig, names: Sequence[str], shape: Sequence[int], out: Path) -> str:
    """The line logged before any work: how many networks per space, which proxies on which batch, any
    calibration first, and where the scores go."""
    stage = cfg.stage
    per_space = int(stage.sample_size) * int(stage.repeats)
    if stage.pool_size is not None:
        per_space = min(per_space, int(stage.pool_size))
    calibration = int(stage.saswot.calibration_archs)
    first = (
        f"saswot first calibrates on {calibration} random networks per space; " if "saswot" in names else ""
    )
    return (
        f"proxy_evaluate: scoring up to {per_space} networks in each of {list(stage.spaces)} ({int(stage.repeats)} "
        f"samples of {int(stage.sample_size)}) with {len(names)} proxies {list(names)} on a {stage.inputs} "
        f"batch {list(shape)}; {first}scores go to {out}/scores_<space>_<key>.jsonl (resumable), tables to {out}"
    )


def proxy_options(cfg: DictConfig, space: str, batch: tuple[torch.Tensor, ...], out: Path) -> dict[str, Any]:
    """Per proxy, its options from ``cfg.stage.saswot``: saswot_minus's reductions and, when ``saswot`` is
    scored, its AVT ranges calibrated on ``calibration_archs`` random archs of ``space`` (cached in
    ``out/saswot_avt.jsonl``)."""
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


def file_scorer(pf: ProxyFile) -> Callable[[str], float]:
    """``score(arch) -> float`` of a proxy file, with its own batch and network build."""
    protocol = pf.protocol
    size = (protocol.resolution, protocol.resolution)
    images, labels, _ = scoring_batch(
        None, protocol.inputs, protocol.batch_size, size, transnas.NUM_CLASSES, protocol.seed
    )

    def score(arch: str) -> float:
        model = transnas.build(arch, seed=protocol.seed, bn_quirk=protocol.bn_quirk)
        return pf.score(model, images, labels, disposable=True)  # built for this score: no copy, same value

    return score


def arch_scorer(
    registered: Sequence[str],
    options: Mapping[str, Any],
    batch: tuple[torch.Tensor, ...],
    seed: int,
    bn_quirk: bool,
    files: Mapping[str, Callable[[str], float]],
) -> Callable[[str], dict[str, float]]:
    """``score(arch) -> {proxy: value}``: the ``registered`` proxies (with their ``options``) of the network
    built with ``seed`` and ``bn_quirk`` on ``batch``, then each proxy file's scorer (:func:`file_scorer`)."""

    def score(arch: str) -> dict[str, float]:
        model = transnas.build(arch, seed=seed, bn_quirk=bn_quirk)
        values = compute(list(registered), model, *batch, options=dict(options), disposable=True)
        return {**values, **{name: scorer(arch) for name, scorer in files.items()}}

    return score


def builder_check(records: list[Record], num_archs: int, resolution: int, rng: random.Random) -> dict:
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


def naslib_agreement(scores: dict[str, dict[str, float]], records: dict[str, Record]) -> dict:
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
