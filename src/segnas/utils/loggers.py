"""The ``logger`` config group as Lightning loggers; W&B runs carry the whole resolved config and are named
and grouped after the stage and the command-line overrides (multirun jobs: one group per sweep)."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

WANDB_NAME_LIMIT = 128  # W&B display names longer than this are cut


def run_labels(stage: str) -> tuple[str, str]:
    """The run's name (``stage`` and its overrides, e.g. ``search seed=1 search.objective=macs``; a multirun
    job: ``search #3 seed=1 ...``) and group (``stage``; a multirun job: ``stage`` and the sweep folder)."""
    if not HydraConfig.initialized():
        return stage, stage
    hydra = HydraConfig.get()
    overrides = [o for o in hydra.overrides.task if not o.startswith(("stage=", "hydra.", "hydra/", "logger"))]
    if hydra.mode == RunMode.MULTIRUN:
        name = " ".join([f"{stage} #{hydra.job.num}", *overrides])[:WANDB_NAME_LIMIT]
        return name, f"{stage} sweep {Path(hydra.sweep.dir).name}"
    return " ".join([stage, *overrides])[:WANDB_NAME_LIMIT], stage


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """Instantiate every logger of ``cfg.logger``; a ``WandbLogger`` whose ``name`` or ``group`` is null gets
    :func:`run_labels`, and its run config is the whole resolved ``cfg`` (filterable by ``search.*``,
    ``data.*`` ...)."""
    group = cfg.get("logger")
    if not group:
        return []
    if not isinstance(group, DictConfig):
        raise TypeError(f"logger: expected a mapping of name -> config, got {type(group).__name__}")
    loggers = []
    for node in group.values():
        if node is None or "_target_" not in node:
            continue
        if str(node._target_).endswith("WandbLogger"):
            name, run_group = run_labels(str(cfg.stage.name))
            make = instantiate(node, _convert_="all", _partial_=True, name=node.get("name") or name,
                               group=node.get("group") or run_group)
            wandb_logger = make(config=OmegaConf.to_container(cfg, resolve=True))  # `config`: instantiate's own
            wandb_logger._wandb_init.pop("anonymous", None)  # Lightning's None for it makes wandb warn it is dropped
            loggers.append(wandb_logger)
        else:
            loggers.append(instantiate(node, _convert_="all"))
    return loggers
