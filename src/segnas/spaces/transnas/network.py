"""TransNAS-Bench-101 semantic-segmentation networks, rebuilt from their architecture strings.

Strings (:mod:`~segnas.spaces.transnas.arch`) are ``{C}-{macro skeleton}-{cell}``: micro cells of op codes
0 none, 1 skip, 2 ReLU-conv1x1-BN, 3 ReLU-conv3x3-BN; macro modules of two ResNet basic blocks each.

The encoder (stem to 1/4, then the modules) feeds the TNB segmentation decoder (conv layers to 1024
channels and back, transposed convs up to the input resolution, 3x3 conv to 17 logits). Encoder convs
use Kaiming-normal (fan_out) init, BN (1, 0); the decoder keeps PyTorch's default init, as in TNB.

**Residual BatchNorm quirk** (``bn_quirk``, default on). TNB's ``ResNetBasicblock`` builds its projection
shortcut's norm as ``nn.BatchNorm2d(planes, affine, track_running_stats)``: the two booleans land on
``eps`` and ``momentum``, so that BN has ``eps=1`` and ``momentum=1`` (running statistics = the last
batch's). The benchmark's macro networks were trained that way; ``bn_quirk=False`` builds the intended
``BatchNorm2d(planes)``. Micro cells have no such BN.
"""

from __future__ import annotations

import torch
from torch import nn

from segnas.spaces.transnas.arch import NUM_CLASSES, parse


class ReLUConvBN(nn.Sequential):
    """ReLU -> bias-free conv -> BN (pre-activation ordering of TNB)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros of the shape a conv with this stride and width would produce."""

    def __init__(self, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        s = self.stride
        return x.new_zeros(n, self.c_out, (h + s - 1) // s, (w + s - 1) // s)


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-s convs (the second on the input shifted by one pixel), concat, BN."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even output width, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=stride, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out // 2, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


def micro_op(code: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    """One edge of the micro cell from its op code ('0' none, '1' skip, '2' conv1x1, '3' conv3x3)."""
    if code == "0":
        return Zero(c_out, stride)
    if code == "1":
        return nn.Identity() if stride == 1 and c_in == c_out else FactorizedReduce(c_in, c_out, stride)
    if code in ("2", "3"):
        return ReLUConvBN(c_in, c_out, 1 if code == "2" else 3, stride)
    raise ValueError(f"unknown micro op code {code!r} (expected 0-3)")


class MicroCell(nn.Module):
    """4-node DAG cell; ``ops`` lists the 6 edge codes in the order a, b, c, d, e, f."""

    def __init__(self, ops: str, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.sources = [src for node in range(1, 4) for src in range(node)]  # 0 | 0 1 | 0 1 2
        self.edges = nn.ModuleList(
            micro_op(code, c_in, c_out, stride) if src == 0 else micro_op(code, c_out, c_out, 1)
            for code, src in zip(ops, self.sources, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        edge = 0
        for node in range(1, 4):
            total = self.edges[edge](nodes[0])
            for src in range(1, node):
                total = total + self.edges[edge + src](nodes[src])
            edge += node
            nodes.append(total)
        return nodes[-1]


class BasicBlock(nn.Module):
    """ResNet basic block of the macro space: two ReLUConvBN 3x3 plus a (projected) residual; the
    projection's BN has TNB's ``eps=1, momentum=1`` when ``bn_quirk`` (module docstring)."""

    def __init__(self, c_in: int, c_out: int, stride: int, bn_quirk: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            bn = nn.BatchNorm2d(c_out, eps=1.0, momentum=1.0) if bn_quirk else nn.BatchNorm2d(c_out)
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class Encoder(nn.Module):
    """Stem (to 1/4, ``C`` channels) followed by two cells per module code."""

    def __init__(self, channels: int, modules: str, cell: str | None, bn_quirk: bool = True) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels // 2),
            ReLUConvBN(channels // 2, channels, 3, 2),
        )
        layers: list[nn.Module] = []
        c = channels
        for code in map(int, modules):
            c_out = c * 2 if code % 2 == 0 else c
            stride = 2 if code > 2 else 1
            for c_in, s in ((c, stride), (c_out, 1)):
                layers.append(
                    BasicBlock(c_in, c_out, s, bn_quirk) if cell is None else MicroCell(cell, c_in, c_out, s)
                )
            c = c_out
        self.cells = nn.Sequential(*layers)
        self.out_channels = c
        self.num_downsamples = sum(int(m) > 2 for m in modules)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cells(self.stem(x))


def _conv_layer(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


def _deconv_layer(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2),
    )


class SegmentationDecoder(nn.Sequential):
    """TNB's 8-layer decoder: ``num_upsample`` = encoder stride exponent (``2 + downsampling modules``)."""

    def __init__(self, c_in: int, num_upsample: int, num_classes: int = NUM_CLASSES) -> None:
        if not 2 <= num_upsample <= 6:
            raise ValueError(f"the TNB decoder supports 2..6 upsamplings, got {num_upsample}")
        layers = [_conv_layer(c_in, 1024)]
        c = 1024
        for _ in range(6 - num_upsample):
            layers.append(_conv_layer(c, c // 2))
            c //= 2
        for _ in range(num_upsample - 1):
            layers.append(_deconv_layer(c, c // 2))
            c //= 2
        layers += [_deconv_layer(c, c), nn.Conv2d(c, num_classes, 3, padding=1)]
        super().__init__(*layers)


class TransNASSegmenter(nn.Module):
    """Encoder then decoder, no skip connections; logits at the input resolution."""

    def __init__(self, arch_str: str, num_classes: int = NUM_CLASSES, bn_quirk: bool = True) -> None:
        super().__init__()
        channels, modules, cell = parse(arch_str)
        self.arch_str = arch_str
        self.encoder = Encoder(channels, modules, cell, bn_quirk)
        self.decoder = SegmentationDecoder(
            self.encoder.out_channels, self.encoder.num_downsamples + 2, num_classes
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def build(
    arch_str: str, num_classes: int = NUM_CLASSES, seed: int | None = None, bn_quirk: bool = True
) -> nn.Module:
    """The TNB-101 segmentsemantic network (encoder + decoder) of ``arch_str``; ``bn_quirk``: TNB's
    residual BN with ``eps=1, momentum=1`` (module docstring).

    With ``seed``, torch's global generator is seeded first, so a net's initial weights depend only on
    ``(arch_str, seed)``, not on what was drawn before.
    """
    if seed is not None:
        torch.manual_seed(seed)
    return TransNASSegmenter(arch_str, num_classes, bn_quirk)
