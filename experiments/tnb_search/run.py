"""TransNAS-Bench-101 search study (issue 22 item 5): segnas's algorithms and zero-cost proxies against the
benchmark's recorded ground truth (the dev CSV), on a CPU.

``searches``: per space (micro, macro) and seed, one run of ``stage=search score=benchmark`` per variant (random,
topk, nsga2 vs params, topk with a proxy warm start), each in its own folder with its archive (a killed run
resumes from it; a finished one is skipped), 200 queries each; the best found after 25/50/100/200 queries is
read from the run's ``best_so_far.csv`` (anytime performance). ``check``: the same variants stopped at 50
queries for a few seeds, to confirm that reading a 200-query run at 50 equals a 50-query run (random, topk).
``zeroshot``: a fixed random subset of each space's table (disjoint from the archs ``best_proxy.yaml`` was fitted
on) scored once by flops, nwot, saswot and best_proxy with best_proxy's protocol (scores cached, resumable).
``zeroshot_saswot_image``: the same subset scored by saswot (and saswot_minus) at today's default
``loss_reduction=image`` (calibrated likewise), cached beside (``zeroshot/saswot_image.jsonl``).
``zeroshot_search``: the engine's zero-shot search, top-k scored by best_proxy.yaml (50 networks), with the
dev table's ground truth of its picks reported beside (``stage.ground_truth``), never used by the search.

    OMP_NUM_THREADS=1 python experiments/tnb_search/run.py searches --seeds 25
    OMP_NUM_THREADS=1 python experiments/tnb_search/run.py check --seeds 3
    OMP_NUM_THREADS=1 python experiments/tnb_search/run.py zeroshot --subset 200
    OMP_NUM_THREADS=1 python experiments/tnb_search/run.py zeroshot_saswot_image --subset 200
    OMP_NUM_THREADS=1 python experiments/tnb_search/run.py zeroshot_search --seeds 3
    python experiments/tnb_search/summarize.py        # -> summary.json, results.md, *.png
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from segnas.models import build_network
from segnas.proxies import calibrate_cached, compute
from segnas.proxies.batch import scoring_batch
from segnas.proxies.benchmark import load
from segnas.proxies.proxy_file import load_proxy_file
from segnas.spaces import get_space
from segnas.stages import run_stage
from segnas.utils.jsonl import RecordLog

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CSV = "../shared/data/transnas/tnb101_segmentsemantic_dev.csv"  # relative to the repository root (run from there)
BEST_PROXY = REPO / "experiments" / "saswot_proxy_evolution" / "best_proxy.yaml"
FITTED_ON = REPO / "experiments" / "saswot_proxy_evolution" / "combination" / "scores_b8_r64.csv"
SPACES = ("micro", "macro")
QUERIES = 200
VARIANTS: dict[str, list[str]] = {
    "random": ["search=random", f"search.num_evals={QUERIES}"],
    "topk": ["search=topk", f"search.num_evals={QUERIES}"],
    "nsga2": ["search=nsga2", "search.population=20", f"search.generations={QUERIES // 20}"],
    "topk_warm": ["search=topk", f"search.num_evals={QUERIES}", "search.warm_start=proxy",
                  "search.warm_start_proxy=nwot", "search.warm_start_select=top", "search.warm_start_pool=48",
                  "search.warm_start_batch.num_classes=17", "search.warm_start_batch.batch_size=8",
                  "search.warm_start_batch.resolution=[64,64]"],
}
ZERO_SHOT_PROXIES = ("flops", "nwot", "saswot", "best_proxy")
LOSS_REDUCTION = "mean"  # saswot's, as recorded: the library default until 2026-12-06 (now image)
log = logging.getLogger("tnb_search")


def overrides(space: str, variant: str, seed: int, queries: int = QUERIES) -> list[str]:
    """The ``python -m segnas`` overrides of one run (the CLI adds ``hydra.run.dir=<folder>``)."""
    budget = [o.replace(f"={QUERIES}", f"={queries}") if "num_evals" in o else o for o in VARIANTS[variant]]
    return ["stage=search", f"space=transnas_{space}", "score=benchmark", f"score.csv={CSV}", *budget,
            "search.random_baseline=false", "stage.progress=false", f"seed={seed}"]


def zeroshot_overrides(space: str, seed: int) -> list[str]:
    """Top-k over best_proxy.yaml's score (50 networks), the dev table's ground truth reported beside."""
    return ["stage=search", f"space=transnas_{space}", "score=proxy",
            f"score.proxy={BEST_PROXY.relative_to(REPO)}", "search=topk", "search.num_evals=50",
            "search.population=10", "search.top_k=3", "search.objective=params", "stage.extra_metrics=[params_m]",
            "search.random_baseline=false", f"stage.ground_truth.csv={CSV}", "stage.progress=false", f"seed={seed}"]


def run_one(folder: Path, args: list[str]) -> None:
    """Run ``stage=search`` in this process into ``folder`` (skipped when finished; resumed from its archive)."""
    if (folder / "results.json").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "command.txt").write_text(f"python -m segnas {' '.join(args)} hydra.run.dir={folder.relative_to(REPO)}\n")
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="segnas.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*args, f"paths.output_dir={folder}"])
    run_stage(cfg)


def searches(out: Path, seeds: int, variants: list[str]) -> None:
    for seed in range(seeds):
        for space in SPACES:
            for variant in variants:
                log.warning("search %s %s seed %d", space, variant, seed)
                run_one(out / "runs" / space / variant / f"seed_{seed}", overrides(space, variant, seed))


def zeroshot_search(out: Path, seeds: int) -> None:
    for seed in range(seeds):
        for space in SPACES:
            log.warning("zero-shot search %s seed %d", space, seed)
            run_one(out / "zeroshot_search" / space / f"seed_{seed}", zeroshot_overrides(space, seed))


def check(out: Path, seeds: int) -> None:
    """Random and top-k stopped at 50 queries: their best-so-far must equal the first 50 of the 200-query run."""
    report = {}
    for seed in range(seeds):
        for space in SPACES:
            for variant in ("random", "topk"):
                short = out / "check" / space / variant / f"seed_{seed}"
                run_one(short, overrides(space, variant, seed, 50))
                curves = [_curve(folder) for folder in (short, out / "runs" / space / variant / f"seed_{seed}")]
                report[f"{space}/{variant}/seed_{seed}"] = curves[0] == curves[1][:50]
    (out / "check.json").write_text(json.dumps(report, indent=1))
    log.warning("prefix check: %d of %d equal", sum(report.values()), len(report))


def _curve(folder: Path) -> list[float]:
    with (folder / "best_so_far.csv").open() as f:
        return [float(r["best_valid_acc_final_epoch"]) for r in csv.DictReader(f)]


def zeroshot(out: Path, subset: int) -> None:
    """Score ``subset`` table archs per space (none of those best_proxy was fitted on) with every proxy, on
    best_proxy's protocol batch (networks seeded with its seed); cached in ``zeroshot/scores.jsonl``."""
    pf = load_proxy_file(BEST_PROXY)
    protocol = pf.protocol
    inputs, targets, fitted, folder = _zero_shot_setup(out, protocol)
    cache = RecordLog(folder / "scores.jsonl", context={"protocol": protocol.seed, "proxies": ZERO_SHOT_PROXIES,
                                                        "best_proxy": pf.context(), "subset": subset})
    done = {r["arch"] for r in cache}
    names = sorted({*pf.definition.proxies, "flops", "nwot", "saswot"})
    for space_name in SPACES:
        space, chosen = _zero_shot_archs(space_name, subset, fitted)
        ranges = _saswot_ranges(space, space_name, inputs, targets, folder, protocol.seed, LOSS_REDUCTION)
        for i, arch in enumerate(chosen):
            if arch in done:
                continue
            torch.manual_seed(protocol.seed)
            net = build_network(space.genotype_cls(arch), 17, bn_quirk=protocol.bn_quirk)
            scores = compute(names, net, inputs, targets,
                             options={"saswot": {"ranges": ranges, "loss_reduction": LOSS_REDUCTION}})
            record = {"space": space_name, "arch": arch, **{n: scores[n] for n in ("flops", "nwot", "saswot")},
                      "best_proxy": pf.definition.combine(scores)}
            cache.append(record)
            log.warning("zero-shot %s %d/%d %s", space_name, i + 1, subset, record)


def _zero_shot_setup(out: Path, protocol: Any) -> tuple[torch.Tensor, torch.Tensor, set[str], Path]:
    """best_proxy's ``protocol`` batch, the archs it was fitted on and the zero-shot folder (created)."""
    inputs, targets, _ = scoring_batch(None, protocol.inputs, protocol.batch_size,
                                       (protocol.resolution, protocol.resolution), 17, protocol.seed)
    with FITTED_ON.open() as f:
        fitted = {r["arch"] for r in csv.DictReader(f)}
    folder = out / "zeroshot"
    folder.mkdir(parents=True, exist_ok=True)
    return inputs, targets, fitted, folder


def _zero_shot_archs(space_name: str, subset: int, fitted: set[str]) -> tuple[Any, list[str]]:
    """The space and its ``subset`` table archs scored zero-shot (drawn with seed 22, none of ``fitted``)."""
    table = sorted(r.arch for r in load(REPO / CSV, space=space_name) if r.arch not in fitted)
    return get_space(f"transnas_{space_name}"), [table[i] for i in
                                                 np.random.default_rng(22).choice(len(table), subset, replace=False)]


def _saswot_ranges(space: Any, space_name: str, inputs: torch.Tensor, targets: torch.Tensor, folder: Path,
                   seed: int, loss_reduction: str) -> Any:
    """saswot's calibration on 8 random archs of the whole space (cached in ``folder/saswot_avt.jsonl``)."""
    def sample_model(rng):
        torch.manual_seed(rng.randrange(2**31))
        return build_network(space.sample(np.random.default_rng(rng.randrange(2**31))), 17, bn_quirk=True)

    return calibrate_cached(sample_model, 8, inputs, targets, space=f"transnas-{space_name}-bn_quirk",
                            cache=folder / "saswot_avt.jsonl", seed=seed, loss_reduction=loss_reduction)


def zeroshot_saswot_image(out: Path, subset: int) -> None:
    """The ``zeroshot`` subset scored by saswot and saswot_minus at ``loss_reduction=image`` (today's default),
    on the same batch and initialisation; cached in ``zeroshot/saswot_image.jsonl``."""
    protocol = load_proxy_file(BEST_PROXY).protocol
    inputs, targets, fitted, folder = _zero_shot_setup(out, protocol)
    cache = RecordLog(folder / "saswot_image.jsonl", context={"protocol": protocol.seed, "subset": subset,
                                                               "loss_reduction": "image"})
    done = {r["arch"] for r in cache}
    for space_name in SPACES:
        space, chosen = _zero_shot_archs(space_name, subset, fitted)
        ranges = _saswot_ranges(space, space_name, inputs, targets, folder, protocol.seed, "image")
        options = {"saswot": {"ranges": ranges, "loss_reduction": "image"},
                   "saswot_minus": {"loss_reduction": "image"}}
        for i, arch in enumerate(chosen):
            if arch in done:
                continue
            torch.manual_seed(protocol.seed)
            net = build_network(space.genotype_cls(arch), 17, bn_quirk=protocol.bn_quirk)
            scores = compute(["saswot", "saswot_minus"], net, inputs, targets, options=options, disposable=True)
            record = {"space": space_name, "arch": arch, "saswot_image": scores["saswot"],
                      "saswot_minus_image": scores["saswot_minus"]}
            cache.append(record)
            log.warning("saswot image %s %d/%d %s", space_name, i + 1, subset, record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=("searches", "check", "zeroshot", "zeroshot_saswot_image",
                                          "zeroshot_search"))
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "tnb_search", help="inside the repository")
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--subset", type=int, default=200)
    args = parser.parse_args()
    args.out = args.out.resolve()
    os.chdir(REPO)  # the CSV and the commands are relative to the repository root
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    if args.phase == "searches":
        searches(args.out, args.seeds, args.variants)
    elif args.phase == "check":
        check(args.out, args.seeds)
    elif args.phase == "zeroshot_search":
        zeroshot_search(args.out, args.seeds)
    elif args.phase == "zeroshot_saswot_image":
        zeroshot_saswot_image(args.out, args.subset)
    else:
        zeroshot(args.out, args.subset)


if __name__ == "__main__":
    main()
