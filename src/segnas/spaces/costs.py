"""Exact MACs and params of a genotype's network, computed analytically instead of by tracing.

:func:`~segnas.metrics.complexity.count_macs_params` builds a network and traces it with fvcore: 0.1-4 s a
network. A registered space with a cost walk (:attr:`SpaceEntry.costs <segnas.spaces.registry.SpaceEntry>`:
``segnas.spaces.<name>.costs``) instead walks a genotype's layout with each operator's formula
(:mod:`segnas.metrics.cost_model`), propagating shapes; the result equals fvcore's at every input size
(``tests/test_cost_model.py``, ``tests/test_space_contract.py``).

:func:`genotype_costs` is what every search and budget check calls: analytic where supported, traced
otherwise (an :class:`~segnas.metrics.cost_model.Unsupported` reason is logged once); the first analytic
result of every configuration in a process is also traced and compared, and a configuration that disagrees
is traced from then on (a warning says so), so an edited operator is never costed silently wrong.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from segnas.metrics.complexity import count_macs_params
from segnas.metrics.cost_model import Costs, Tally, Unsupported
from segnas.models import factory  # segnas.models imports this package: its names are looked up at call time
from segnas.spaces.genotype_io import GenotypeLike, as_genotype
from segnas.spaces.registry import network_options, space_entry

log = logging.getLogger(__name__)


def analytic_costs(genotype: GenotypeLike, num_classes: int, input_shape: Sequence[int], **options: Any) -> Costs:
    """``(MACs, params)`` of ``build_network(genotype, num_classes, **options)`` on an input of ``input_shape``,
    from the cost formulas (no network is built); :class:`Unsupported` when they do not cover it."""
    genotype = as_genotype(genotype)
    entry = space_entry(genotype.space_name)
    if entry.costs is None:
        raise Unsupported(f"no cost formulas for the {entry.name!r} space")
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 4 or shape[1] != 3:
        raise Unsupported(f"input shape {list(shape)} (the networks take [B, 3, H, W])")
    problems = genotype.rule_violations()
    if problems:
        raise Unsupported(f"invalid genotype ({'; '.join(problems)})")
    unknown = sorted(set(options) - set(network_options(entry.name)))
    if unknown:
        raise Unsupported(f"unknown network options {unknown}")
    t = Tally()
    entry.costs(t, genotype, num_classes, shape, **options)
    return t.macs, t.params


def traced_costs(genotype: GenotypeLike, num_classes: int, input_shape: Sequence[int], **options: Any) -> Costs:
    """``(MACs, params)`` of the built network, traced with fvcore."""
    return count_macs_params(factory.build_network(genotype, num_classes, **options), input_shape)


_AGREES: dict[str, bool] = {}  # configuration -> its first analytic result equalled tracing
_NOTED: set[str] = set()


def genotype_costs(genotype: GenotypeLike, num_classes: int, input_shape: Sequence[int], **options: Any) -> Costs:
    """``(MACs, params)`` of ``build_network(genotype, num_classes, **options)`` at ``input_shape``: analytic
    where supported (the first network of each configuration checked against tracing), traced otherwise."""
    genotype = as_genotype(genotype)
    config = repr((genotype.space_name, num_classes, [int(v) for v in input_shape], sorted(options.items())))
    if _AGREES.get(config, True):
        try:
            costs = analytic_costs(genotype, num_classes, input_shape, **options)
        except Unsupported as why:
            if str(why) not in _NOTED:
                _NOTED.add(str(why))
                log.info("MACs and params traced with fvcore: %s", why)
        else:
            if config in _AGREES:
                return costs
            traced = traced_costs(genotype, num_classes, input_shape, **options)
            _AGREES[config] = traced == costs
            if traced != costs:
                log.warning("analytic (MACs, params) %s != traced %s for %s: tracing this configuration from now on",
                            costs, traced, config)
            return traced
    return traced_costs(genotype, num_classes, input_shape, **options)


def builder_costs(build: Callable[[Any], nn.Module], genotype: Any, input_shape: Sequence[int]) -> Costs:
    """``(MACs, params)`` of ``build(genotype)``: :func:`genotype_costs` when ``build`` is a keyword ``partial``
    of :func:`~segnas.models.build_network` (what the searches use), else the built network traced."""
    if isinstance(build, functools.partial) and build.func is factory.build_network and not build.args \
            and "num_classes" in build.keywords:
        options = dict(build.keywords)
        return genotype_costs(genotype, options.pop("num_classes"), input_shape, **options)
    return count_macs_params(build(genotype), input_shape)
