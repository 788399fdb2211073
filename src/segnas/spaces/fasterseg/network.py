"""Standalone FasterSeg network from a :class:`~segnas.spaces.fasterseg.space.FasterSegGenotype`.

Stem to 1/8, two branches of cells (sharing their common prefix), each branch brought back to 1/8 by the
FasterSeg fusion (1x1 "arm" convs, bilinear upsampling, concatenation with the input of the branch's
downsampling cell, 3x3 "refine" convs), a 1x1 feature-fusion conv over both branches and a 3x3 + 1x1
head. Optional auxiliary heads at 1/16 and 1/32 (training only in FasterSeg) are built but not used by
:meth:`FasterSegNet.forward`; :meth:`FasterSegNet.forward_aux` returns their predictions too
(:class:`~segnas.spaces.fasterseg.aux.FasterSegWithAux` trains them with the retraining loss). ``init="kaiming"``
initialises the weights as FasterSeg's training does (:func:`kaiming_init`), e.g. for proxy scoring.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segnas.spaces.fasterseg.space import FasterSegBranch, FasterSegGenotype


def num_filters(fch: int, scale: int, width: float) -> int:
    """FasterSeg's channel rule ``round(scale * fch * width)``."""
    return round(scale * fch * width)


def upsample(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize to ``size`` (``align_corners=True``, as FasterSeg)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """``k x k`` conv (no bias) + BN (+ ReLU)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class FactorizedReduce(nn.Module):
    """FasterSeg ``skip``: identity at stride 1 (1x1 conv-BN-ReLU if widths differ); at stride 2 two
    shifted 1x1 stride-2 convs concatenated, BN, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        if stride == 2:
            self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
            self.conv2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, 2, bias=False)
            self.bn = nn.BatchNorm2d(c_out)
            self.proj: nn.Module | None = None
        else:
            self.proj = conv_bn(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 2:
            a = self.conv1(x)
            b = self.conv2(F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1)))
            return F.relu(self.bn(torch.cat([a, b], 1)))
        return x if self.proj is None else self.proj(x)


class ConvCell(nn.Module):
    """``conv`` (one 3x3 conv-BN-ReLU) or ``conv_2x`` (two), stride on the first conv."""

    def __init__(self, c_in: int, c_out: int, stride: int, num_convs: int) -> None:
        super().__init__()
        layers = [conv_bn(c_in, c_out, 3, stride)] + [conv_bn(c_out, c_out) for _ in range(num_convs - 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class ZoomedConv(nn.Module):
    """Zoomed conv: bilinear x0.5, conv(s) at half resolution, BN, bilinear back up (stride 1 only), ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, num_convs: int) -> None:
        super().__init__()
        self.stride = stride
        layers = [
            conv_bn(c_in if i == 0 else c_out, c_out, 3, 1, relu=i < num_convs - 1) for i in range(num_convs)
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        y = self.body(
            F.interpolate(x, size=(max(h // 2, 1), max(w // 2, 1)), mode="bilinear", align_corners=True)
        )
        if self.stride == 1:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=True)
        return F.relu(y)


def build_cell(op: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    """One FasterSeg operator."""
    if op == "skip":
        return FactorizedReduce(c_in, c_out, stride)
    if op in ("conv", "conv_2x"):
        return ConvCell(c_in, c_out, stride, 2 if op == "conv_2x" else 1)
    if op in ("conv_downup", "conv_2x_downup"):
        return ZoomedConv(c_in, c_out, stride, 2 if op == "conv_2x_downup" else 1)
    raise KeyError(f"unknown fasterseg operator {op!r}")


class Head(nn.Module):
    """3x3 conv-BN-ReLU (mid = in if in <= 256 else in/2) then a 1x1 classifier with bias."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        mid = c_in if c_in <= 256 else c_in // 2
        self.conv = conv_bn(c_in, mid, 3)
        self.cls = nn.Conv2d(mid, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.cls(self.conv(x))


def cell_specs(
    branch: FasterSegBranch, fch: int, stem_c: int, head_w: float
) -> list[tuple[str, int, int, int]]:
    """``(op, c_in, c_out, stride)`` of every cell of a branch."""
    specs, c_in, downs = [], stem_c, branch.downs()
    for i, op in enumerate(branch.ops):
        scale = 8 * 2 ** (branch.path[i] + downs[i])
        width = branch.widths[i] if i < branch.depth - 1 else head_w
        c_out = num_filters(fch, scale, width)
        specs.append((op, c_in, c_out, 2 if downs[i] else 1))
        c_in = c_out
    return specs


def kaiming_init(module: nn.Module) -> nn.Module:
    """FasterSeg's initialisation (train.py ``init_weight``): conv weights Kaiming-normal (fan_in, ReLU), BN
    weight 1, bias 0, eps 1e-5, momentum 0.1; conv biases keep PyTorch's default. Returns ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = 1e-5, 0.1
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


INITS = ("default", "kaiming")


class FasterSegNet(nn.Module):
    """A FasterSeg segmenter; ``forward`` returns logits at the input resolution.

    ``init``: ``"default"`` (PyTorch's) or ``"kaiming"`` (FasterSeg's, :func:`kaiming_init`).
    """

    def __init__(
        self, genotype: FasterSegGenotype, num_classes: int = 19, aux_heads: bool = True, init: str = "default"
    ) -> None:
        super().__init__()
        problems = genotype.rule_violations()
        if problems:
            raise ValueError("invalid fasterseg genotype: " + "; ".join(problems))
        if init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
        self.genotype = genotype
        fch, h = genotype.fch, genotype.stem_head_width
        stem_c = num_filters(fch, 8, h)
        self.stem = nn.Sequential(
            conv_bn(3, 2 * num_filters(fch, 2, h), 3, 2),
            ConvCell(2 * num_filters(fch, 2, h), 2 * num_filters(fch, 4, h), 2, 2),
            ConvCell(2 * num_filters(fch, 4, h), stem_c, 2, 2),
        )
        specs = [cell_specs(b, fch, stem_c, h) for b in genotype.branches]
        # Shared prefix (FasterSeg's branch groups): cells agree in op, channels, stride and input scale, and
        # neither is its branch's last cell.
        self.shared = 0
        while (
            self.shared < min(len(s) for s in specs) - 1
            and specs[0][self.shared] == specs[1][self.shared]
            and genotype.branches[0].path[self.shared] == genotype.branches[1].path[self.shared]
        ):
            self.shared += 1
        self.cells = nn.ModuleList(
            nn.ModuleList(
                build_cell(*spec) if b == 0 or i >= self.shared else nn.Identity() for i, spec in enumerate(s)
            )
            for b, s in enumerate(specs)
        )
        self.specs = specs
        c8, c16 = num_filters(fch, 8, h), num_filters(fch, 16, h)
        self.arms = nn.ModuleList()
        self.refines = nn.ModuleList()
        for b, branch in enumerate(genotype.branches):
            downs = [i for i, d in enumerate(branch.downs()) if d]
            arms, refines = nn.ModuleList(), nn.ModuleList()
            if branch.last == 2:  # 1/32 -> 1/16 -> 1/8
                skip16, skip8 = specs[b][downs[1]][1], specs[b][downs[0]][1]
                arms.append(conv_bn(num_filters(fch, 32, h), c16, 1))
                refines.append(conv_bn(c16 + skip16, c16, 3))
                arms.append(conv_bn(c16, c8, 1))
                refines.append(conv_bn(c8 + skip8, c8, 3))
            elif branch.last == 1:
                arms.append(conv_bn(c16, c8, 1))
                refines.append(conv_bn(c8 + specs[b][downs[0]][1], c8, 3))
            self.arms.append(arms)
            self.refines.append(refines)
        self.ffm = conv_bn(2 * c8, 2 * c8, 1)
        self.head = Head(2 * c8, num_classes)
        self.aux_heads = aux_heads
        if aux_heads:
            self.head16, self.head32 = (Head(c, num_classes) for c in self.aux_channels())
        if init == "kaiming":
            kaiming_init(self)

    def aux_channels(self) -> tuple[int, int]:
        """Input channels of the 1/16 and 1/32 auxiliary heads."""
        c16 = c32 = 0
        for b, branch in enumerate(self.genotype.branches):
            if branch.last == 1:
                c16 += self.specs[b][-1][2]
            elif branch.last == 2:
                c16 += self.specs[b][[i for i, d in enumerate(branch.downs()) if d][1]][1]
                c32 += self.specs[b][-1][2]
        return c16, c32

    def branch_features(self, x: Tensor) -> list[dict[str, Tensor]]:
        """Run the stem and both branches; per branch its output and the inputs of its downsampling cells."""
        x8 = self.stem(x)
        outs, shared_feats = [], []
        for b, branch in enumerate(self.genotype.branches):
            h, downs_in = x8, []
            for i, d in enumerate(branch.downs()):
                if d:
                    downs_in.append(h)
                h = shared_feats[i] if b > 0 and i < self.shared else self.cells[b][i](h)
                if b == 0:
                    shared_feats.append(h)
            outs.append({"out": h, "downs_in": downs_in})
        return outs

    def _to_eighth(self, b: int, feats: dict[str, Tensor]) -> Tensor:
        last, h = self.genotype.branches[b].last, feats["out"]
        skips = feats["downs_in"][::-1]  # deepest first
        for arm, refine, skip in zip(self.arms[b], self.refines[b], skips[: max(last, 0)], strict=True):
            h = upsample(arm(h), skip.shape[-2:])
            h = refine(torch.cat([h, skip], 1))
        return h

    def main_logits(self, feats: list[dict[str, Tensor]], size: Sequence[int]) -> Tensor:
        """Both branches brought to 1/8, concatenated, fused (FFM) and classified at ``size``."""
        eighth = [self._to_eighth(b, f) for b, f in enumerate(feats)]
        s8 = eighth[0].shape[-2:]
        fused = self.ffm(torch.cat([upsample(e, s8) for e in eighth], 1))
        return upsample(self.head(fused), size)

    def aux_logits(
        self, feats: list[dict[str, Tensor]], heads: Sequence[nn.Module], size: Sequence[int]
    ) -> list[Tensor]:
        """Logits at ``size`` of the 1/16 and 1/32 auxiliary ``heads`` on the branch features."""
        f16, f32 = [], []
        for b, f in enumerate(feats):
            last = self.genotype.branches[b].last
            if last == 1:
                f16.append(f["out"])
            elif last == 2:
                f16.append(f["downs_in"][1])
                f32.append(f["out"])
        f16 = [upsample(t, f16[0].shape[-2:]) for t in f16]
        return [upsample(head(torch.cat(ts, 1)), size) for head, ts in zip(heads, (f16, f32), strict=True)]

    def forward_aux(self, x: Tensor) -> dict[str, Tensor]:
        """Logits at the input resolution from the main head and (if built) the 1/16 and 1/32 aux heads."""
        size = x.shape[-2:]
        feats = self.branch_features(x)
        out = {"out": self.main_logits(feats, size)}
        if self.aux_heads:
            aux = self.aux_logits(feats, (self.head16, self.head32), size)
            out.update(zip(("aux16", "aux32"), aux, strict=True))
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes, H, W)`` of the main head."""
        return self.main_logits(self.branch_features(x), x.shape[-2:])

