"""Params and MACs of self-attention and transformer variants at the paper's Table 2 input (1x256x32x64).

Searches the settings (attention width, heads, FFN, shortcut, token resolution) that come closest to the
paper's memory-efficient self-attention (0.6 GMACs / 0.81 M params) and transformer (4.3 G / 12.62 M)
rows. Three MAC counts per row: fvcore with the attention matmuls (``segnas.metrics``); without the
attention matmuls (thop 0.0.31, which the reference code uses, counts no matmul); and without any
multi-head attention module (thop 0.0.31 has no rule for ``nn.MultiheadAttention``: zero MACs, params
counted).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/hyctas_profile/attention_variants.py

writes ``variants.md`` and ``variants.json`` next to this file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segnas.metrics.complexity import flop_analysis
from segnas.nn import ConvBNAct, MultiHeadSelfAttention, PatchTransformer, build_op
from segnas.nn.ops import pool2, to_map, to_tokens

INPUT = (1, 256, 32, 64)
PAPER = {"sa": (0.6, 0.81), "transformer": (4.3, 12.62)}
HERE = Path(__file__).resolve().parent


class BottleneckAttention(nn.Module):
    """segnas ``self_attention`` with switches: 1x1 reduce ``c -> width`` -> MHSA (+ residual) -> optional
    FFN (pre-LN, ``ffn_ratio * width`` hidden) -> 1x1 expand ``width -> c`` (+ optional 1x1 bypass), with the
    attention at full or half resolution (2x2 average pooling, bilinear upsampling back)."""

    def __init__(self, c: int, width: int, heads: int, ffn_ratio: int, bypass: bool, half: bool) -> None:
        super().__init__()
        self.reduce = ConvBNAct(c, width, 1)
        self.attn = MultiHeadSelfAttention(width, width, heads)
        self.ffn = (
            nn.Sequential(
                nn.LayerNorm(width), nn.Linear(width, ffn_ratio * width), nn.GELU(), nn.Linear(ffn_ratio * width, width)
            )
            if ffn_ratio
            else None
        )
        self.expand = ConvBNAct(width, c, 1, act=False)
        self.bypass = ConvBNAct(c, c, 1, act=False) if bypass else None
        self.half = half

    def forward(self, x: Tensor) -> Tensor:
        z = self.reduce(x)
        size = z.shape[-2:]
        if self.half:
            z = pool2(z)
        t = to_tokens(z)
        t = t + self.attn(t)
        if self.ffn is not None:
            t = t + self.ffn(t)
        z = to_map(t, z.shape[-2:])
        if self.half:
            z = F.interpolate(z, size=size, mode="bilinear", align_corners=False)
        y = self.expand(z)
        return F.relu(y + self.bypass(x) if self.bypass is not None else y)


class HalfResolution(nn.Module):
    """The reference head variant (``SAHead``): bilinear x0.5, the wrapped op, bilinear x2."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: Tensor) -> Tensor:
        y = self.op(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


def profile(model: nn.Module) -> dict[str, float]:
    """GMACs (all; without attention matmuls; without MHSA modules) and M params at :data:`INPUT`."""
    model.eval()
    with torch.no_grad():
        analysis = flop_analysis(model, (torch.randn(*INPUT),))
        total = analysis.total()
        matmul = analysis.by_operator().get("scaled_dot_product_attention", 0)
        by_module = analysis.by_module()
        mhsa = sum(by_module[n] for n, m in model.named_modules() if isinstance(m, MultiHeadSelfAttention))
    return {
        "gmacs": total / 1e9,
        "gmacs_no_matmul": (total - matmul) / 1e9,
        "gmacs_no_mhsa": (total - mhsa) / 1e9,
        "mparams": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def sa_variants() -> list[tuple[dict[str, Any], nn.Module]]:
    """segnas bottleneck grid, heads sweep, and the reference op at its possible shapes."""
    rows: list[tuple[dict[str, Any], nn.Module]] = []
    for width in (64, 128, 256, 384, 512):
        for ffn in (0, 4):
            for bypass in (True, False):
                for half in (False, True):
                    spec = {"family": "bottleneck", "width": width, "heads": 2, "ffn": ffn,
                            "shortcut": "1x1" if bypass else "none", "tokens": 1024 if half else 2048}
                    rows.append((spec, BottleneckAttention(256, width, 2, ffn, bypass, half)))
    for heads in (1, 4, 8):
        spec = {"family": "bottleneck", "width": 64, "heads": heads, "ffn": 0, "shortcut": "1x1", "tokens": 2048}
        rows.append((spec, BottleneckAttention(256, 64, heads, 0, True, False)))
    for c_out, stride, shortcut in ((256, 1, "identity"), (512, 1, "1x1"), (256, 2, "3x3 s2"), (512, 2, "3x3 s2")):
        spec = {"family": "reference", "width": c_out, "heads": 1, "ffn": 0, "shortcut": shortcut,
                "tokens": 2048, "c_out": c_out, "stride": stride}
        rows.append((spec, build_op("self_attention_reference", 256, c_out, stride)))
    spec = {"family": "reference SAHead (x0.5)", "width": 256, "heads": 1, "ffn": 0, "shortcut": "identity",
            "tokens": 512}
    rows.append((spec, HalfResolution(build_op("self_attention_reference", 256, 256, 1))))
    return rows


def transformer_variants() -> list[tuple[dict[str, Any], nn.Module]]:
    """segnas ``transformer`` (1x1 embedding, pre-LN MHSA + MLP) over width, MLP ratio and token count."""
    rows = []
    for width in (256, 512, 768, 1024):
        for mlp in (2, 4):
            for stride in (1, 2):
                spec = {"family": "transformer", "width": width, "heads": 4, "ffn": mlp, "shortcut": "residual",
                        "tokens": 2048 // stride**2}
                rows.append((spec, build_op("transformer", 256, width, stride, mlp_ratio=float(mlp))))
    spec = {"family": "2x2 patches, no embedding", "width": 1024, "heads": 8, "ffn": 4, "shortcut": "residual",
            "tokens": 512}
    rows.append((spec, PatchTransformer(256)))
    return rows


def distance(row: dict[str, Any], paper: tuple[float, float]) -> float:
    """Largest relative deviation from the paper over (GMACs, params), GMACs counted the closest of the
    three ways."""
    macs = min(abs(row[k] / paper[0] - 1) for k in ("gmacs", "gmacs_no_matmul", "gmacs_no_mhsa"))
    return max(macs, abs(row["mparams"] / paper[1] - 1))


def table(rows: list[dict[str, Any]], paper: tuple[float, float]) -> list[str]:
    lines = [
        "| family | attn width | heads | FFN ratio | shortcut | tokens | GMACs | GMACs w/o matmuls "
        "| GMACs w/o MHSA | M params | max rel. dev. |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: distance(r, paper)):
        lines.append(
            f"| {r['family']} | {r['width']} | {r['heads']} | {r['ffn']} | {r['shortcut']} | {r['tokens']} "
            f"| {r['gmacs']:.3f} | {r['gmacs_no_matmul']:.3f} | {r['gmacs_no_mhsa']:.3f} | {r['mparams']:.4f} "
            f"| {distance(r, paper):.3f} |"
        )
    return lines


def main() -> None:
    torch.manual_seed(0)
    results: dict[str, list[dict[str, Any]]] = {}
    for name, variants in (("sa", sa_variants()), ("transformer", transformer_variants())):
        results[name] = [{**spec, **profile(model)} for spec, model in variants]
    (HERE / "variants.json").write_text(json.dumps(results, indent=1))
    md = [f"# Attention variants at input {'x'.join(map(str, INPUT))} (sorted by distance to the paper)", ""]
    for name, title in (("sa", "Memory-efficient self-attention"), ("transformer", "Transformer")):
        paper = PAPER[name]
        md += [f"## {title}: paper {paper[0]} GMACs / {paper[1]} M params", "", *table(results[name], paper), ""]
    (HERE / "variants.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
