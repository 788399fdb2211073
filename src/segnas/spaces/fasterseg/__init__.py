"""FasterSeg search space (its architecture matrices), network, auxiliary heads and cost walk."""

from torch import nn

from segnas.spaces.fasterseg.aux import FasterSegWithAux
from segnas.spaces.fasterseg.costs import network_costs
from segnas.spaces.fasterseg.network import FasterSegNet
from segnas.spaces.fasterseg.space import (
    OPS,
    FasterSegBranch,
    FasterSegGenotype,
    FasterSegMatrices,
    FasterSegSpace,
    decode_matrices,
)
from segnas.spaces.registry import register_space


@register_space(FasterSegSpace, costs=network_costs)
def build(
    genotype: FasterSegGenotype, num_classes: int, aux_heads: bool = False, init: str = "kaiming"
) -> nn.Module:
    """A :class:`FasterSegNet` (no drop path), wrapped in :class:`FasterSegWithAux` when ``aux_heads``;
    ``init="kaiming"`` is FasterSeg's own initialisation (for training and proxy scoring), ``"default"``
    PyTorch's."""
    net = FasterSegNet(genotype, num_classes, aux_heads=False, init=init)
    return FasterSegWithAux(net, num_classes) if aux_heads else net


__all__ = [
    "OPS",
    "FasterSegBranch",
    "FasterSegGenotype",
    "FasterSegMatrices",
    "FasterSegNet",
    "FasterSegSpace",
    "FasterSegWithAux",
    "build",
    "decode_matrices",
]
