"""MACs, params, latency and peak memory of the HyCTAS operators and networks, beside the paper's figures.

Operators at an input (paper Table 2: 1x256x32x64) and at ``scale**2`` times its pixels, optionally also as
downsampling cells (row ``NAME/s2``); a network at its input (Table 3: 1024x2048). MACs count attention
matmuls (:func:`~segnas.metrics.count_macs_params`); operator rows also give them without
(``macs_g_no_attn``: thop, which the paper and the reference code use, counts no matmul).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from segnas.metrics import attention_macs, count_macs_params, peak_memory_mb
from segnas.metrics.complexity import flop_analysis
from segnas.metrics.latency import SpeedProtocol
from segnas.nn import MultiHeadSelfAttention, PatchTransformer, build_op
from segnas.spaces.hyctas import build
from segnas.spaces.hyctas.genotype import HyCTASGenotype

log = logging.getLogger(__name__)

PAPER_TABLE2 = {  # operator: (GMACs, M params) at 1x256x32x64; both self-attention variants face the MESA row
    "conv": (1.2, 0.59),
    "lightweight_conv": (0.4, 0.66),
    "transformer": (4.3, 12.62),
    "self_attention": (0.6, 0.81),
    "self_attention_reference": (0.6, 0.81),
    "transformer@paper": (4.3, 12.62),
}
PAPER_TRANSFORMER = "transformer@paper"  # row of Table 2's Transformer at the paper's width (PatchTransformer)
TABLE2_NOTES = {  # what each row is, against the paper's Table 2 (experiments/hyctas_fidelity)
    "self_attention": "segnas's reading of §3.3: 1x1 reduce to C/4, 2-head MHSA, 1x1 expand, 1x1 bypass",
    "self_attention_reference": "reference op as the caption reads (C -> C, stride 1: identity shortcut)",
    "self_attention_reference/s2": "the paper's MESA row: reference op as a stride-2 cell (its 3x3 s2 shortcut "
    "is 0.59 of the 0.81 M) counted by thop (no attention matmuls)",
    "transformer": "segnas cell op at the cell's width C (0.86 M)",
    PAPER_TRANSFORMER: "the paper's width: encoder layer of width 4C = 1024 (8 heads, MLP 4x) on 2x2 patches; "
    "the paper's 4.3 G is it without the attention module (thop has no rule for nn.MultiheadAttention)",
}
PAPER_TABLE3 = {"hyctas_s": (13.0, 1.5), "hyctas_m": (29.4, 2.4), "hyctas_l": (527.0, 43.2)}
# The reference code's own counts at 1x3x1024x2048 (../shared/research/hyctas.md §6.2): (arch, F, output stride)
# -> (thop GMACs: convs, BN, pools; GMACs of the attention matmuls, which thop leaves out; M params).
REFERENCE_TABLE3 = {
    ("hyctas_s", 12, 4): (60.59, 8.76, 8.103),
    ("hyctas_s", 12, 8): (44.65, 8.76, 8.052),
    ("hyctas_s", 16, 4): (106.05, 11.68, 14.383),
    ("hyctas_s", 16, 8): (78.96, 11.68, 14.316),
    ("hyctas_m", 12, 4): (70.65, 24.16, 6.343),
    ("hyctas_m", 16, 4): (123.89, 32.21, 11.243),
    ("hyctas_m", 16, 8): (96.80, 32.21, 11.175),
    ("hyctas_l", 12, 4): (212.43, 154.01, 25.226),
    ("hyctas_l", 16, 4): (375.35, 205.35, 44.794),
}


def profile_model(
    model: nn.Module, shape: Sequence[int], device: torch.device, timing: SpeedProtocol | None = None
) -> dict[str, Any]:
    """GMACs, M params, the input shape, latency (with ``timing``) and peak CUDA memory of ``model``."""
    macs, params = count_macs_params(model.to(device), shape)
    out: dict[str, Any] = {"macs_g": macs / 1e9, "params_m": params / 1e6, "input": list(shape)}
    if timing is not None:
        lat = replace(timing, device=str(device)).measure(model, shape)
        out.update(latency_ms=lat.median_ms, fps=lat.fps, device=lat.device, threads=lat.threads)
    out["peak_memory_mb"] = peak_memory_mb(model, shape, device)
    return out


def mhsa_macs(model: nn.Module, shape: Sequence[int]) -> int:
    """MACs inside the :class:`~segnas.nn.MultiHeadSelfAttention` modules of ``model`` (projections and
    matmuls: what thop 0.0.31 leaves out of an ``nn.MultiheadAttention``) on a random input of ``shape``."""
    param = next(model.parameters())
    model.eval()
    with torch.no_grad():
        by_module = flop_analysis(model, (torch.randn(*shape, device=param.device),)).by_module()
    return sum(int(by_module[n]) for n, m in model.named_modules() if isinstance(m, MultiHeadSelfAttention))


def profile_op(
    name: str,
    stride: int,
    shape: Sequence[int],
    scale: int,
    device: torch.device,
    timing: SpeedProtocol | None = None,
    op: nn.Module | None = None,
) -> dict[str, Any]:
    """The row of operator ``name`` (``C -> C`` channels, ``stride``; or the module ``op``) at ``shape`` and at
    ``scale`` times each side, with the paper's Table 2 figures."""
    n, c, h, w = shape
    big = [n, c, h * scale, w * scale]
    op = build_op(name, c, c, stride) if op is None else op
    row = profile_model(op, list(shape), device, timing)
    scaled = profile_model(op, big, device, timing)
    row.update(
        stride=stride,
        macs_g_no_attn=row["macs_g"] - attention_macs(op, list(shape)) / 1e9,
        macs_g_no_mhsa=row["macs_g"] - mhsa_macs(op, list(shape)) / 1e9,
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
    timing: SpeedProtocol | None = None,
    paper_transformer: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Rows of every operator of ``ops`` (and of ``stride2_ops`` at stride 2, as ``NAME/s2``) and, with
    ``paper_transformer`` (:class:`~segnas.nn.PatchTransformer` settings), Table 2's Transformer at the
    paper's width (row :data:`PAPER_TRANSFORMER`); each row with its :data:`TABLE2_NOTES` note."""
    results = {}
    rows: list[tuple[str, str, int, nn.Module | None]] = [(name, name, 1, None) for name in ops]
    rows += [(f"{name}/s2", name, 2, None) for name in stride2_ops]
    if paper_transformer is not None:
        rows.append((PAPER_TRANSFORMER, PAPER_TRANSFORMER, 1, PatchTransformer(shape[1], **paper_transformer)))
    for key, name, stride, op in rows:
        results[key] = row = profile_op(name, stride, shape, scale, device, timing, op)
        row["note"] = TABLE2_NOTES.get(key)
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
    timing: SpeedProtocol | None = None,
    head: str = "segnas",
) -> dict[str, Any]:
    """The row of the standalone network of ``genotype`` (called ``name``; ``head``: segnas's network or the
    reference code's, see :func:`segnas.spaces.hyctas.build`), with the paper's Table 3 figures and, where
    known, the reference code's own counts (:data:`REFERENCE_TABLE3`)."""
    net = build(genotype, num_classes, filter_multiplier=filter_multiplier, output_stride=output_stride, head=head)
    row = profile_model(net, list(shape), device, timing)
    paper = PAPER_TABLE3.get(name)
    ref = REFERENCE_TABLE3.get((name, filter_multiplier, output_stride))
    row.update(
        name=name,
        head=head,
        filter_multiplier=filter_multiplier,
        output_stride=output_stride,
        num_branches=genotype.num_branches,
        macs_g_no_attn=row["macs_g"] - attention_macs(net, list(shape)) / 1e9,
        paper_macs_g=paper and paper[0],
        paper_params_m=paper and paper[1],
        reference_macs_g_no_attn=ref and ref[0],
        reference_macs_g=ref and round(ref[0] + ref[1], 2),
        reference_params_m=ref and ref[2],
    )
    log.info("%s (head %s): %.2f GMACs, %.3f M params", name, head, row["macs_g"], row["params_m"])
    return row


def _fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """Markdown tables of the operator rows (``results["ops"]``) and the network row (``results["arch"]``,
    when present), the paper's values alongside."""
    lines = [
        "| operator | GMACs | paper GMACs | M params | paper M params | GMACs w/o attention matmuls "
        "| GMACs w/o MHSA modules | GMACs at 4x pixels (ratio) | latency ms | latency ms at 4x | peak MB "
        "| peak MB at 4x | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["ops"].items():
        lines.append(
            f"| {name} | {r['macs_g']:.3f} | {_fmt(r['paper_macs_g'], 1)} | {r['params_m']:.4f} "
            f"| {_fmt(r['paper_params_m'], 2)} | {r['macs_g_no_attn']:.3f} | {r['macs_g_no_mhsa']:.3f} "
            f"| {r['macs_g_scaled']:.3f} ({r['macs_ratio_scaled']:.2f}x) "
            f"| {_fmt(r.get('latency_ms'), 3)} | {_fmt(r.get('latency_ms_scaled'), 3)} "
            f"| {_fmt(r['peak_memory_mb'], 1)} | {_fmt(r['peak_memory_mb_scaled'], 1)} | {r['note'] or ''} |"
        )
    if "arch" in results:
        a = results["arch"]
        lines += [
            "",
            "| arch | head | F | OS | input | GMACs | w/o attention matmuls | reference code GMACs (w/o) "
            "| paper GMACs | M params | reference code M params | paper M params | latency ms | FPS |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {a['name']} | {a['head']} | {a['filter_multiplier']} | {a['output_stride']} "
            f"| {'x'.join(map(str, a['input']))} | {a['macs_g']:.2f} | {a['macs_g_no_attn']:.2f} "
            f"| {_fmt(a['reference_macs_g'], 2)} ({_fmt(a['reference_macs_g_no_attn'], 2)}) "
            f"| {_fmt(a['paper_macs_g'], 1)} | {a['params_m']:.3f} | {_fmt(a['reference_params_m'], 3)} "
            f"| {_fmt(a['paper_params_m'], 1)} | {_fmt(a.get('latency_ms'), 2)} | {_fmt(a.get('fps'), 1)} |",
        ]
    return "\n".join(lines) + "\n"
