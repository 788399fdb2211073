"""TransNAS-Bench-101 segmentation networks, rebuilt from their architecture strings (not a registered
search space: its architectures are strings, scored against the benchmark's recorded results)."""

from segnas.spaces.transnas.arch import INPUT_SIZE, NUM_CLASSES, SPACES, all_archs, parse, sample, space_of
from segnas.spaces.transnas.network import BasicBlock, MicroCell, ReLUConvBN, TransNASSegmenter, build

__all__ = [
    "INPUT_SIZE",
    "NUM_CLASSES",
    "SPACES",
    "BasicBlock",
    "MicroCell",
    "ReLUConvBN",
    "TransNASSegmenter",
    "all_archs",
    "build",
    "parse",
    "sample",
    "space_of",
]
