"""Training activation memory of a HyCTAS sub-network (constraint 4), calibrated on measured networks.

The estimate is linear in per-image features of the genotype's execution plan (:func:`memory_features`,
in fp32 elements): per operator the output elements of its cells, the attention maps an unfused attention
would keep, the cross-branch fusion edges, the aggregation head, the stem and the image. The non-negative
coefficients of :data:`COEFFICIENTS` (fp32 values kept per feature element) are a least-squares fit to
the bytes autograd saves for the backward pass of sampled standalone networks (output stride 8,
cross-entropy): ``experiments/hyctas_memory/calibrate.py``, where the fit error is reported.
"""

from __future__ import annotations

from segnas.spaces.hyctas.genotype import KNOWN_OPS, HyCTASGenotype
from segnas.spaces.hyctas.plan import build_plan

# Attention heads (one N x N map each) per attention operator; its attention runs at the cell's input
# resolution for the reference operator, at its output resolution otherwise.
ATTENTION_HEADS = {"self_attention": 2, "self_attention_reference": 1, "transformer": 4}
FEATURES = (*(f"op:{op}" for op in KNOWN_OPS), "attention_maps", "fusion", "head", "stem", "image")

# Fitted by experiments/hyctas_memory/calibrate.py (its README gives the command and the fit error).
COEFFICIENTS: dict[str, float] = {
    "op:skip": 1.527,
    "op:conv": 2.861,
    "op:lightweight_conv": 1.689,
    "op:lightweight_conv2x": 3.42,
    "op:self_attention": 6.157,
    "op:self_attention_reference": 10.14,
    "op:transformer": 17.04,
    "attention_maps": 0.9999,
    "fusion": 1.482,
    "head": 0.6323,
    "stem": 38.9,
    "image": 24.6,
}


def _pixels(height: int, width: int, stride: int) -> int:
    return -(-height // stride) * -(-width // stride)


def memory_features(genotype: HyCTASGenotype, filter_multiplier: int, height: int, width: int) -> dict[str, float]:
    """Per-image features (fp32 elements) of the network of ``genotype`` at a ``height x width`` input."""
    plan = build_plan(genotype, filter_multiplier)
    feats = dict.fromkeys(FEATURES, 0.0)
    for layer, nodes in enumerate(plan.layers):
        for node in nodes:
            pixels = _pixels(height, width, node.out_stride)
            feats[f"op:{node.op}"] += node.c_out * pixels
            if node.op in ATTENTION_HEADS:
                stride = node.in_stride if node.op == "self_attention_reference" else node.out_stride
                feats["attention_maps"] += ATTENTION_HEADS[node.op] * _pixels(height, width, stride) ** 2
        for _, t in plan.fusion_edges(layer):
            feats["fusion"] += nodes[t].c_out * _pixels(height, width, nodes[t].out_stride)
    stem = 8 * filter_multiplier * _pixels(height, width, 8)
    feats["head"] = genotype.num_branches * stem
    feats["stem"] = stem
    feats["image"] = height * width
    return feats


def activation_memory_mb(
    genotype: HyCTASGenotype, filter_multiplier: int, batch: int, height: int, width: int
) -> float:
    """Estimated fp32 training activation memory (MB) of the whole network for a ``batch x height x width``
    input: what autograd keeps for the backward pass (weights, gradients, optimiser state and backward
    transients are not included)."""
    feats = memory_features(genotype, filter_multiplier, height, width)
    return 4.0 * batch * sum(COEFFICIENTS[k] * v for k, v in feats.items()) / 2**20
