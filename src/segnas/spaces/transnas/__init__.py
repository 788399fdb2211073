"""TransNAS-Bench-101 segmentation: its networks rebuilt from their architecture strings, and its micro and
macro spaces registered as the search spaces ``transnas_micro`` and ``transnas_macro`` (genotype = the
architecture string; scored against the benchmark's table by ``score=benchmark``)."""

from torch import nn

from segnas.spaces.registry import register_space
from segnas.spaces.transnas.arch import INPUT_SIZE, NUM_CLASSES, SPACES, all_archs, parse, sample, space_of
from segnas.spaces.transnas.costs import network_costs
from segnas.spaces.transnas.network import BasicBlock, MicroCell, ReLUConvBN, TransNASSegmenter, build
from segnas.spaces.transnas.space import (
    TransNASGenotype,
    TransNASMacroGenotype,
    TransNASMacroSpace,
    TransNASMicroGenotype,
    TransNASMicroSpace,
    TransNASSpace,
)


@register_space(TransNASMacroSpace, costs=network_costs)
@register_space(TransNASMicroSpace, costs=network_costs)
def build_genotype(genotype: TransNASGenotype, num_classes: int, bn_quirk: bool = True) -> nn.Module:
    """The TNB network of a genotype's architecture string (weights from torch's global generator)."""
    return TransNASSegmenter(genotype.arch, num_classes, bn_quirk)


__all__ = [
    "INPUT_SIZE",
    "NUM_CLASSES",
    "SPACES",
    "BasicBlock",
    "MicroCell",
    "ReLUConvBN",
    "TransNASGenotype",
    "TransNASMacroGenotype",
    "TransNASMacroSpace",
    "TransNASMicroGenotype",
    "TransNASMicroSpace",
    "TransNASSegmenter",
    "TransNASSpace",
    "all_archs",
    "build",
    "build_genotype",
    "parse",
    "sample",
    "space_of",
]
