"""``stage=profile``: MACs, params, latency and peak memory of the HyCTAS operators and architectures.

(a) Each operator at ``op_input`` (paper Table 2: 1x256x32x64) and at ``scale**2`` times the pixels,
beside the paper's figures, the operators of ``stride2_ops`` also as a downsampling cell (row
``NAME/s2``); (b) with ``arch=NAME`` the whole network at ``arch_input`` (1024x2048) beside Table 3 and the
reference code's counts (``model.head=reference``: the network as the reference code builds it).
The measurements are :mod:`segnas.spaces.hyctas.profile`'s. Writes ``results.json`` (via the stage
runner) and ``profile.md``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from segnas.metrics.latency import SpeedProtocol
from segnas.spaces import load_genotype
from segnas.spaces.hyctas.profile import markdown, profile_arch, profile_ops
from segnas.utils.config import to_container
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Profile the operators (and ``cfg.arch`` when set); write ``profile.md``."""
    stage = cfg.stage
    device = _device(stage.device)
    timing = SpeedProtocol(stage.latency_warmup, stage.latency_duration_s, stage.latency_min_iters,
                           threads=cfg.speed.threads) if stage.latency else None
    results: dict[str, Any] = {
        "ops": profile_ops(stage.ops, stage.stride2_ops, stage.op_input, stage.scale, device, timing,
                           to_container(stage.paper_transformer) if stage.get("paper_transformer") else None),
        "op_input": list(stage.op_input),
    }
    if cfg.get("arch"):
        arch = cfg.arch
        genotype = load_genotype(arch.genotype)
        results["arch"] = profile_arch(arch.name, genotype, stage.num_classes, arch.filter_multiplier,
                                       arch.output_stride, stage.arch_input, device, timing,
                                       head=OmegaConf.select(cfg, "model.head", default="segnas"))
    table = markdown(results)
    (output_dir(cfg) / "profile.md").write_text(table)
    log.info("\n%s", table)
    return results
