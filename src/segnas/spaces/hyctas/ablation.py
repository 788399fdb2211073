"""Architecture variants of the paper's ablations: Table 8 (distorted searched network) and Table 7 (random
architectures with 1, 2 and 3 branches).

Table 8: all self-attention cells -> convolution; all convolution cells (conv and both lightweight
convs) -> self-attention; every self-attention cell moved to another position of its branch; every
self-attention cell moved "to a random position on the same stride" (the paper's definition of the branch
shift: any other cell, of any branch, whose input stride is the cell's). The moves swap operators and keep
widths and downsampling, and are redrawn until the variant violates no constraint.
Table 7: the best network NSGA-II found for every branch count (:func:`searched_per_branch_count`) against
random architectures with 1, 2 and 3 branches, each of its own sampled depth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from segnas.spaces.hyctas.genotype import Branch, HyCTASGenotype
from segnas.spaces.hyctas.space import HyCTASSpace

SA = "self_attention"
CONVS = ("conv", "lightweight_conv", "lightweight_conv2x")
MAX_TRIES = 200
Cell = tuple[int, int]  # (branch, layer)


def _with_ops(genotype: HyCTASGenotype, ops: dict[Cell, str]) -> HyCTASGenotype:
    branches = tuple(
        Branch(tuple(ops.get((i, layer), op) for layer, op in enumerate(b.ops)), b.widths, b.downs)
        for i, b in enumerate(genotype.branches)
    )
    return HyCTASGenotype(branches, genotype.fusion)


def _cells(genotype: HyCTASGenotype, ops: tuple[str, ...]) -> list[Cell]:
    return [(i, layer) for i, b in enumerate(genotype.branches) for layer, op in enumerate(b.ops) if op in ops]


def replace_ops(genotype: HyCTASGenotype, old: tuple[str, ...], new: str) -> HyCTASGenotype | None:
    """Every cell using an operator of ``old`` switched to ``new`` (None when there is none)."""
    cells = _cells(genotype, old)
    return _with_ops(genotype, dict.fromkeys(cells, new)) if cells else None


def _shift(
    genotype: HyCTASGenotype,
    space: HyCTASSpace,
    rng: np.random.Generator,
    targets: Callable[[Cell], list[Cell]],
) -> HyCTASGenotype | None:
    """Swap every SA cell's operator with that of a random allowed target cell; redraw until valid."""
    sources = _cells(genotype, (SA,))
    if not sources or any(not targets(c) for c in sources):
        return None
    for _ in range(MAX_TRIES):
        ops = {(i, layer): op for i, b in enumerate(genotype.branches) for layer, op in enumerate(b.ops)}
        free = {c for c in ops if ops[c] != SA}
        moved = {}
        for source in sources:
            options = [c for c in targets(source) if c in free]
            if not options:
                break
            target = options[int(rng.integers(len(options)))]
            free.discard(target)
            moved[source], moved[target] = ops[target], SA
        else:
            variant = _with_ops(genotype, moved)
            if not space.violations(variant):
                return variant
    return None


def shift_sa_position(genotype: HyCTASGenotype, space: HyCTASSpace, rng: np.random.Generator) -> HyCTASGenotype | None:
    """Every self-attention cell moved to another layer of the same branch."""

    def targets(cell: Cell) -> list[Cell]:
        i, layer = cell
        return [(i, other) for other in range(len(genotype.branches[i].ops)) if other != layer]

    return _shift(genotype, space, rng, targets)


def shift_sa_branch(genotype: HyCTASGenotype, space: HyCTASSpace, rng: np.random.Generator) -> HyCTASGenotype | None:
    """Every self-attention cell moved to a random other cell at the same input stride (of any branch)."""
    strides = [b.cell_strides() for b in genotype.branches]

    def targets(cell: Cell) -> list[Cell]:
        i, layer = cell
        return [
            (j, other)
            for j in range(genotype.num_branches)
            for other in range(len(strides[j]))
            if (j, other) != cell and strides[j][other] == strides[i][layer]
        ]

    return _shift(genotype, space, rng, targets)


def table8_variants(
    genotype: HyCTASGenotype, space: HyCTASSpace, rng: np.random.Generator
) -> dict[str, HyCTASGenotype | None]:
    """The searched genotype and its four distortions (None where a distortion does not apply)."""
    variants = {
        "searched": genotype,
        "sa_to_conv": replace_ops(genotype, (SA,), "conv"),
        "conv_to_sa": replace_ops(genotype, CONVS, SA),
        "shift_sa_position": shift_sa_position(genotype, space, rng),
        "shift_sa_branch": shift_sa_branch(genotype, space, rng),
    }
    return {k: v if v is None or not space.violations(v) else None for k, v in variants.items()}


def random_architectures(space: HyCTASSpace, per_branch_count: int, rng: np.random.Generator) -> dict[str, HyCTASGenotype]:
    """``per_branch_count`` distinct random genotypes with 1, 2 and 3 branches: ``random{n}_{k}``."""
    out: dict[str, HyCTASGenotype] = {}
    for n in (1, 2, 3):
        drawn = space.with_branches(n).draw_unique(rng, per_branch_count, max_tries=MAX_TRIES)
        out.update({f"random{n}_{k}": g for k, g in enumerate(drawn)})
    return out


def searched_per_branch_count(
    records: Iterable[Mapping[str, Any]], score: str = "miou", search: str = "nsga2"
) -> dict[int, HyCTASGenotype]:
    """Table 7's Searched-n: per branch count, the highest-``score`` genotype that NSGA-II evaluated, among a
    search folder's archive lines (its ``archive.jsonl`` read line by line: each line names the search that
    computed its metrics). Only lines whose search label starts with ``search`` count, never the random
    baseline's (``random``) or the warm start's; the best score of a branch count's NSGA-II evaluations lies
    on that branch count's NSGA-II front."""
    best: dict[int, tuple[float, HyCTASGenotype]] = {}
    for record in records:
        value = record.get("metrics", {}).get(score)
        if value is None or not np.isfinite(value) or not str(record.get("search", "")).startswith(search):
            continue
        genotype = HyCTASGenotype.from_dict(record["genotype"])
        n = genotype.num_branches
        if n not in best or value > best[n][0]:
            best[n] = (float(value), genotype)
    return {n: best[n][1] for n in sorted(best)}


LABELS = {
    "searched": "Searched",
    "sa_to_conv": "+ SA -> Conv.",
    "conv_to_sa": "+ Conv. -> SA",
    "shift_sa_position": "+ Shift SA Position",
    "shift_sa_branch": "+ Shift SA Branch",
    **{f"searched{n}": f"Searched-{n}" for n in (1, 2, 3)},
}


def default_genotype(space: HyCTASSpace, rng: np.random.Generator) -> HyCTASGenotype:
    """A random genotype with at least two branches, a self-attention cell and a convolution cell."""
    while True:
        g = space.sample(rng)
        ops = {op for b in g.branches for op in b.ops}
        if g.num_branches >= 2 and SA in ops and ops & set(CONVS):
            return g


def ablation_networks(
    genotype: HyCTASGenotype, space_of_depth: Callable[[int | None], HyCTASSpace],
    searched: Mapping[int, HyCTASGenotype], per_branch_count: int, rng: np.random.Generator,
) -> tuple[dict[str, tuple[str, HyCTASGenotype]], list[str]]:
    """Every network of the ablation as ``name -> (group, genotype)``: the genotype and its Table 8 variants
    (``table8``), the ``searched`` best network per branch count (``table7``) and ``per_branch_count`` random
    networks of each branch count (``random1``..``random3``) drawn from ``space_of_depth(None)``, each with its
    own sampled depth (the paper samples them "from the search space"); and the Table 8 variants that do not
    apply to the genotype. ``space_of_depth(d)`` is the space of depth ``d`` only."""
    space = space_of_depth(genotype.depth)
    if space.violations(genotype):
        raise ValueError(f"stage.genotype does not fit the space: {space.violations(genotype)}")
    networks: dict[str, tuple[str, HyCTASGenotype]] = {}
    skipped = []
    for name, variant in table8_variants(genotype, space, rng).items():
        if variant is None:
            skipped.append(name)
        else:
            networks[name] = ("table8", variant)
    for n, g in searched.items():
        networks[f"searched{n}"] = ("table7", g)
    for name, g in random_architectures(space_of_depth(None), per_branch_count, rng).items():
        networks[name] = (name.split("_")[0], g)
    return networks, skipped


def ablation_table(rows: list[dict[str, Any]]) -> str:
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
