"""MACs, params, latency and peak memory of the HyCTAS operators and networks, beside the paper's figures.

Operators at an input (paper Table 2: 1x256x32x64) and at ``scale**2`` times its pixels, optionally also as
downsampling cells (row ``NAME/s2``); a network at its input (Table 3: 1024x2048). MACs count attention
matmuls (:func:`~segnas.metrics.count_macs_params`); operator rows also give them without
(``macs_g_no_attn``: thop, which the paper and the reference code use, counts no matmul).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from segnas.metrics import attention_macs, count_macs_params, measure_latency, peak_memory_mb
from segnas.nn import build_op
from segnas.spaces.hyctas.genotype import HyCTASGenotype
from segnas.spaces.hyctas.network import HyCTASNet

log = logging.getLogger(__name__)

PAPER_TABLE2 = {  # operator: (GMACs, M params) at 1x256x32x64; both self-attention variants face the MESA row
    "conv": (1.2, 0.59),
    "lightweight_conv": (0.4, 0.66),
    "transformer": (4.3, 12.62),
    "self_attention": (0.6, 0.81),
    "self_attention_reference": (0.6, 0.81),
}
PAPER_TABLE3 = {"hyctas_s": (13.0, 1.5), "hyctas_m": (29.4, 2.4), "hyctas_l": (527.0, 43.2)}


@dataclass(frozen=True)
class Timing:
    """Latency protocol of a profile (see :func:`~segnas.metrics.measure_latency`)."""

    warmup: int = 2
    duration_s: float = 1.0
    min_iters: int = 3


def profile_model(
    model: nn.Module, shape: Sequence[int], device: torch.device, timing: Timing | None = None
) -> dict[str, Any]:
    """GMACs, M params, the input shape, latency (with ``timing``) and peak CUDA memory of ``model``."""
    macs, params = count_macs_params(model.to(device), shape)
    out: dict[str, Any] = {"macs_g": macs / 1e9, "params_m": params / 1e6, "input": list(shape)}
    if timing is not None:
        lat = measure_latency(model, shape, device=device, warmup=timing.warmup, duration_s=timing.duration_s,
                              min_iters=timing.min_iters)
        out.update(latency_ms=lat.median_ms, fps=lat.fps, device=lat.device)
    out["peak_memory_mb"] = peak_memory_mb(model, shape, device)
    return out


def profile_op(
    name: str,
    stride: int,
    shape: Sequence[int],
    scale: int,
    device: torch.device,
    timing: Timing | None = None,
) -> dict[str, Any]:
    """The row of operator ``name`` (``C -> C`` channels, ``stride``) at ``shape`` and at ``scale`` times
    each side, with the paper's Table 2 figures."""
    n, c, h, w = shape
    big = [n, c, h * scale, w * scale]
    op = build_op(name, c, c, stride)
    row = profile_model(op, list(shape), device, timing)
    scaled = profile_model(op, big, device, timing)
    row.update(
        stride=stride,
        macs_g_no_attn=row["macs_g"] - attention_macs(op, list(shape)) / 1e9,
        macs_g_scaled=scaled["macs_g"],
        macs_ratio_scaled=scaled["macs_g"] / row["macs_g"],
        latency_ms_scaled=scaled.get("latency_ms"),
        peak_memory_mb_scaled=scaled["peak_memory_mb"],
        input_scaled=big,
    )
    paper = PAPER_TABLE2.get(name)
    row.update(paper_macs_g=paper and paper[0], paper_params_m=paper and paper[1])
    return row


def profile_ops(
    ops: Sequence[str],
    stride2_ops: Sequence[str],
    shape: Sequence[int],
    scale: int,
    device: torch.device,
    timing: Timing | None = None,
) -> dict[str, dict[str, Any]]:
    """Rows of every operator of ``ops`` (and of ``stride2_ops`` at stride 2, as ``NAME/s2``)."""
    results = {}
    for name, stride in [(name, 1) for name in ops] + [(name, 2) for name in stride2_ops]:
        key = name if stride == 1 else f"{name}/s2"
        results[key] = row = profile_op(name, stride, shape, scale, device, timing)
        log.info("%s: %.3f GMACs, %.4f M params", key, row["macs_g"], row["params_m"])
    return results


def profile_arch(
    name: str,
    genotype: HyCTASGenotype,
    num_classes: int,
    filter_multiplier: int,
    output_stride: int,
    shape: Sequence[int],
    device: torch.device,
    timing: Timing | None = None,
) -> dict[str, Any]:
    """The row of the standalone network of ``genotype`` (called ``name``), with the paper's Table 3
    figures."""
    net = HyCTASNet(genotype, num_classes=num_classes, filter_multiplier=filter_multiplier,
                    output_stride=output_stride)
    row = profile_model(net, list(shape), device, timing)
    paper = PAPER_TABLE3.get(name)
    row.update(
        name=name,
        filter_multiplier=filter_multiplier,
        output_stride=output_stride,
        num_branches=genotype.num_branches,
        paper_macs_g=paper and paper[0],
        paper_params_m=paper and paper[1],
    )
    log.info("%s: %.2f GMACs, %.3f M params", name, row["macs_g"], row["params_m"])
    return row


def _fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """Markdown tables of the operator rows (``results["ops"]``) and the network row (``results["arch"]``,
    when present), the paper's values alongside."""
    lines = [
        "| operator | GMACs | paper GMACs | M params | paper M params | GMACs w/o attention matmuls "
        "| GMACs at 4x pixels (ratio) | latency ms | latency ms at 4x | peak MB | peak MB at 4x |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["ops"].items():
        lines.append(
            f"| {name} | {r['macs_g']:.3f} | {_fmt(r['paper_macs_g'], 1)} | {r['params_m']:.4f} "
            f"| {_fmt(r['paper_params_m'], 2)} | {r['macs_g_no_attn']:.3f} "
            f"| {r['macs_g_scaled']:.3f} ({r['macs_ratio_scaled']:.2f}x) "
            f"| {_fmt(r.get('latency_ms'), 3)} | {_fmt(r.get('latency_ms_scaled'), 3)} "
            f"| {_fmt(r['peak_memory_mb'], 1)} | {_fmt(r['peak_memory_mb_scaled'], 1)} |"
        )
    if "arch" in results:
        a = results["arch"]
        lines += [
            "",
            "| arch | F | OS | input | GMACs | paper GMACs | M params | paper M params | latency ms | FPS |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {a['name']} | {a['filter_multiplier']} | {a['output_stride']} | {'x'.join(map(str, a['input']))} "
            f"| {a['macs_g']:.2f} | {_fmt(a['paper_macs_g'], 1)} | {a['params_m']:.3f} "
            f"| {_fmt(a['paper_params_m'], 1)} | {_fmt(a.get('latency_ms'), 2)} | {_fmt(a.get('fps'), 1)} |",
        ]
    return "\n".join(lines) + "\n"
