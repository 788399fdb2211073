"""Command-line overrides that name keys the config does not have: refused, with the nearest known key.

Hydra rejects ``search.populaton=8`` but suggests ``+search.populaton=8``, which it accepts: the key is added
and nothing reads it. :func:`refuse_unknown_additions` refuses such additions, so a misspelled key never
passes silently. A ``+key=value`` stays legitimate where the config cannot know its keys in advance: in an
empty mapping (keyword options such as ``score.options``), as a keyword parameter of a mapping's
``_target_`` (``+trainer.profiler=simple``; any name where the target takes ``**kwargs``), as a new component
(a value with a ``_target_``, e.g. another callback) and as a config group (``+experiment=NAME``).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

ABSENT = object()  # what OmegaConf.select returns here for a key the config does not have


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """`` (did you mean 'a.b'?)`` for the known key nearest to the last part of the dotted ``key``, else ``""``."""
    parent, _, leaf = key.rpartition(".")
    match = difflib.get_close_matches(leaf, [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean '{parent + '.' if parent else ''}{match[0]}'?)" if match else ""


def _parameters(node: Any) -> list[str] | None:
    """Keyword parameters of the ``_target_`` of ``node`` (None: no target, or it takes any keyword)."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    try:
        params = inspect.signature(get_method(str(node._target_))).parameters.values()
    except (ValueError, TypeError, ImportError):  # no signature to read: the target checks its arguments
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL]


def _may_add(base: DictConfig, override: Override) -> bool:
    """Whether ``override`` (a ``+``/``++`` of a key) sets a key ``base`` has or adds one it can take."""
    key = override.key_or_group
    if OmegaConf.select(base, key, default=ABSENT) is not ABSENT:
        return True
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(base, parent) if parent else base
    if not isinstance(node, DictConfig):
        return False
    value = override.value()
    params = _parameters(node)
    return len(node) == 0 or (isinstance(value, Mapping) and "_target_" in value) or (
        "_target_" in node and (params is None or leaf in params))


def _first_unknown(base: DictConfig, key: str) -> tuple[str, list[str]]:
    """The leading part of the dotted ``key`` up to its first component ``base`` lacks, and the names known
    beside that component (keys, and keyword parameters of a ``_target_``)."""
    node: Any = base
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, DictConfig) or part not in node:
            known = [str(k) for k in node] + (_parameters(node) or []) if isinstance(node, DictConfig) else []
            return ".".join(parts[: depth + 1]), known
        node = node[part]
    return key, []


def refuse_unknown_additions() -> None:
    """Raise ``ValueError`` naming every ``+key=value`` / ``++key=value`` of the running Hydra job that adds a
    key the config has no place for (see the module doc); config groups and ``hydra.*`` are left to Hydra."""
    hydra_cfg = HydraConfig.get()
    overrides = OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task))
    groups = set(hydra_cfg.runtime.choices)
    additions = [o for o in overrides
                 if (o.is_add() or o.is_force_add()) and o.key_or_group not in groups and "/" not in o.key_or_group]
    if not additions:
        return
    rest = [o.input_line for o in overrides if o not in additions]
    base = compose(config_name=hydra_cfg.job.config_name, overrides=rest)  # the config without the additions
    problems = []
    for override in additions:
        if not _may_add(base, override):
            unknown, known = _first_unknown(base, override.key_or_group)
            problems.append(f"{override.input_line}: the config has no '{unknown}'{did_you_mean(unknown, known)}")
    if problems:
        raise ValueError("; ".join(problems) + ". `+` adds only keys a mapping can take (options such as "
                         "score.options, keyword arguments of its _target_); set a key the config has without `+` "
                         "(`--cfg job` prints the config)")
