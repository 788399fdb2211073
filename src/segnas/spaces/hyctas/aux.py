"""Auxiliary segmentation heads for retraining a searched HyCTAS network (deep supervision, paper §4.2).

As in the reference code (``use_aux``): one head at stride 16 and one at stride 32. The stride-32
head sees the output of the branch ending at 1/32; the stride-16 head sees the output of the branch ending
at 1/16, or, without one, the last 1/16 feature of the branch ending at 1/32 (the input of its 1/16 -> 1/32
cell, as the reference's FFM16 does for single-branch HyCTAS-S/M). A network whose branches all end at 1/8
has no feature at 1/16 or 1/32 and gets no aux head, as in the reference. Their loss is added with weight
0.2 each during training. In eval mode the wrapper returns exactly the main logits of the wrapped network,
so evaluation, FPS and export ignore the heads (:func:`segnas.models.deploy_net` drops them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from torch import Tensor, nn

from segnas.nn import ConvBNAct, WithAuxHeads
from segnas.nn.heads import resize
from segnas.spaces.hyctas.network import HyCTASNet, forward_plan, last_node_at
from segnas.spaces.hyctas.plan import Plan

if TYPE_CHECKING:
    from torch.nn.modules.module import _IncompatibleKeys

AUX_MIN_STRIDE = 16


class HyCTASTrunk(Protocol):
    """What :func:`backbone_features` needs: the stem, cells and fusion edges of a HyCTAS network."""

    plan: Plan
    stem: nn.Module
    cells: nn.ModuleList
    fuse: nn.ModuleList


def backbone_features(net: HyCTASTrunk, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The stem's stride-4 feature and the branch outputs (ordered by stride) of a HyCTAS trunk."""
    x4, x8 = net.stem(x)
    feats = forward_plan(
        net.plan,
        x8,
        lambda layer, i, node, h: net.cells[layer][i](h),
        lambda layer, u, t, h, size: net.fuse[layer][f"{u}_{t}"](h, size),
    )
    return x4, feats


class LightHead(nn.Module):
    """3x3 conv-BN-ReLU to ``width`` channels and a 1x1 classifier (with bias)."""

    def __init__(self, in_channels: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, width, 3)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.conv(x))


class HyCTASWithAux(WithAuxHeads):
    """A :class:`HyCTASNet` plus auxiliary heads at strides 16 and 32 (see the module docstring).

    ``aux`` holds the heads on the branch outputs ``aux_index`` (strides 16/32); ``aux_taps`` the head on
    the inner 1/16 feature ``taps`` (a ``(layer, node)`` of the plan) when no branch ends at 1/16 but one
    ends at 1/32. Training mode returns ``(logits, [aux_logits, ...])`` (all at the input size, ordered as
    ``aux_strides``); eval mode returns the logits only, identical to ``self.net(x)``.
    """

    def __init__(self, net: HyCTASNet, num_classes: int) -> None:
        super().__init__()
        self.net = net
        width = net.stem.out_channels
        strides = net.genotype.head
        self.aux_index = [k for k, s in enumerate(strides) if s >= AUX_MIN_STRIDE]
        self.aux = nn.ModuleList(
            LightHead(net.plan.out_channels[k], width, num_classes) for k in self.aux_index
        )
        inner = 32 in strides and 16 not in strides
        tap = last_node_at(net.plan, strides.index(32), 16) if inner else None
        self.taps = [tap] if tap is not None else []
        self.aux_taps = nn.ModuleList(
            LightHead(net.plan.layers[layer][i].c_out, width, num_classes) for layer, i in self.taps
        )
        self.aux_strides = [16] * len(self.taps) + [strides[k] for k in self.aux_index]
        self.register_load_state_dict_post_hook(_allow_missing_tap_heads)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, list[Tensor]]:
        if not self.training:
            return self.net(x)
        size = x.shape[-2:]
        x4, feats, tapped = self.net.features(x, self.taps)
        logits = self.net.head(feats, x4, size)
        inputs = [*tapped, *(feats[k] for k in self.aux_index)]
        heads = [*self.aux_taps, *self.aux]
        return logits, [resize(head(f), size) for head, f in zip(heads, inputs, strict=True)]


def _allow_missing_tap_heads(module: nn.Module, keys: _IncompatibleKeys) -> None:
    """Let checkpoints written before ``aux_taps`` existed load; the tapped head keeps its initial weights."""
    keys.missing_keys[:] = [k for k in keys.missing_keys if ".aux_taps." not in f".{k}"]

