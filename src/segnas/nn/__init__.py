"""Building blocks: slimmable layers, cell operators, stem, fusion edges and output heads."""

from segnas.nn.drop import DropPath, IdentitySkip
from segnas.nn.heads import AggregationHead, FuseEdge, Stem, WithAuxHeads
from segnas.nn.ops import (
    OPS,
    Conv3x3,
    LightweightConv,
    LightweightConv2x,
    MultiHeadSelfAttention,
    PatchTransformer,
    SelfAttention,
    SelfAttentionReference,
    Skip,
    TransformerBlock,
    build_op,
)
from segnas.nn.slim import (
    ConvBNAct,
    SlimBatchNorm2d,
    SlimConv2d,
    SlimLayerNorm,
    SlimLinear,
    load_leading_slices,
)

__all__ = [
    "OPS",
    "AggregationHead",
    "Conv3x3",
    "ConvBNAct",
    "DropPath",
    "FuseEdge",
    "IdentitySkip",
    "LightweightConv",
    "LightweightConv2x",
    "MultiHeadSelfAttention",
    "PatchTransformer",
    "SelfAttention",
    "SelfAttentionReference",
    "Skip",
    "SlimBatchNorm2d",
    "SlimConv2d",
    "SlimLayerNorm",
    "SlimLinear",
    "Stem",
    "TransformerBlock",
    "WithAuxHeads",
    "build_op",
    "load_leading_slices",
]
