"""A HyCTAS genotype built as the public reference code builds it (``model.head=reference``).

The reference (MarvinYu1995/HyCTAS ``train/hrtnet.py``, FasterSeg's code base; ``../shared/research/hyctas.md``
§2-§6) differs from segnas's own network (:class:`~segnas.spaces.hyctas.network.HyCTASNet`) in three places,
which this module reproduces:

* cells: its self-attention op (``self_attention`` cells become ``self_attention_reference``) and no identity
  skip around plain conv cells; the stem's first conv has no ReLU;
* aggregation (``agg_ffm``): a branch ending at 1/32 goes 1x1 conv-BN ("arm") to the 1/16 width, up to its
  last 1/16 feature, concat, 3x3 conv-BN ("refine"), 1x1 conv-BN to the 1/8 width, up to its last 1/8
  feature, concat, 3x3 conv-BN; a branch ending at 1/16 does the second half; a branch ending at 1/8 is
  used as is. The 1/8 results are concatenated and fused by an FFM (1x1 conv-BN-ReLU, squeeze-and-excite
  gate of reduction 1, ``f + f * gate``); FFM16 / FFM32 fuse the 1/16 / 1/32 features for the auxiliary
  heads only;
* semantic head: ``HRTSemHeadLight`` at output stride 8 (``model_type=0``) or ``HRTSemHead1`` at output
  stride 4 (``model_type=1``, the stem's 1/4 feature projected to 48 channels): self-attention at half
  resolution (``SAHead``), a two-conv light-weight conv block, 3x3 conv-BN-ReLU, 1x1 classifier.

FFM16 and FFM32 are part of the reference backbone: they run (and their parameters count) in every forward,
so the MACs and parameters of :class:`HyCTASReferenceNet` are the reference code's. Fusion gates (which the
released networks do not use; the reference has none) keep segnas's fusion edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segnas.nn import ConvBNAct, LightweightConv2x, SelfAttentionReference, Stem, WithAuxHeads, build_op
from segnas.nn.heads import resize
from segnas.spaces.hyctas.network import STEM_TAP, HyCTASNet, last_node_at
from segnas.spaces.hyctas.plan import Node, Plan, num_filters

REFERENCE_OPS = {"self_attention": "self_attention_reference"}  # segnas cell op -> the op the reference runs
LOW_WIDTH = 48  # the reference head's projection of the stride-4 feature (HRTSemHead1's C_low)


class FeatureFusion(nn.Module):
    """The reference ``FeatureFusion`` (FFM): 1x1 conv-BN-ReLU, then ``f + f * gate`` with a squeeze-and-excite
    gate of reduction 1 (global average pool, 1x1 conv-BN-ReLU, 1x1 conv-BN, sigmoid)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(c_in, c_out, 1)
        self.gate = nn.Sequential(ConvBNAct(c_out, c_out, 1), ConvBNAct(c_out, c_out, 1, act=False))

    def forward(self, x: Tensor) -> Tensor:
        f = self.conv(x)
        return f + f * torch.sigmoid(self.gate(F.adaptive_avg_pool2d(f, 1)))


class SemanticHead(nn.Module):
    """The reference semantic head: ``HRTSemHeadLight`` (``low_channels=0``) or ``HRTSemHead1`` (the stride-4
    feature of ``low_channels`` channels projected by a 1x1 conv-BN to 48 and concatenated after upsampling).

    Self-attention at half resolution (``SAHead``) -> light-weight conv block with two 3x3 convs to ``mid``
    channels (``c_in``, halved above 256) -> 3x3 conv-BN-ReLU -> 1x1 classifier with bias. No drop path.
    """

    def __init__(self, c_in: int, num_classes: int, low_channels: int = 0) -> None:
        super().__init__()
        mid = c_in if c_in <= 256 else c_in // 2
        self.attn = SelfAttentionReference(c_in, c_in, half_resolution=True)
        self.low = ConvBNAct(low_channels, LOW_WIDTH, 1, act=False) if low_channels else None
        self.block = LightweightConv2x(c_in + (LOW_WIDTH if low_channels else 0), mid)
        self.conv = ConvBNAct(mid, mid, 3)
        self.classifier = nn.Conv2d(mid, num_classes, 1)
        self.attn.drop_path = self.block.drop_path = nn.Identity()  # drop path acts on cells only

    def forward(self, x: Tensor, x4: Tensor | None = None) -> Tensor:
        """Logits at the resolution of ``x`` (or of ``x4`` when the head fuses it)."""
        y = self.attn(x)
        if self.low is not None and x4 is not None:
            y = torch.cat([resize(y, x4.shape[-2:]), self.low(x4)], 1)
        return self.classifier(self.conv(self.block(y)))


def inner_tap(plan: Plan, branch: int, stride: int) -> tuple[int, int]:
    """``(layer, node)`` of ``branch``'s last feature at ``stride`` (:data:`STEM_TAP` when it downsamples from
    the stem's output at once): what the reference keeps in ``outputs8`` / ``outputs16``."""
    return last_node_at(plan, branch, stride) or STEM_TAP


class ReferenceHead(nn.Module):
    """The reference aggregation (arms, refines, FFM8/16/32) and semantic head of a plan's branch outputs.

    ``taps`` are the inner features the aggregation needs (see :func:`inner_tap`): per branch ending at 1/32
    its last 1/16 and 1/8 features, per branch ending at 1/16 its last 1/8 feature.
    """

    def __init__(
        self, plan: Plan, filter_multiplier: int, stem_channels: int, num_classes: int, output_stride: int
    ) -> None:
        super().__init__()
        if output_stride not in (4, 8):
            raise ValueError(f"output_stride must be 4 or 8, got {output_stride}")
        c8, c16, c32 = (num_filters(s, 1.0, filter_multiplier) for s in (8, 16, 32))
        strides = plan.head
        self.strides = strides
        self.inner_keys = [(b, s) for b, last in enumerate(strides) for s in (16, 8) if s < last]
        self.taps = [inner_tap(plan, b, s) for b, s in self.inner_keys]
        inner = {
            key: stem_channels if tap == STEM_TAP else plan.layers[tap[0]][tap[1]].c_out
            for key, tap in zip(self.inner_keys, self.taps, strict=True)
        }
        self.arms = nn.ModuleDict()
        self.refines = nn.ModuleDict()
        for b, last in enumerate(strides):
            c_up = plan.out_channels[b]
            for s in (16, 8):
                if s < last:
                    c_s = c16 if s == 16 else c8
                    self.arms[f"{b}_{s}"] = ConvBNAct(c_up, c_s, 1, act=False)
                    self.refines[f"{b}_{s}"] = ConvBNAct(c_s + inner[b, s], c_s, 3, act=False)
                    c_up = c_s
        self.ffm8 = FeatureFusion(c8 * len(strides), c8 * len(strides))
        c16_in = sum(plan.out_channels[b] if last == 16 else inner[b, 16] for b, last in enumerate(strides)
                     if last >= 16)
        self.ffm16 = FeatureFusion(c16_in, c16) if c16_in else None
        self.ffm32 = FeatureFusion(c32, c32) if 32 in strides else None
        self.semantic = SemanticHead(c8 * len(strides), num_classes, stem_channels if output_stride == 4 else 0)

    def fuse(self, feats: Sequence[Tensor], tapped: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """The FFM8 output and the FFM16 / FFM32 outputs (those that exist, by stride)."""
        inner = dict(zip(self.inner_keys, tapped, strict=True))
        pred8, pred16 = [], []
        for b, last in enumerate(self.strides):
            y = feats[b]
            if last >= 16:
                pred16.append(y if last == 16 else inner[b, 16])
            for s in (16, 8):
                if s < last:
                    y = resize(self.arms[f"{b}_{s}"](y), inner[b, s].shape[-2:])
                    y = self.refines[f"{b}_{s}"](torch.cat([y, inner[b, s]], 1))
            pred8.append(y)
        aux = [self.ffm16(torch.cat(pred16, 1))] if self.ffm16 is not None else []
        if self.ffm32 is not None:
            aux.append(self.ffm32(feats[self.strides.index(32)]))
        return self.ffm8(torch.cat(pred8, 1)), aux

    def forward(
        self, feats: Sequence[Tensor], x4: Tensor, out_size: Sequence[int], tapped: Sequence[Tensor]
    ) -> Tensor:
        """Logits at ``out_size`` (FFM16 / FFM32 run too, as in the reference backbone)."""
        s8, _ = self.fuse(feats, tapped)
        return resize(self.semantic(s8, x4), out_size)


class HyCTASReferenceNet(HyCTASNet):
    """A HyCTAS genotype as the reference code builds it (module docstring); same arguments as
    :class:`HyCTASNet`. Drop path acts on the cells' main branches (the reference's is a no-op)."""

    head: ReferenceHead

    def build_stem(self, in_channels: int) -> Stem:
        return Stem(self.filter_multiplier, in_channels, first_act=False)

    def build_cell(self, node: Node) -> nn.Module:
        return build_op(REFERENCE_OPS.get(node.op, node.op), node.c_in, node.c_out, 1 + node.down)

    def build_head(self, num_classes: int, output_stride: int) -> ReferenceHead:
        return ReferenceHead(self.plan, self.filter_multiplier, self.stem.out_channels, num_classes, output_stride)

    def forward(self, x: Tensor) -> Tensor:
        x4, feats, tapped = self.features(x, self.head.taps)
        return self.head(feats, x4, x.shape[-2:], tapped)


class HyCTASReferenceWithAux(WithAuxHeads):
    """A :class:`HyCTASReferenceNet` with the reference's auxiliary heads (``use_aux``): ``HRTSemHeadLight`` on
    FFM16 and on FFM32 (those that exist). Training mode returns ``(logits, [aux16, aux32])`` at the input
    size; eval mode returns ``self.net(x)``."""

    def __init__(self, net: HyCTASReferenceNet, num_classes: int) -> None:
        super().__init__()
        self.net = net
        ffms = [m for m in (net.head.ffm16, net.head.ffm32) if m is not None]
        self.aux = nn.ModuleList(SemanticHead(m.conv.bn.num_features, num_classes) for m in ffms)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, list[Tensor]]:
        if not self.training:
            return self.net(x)
        size = x.shape[-2:]
        x4, feats, tapped = self.net.features(x, self.net.head.taps)
        s8, aux = self.net.head.fuse(feats, tapped)
        logits = resize(self.net.head.semantic(s8, x4), size)
        return logits, [resize(head(f), size) for head, f in zip(self.aux, aux, strict=True)]
