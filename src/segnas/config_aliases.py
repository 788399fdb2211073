"""Old config addresses kept working for one release (see CHANGELOG): an override of a moved key is rewritten
to its new address, with a warning, before Hydra composes the config."""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

# Moved in 0.2 (each score group owns its settings): old prefix -> new prefix. Removed in 0.3.
ALIASES = {
    "stage.supernet.": "score.supernet.",
    "stage.evaluation.": "score.evaluation.",
    "stage.proxy_batch.": "score.batch.",
    "callbacks.latency_monitor.duration_s": "speed.duration_s",
}
# stage=correlate's own proxy batch (its score is the supernet's) moved within the stage; stage=proxy_evolution's
# evolution settings are the search=topk group's (p_mutate is mutation_prob; iterations, which has no search=
# key, sets search.num_evals = population + iterations x (children + random_per_generation)).
SPEED_ALIASES = {"stage.latency_duration_s": "speed.duration_s", "stage.latency_device": "speed.device"}
STAGE_ALIASES = {
    "retrain": SPEED_ALIASES,  # FPS is measured one way in every stage (conf/speed/default.yaml): moved in 0.2
    "evaluate": SPEED_ALIASES,
    "correlate": {"stage.proxy_batch.normalize": "stage.normalize", "stage.proxy_batch.": "stage.batch."},
    "proxy_evolution": {
        "stage.evolution.p_mutate": "search.mutation_prob",
        "stage.evolution.iterations": "stage.iterations",
        "stage.evolution.": "search.",
    },
}
_OVERRIDE = re.compile(r"^(?P<prefix>~|\+\+|\+)?(?P<key>[^=~+][^=]*)(?P<rest>=.*)?$")


def translate_aliases(overrides: list[str]) -> list[str]:
    """``overrides`` with every key under a moved prefix rewritten to its new address (a warning each)."""
    stage = next((o.split("=", 1)[1] for o in overrides if o.startswith("stage=")), None)
    aliases = {**ALIASES, **STAGE_ALIASES.get(stage or "", {})}
    aliases = {k: aliases[k] for k in sorted(aliases, key=len, reverse=True)}  # longest prefix first
    out = []
    for override in overrides:
        match = _OVERRIDE.match(override)
        key = match["key"] if match else ""
        old = next((prefix for prefix in aliases if key.startswith(prefix)), None)
        if match is None or old is None:
            out.append(override)
            continue
        new_key = aliases[old] + key[len(old):]
        log.warning("%s is deprecated: use %s (the old address is removed in segnas 0.3)", key, new_key)
        out.append(f"{match['prefix'] or ''}{new_key}{match['rest'] or ''}")
    return out
