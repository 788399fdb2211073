"""Evolution vs random search on the proxy's own score, over seeds, with the stage's scorer.

Both searches score the same number of architectures within the budget; scores and costs are memoised
per genotype (they are deterministic), so the seeds share work. Usage from the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python experiments/saswot_zero_shot_search/compare_seeds.py \
        --seeds 3 stage.evolution.num_evals=96
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_module

from segnas.search.evolution import Candidate, evolutionary_search, random_search, ranked
from segnas.stages.zero_shot_search import Scorer, build_space


def memoised(fn: Any) -> Any:
    """``fn(genotype)`` cached per genotype."""
    cache: dict[Any, float] = {}

    def wrapped(genotype: Any) -> float:
        if genotype not in cache:
            cache[genotype] = fn(genotype)
        return cache[genotype]

    return wrapped


def summary(cands: list[Candidate]) -> tuple[float, float]:
    """Best score and mean of the top-5 scores."""
    best = ranked(cands)
    return best[0].score, float(np.mean([c.score for c in best[:5]]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("outputs/zero_shot_seeds"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of stage=zero_shot_search")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with initialize_config_module("segnas.conf", version_base="1.3"):
        cfg = compose("config", overrides=["stage=zero_shot_search", *args.overrides])
    args.out.mkdir(parents=True, exist_ok=True)
    space = build_space(cfg)
    scorer = Scorer(cfg, space, args.out)
    score, cost = memoised(scorer.score), memoised(scorer.cost)
    st, evo_cfg = cfg.stage, cfg.stage.evolution
    rows = []
    for seed in range(args.seeds):
        evo = evolutionary_search(
            space,
            score,
            cost,
            float(st.budget.max),
            int(evo_cfg.num_evals),
            np.random.default_rng(seed),
            population=int(evo_cfg.population),
            top_k=int(evo_cfg.top_k),
            p_mutate=float(evo_cfg.p_mutate),
            p_crossover=float(evo_cfg.p_crossover),
        )
        rand = random_search(
            space, score, cost, float(st.budget.max), len(evo), np.random.default_rng(seed + 1000)
        )
        (eb, e5), (rb, r5) = summary(evo), summary(rand)
        rows.append(
            {"seed": seed, "evolution_best": eb, "random_best": rb, "evolution_top5": e5, "random_top5": r5}
        )
        print(json.dumps(rows[-1]), flush=True)
    table = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "seed"}
    table["evolution_wins"] = sum(r["evolution_best"] > r["random_best"] for r in rows)
    result = {"overrides": args.overrides, "seeds": rows, "mean": table}
    (args.out / "compare_seeds.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(table))


if __name__ == "__main__":
    main()
