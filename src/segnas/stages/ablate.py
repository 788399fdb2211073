"""``stage=ablate``: the paper's ablations trained under one budget, reported as one table.

For the genotype ``stage.genotype`` (a YAML path or ``pkg://NAME``; null: a random genotype of the
space with self-attention and convolution cells), its Table 8 distortions (all SA -> conv, all conv ->
SA, SA shifted to another position, SA shifted to another branch at the same stride) and Table 7's
``stage.random_per_branch_count`` random architectures with 1, 2 and 3 branches are each trained
from scratch for ``stage.train_epochs``; MACs and params at ``stage.cost_input``. Writes
``ablation.csv`` (one row per network), ``ablation.md`` (Table 7/8 layout, random rows as mean ± std)
and ``ablation.jsonl`` (results as they finish; a re-run in the same folder skips finished networks).
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
from segnas.search.evaluator import Evaluator
from segnas.search.objectives import Macs, Params
from segnas.spaces import get_space, load_genotype
from segnas.spaces.hyctas import HyCTASGenotype, HyCTASSpace
from segnas.spaces.hyctas.ablation import (
    CONVS,
    SA,
    random_architectures,
    searched_per_branch_count,
    table8_variants,
)
from segnas.stages.common import build_datamodule, standalone_miou, to_container
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)

LABELS = {
    "searched": "Searched",
    "sa_to_conv": "+ SA -> Conv.",
    "conv_to_sa": "+ Conv. -> SA",
    "shift_sa_position": "+ Shift SA Position",
    "shift_sa_branch": "+ Shift SA Branch",
    **{f"searched{n}": f"Searched-{n}" for n in (1, 2, 3)},
}


def _space(cfg: DictConfig, depth: int | None = None) -> HyCTASSpace:
    config = {**to_container(cfg.space), **(to_container(cfg.stage.space_overrides) or {})}
    if depth is not None:
        config["layers"] = config["min_layers"] = depth  # a space of the genotype's depth only
    return get_space(config.pop("name"), **config)


def _default_genotype(space: HyCTASSpace, rng: np.random.Generator) -> HyCTASGenotype:
    """A random genotype with at least two branches, a self-attention cell and a convolution cell."""
    while True:
        g = space.sample(rng)
        ops = {op for b in g.branches for op in b.ops}
        if g.num_branches >= 2 and SA in ops and ops & set(CONVS):
            return g


def _summary(rows: list[dict[str, Any]]) -> str:
    """Markdown: Table 8 rows, then Random-n (mean ± std) rows."""
    lines = ["| architecture | FLOPs (GMACs) | Params (M) | mIoU (%) |", "|---|---|---|---|"]
    for row in rows:
        if row["group"] in ("table8", "table7"):
            lines.append(f"| {LABELS[row['name']]} | {row['macs_g']:.4f} | {row['params_m']:.4f} "
                         f"| {row['standalone_miou']:.2f} |")
    for n in (1, 2, 3):
        group = [r for r in rows if r["group"] == f"random{n}"]
        if group:
            cells = [f"{np.mean([r[k] for r in group]):.{d}f} ± {np.std([r[k] for r in group]):.{d}f}"
                     for k, d in (("macs_g", 4), ("params_m", 4), ("standalone_miou", 2))]
            lines.append(f"| Random-{n} (n={len(group)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train the variants and random architectures under one budget; write the table."""
    out = output_dir(cfg)
    stage = cfg.stage
    rng = np.random.default_rng([int(cfg.seed), 8])
    genotype = load_genotype(stage.genotype) if stage.genotype else _default_genotype(_space(cfg), rng)
    space = _space(cfg, genotype.depth)
    if space.violations(genotype):
        raise ValueError(f"stage.genotype does not fit the space: {space.violations(genotype)}")
    networks: dict[str, tuple[str, HyCTASGenotype]] = {}
    skipped = []
    for name, variant in table8_variants(genotype, space, rng).items():
        if variant is None:
            skipped.append(name)
        else:
            networks[name] = ("table8", variant)
    if stage.search_dir:
        archive = Path(stage.search_dir) / "archive.jsonl"
        if not archive.is_file():
            raise FileNotFoundError(f"stage.search_dir={stage.search_dir}: no archive.jsonl (a stage=search folder)")
        for n, g in searched_per_branch_count(Archive(archive, key=space.key)).items():
            networks[f"searched{n}"] = ("table7", g)
            space = _space(cfg, g.depth)  # the random architectures match the searched networks' depth
    for name, g in random_architectures(space, int(stage.random_per_branch_count), rng).items():
        networks[name] = (name.split("_")[0], g)

    datamodule = build_datamodule(cfg)
    meta = datamodule.metadata()
    shape = [int(v) for v in stage.cost_input] if stage.cost_input else [1, 3, *datamodule.crop_size]
    options = {"filter_multiplier": int(stage.filter_multiplier), "output_stride": int(stage.output_stride)}
    builder = functools.partial(build_network, num_classes=meta["num_classes"], **options)
    evaluator = Evaluator(
        {
            "macs_g": Macs(builder, shape),
            "params_m": Params(builder),
            "standalone_miou": standalone_miou(cfg, datamodule, out / "networks", space.key,
                                               int(stage.train_epochs), **options),
        },
        Archive(out / "ablation.jsonl", key=space.key, context={
            "network": options, "cost_input": shape, "optim": to_container(cfg.optim),
            "train_epochs": int(stage.train_epochs), "data": to_container(cfg.data), "seed": int(cfg.seed)}),
    )
    rows = []
    for name, (group, g) in networks.items():
        metrics = evaluator(g, name=name)
        rows.append({"name": name, "group": group, "num_branches": g.num_branches, **metrics})
        log.info("%s: mIoU %.2f, %.4f GMACs", name, metrics["standalone_miou"], metrics["macs_g"])
    write_rows_csv(out / "ablation.csv", rows)
    table = _summary(rows)
    (out / "ablation.md").write_text(table)
    log.info("\n%s", table)
    return {"genotype": genotype.to_dict(), "networks": rows, "not_applicable": skipped,
            "train_epochs": int(stage.train_epochs), "n_computed_this_run": evaluator.n_computed}
