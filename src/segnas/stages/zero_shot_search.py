"""``stage=zero_shot_search``: training-free evolutionary search scored by a zero-cost proxy (SasWOT §3).

Every candidate of the space (``fasterseg`` by default, ``hyctas`` too) is built with fresh seeded weights
and scored by one registered proxy on one batch (random tensors or a data batch); candidates over the cost
budget (MACs in G, params in M or measured latency in ms at ``cost_input``) are never scored. An
evolutionary search (:mod:`segnas.search.evolution`) and a random search get the same number of scored
architectures.
Writes ``genotypes/rank_NN.yaml`` (best first), ``genotypes/random_NN.yaml`` (the random baseline's
first picks, a control for retraining), ``candidates.csv`` and returns the results dict (also written to
``results.json``).
"""

from __future__ import annotations

import csv
import inspect
import logging
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from segnas.metrics.complexity import count_macs_params
from segnas.metrics.latency import measure_latency
from segnas.proxies import calibrate_cached, compute, get
from segnas.search.evolution import Candidate, evolutionary_search, random_search, ranked
from segnas.spaces import SPACES, save_genotype
from segnas.spaces.base import SearchSpace
from segnas.spaces.fasterseg import FasterSegGenotype, FasterSegSpace
from segnas.stages import common
from segnas.utils.run import output_dir, write_results

log = logging.getLogger(__name__)


def build_space(cfg: DictConfig) -> SearchSpace:
    """The space ``stage.space``; options from ``stage.space_options`` or, for the same name, ``cfg.space``."""
    name = str(cfg.stage.space)
    options: dict[str, Any] = {}
    if cfg.stage.get("space_options"):
        options = OmegaConf.to_container(cfg.stage.space_options, resolve=True)  # type: ignore[assignment]
    elif cfg.get("space") is not None and cfg.space.get("name") == name:
        options = {k: v for k, v in OmegaConf.to_container(cfg.space, resolve=True).items() if k != "name"}
    classes: dict[str, type[SearchSpace]] = {"fasterseg": FasterSegSpace, **SPACES}
    if name not in classes:
        raise KeyError(f"unknown search space {name!r}; known: {sorted(classes)}")
    cls = classes[name]
    if name == "hyctas":  # the hyctas space config carries memory-estimate keys only some versions accept
        accepted = inspect.signature(cls.__init__).parameters
        options = {k: v for k, v in options.items() if k in accepted}
    return cls(**options)


def build_net(genotype: Any, num_classes: int) -> nn.Module:
    """Standalone network of a genotype of any supported space."""
    if isinstance(genotype, FasterSegGenotype):
        from segnas.models.fasterseg_net import build_fasterseg_net

        return build_fasterseg_net(genotype, num_classes, aux_heads=False)
    from segnas.models.hyctas_net import build_hyctas_net

    return build_hyctas_net(genotype, num_classes)


def scoring_batch(cfg: DictConfig) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Images, labels and class count of the scoring batch: N(0, 1) images with uniform labels over
    ``stage.num_classes`` (``stage.inputs=random``) or one training batch of ``cfg.data`` (``data``)."""
    st = cfg.stage
    h, w = (int(v) for v in st.resolution)
    return common.scoring_batch(
        cfg.get("data"), str(st.inputs), int(st.batch_size), (h, w), int(st.num_classes), int(cfg.seed)
    )


def proxy_options(proxy: str, options: DictConfig | None) -> dict[str, Any]:
    """``options`` as keyword arguments of ``proxy``; an unknown proxy or keyword fails naming it."""
    accepted = set(inspect.signature(get(proxy).fn).parameters) - {"ctx", "ranges"}
    given = dict(OmegaConf.to_container(options, resolve=True)) if options else {}  # type: ignore[arg-type]
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise ValueError(
            f"stage.proxy_options: {unknown} are not options of proxy {proxy!r} (it accepts {sorted(accepted)})"
        )
    return given


class Scorer:
    """Proxy score and cost of genotypes, each network built with a seed derived from the run seed."""

    def __init__(self, cfg: DictConfig, space: SearchSpace, out: Path) -> None:
        st = cfg.stage
        self.proxy = str(st.proxy)
        self.seed = int(cfg.seed)
        self.metric, self.cost_input = str(st.budget.metric), tuple(int(v) for v in st.budget.input)
        if self.metric not in ("macs_g", "params_m", "latency_ms"):
            raise ValueError(
                f"stage.budget.metric must be macs_g, params_m or latency_ms, got {self.metric!r}"
            )
        self.inputs, self.targets, self.num_classes = scoring_batch(cfg)
        self.options: dict[str, dict[str, Any]] = {self.proxy: proxy_options(self.proxy, st.proxy_options)}
        if self.proxy == "saswot":
            rng_np = np.random.default_rng(self.seed + 1)

            def sample_model(rng: random.Random) -> nn.Module:
                torch.manual_seed(rng.randrange(2**31))
                return build_net(space.sample(rng_np), self.num_classes)

            ranges = calibrate_cached(
                sample_model,
                int(st.saswot_calibration_archs),
                self.inputs,
                self.targets,
                space=f"zero_shot-{space.name}",
                cache=out / "saswot_avt.json",
                seed=self.seed,
                **self.options["saswot"],
            )
            self.options["saswot"]["ranges"] = ranges

    def _net(self, genotype: Any) -> nn.Module:
        torch.manual_seed(self.seed)  # same init stream for every candidate
        return build_net(genotype, self.num_classes)

    def score(self, genotype: Any) -> float:
        try:
            value = compute(
                [self.proxy], self._net(genotype), self.inputs, self.targets, options=self.options
            )
        except Exception as exc:  # a failing candidate is invalid, never fatal
            log.warning("scoring failed: %s: %s", type(exc).__name__, exc)
            return math.nan
        v = float(value[self.proxy])
        return v if math.isfinite(v) else math.nan

    def cost(self, genotype: Any) -> float:
        net = self._net(genotype).eval()
        if self.metric == "latency_ms":
            return float(
                measure_latency(net, self.cost_input, device="cpu", warmup=1, duration_s=0.05).median_ms
            )
        macs, params = count_macs_params(net, self.cost_input)
        return macs / 1e9 if self.metric == "macs_g" else params / 1e6


def _summary(cands: list[Candidate]) -> dict[str, Any]:
    best = ranked(cands)
    return {
        "evaluated": len(cands),
        "valid_scores": len(best),
        "best_score": best[0].score if best else math.nan,
        "best_cost": best[0].cost if best else math.nan,
        "mean_top5_score": float(np.mean([c.score for c in best[:5]])) if best else math.nan,
    }


def _write_csv(path: Path, rows: list[tuple[str, Candidate]], space: SearchSpace) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["search", "step", "origin", "cost", "score", "encoding"])
        for search, c in rows:
            enc = " ".join(str(int(v)) for v in space.encode(c.genotype))
            writer.writerow([search, c.step, c.origin, c.cost, c.score, enc])


def _save_genotypes(cands: list[Candidate], out: Path, prefix: str) -> list[dict[str, Any]]:
    """Write ``genotypes/{prefix}_NN.yaml`` for ``cands`` in order; their index, score, cost and path."""
    saved = []
    for i, c in enumerate(cands):
        path = save_genotype(c.genotype, out / "genotypes" / f"{prefix}_{i:02d}.yaml")
        saved.append({"rank": i, "score": c.score, "cost": c.cost, "path": str(path.relative_to(out))})
    return saved


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evolutionary vs random zero-shot search at an equal number of scored architectures."""
    st = cfg.stage
    out = output_dir(cfg)
    space = build_space(cfg)
    scorer = Scorer(cfg, space, out)
    evo_cfg = st.evolution
    num_evals, max_cost = int(evo_cfg.num_evals), float(st.budget.max)
    evo = evolutionary_search(
        space,
        scorer.score,
        scorer.cost,
        max_cost,
        num_evals,
        np.random.default_rng(int(cfg.seed)),
        population=int(evo_cfg.population),
        top_k=int(evo_cfg.top_k),
        p_mutate=float(evo_cfg.p_mutate),
        p_crossover=float(evo_cfg.p_crossover),
    )
    results: dict[str, Any] = {
        "space": space.name,
        "proxy": scorer.proxy,
        "budget": {"metric": scorer.metric, "max": max_cost, "input": list(scorer.cost_input)},
        "num_evals": num_evals,
        "evolution": _summary(evo),
    }
    rows = [("evolution", c) for c in evo]
    if st.random_baseline:
        rand = random_search(
            space, scorer.score, scorer.cost, max_cost, len(evo), np.random.default_rng(int(cfg.seed) + 7)
        )
        results["random"] = _summary(rand)
        rows += [("random", c) for c in rand]
        results["evolution_beats_random"] = bool(
            results["evolution"]["best_score"] > results["random"]["best_score"]
        )
    _write_csv(out / "candidates.csv", rows, space)
    results["top"] = _save_genotypes(ranked(evo)[: int(st.top_n)], out, "rank")
    if st.random_baseline:  # unranked: the first random draws within budget, a control for retraining
        results["random_picks"] = _save_genotypes(rand[: int(st.top_n)], out, "random")
    log.info(
        "zero-shot %s/%s: evolution best %.4g vs random best %.4g",
        space.name,
        scorer.proxy,
        results["evolution"]["best_score"],
        results.get("random", {}).get("best_score", math.nan),
    )
    write_results(out, results)
    return results
