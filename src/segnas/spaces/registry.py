"""One registration per search space: its space and genotype classes, network builder and cost walk.

A space package registers itself once, by decorating its network builder::

    @register_space(HyCTASSpace, costs=hyctas_costs)
    def build(genotype, num_classes, filter_multiplier=16, ...) -> nn.Module: ...

:func:`segnas.models.build_network`, the genotype YAML files, :func:`get_space` and the analytic cost
model (:mod:`segnas.spaces.costs`) all look a space up here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from segnas.spaces.base import Genotype, SearchSpace

Builder = Callable[..., nn.Module]  # (genotype, num_classes, **options) -> network
CostWalk = Callable[..., None]  # (tally, genotype, num_classes, input_shape, **options): adds to the tally


@dataclass(frozen=True)
class SpaceEntry:
    """A registered space: ``build(genotype, num_classes, **options)`` makes its network; ``costs`` walks a
    genotype's layout with the formulas of :mod:`segnas.metrics.cost_model` (None: networks are traced)."""

    name: str
    space_cls: type[SearchSpace]
    genotype_cls: type
    build: Builder
    costs: CostWalk | None = None


SPACES: dict[str, SpaceEntry] = {}


def register_space(
    space_cls: type[SearchSpace], costs: CostWalk | None = None
) -> Callable[[Builder], Builder]:
    """Decorator registering ``space_cls`` (under its ``name``) with the decorated network builder."""

    def register(build: Builder) -> Builder:
        if space_cls.name in SPACES:
            raise ValueError(f"search space {space_cls.name!r} is registered twice")
        SPACES[space_cls.name] = SpaceEntry(space_cls.name, space_cls, space_cls.genotype_cls, build, costs)
        return build

    return register


def space_entry(name: str) -> SpaceEntry:
    """The registration of the space ``name``."""
    if name not in SPACES:
        raise KeyError(f"unknown search space {name!r}; registered: {sorted(SPACES)}")
    return SPACES[name]


def network_options(name: str) -> list[str]:
    """Names of the keyword options the network builder of the space ``name`` accepts."""
    return list(inspect.signature(space_entry(name).build).parameters)[2:]


def get_space(name: str, /, **cfg: Any) -> SearchSpace:
    """Instantiate the space ``name`` with keyword config (a ``name`` key in ``cfg`` must agree)."""
    cfg_name = cfg.pop("name", name)
    if cfg_name != name:
        raise ValueError(f"space name {name!r} disagrees with config name {cfg_name!r}")
    return space_entry(name).space_cls(**cfg)


def space_from_config(**config: Any) -> SearchSpace:
    """The space of a ``space=`` config node (``name`` + settings): the ``_target_`` of ``conf/space/*.yaml``."""
    if "name" not in config:
        raise ValueError(f"a space config needs a `name` key (one of {sorted(SPACES)}), got {sorted(config)}")
    name = config.pop("name")
    return get_space(name, **config)


def genotype_key(genotype: Genotype) -> str:
    """Canonical key of a genotype of a registered space: its space's :meth:`~SearchSpace.key` (which does
    not depend on the space's settings)."""
    return _default_space(genotype.space_name).key(genotype)


@functools.cache
def _default_space(name: str) -> SearchSpace:
    return space_entry(name).space_cls()
