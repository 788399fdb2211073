"""HyCTAS multi-branch hybrid convolution/self-attention search space."""

from segnas.spaces.hyctas.genotype import HEADS, IDENTITY_SKIP_OPS, KNOWN_OPS, STRIDES, Branch, HyCTASGenotype
from segnas.spaces.hyctas.plan import Node, Plan, build_plan, num_filters
from segnas.spaces.hyctas.space import (
    DEFAULT_LAYERS,
    DEFAULT_MIN_LAYERS,
    DEFAULT_OPS,
    DEFAULT_WIDTHS,
    HyCTASSpace,
)

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
    "HyCTASSpace",
    "Node",
    "Plan",
    "build_plan",
    "num_filters",
]
