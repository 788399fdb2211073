"""One network factory: :func:`build_network` turns a genotype of any registered space into its network.

``BUILDERS`` maps a space name to its builder ``(genotype, num_classes, **options) -> nn.Module``; a new
space registers one entry here. The options are the builder's keyword arguments; an unknown one is refused.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from segnas.models.aux_heads import FasterSegWithAux, HyCTASWithAux
from segnas.models.fasterseg_net import FasterSegNet
from segnas.models.hyctas_net import HyCTASNet
from segnas.spaces import as_genotype
from segnas.spaces.base import Genotype
from segnas.spaces.fasterseg import FasterSegGenotype
from segnas.spaces.hyctas import HyCTASGenotype

GenotypeLike = Genotype | Mapping[str, Any] | str | Path


def hyctas_network(
    genotype: HyCTASGenotype,
    num_classes: int,
    filter_multiplier: int = 16,
    output_stride: int = 8,
    drop_path_rate: float = 0.0,
    aux_heads: bool = False,
) -> nn.Module:
    """A :class:`HyCTASNet`, wrapped in :class:`HyCTASWithAux` when ``aux_heads`` (retraining)."""
    net = HyCTASNet(genotype, num_classes, filter_multiplier, output_stride, drop_path_rate)
    return HyCTASWithAux(net, num_classes) if aux_heads else net


def fasterseg_network(
    genotype: FasterSegGenotype, num_classes: int, aux_heads: bool = False, init: str = "kaiming"
) -> nn.Module:
    """A :class:`FasterSegNet` (no drop path), wrapped in :class:`FasterSegWithAux` when ``aux_heads``;
    ``init="kaiming"`` is FasterSeg's own initialisation (for training and proxy scoring), ``"default"``
    PyTorch's."""
    net = FasterSegNet(genotype, num_classes, aux_heads=False, init=init)
    return FasterSegWithAux(net, num_classes) if aux_heads else net


BUILDERS: dict[str, Callable[..., nn.Module]] = {"hyctas": hyctas_network, "fasterseg": fasterseg_network}


def network_options(space: str) -> list[str]:
    """Names of the options the builder of ``space`` accepts."""
    if space not in BUILDERS:
        raise KeyError(f"no network builder for space {space!r}; registered: {sorted(BUILDERS)}")
    return list(inspect.signature(BUILDERS[space]).parameters)[2:]


def build_network(genotype: GenotypeLike, num_classes: int, **options: Any) -> nn.Module:
    """The network of ``genotype`` (a genotype, its dict form with a ``space`` key, or a YAML path /
    ``pkg://NAME``) with ``num_classes`` outputs; ``options`` go to its space's builder. Usable as a
    ``_target_``."""
    genotype = as_genotype(genotype)
    space = genotype.space_name
    accepted = network_options(space)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(
            f"build_network: unknown option(s) {unknown} for a {space} network; accepted: {accepted}"
        )
    return BUILDERS[space](genotype, num_classes, **options)


def inline_genotype(net_config: Mapping[str, Any]) -> dict[str, Any]:
    """``net_config`` with a genotype path / ``pkg://NAME`` / object replaced by its dict form, so a checkpoint
    that stores the config rebuilds the network without the file."""
    config = dict(net_config)
    genotype = config.get("genotype")
    if genotype is not None and not isinstance(genotype, Mapping):
        config["genotype"] = as_genotype(genotype).to_dict()
    return config
