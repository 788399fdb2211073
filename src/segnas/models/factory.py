"""One network factory: :func:`build_network` turns a genotype of any registered space into its network.

Each space registers its builder ``(genotype, num_classes, **options) -> nn.Module`` once
(:func:`segnas.spaces.register_space`); the options are the builder's keyword arguments, an unknown one is
refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from segnas.nn import WithAuxHeads
from segnas.spaces.genotype_io import GenotypeLike, as_genotype
from segnas.spaces.registry import network_options, space_entry


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
    return space_entry(space).build(genotype, num_classes, **options)


def deploy_net(net: nn.Module) -> nn.Module:
    """The inference network without auxiliary heads (the wrapped net of an aux-head wrapper)."""
    return net.net if isinstance(net, WithAuxHeads) else net


def inline_genotype(net_config: Mapping[str, Any]) -> dict[str, Any]:
    """``net_config`` with a genotype path / ``pkg://NAME`` / object replaced by its dict form, so a checkpoint
    that stores the config rebuilds the network without the file."""
    config = dict(net_config)
    genotype = config.get("genotype")
    if genotype is not None and not isinstance(genotype, Mapping):
        config["genotype"] = as_genotype(genotype).to_dict()
    return config
