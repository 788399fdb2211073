"""Budgets, counts and sizes of a composed config, checked before a stage starts any work.

:data:`RULES` maps a dotted config key to the values it accepts; :func:`check_config` applies every rule
whose key exists in the composed config (a stage's keys exist only when that stage is selected) and fails
with one :class:`ConfigError` naming each bad key, its value and the allowed range.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value outside its allowed range, or of the wrong type."""


@dataclass(frozen=True)
class Rule:
    """A number (an integer when ``integer``) in ``[low, high]`` (open ends when ``low_open``/``high_open``);
    ``None`` accepted when ``nullable``; ``extra`` lists further accepted values (e.g. ``-1`` = no limit)."""

    integer: bool = True
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    extra: tuple[int | str, ...] = ()

    def describe(self) -> str:
        """The allowed values in words, e.g. ``an integer >= 1 (or null)``."""
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"{kind} in {opening}{self.low:g}, {self.high:g}{closing}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        else:
            text = kind
        alternatives = [str(v) for v in self.extra] + (["null"] if self.nullable else [])
        return text + (f" (or {' or '.join(alternatives)})" if alternatives else "")

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` satisfies the rule."""
        if value is None:
            return self.nullable
        if value in self.extra and not isinstance(value, bool):
            return True
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


COUNT = Rule(low=1)  # an integer >= 1
OPTIONAL_COUNT = Rule(low=1, nullable=True)
NON_NEGATIVE = Rule(low=0)  # an integer >= 0
PAIR = Rule(low=2)  # at least two: a correlation needs two points
POSITIVE = Rule(integer=False, low=0, low_open=True)  # a number > 0
OPTIONAL_POSITIVE = Rule(integer=False, low=0, low_open=True, nullable=True)
NON_NEGATIVE_NUMBER = Rule(integer=False, low=0)
OPTIONAL_NON_NEGATIVE_NUMBER = Rule(integer=False, low=0, nullable=True)
PROBABILITY = Rule(integer=False, low=0, high=1)
FRACTION = Rule(integer=False, low=0, high=1, low_open=True)  # in (0, 1]

# The supernet group's keys, under ``stage.`` (stage=supernet) and ``score.supernet.`` (the search stages).
SUPERNET_RULES: dict[str, Rule] = {
    "module.lr": POSITIVE,
    "module.momentum": PROBABILITY,
    "module.weight_decay": NON_NEGATIVE_NUMBER,
    "module.lr_gamma": FRACTION,
    "module.top_k_percent": FRACTION,
    "module.output_stride": COUNT,
    "module.val_archs": COUNT,
    "sandwich_random": NON_NEGATIVE,
    "space_overrides.layers": OPTIONAL_COUNT,
    "space_overrides.min_layers": OPTIONAL_COUNT,
    "space_overrides.filter_multiplier": OPTIONAL_COUNT,
}
# A proxy's scoring batch, under ``score.batch.``, ``stage.batch.`` and ``search.warm_start_batch.``.
BATCH_RULES: dict[str, Rule] = {"batch_size": COUNT, "num_classes": COUNT, "saswot_calibration_archs": COUNT}

RULES: dict[str, Rule] = {
    # run
    "seed": NON_NEGATIVE,
    "num_threads": OPTIONAL_COUNT,
    # model, space
    "model.aspp_channels": COUNT,
    "model.decoder_channels": COUNT,
    "model.low_level_channels": COUNT,
    "model.output_stride": COUNT,
    "space.layers": COUNT,
    "space.min_layers": COUNT,
    "space.filter_multiplier": COUNT,
    "space.min_depth": COUNT,
    "space.max_depth": COUNT,
    "space.fch": COUNT,
    "space.width": POSITIVE,
    "space.stem_head_width": POSITIVE,
    # trainer
    "trainer.max_epochs": Rule(low=1, nullable=True, extra=(-1,)),  # -1: no limit (needs max_steps)
    "trainer.max_steps": Rule(low=1, extra=(-1,)),
    "trainer.check_val_every_n_epoch": OPTIONAL_COUNT,
    "trainer.log_every_n_steps": COUNT,
    "trainer.num_sanity_val_steps": Rule(low=0, extra=(-1,)),
    # data
    "data.batch_size": COUNT,
    "data.val_batch_size": COUNT,
    "data.num_workers": NON_NEGATIVE,
    "data.max_train_samples": OPTIONAL_COUNT,
    "data.max_val_samples": OPTIONAL_COUNT,
    "data.iters_per_epoch": OPTIONAL_COUNT,
    "data.image_scale": POSITIVE,
    "data.jitter": NON_NEGATIVE_NUMBER,
    "data.num_train": COUNT,
    "data.num_val": COUNT,
    "data.height": COUNT,
    "data.width": COUNT,
    "data.max_objects": Rule(low=2),
    "data.num_classes": COUNT,
    "data.seed": Rule(low=0, nullable=True),
    "data.data_seed": Rule(low=0, nullable=True),
    # optim
    "optim.lr": POSITIVE,
    "optim.momentum": PROBABILITY,
    "optim.weight_decay": NON_NEGATIVE_NUMBER,
    "optim.poly_power": NON_NEGATIVE_NUMBER,
    "optim.warmup_steps": NON_NEGATIVE,
    "optim.warmup_factor": FRACTION,
    "optim.top_k_percent": FRACTION,
    "optim.ohem_thresh": Rule(integer=False, low=0, high=1, low_open=True, nullable=True),
    "optim.ohem_min_kept": FRACTION,
    "optim.lr_gamma": FRACTION,
    "optim.distill_weight": NON_NEGATIVE_NUMBER,
    "optim.distill_temperature": POSITIVE,
    # the FPS protocol and callbacks
    "speed.duration_s": POSITIVE,
    "speed.warmup": NON_NEGATIVE,
    "speed.min_iters": COUNT,
    "speed.threads": OPTIONAL_COUNT,
    "callbacks.latency_monitor.every_n_epochs": NON_NEGATIVE,
    # search (stage=search, zero_shot_search)
    "search.population": COUNT,
    "search.generations": COUNT,
    "search.num_evals": COUNT,
    "search.top_k": COUNT,
    "search.children": OPTIONAL_COUNT,
    "search.patience": OPTIONAL_COUNT,
    "search.random_per_generation": NON_NEGATIVE,
    "search.warm_start_pool": COUNT,
    "search.crossover_prob": PROBABILITY,
    "search.mutation_prob": PROBABILITY,
    "search.p_crossover": PROBABILITY,
    "search.max_latency_ms": OPTIONAL_POSITIVE,
    "search.max_latency_fraction": OPTIONAL_POSITIVE,
    "search.max_macs_g": OPTIONAL_POSITIVE,
    "search.max_params_m": OPTIONAL_POSITIVE,
    "search.min_miou": Rule(integer=False, low=0, high=100, nullable=True),
    "search.hv_ref_cost": Rule(integer=False, low=0, low_open=True, nullable=True, extra=("auto",)),
    "score.epochs": COUNT,
    "stage.top_n": NON_NEGATIVE,
    "stage.latency.warmup": NON_NEGATIVE,
    "stage.latency.duration_s": POSITIVE,
    "stage.latency.check_archs": NON_NEGATIVE,
    "stage.latency.calibration_archs": NON_NEGATIVE,
    "stage.latency.evict_mb": OPTIONAL_NON_NEGATIVE_NUMBER,
    **{f"{group}.{key}": rule for group in ("score.batch", "stage.batch", "search.warm_start_batch")
       for key, rule in BATCH_RULES.items()},
    # supernet (stage=supernet; stage=search/correlate train one when no checkpoint is given)
    "score.supernet.epochs": COUNT,
    **{f"{group}.{key}": rule for group in ("stage", "score.supernet") for key, rule in SUPERNET_RULES.items()},
    "score.evaluation.val_images": COUNT,
    "score.evaluation.recalibration_images": COUNT,
    "score.evaluation.batch_size": COUNT,
    # correlate, ablate
    "stage.num_archs": PAIR,
    "stage.train_epochs": COUNT,
    "stage.random_per_branch_count": NON_NEGATIVE,
    # retrain, panoptic, evaluate, export, profile
    "stage.filter_multiplier": COUNT,
    "stage.output_stride": COUNT,
    "stage.num_classes": COUNT,
    "stage.opset": COUNT,
    "stage.loss.center_weight": NON_NEGATIVE_NUMBER,
    "stage.loss.offset_weight": NON_NEGATIVE_NUMBER,
    "stage.loss.top_k_percent": FRACTION,
    "stage.targets.sigma": POSITIVE,
    "stage.targets.small_instance_weight": NON_NEGATIVE_NUMBER,
    "stage.postprocess.center_threshold": PROBABILITY,
    "stage.aux_weight": NON_NEGATIVE_NUMBER,
    "stage.drop_path_rate": Rule(integer=False, low=0, high=1, high_open=True),
    "stage.head_width": COUNT,
    "stage.instance_width": OPTIONAL_COUNT,
    "stage.grad_clip_norm": OPTIONAL_POSITIVE,
    "stage.postprocess.top_k": COUNT,
    "stage.instance_max_dets": COUNT,
    "stage.postprocess.nms_kernel": COUNT,
    "stage.postprocess.stuff_area": NON_NEGATIVE,
    "stage.postprocess.label_divisor": COUNT,
    "stage.targets.small_instance_area": NON_NEGATIVE,
    "stage.latency_duration_s": POSITIVE,
    "stage.latency_warmup": NON_NEGATIVE,
    "stage.latency_min_iters": COUNT,
    "stage.scale": COUNT,
    "stage.tolerance": POSITIVE,
    # proxy_evaluate, proxy_evolution
    "stage.sample_size": PAIR,
    "stage.repeats": COUNT,
    "stage.pool_size": Rule(low=2, nullable=True),
    "stage.batch_size": COUNT,
    "stage.resolution": COUNT,
    "stage.saswot.calibration_archs": COUNT,
    "stage.builder_check_archs": NON_NEGATIVE,
    "stage.train_archs": PAIR,
    "stage.heldout_archs": PAIR,
    "stage.activation_pool": COUNT,
    "stage.sketch_columns": OPTIONAL_COUNT,
    "stage.rerank_top": NON_NEGATIVE,
    "stage.chain": COUNT,
    "stage.iterations": Rule(low=0, nullable=True),  # deprecated: sets search.num_evals (see the stage file)
}
# Keys holding a list of sizes: every element must satisfy the rule.
LIST_RULES: dict[str, Rule] = {
    "data.crop_size": COUNT,
    "data.scale_range": POSITIVE,
    "data.scales": POSITIVE,
    "stage.cost_input": COUNT,
    "stage.input_size": COUNT,
    "score.batch.resolution": COUNT,
    "stage.eval_scales": POSITIVE,
    "callbacks.latency_monitor.input_shape": COUNT,
}


def _leaf_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaf_keys(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def problems(cfg: DictConfig) -> list[str]:
    """One message per key of ``cfg`` that breaks its rule (empty when the config is valid)."""
    found = []
    for key in _leaf_keys(OmegaConf.to_container(cfg, resolve=False)):
        rule, listed = RULES.get(key), LIST_RULES.get(key)
        if rule is None and listed is None:
            continue
        value = OmegaConf.select(cfg, key)
        if isinstance(value, DictConfig):
            continue
        if rule is not None and not rule.accepts(value):
            found.append(f"{key} must be {rule.describe()}, got {value!r}")
        if listed is not None and value is not None:
            items = list(value) if OmegaConf.is_list(value) else [value]
            if not all(listed.accepts(v) for v in items):
                shown = OmegaConf.to_container(value) if OmegaConf.is_list(value) else value
                found.append(f"every element of {key} must be {listed.describe()}, got {shown!r}")
    return found + _relations(cfg)


def _relations(cfg: DictConfig) -> list[str]:
    """One message per pair of keys that are valid alone but not together."""
    found = []
    trainer = cfg.get("trainer")
    if trainer is not None and trainer.get("max_epochs") == -1 and trainer.get("max_steps", -1) == -1:
        found.append("trainer.max_epochs=-1 (no epoch limit) needs a step limit: trainer.max_steps >= 1")
    search = cfg.get("search")
    if search is not None and search.get("warm_start"):  # the warm start picks the first population from its pool
        key = "population" if "population" in search else "batch"
        first, pool = search.get(key), search.get("warm_start_pool")
        if isinstance(first, int) and isinstance(pool, int) and pool < first:
            found.append(f"search.warm_start_pool ({pool}) must be at least the first population "
                         f"(search.{key}={first})")
    return found


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming every key of ``cfg`` outside its allowed range."""
    found = problems(cfg)
    if found:
        raise ConfigError("invalid config: " + "; ".join(found))
