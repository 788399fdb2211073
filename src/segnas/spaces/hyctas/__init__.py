"""HyCTAS multi-branch hybrid convolution/self-attention search space: genotype, space, network, supernet,
auxiliary heads and cost walk (and, as submodules, the latency table, ablations and profiling)."""

from torch import nn

from segnas.spaces.hyctas.aux import HyCTASWithAux
from segnas.spaces.hyctas.costs import network_costs
from segnas.spaces.hyctas.genotype import HEADS, IDENTITY_SKIP_OPS, KNOWN_OPS, STRIDES, Branch, HyCTASGenotype
from segnas.spaces.hyctas.network import HyCTASNet
from segnas.spaces.hyctas.plan import Node, Plan, build_plan, num_filters
from segnas.spaces.hyctas.space import (
    DEFAULT_LAYERS,
    DEFAULT_MIN_LAYERS,
    DEFAULT_OPS,
    DEFAULT_WIDTHS,
    HyCTASSpace,
)
from segnas.spaces.hyctas.supernet import HyCTASSupernet
from segnas.spaces.registry import register_space


@register_space(HyCTASSpace, costs=network_costs)
def build(
    genotype: HyCTASGenotype,
    num_classes: int,
    filter_multiplier: int = 16,
    output_stride: int = 8,
    drop_path_rate: float = 0.0,
    aux_heads: bool = False,
) -> nn.Module:
    """A :class:`HyCTASNet`, wrapped in :class:`HyCTASWithAux` when ``aux_heads`` (retraining)."""
    net = HyCTASNet(genotype, num_classes, filter_multiplier, output_stride, drop_path_rate)
    return HyCTASWithAux(net, num_classes) if aux_heads else net


__all__ = [
    "DEFAULT_LAYERS",
    "DEFAULT_MIN_LAYERS",
    "DEFAULT_OPS",
    "DEFAULT_WIDTHS",
    "HEADS",
    "IDENTITY_SKIP_OPS",
    "KNOWN_OPS",
    "STRIDES",
    "Branch",
    "HyCTASGenotype",
    "HyCTASNet",
    "HyCTASSpace",
    "HyCTASSupernet",
    "HyCTASWithAux",
    "Node",
    "Plan",
    "build",
    "build_plan",
    "num_filters",
]
