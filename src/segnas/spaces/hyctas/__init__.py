"""HyCTAS multi-branch hybrid convolution/self-attention search space: genotype, space, network, supernet,
auxiliary heads and cost walk (and, as submodules, the latency table, ablations and profiling)."""

from torch import nn

from segnas.spaces.hyctas.aux import HyCTASWithAux
from segnas.spaces.hyctas.costs import network_costs
from segnas.spaces.hyctas.genotype import HEADS, IDENTITY_SKIP_OPS, KNOWN_OPS, STRIDES, Branch, HyCTASGenotype
from segnas.spaces.hyctas.network import HyCTASNet
from segnas.spaces.hyctas.plan import Node, Plan, build_plan, num_filters
from segnas.spaces.hyctas.reference import HyCTASReferenceNet, HyCTASReferenceWithAux
from segnas.spaces.hyctas.space import (
    DEFAULT_LAYERS,
    DEFAULT_MIN_LAYERS,
    DEFAULT_OPS,
    DEFAULT_WIDTHS,
    HyCTASSpace,
)
from segnas.spaces.hyctas.supernet import HyCTASSupernet
from segnas.spaces.registry import register_space

HEAD_VARIANTS = ("segnas", "reference")  # model.head: segnas's network, or the reference code's


@register_space(HyCTASSpace, costs=network_costs)
def build(
    genotype: HyCTASGenotype,
    num_classes: int,
    filter_multiplier: int = 16,
    output_stride: int = 8,
    drop_path_rate: float = 0.0,
    aux_heads: bool = False,
    head: str = "segnas",
) -> nn.Module:
    """A :class:`HyCTASNet` (``head="segnas"``) or :class:`HyCTASReferenceNet` (``head="reference"``: the
    reference code's cells, aggregation and heads), with its auxiliary heads when ``aux_heads`` (retraining)."""
    if head == "reference":
        ref = HyCTASReferenceNet(genotype, num_classes, filter_multiplier, output_stride, drop_path_rate)
        return HyCTASReferenceWithAux(ref, num_classes) if aux_heads else ref
    if head != "segnas":
        raise ValueError(f"head must be one of {list(HEAD_VARIANTS)}, got {head!r}")
    net = HyCTASNet(genotype, num_classes, filter_multiplier, output_stride, drop_path_rate)
    return HyCTASWithAux(net, num_classes) if aux_heads else net


__all__ = [
    "DEFAULT_LAYERS",
    "DEFAULT_MIN_LAYERS",
    "DEFAULT_OPS",
    "DEFAULT_WIDTHS",
    "HEADS",
    "HEAD_VARIANTS",
    "IDENTITY_SKIP_OPS",
    "KNOWN_OPS",
    "STRIDES",
    "Branch",
    "HyCTASGenotype",
    "HyCTASNet",
    "HyCTASReferenceNet",
    "HyCTASReferenceWithAux",
    "HyCTASSpace",
    "HyCTASSupernet",
    "HyCTASWithAux",
    "Node",
    "Plan",
    "build",
    "build_plan",
    "num_filters",
]
