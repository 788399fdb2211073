"""``stage=profile``: MACs, params, latency and peak memory of operators and architectures.

(a) Each operator at ``op_input`` (paper Table 2: 1x256x32x64) and at ``scale**2`` times the pixels,
beside the paper's figures, the operators of ``stride2_ops`` also as a downsampling cell (row
``NAME/s2``); (b) with ``arch=NAME`` the whole network at ``arch_input`` (1024x2048) beside Table 3.
MACs count attention matmuls (``segnas.metrics.count_macs_params``); operator rows also give them without
(``macs_g_no_attn``: thop, which the paper and the reference code use, counts no matmul). Writes
``results.json`` (via the stage runner) and ``profile.md``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from torch.overrides import TorchFunctionMode

from segnas.metrics import count_macs_params, measure_latency
from segnas.nn import build_op
from segnas.spaces import load_genotype
from segnas.spaces.hyctas import HyCTASNet
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)

PAPER_TABLE2 = {  # operator: (GMACs, M params) at 1x256x32x64; both self-attention variants face the MESA row
    "conv": (1.2, 0.59),
    "lightweight_conv": (0.4, 0.66),
    "transformer": (4.3, 12.62),
    "self_attention": (0.6, 0.81),
    "self_attention_reference": (0.6, 0.81),
}
PAPER_TABLE3 = {"hyctas_s": (13.0, 1.5), "hyctas_m": (29.4, 2.4), "hyctas_l": (527.0, 43.2)}


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _peak_memory_mb(model: nn.Module, shape: list[int], device: torch.device) -> float | None:
    """Peak CUDA memory of one inference forward above the weights (None on CPU)."""
    if device.type != "cuda":
        return None
    model = model.to(device).eval()
    x = torch.randn(*shape, device=device)
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        model(x)
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


class _AttentionMacs(TorchFunctionMode):
    """Sums the MACs of ``F.scaled_dot_product_attention`` calls (``Q K^T`` and ``A V``)."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            self.macs += q.shape[:-1].numel() * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return func(*args, **(kwargs or {}))


def attention_macs(model: nn.Module, shape: list[int]) -> int:
    """MACs of the attention matmuls of one eval forward of ``model`` on a random input of ``shape``."""
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    counter = _AttentionMacs()
    with torch.no_grad(), counter:
        model(torch.randn(*shape, device=param.device))
    model.train(was_training)
    return counter.macs


def _profile(model: nn.Module, shape: list[int], cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    macs, params = count_macs_params(model.to(device), shape)
    out: dict[str, Any] = {"macs_g": macs / 1e9, "params_m": params / 1e6, "input": list(shape)}
    if cfg.latency:
        lat = measure_latency(
            model,
            shape,
            device=device,
            warmup=cfg.latency_warmup,
            duration_s=cfg.latency_duration_s,
            min_iters=cfg.latency_min_iters,
        )
        out.update(latency_ms=lat.median_ms, fps=lat.fps, device=lat.device)
    out["peak_memory_mb"] = _peak_memory_mb(model, shape, device)
    return out


def profile_ops(cfg: DictConfig, device: torch.device) -> dict[str, dict[str, Any]]:
    """Every operator of ``cfg.ops`` (and of ``cfg.stride2_ops`` at stride 2) at ``cfg.op_input`` and at
    ``cfg.scale`` times each side."""
    n, c, h, w = cfg.op_input
    big = [n, c, h * cfg.scale, w * cfg.scale]
    results = {}
    runs = [(name, 1) for name in cfg.ops] + [(name, 2) for name in cfg.stride2_ops]
    for name, stride in runs:
        op = build_op(name, c, c, stride)
        row = _profile(op, list(cfg.op_input), cfg, device)
        scaled = _profile(op, big, cfg, device)
        row.update(
            stride=stride,
            macs_g_no_attn=row["macs_g"] - attention_macs(op, list(cfg.op_input)) / 1e9,
            macs_g_scaled=scaled["macs_g"],
            macs_ratio_scaled=scaled["macs_g"] / row["macs_g"],
            latency_ms_scaled=scaled.get("latency_ms"),
            peak_memory_mb_scaled=scaled["peak_memory_mb"],
            input_scaled=big,
        )
        paper = PAPER_TABLE2.get(name)
        row.update(paper_macs_g=paper and paper[0], paper_params_m=paper and paper[1])
        key = name if stride == 1 else f"{name}/s2"
        results[key] = row
        log.info("%s: %.3f GMACs, %.4f M params", key, row["macs_g"], row["params_m"])
    return results


def profile_arch(arch: DictConfig, cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    """The standalone network of ``arch`` (name, genotype, filter_multiplier, output_stride)."""
    genotype = load_genotype(arch.genotype)
    net = HyCTASNet(
        genotype,
        num_classes=cfg.num_classes,
        filter_multiplier=arch.filter_multiplier,
        output_stride=arch.output_stride,
    )
    row = _profile(net, list(cfg.arch_input), cfg, device)
    paper = PAPER_TABLE3.get(arch.name)
    row.update(
        name=arch.name,
        filter_multiplier=arch.filter_multiplier,
        output_stride=arch.output_stride,
        num_branches=genotype.num_branches,
        paper_macs_g=paper and paper[0],
        paper_params_m=paper and paper[1],
    )
    log.info("%s: %.2f GMACs, %.3f M params", arch.name, row["macs_g"], row["params_m"])
    return row


def _fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """Markdown tables of the operator and architecture rows, paper values alongside."""
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


def run(cfg: DictConfig) -> dict[str, Any]:
    """Profile the operators (and ``cfg.arch`` when set); write ``profile.md``."""
    stage = cfg.stage
    device = _device(stage.device)
    results: dict[str, Any] = {"ops": profile_ops(stage, device), "op_input": list(stage.op_input)}
    if cfg.get("arch"):
        results["arch"] = profile_arch(cfg.arch, stage, device)
    table = markdown(results)
    (output_dir(cfg) / "profile.md").write_text(table)
    log.info("\n%s", table)
    return results
