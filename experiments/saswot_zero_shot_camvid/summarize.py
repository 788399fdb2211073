"""Score the trained FasterSeg-space nets with zero-cost proxies and correlate with their trained mIoU.

Usage: ``python summarize.py OUT [--data ROOT]``. Reads ``OUT/genotypes/net_NN.yaml`` (sample.py) and
``OUT/train/net_NN/results.json`` (and the seed-1 replicates ``OUT/train_seed1/``) from run.sh; writes
``OUT/scores.json`` (cached per scoring batch and net, so a re-run scores only what is new), ``OUT/table.md``
and ``OUT/results.json``. Nets not trained yet are scored but left out of the correlations.

Each network is initialised with seed 0 (as ``stage=zero_shot_search`` scores candidates) and scored on one
batch: ``camvid`` (a CamVid training batch, image_scale 0.5, random crops) or ``random`` (N(0, 1) images,
uniform labels over the 11 classes). saswot's AVT min/max and rank samples come from ``--calibration-archs``
other architectures within the same 2 GMACs budget, scored on the same batch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from omegaconf import OmegaConf
from scipy.stats import kendalltau

from segnas import proxies
from segnas.models import build_network
from segnas.proxies.batch import scoring_batch
from segnas.proxies.saswot import AvtRanges, calibrate, norm_avt, norm_rank
from segnas.search.objectives import Macs
from segnas.spaces import load_genotype
from segnas.spaces.fasterseg import FasterSegSpace

NUM_CLASSES = 11
EVOLVED = Path("experiments/saswot_proxy_evolution/best_proxy.yaml")
COMMITTED = Path("experiments/saswot_proxy_evolution/dev_sketch256_b8_r64/best_proxy.yaml")
PROXIES = ["saswot_minus", "nwot", "synflow_log"]
LOSS_REDUCTION = "mean"  # saswot_minus as recorded: the library default until 2026-12-06 (now image)


def build(genotype: Any, seed: int = 0) -> torch.nn.Module:
    """The CamVid network of ``genotype``, initialised with ``seed``."""
    torch.manual_seed(seed)
    return build_network(genotype, num_classes=NUM_CLASSES, **FasterSegSpace().build_options())


def calibration(x: torch.Tensor, y: torch.Tensor, n: int, exclude: set[str]) -> AvtRanges:
    """saswot's ranges and samples on ``n`` in-budget architectures not among ``exclude`` (seeded draws)."""
    space, rng = FasterSegSpace(), np.random.default_rng(1000)
    macs = Macs(build, (1, 3, 256, 512))
    models: list[torch.nn.Module] = []
    while len(models) < n:
        genotype = space.sample(rng)
        if space.key(genotype) not in exclude and macs(genotype) <= 2.0:
            models.append(build(genotype, seed=len(models)))
    return calibrate(models, x, y, loss_reduction=LOSS_REDUCTION)


def score(genotype: Any, x: torch.Tensor, y: torch.Tensor, evolved: dict[str, str]) -> dict[str, float]:
    """Every proxy of one freshly initialised network on one batch (NaN when it does not apply)."""
    values = proxies.compute(PROXIES, build(genotype), x, y,
                             options={"saswot_minus": {"loss_reduction": LOSS_REDUCTION}})
    image = proxies.compute(["saswot_minus"], build(genotype), x, y,
                            options={"saswot_minus": {"loss_reduction": "image"}})
    values["saswot_minus_image"] = image["saswot_minus"]
    for label, name in evolved.items():
        values[label] = proxies.compute([name], build(genotype), x, y)[name]
    return values


def main() -> None:
    """Score, correlate, write the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", default="../shared/data/camvid")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--resolutions", default="64x128,128x192", help="comma list of HxW scoring sizes")
    parser.add_argument("--calibration-archs", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    nets = {p.stem: load_genotype(p) for p in sorted((args.out / "genotypes").glob("net_*.yaml"))}
    keys = {FasterSegSpace().key(g) for g in nets.values()}
    evolved = {}
    for label, path in (("evolved", EVOLVED), ("evolved_dev_sketch256", COMMITTED)):
        if path.exists():
            evolved[label] = proxies.load_expression_proxy(path, label)
    cache_path = args.out / "scores.json"
    cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    data_cfg = {"_target_": "segnas.data.camvid.CamVidDataModule", "root": args.data, "image_scale": 0.5,
                "num_workers": 0, "val_batch_size": 4, "scale_range": [0.5, 2.0], "jitter": 0.2, "seed": 0}
    for inputs in ("camvid", "random"):
        for res in args.resolutions.split(","):
            h, w = (int(v) for v in res.split("x"))
            batch = f"{inputs}_b{args.batch_size}_{h}x{w}"
            x, y, _ = scoring_batch(OmegaConf.create(data_cfg), "data" if inputs == "camvid" else "random",
                                    args.batch_size, (h, w), NUM_CLASSES, 0)
            entry = cache.setdefault(batch, {"nets": {}})
            if "calibration" not in entry:
                entry["calibration"] = calibration(x, y, args.calibration_archs, keys).to_dict()
                cache_path.write_text(json.dumps(cache, indent=1, sort_keys=True))
            for name, genotype in nets.items():
                if name not in entry["nets"] or set(evolved) - set(entry["nets"][name]):
                    entry["nets"][name] = score(genotype, x, y, evolved)
                    cache_path.write_text(json.dumps(cache, indent=1, sort_keys=True))
                    print(batch, name, entry["nets"][name], flush=True)
    report(args.out, nets, cache)


def report(out: Path, nets: dict[str, Any], cache: dict[str, Any]) -> None:
    """Kendall tau (and p) of every score vs final val mIoU over the trained nets -> table.md, results.json."""
    miou, replicate = final_miou(out / "train", nets), final_miou(out / "train_seed1", nets)
    names = sorted(miou)
    target = [miou[n] for n in names]
    meta = {n: yaml.safe_load((out / "genotypes" / f"{n}.yaml").read_text())["metrics"] for n in names}
    batches = sorted(cache)
    taus: dict[str, dict[str, tuple[float, float]]] = {}
    for batch in batches:
        entry = cache[batch]
        ranges = AvtRanges.from_dict(entry["calibration"])
        scores: dict[str, list[float]] = {"flops (MACs at 256x512)": [meta[n]["macs_g"] for n in names],
                                          "params": [meta[n]["params_m"] for n in names]}
        for n in names:
            s = entry["nets"][n]
            derived = {
                "saswot (avt)": norm_avt(s["saswot_minus"], ranges.saswot_minus) + norm_avt(s["nwot"], ranges.nwot),
                "saswot (rank)": norm_rank(s["saswot_minus"], ranges.saswot_minus_samples)
                + norm_rank(s["nwot"], ranges.nwot_samples),
            }
            for key, value in {**derived, **s}.items():
                scores.setdefault(key, []).append(float(value))
        for label, values in scores.items():
            taus.setdefault(label, {})[batch] = tau(values, target)
    results = {"n_trained": len(names), "n_sampled": len(nets), "miou": miou, "miou_seed1": replicate,
               "kendall": {label: {b: {"tau": t, "p": p} for b, (t, p) in row.items()} for label, row in taus.items()}}
    lines = [f"n = {len(names)} trained nets (of {len(nets)} sampled). Kendall tau-b vs final val mIoU (p-value); "
             "flops and params do not depend on the batch.", "",
             "| score | " + " | ".join(batches) + " |", "|---|" + "---:|" * len(batches)]
    lines += [f"| {label} | " + " | ".join(f"{row[b][0]:+.2f} ({row[b][1]:.2f})" for b in batches) + " |"
              for label, row in taus.items()]
    lines += ["", "| net | GMACs (256x512) | params (M) | val mIoU (%) |", "|---|---:|---:|---:|"]
    lines += [f"| {n} | {meta[n]['macs_g']:.3f} | {meta[n]['params_m']:.3f} | {miou[n]:.2f} |" for n in names]
    if replicate:
        lines += ["", "| net | val mIoU seed 0 | val mIoU seed 1 |", "|---|---:|---:|"]
        lines += [f"| {n} | {miou[n]:.2f} | {replicate[n]:.2f} |" for n in sorted(replicate) if n in miou]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print("\n".join(lines))


def final_miou(folder: Path, nets: dict[str, Any]) -> dict[str, float]:
    """Final val mIoU of every net trained under ``folder``."""
    paths = {name: folder / name / "results.json" for name in nets}
    return {name: float(json.loads(path.read_text())["val/mIoU"]) for name, path in paths.items() if path.exists()}


def tau(scores: list[float], miou: list[float]) -> tuple[float, float]:
    """Kendall tau-b and its two-sided p-value (NaN scores dropped)."""
    pairs = [(s, m) for s, m in zip(scores, miou, strict=True) if s == s]
    if len(pairs) < 3:
        return float("nan"), float("nan")
    result = kendalltau(*zip(*pairs, strict=True))
    return float(result.statistic), float(result.pvalue)


if __name__ == "__main__":
    main()
