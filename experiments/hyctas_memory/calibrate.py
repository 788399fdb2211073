"""Calibrate the HyCTAS training-memory estimate (constraint 4) on measured sub-networks.

Samples sub-networks of the default HyCTAS space with every known operator (plus the released S/M/L),
builds each standalone (``segnas.models.build_network``, output stride 8) and measures its training
activation memory on the CPU: the bytes of the distinct tensor storages autograd saves for the backward
pass (``torch.autograd.graph.saved_tensors_hooks``; parameters excluded) in one fp32 training forward
with cross-entropy, followed by the backward. That is the memory alive when the backward starts, i.e. the
training peak less weights, gradients, optimiser state and backward transients. It depends only on the
autograd graph and tensor shapes, so it is exactly reproducible (no allocator, timing or threading in it).
Attention runs on PyTorch's math backend, which keeps the N x N attention maps: the fused kernels do not,
but which one runs is device- and shape-dependent (on a GPU, fp32 memory-efficient attention needs head
widths divisible by 4, which most HyCTAS widths are not; on the CPU, flash attention needs equal q/k/v
widths, which the reference operator does not have), so the estimate is the unfused, conservative case.

The per-feature coefficients of ``segnas.spaces.hyctas.memory`` are fitted by non-negative least squares on
relative error; the fit error (median / max relative error, Kendall tau) is reported in-sample and
leave-one-network-out, beside the previous estimate (``HyCTASSpace.memory_mb``'s per-op table, cells only).
Finally a ``space.memory_limit_mb`` for the Cityscapes search (batch 16, 256x512, fp32, 24 GB GPU) is
derived from the fitted model.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/hyctas_memory/calibrate.py

writes ``results.json`` and ``calibration.md`` next to this file (or into ``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import nnls
from scipy.stats import kendalltau
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from segnas.models import build_network
from segnas.spaces import as_genotype, get_space
from segnas.spaces.hyctas import KNOWN_OPS, HyCTASGenotype, build_plan
from segnas.spaces.hyctas.memory import FEATURES, memory_features
from segnas.spaces.hyctas.supernet import HyCTASSupernet

HERE = Path(__file__).resolve().parent
RELEASED = ("hyctas_s", "hyctas_m", "hyctas_l")
# The estimate before calibration (HyCTASSpace.memory_mb at the time): saved maps of the output's size per
# operator (4 for an operator it does not list) and N x N maps per attention head, cells only.
LEGACY_MAPS = {"skip": 1, "conv": 3, "lightweight_conv": 4, "lightweight_conv2x": 5, "self_attention": 8,
               "transformer": 12}
LEGACY_HEADS = {"self_attention": 2, "transformer": 4}
GPU_MB = 24 * 1024
HEADROOM = 0.8  # share of the card for activations + supernet state (the rest: CUDA context, cuDNN
#                 workspaces, allocator fragmentation, backward transients)


def saved_activation_bytes(net: nn.Module, batch: int, height: int, width: int, seed: int = 0) -> int:
    """Bytes of the distinct non-parameter storages saved for backward in one training step of ``net``."""
    net.train()
    weights = {t.untyped_storage().data_ptr() for t in (*net.parameters(), *net.buffers())}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, height, width, generator=gen)
    y = torch.randint(0, 19, (batch, height, width), generator=gen)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), sdpa_kernel(SDPBackend.MATH):
        loss = F.cross_entropy(net(x), y)
    loss.backward()
    return sum(storages.values())


def legacy_mb(genotype: HyCTASGenotype, filter_multiplier: int, batch: int, height: int, width: int) -> float:
    """The estimate before calibration (cells only)."""
    elements = 0
    for nodes in build_plan(genotype, filter_multiplier).layers:
        for node in nodes:
            pixels = -(-height // node.out_stride) * -(-width // node.out_stride)
            elements += LEGACY_MAPS.get(node.op, 4) * node.c_out * pixels + LEGACY_HEADS.get(node.op, 0) * pixels**2
    return 4.0 * batch * elements / 2**20


def estimate_mb(coef: dict[str, float], genotype: HyCTASGenotype, fm: int, batch: int, h: int, w: int) -> float:
    feats = memory_features(genotype, fm, h, w)
    return 4.0 * batch * sum(coef[k] * feats[k] for k in FEATURES) / 2**20


def fit(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Non-negative least squares of the measured fp32 elements on the features, on relative error."""
    a = np.array([[r["batch"] * r["features"][k] for k in FEATURES] for r in rows]) / np.array(
        [[r["measured_mb"] * 2**20 / 4] for r in rows]
    )
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    x, _ = nnls(a / scale, np.ones(len(rows)))
    return {k: float(v) for k, v in zip(FEATURES, x / scale, strict=True)}


def errors(estimate: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    rel = np.abs(np.asarray(estimate) / np.asarray(measured) - 1.0)
    tau = kendalltau(estimate, measured).statistic if len(measured) > 1 else float("nan")
    return {"median_rel_err": float(np.median(rel)), "max_rel_err": float(rel.max()), "kendall_tau": float(tau)}


def sample_networks(n: int, seed: int, fms: Sequence[int]) -> list[tuple[str, HyCTASGenotype, int]]:
    """The released S/M/L, then sampled genotypes of the default space with every known operator."""
    space = get_space("hyctas", ops=KNOWN_OPS)
    rng = np.random.default_rng(seed)
    nets: list[tuple[str, HyCTASGenotype, int]] = []
    for i in range(n):
        if i < len(RELEASED):
            genotype = as_genotype(f"pkg://{RELEASED[i]}", "hyctas")
            name = RELEASED[i]
        else:
            genotype, name = space.sample(rng), f"sample_{i:02d}"
        nets.append((name, genotype, fms[i % len(fms)]))  # type: ignore[arg-type]
    return nets


def suggest_limit(coef: dict[str, float], samples: int, seed: int) -> dict[str, Any]:
    """Memory limit (MB) of the estimate for the Cityscapes search, and how the default space sits under it."""
    space = get_space("hyctas")
    batch, height, width = space.memory_input
    supernet_params = sum(p.numel() for p in HyCTASSupernet.from_space(space).parameters())
    state_mb = 12 * supernet_params / 2**20  # fp32 weights, gradients, SGD momentum
    limit = math.floor((HEADROOM * GPU_MB - state_mb) / 500) * 500
    rng = np.random.default_rng(seed)
    est = np.array([estimate_mb(coef, space.sample(rng), space.filter_multiplier, batch, height, width)
                    for _ in range(samples)])
    released = {name: estimate_mb(coef, as_genotype(f"pkg://{name}", "hyctas"), space.filter_multiplier,
                                  batch, height, width) for name in RELEASED}
    return {
        "gpu_mb": GPU_MB, "headroom": HEADROOM, "supernet_params_m": supernet_params / 1e6,
        "supernet_state_mb": state_mb, "limit_mb": limit, "memory_input": [batch, height, width],
        "filter_multiplier": space.filter_multiplier, "samples": samples,
        "estimate_mb": {"median": float(np.median(est)), "p99": float(np.percentile(est, 99)),
                        "max": float(est.max())},
        "share_above_limit": float((est > limit).mean()), "released_mb": released,
    }


def markdown(out: dict[str, Any]) -> str:
    m = out["metrics"]
    lines = ["# HyCTAS training-memory calibration", "", f"Settings: `{json.dumps(out['settings'])}`", "",
             "| estimate | median rel. error | max rel. error | Kendall tau |", "|---|---|---|---|"]
    for key, label in (("before", "before (per-op table, cells only)"), ("after", "after, in-sample"),
                       ("after_loo", "after, leave-one-network-out")):
        lines.append(f"| {label} | {m[key]['median_rel_err']:.3f} | {m[key]['max_rel_err']:.3f} "
                     f"| {m[key]['kendall_tau']:.3f} |")
    lines += ["", "| feature | fitted coefficient (fp32 values per element) |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in out["coefficients"].items()]
    lines += ["", "| network | F | input | measured MB | before MB | after MB | leave-one-out MB |",
              "|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        lines.append(f"| {r['name']} | {r['filter_multiplier']} | {r['batch']}x{r['height']}x{r['width']} "
                     f"| {r['measured_mb']:.2f} | {r['before_mb']:.2f} | {r['after_mb']:.2f} | {r['loo_mb']:.2f} |")
    if "limit" in out:
        lim = out["limit"]
        lines += ["", f"Limit: `{json.dumps(lim)}`"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=int, default=40, help="networks (the first three: released S/M/L)")
    parser.add_argument("--sizes", nargs="+", default=["64x128", "128x256"], help="input HxW, each net at each")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--filter-multipliers", type=int, nargs="+", default=[4, 8, 12])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-samples", type=int, default=2000, help="default-space samples for the limit; 0: none")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    rows = []
    for name, genotype, fm in sample_networks(args.nets, args.seed, args.filter_multipliers):
        net = build_network(genotype, num_classes=19, filter_multiplier=fm)
        for h, w in sizes:
            rows.append({
                "name": name, "filter_multiplier": fm, "batch": args.batch, "height": h, "width": w,
                "num_branches": genotype.num_branches, "depth": genotype.depth,
                "measured_mb": saved_activation_bytes(net, args.batch, h, w, args.seed) / 2**20,
                "before_mb": legacy_mb(genotype, fm, args.batch, h, w),
                "features": memory_features(genotype, fm, h, w), "genotype": genotype.to_dict(),
            })
    coef = fit(rows)
    held_out = {name: fit([r for r in rows if r["name"] != name]) for name in dict.fromkeys(r["name"] for r in rows)}
    for r in rows:
        r["after_mb"] = 4.0 * r["batch"] * sum(coef[k] * r["features"][k] for k in FEATURES) / 2**20
        r["loo_mb"] = 4.0 * r["batch"] * sum(held_out[r["name"]][k] * r["features"][k] for k in FEATURES) / 2**20
    measured = [r["measured_mb"] for r in rows]
    out: dict[str, Any] = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "coefficients": coef,
        "metrics": {key: errors([r[f"{key}_mb"] for r in rows], measured)
                    for key in ("before", "after")} | {"after_loo": errors([r["loo_mb"] for r in rows], measured)},
        "rows": rows,
    }
    if args.limit_samples:
        out["limit"] = suggest_limit(coef, args.limit_samples, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(out, indent=1))
    (args.out / "calibration.md").write_text(markdown(out))
    print(markdown(out))
    print("COEFFICIENTS = {" + ", ".join(f'"{k}": {v:.4g}' for k, v in coef.items()) + "}")
    return out


if __name__ == "__main__":
    main()
