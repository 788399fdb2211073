"""HyCTAS multi-branch hybrid convolution/self-attention search space."""

from segnas.spaces.hyctas.genotype import HEADS, KNOWN_OPS, STRIDES, Branch, HyCTASGenotype
from segnas.spaces.hyctas.plan import Node, Plan, build_plan, num_filters
from segnas.spaces.hyctas.space import DEFAULT_OPS, DEFAULT_WIDTHS, HyCTASSpace

__all__ = [
    "DEFAULT_OPS",
    "DEFAULT_WIDTHS",
    "HEADS",
    "KNOWN_OPS",
    "STRIDES",
    "Branch",
    "HyCTASGenotype",
    "HyCTASSpace",
    "Node",
    "Plan",
    "build_plan",
    "num_filters",
]
