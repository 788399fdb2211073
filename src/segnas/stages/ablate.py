"""``stage=ablate``: the paper's ablations trained under one budget, reported as one table.

For the genotype ``stage.genotype`` (a YAML path or ``pkg://NAME``; null: a random genotype of the
space with self-attention and convolution cells), its Table 8 distortions (all SA -> conv, all conv ->
SA, SA shifted to another position, SA shifted to another branch at the same stride) and Table 7's
``stage.random_per_branch_count`` random architectures with 1, 2 and 3 branches (each of its own sampled
depth), beside the best network NSGA-II found per branch count in ``stage.search_dir`` (never one of its
random baseline), are each trained from scratch for ``stage.train_epochs``
(:mod:`segnas.spaces.hyctas.ablation`); MACs and params at
``stage.cost_input``. Writes ``ablation.csv`` (one row per network), ``ablation.md`` (Table 7/8 layout, random
rows as mean ± std) and ``ablation.jsonl`` (results as they finish; a re-run in the same folder skips
finished networks).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from segnas.callbacks.history import write_rows_csv
from segnas.models import build_network
from segnas.search.archive import Archive
from segnas.search.distributed import Ranks
from segnas.search.evaluator import Evaluator
from segnas.search.objectives import Macs, Params
from segnas.search.scoring import RunSetup, StandaloneScoring, trainer_context
from segnas.spaces import load_genotype, space_from_config
from segnas.spaces.hyctas import HyCTASGenotype, HyCTASSpace
from segnas.spaces.hyctas.ablation import (
    ablation_networks,
    ablation_table,
    default_genotype,
    searched_per_branch_count,
)
from segnas.utils.config import device_of, plain, to_container
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train the variants and random architectures under one budget; write the table."""
    stage = cfg.stage
    setup = RunSetup(cfg, output_dir(cfg), Ranks(), device_of("cpu"))
    rng = np.random.default_rng([int(cfg.seed), 8])
    space_of_depth = functools.partial(_space, cfg)
    genotype = load_genotype(stage.genotype) if stage.genotype else default_genotype(_space(cfg), rng)
    networks, skipped = ablation_networks(genotype, space_of_depth, _searched(stage.search_dir),
                                          int(stage.random_per_branch_count), rng)
    evaluator = _evaluator(cfg, setup, genotype)
    rows = []
    for name, (group, g) in networks.items():
        metrics = evaluator(g, name=name)
        rows.append({"name": name, "group": group, "num_branches": g.num_branches, **metrics})
        log.info("%s: mIoU %.2f, %.4f GMACs", name, metrics["standalone_miou"], metrics["macs_g"])
    write_rows_csv(setup.out / "ablation.csv", rows)
    table = ablation_table(rows)
    (setup.out / "ablation.md").write_text(table)
    log.info("\n%s", table)
    return {"genotype": genotype.to_dict(), "networks": rows, "not_applicable": skipped,
            "train_epochs": int(stage.train_epochs), "n_computed_this_run": evaluator.n_computed}


def _space(cfg: DictConfig, depth: int | None = None) -> HyCTASSpace:
    """The ``space`` group with ``stage.space_overrides`` (and, given a depth, of that depth only; without
    one, the depth range the random architectures of Table 7 are drawn from)."""
    config = {**plain(cfg.space), **to_container(cfg.stage.space_overrides)}
    if depth is not None:
        config["layers"] = config["min_layers"] = depth
    return space_from_config(**config)


def _searched(search_dir: str | None) -> dict[int, HyCTASGenotype]:
    """Table 7's best network per branch count that NSGA-II evaluated in a ``stage=search`` folder (none
    without one; never its random baseline's networks)."""
    if not search_dir:
        return {}
    archive = Path(search_dir) / "archive.jsonl"
    if not archive.is_file():
        raise FileNotFoundError(f"stage.search_dir={search_dir}: no archive.jsonl (a stage=search folder)")
    searched = searched_per_branch_count(Archive(archive, key=HyCTASSpace().key).log)
    if not searched:
        raise ValueError(f"stage.search_dir={search_dir}: no NSGA-II evaluation with a score in archive.jsonl "
                         "(Table 7 compares NSGA-II's networks with random ones: use a search=nsga2 folder)")
    return searched


def _evaluator(cfg: DictConfig, setup: RunSetup, genotype: HyCTASGenotype) -> Evaluator:
    """MACs, params and standalone mIoU of the networks at ``stage.filter_multiplier``/``output_stride``,
    through ``ablation.jsonl``."""
    stage = cfg.stage
    shape = [int(v) for v in stage.cost_input] if stage.cost_input else [1, 3, *cfg.data.crop_size]
    options = {"filter_multiplier": int(stage.filter_multiplier), "output_stride": int(stage.output_stride)}
    build = functools.partial(build_network, num_classes=int(setup.datamodule.metadata()["num_classes"]), **options)
    space = _space(cfg, genotype.depth)
    standalone = StandaloneScoring(int(stage.train_epochs)).objective(setup, space, options, {}, {})
    objectives = {"macs_g": Macs(build, shape), "params_m": Params(build), "standalone_miou": standalone}
    context = {"network": options, "cost_input": shape, "optim": to_container(cfg.optim),
               "trainer": trainer_context(cfg.trainer), "train_epochs": int(stage.train_epochs),
               "data": to_container(cfg.data), "seed": int(cfg.seed)}
    return Evaluator(objectives, Archive(setup.out / "ablation.jsonl", key=space.key, context=context))
