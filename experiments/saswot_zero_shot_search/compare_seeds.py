"""Evolution vs random search on the proxy's own score, over seeds, with the stage's scorer.

``stage=zero_shot_search`` wiring (the same proxy score on the same batch, the same cost objective and
budgets as ``python -m segnas stage=zero_shot_search``): for every seed, greedy top-k evolution
(:func:`segnas.search.topk.run_topk` with the ``search.*`` settings) and random search
(:func:`segnas.search.algorithms.run_random`, seed + 1000) score the same number of architectures
within the budgets. Every metric goes through one archive (``OUT/archive.jsonl``): the seeds share work
(scores and costs are deterministic per genotype), and a killed run resumes where it stopped. Usage from
the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python experiments/saswot_zero_shot_search/compare_seeds.py \
        --seeds 3 search.num_evals=96
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module

from segnas.search.algorithms import run_random, unique
from segnas.search.archive import Archive
from segnas.search.distributed import Ranks
from segnas.search.evaluator import Evaluator
from segnas.search.problem import Evaluated, Goal, SearchProblem
from segnas.search.topk import run_topk
from segnas.stages.search import COSTS, SCORES, Wiring, fixed_budgets

SCORE = SCORES["proxy"]


def summary(evaluated: list[Evaluated]) -> tuple[float, float]:
    """Best score and mean of the top-5 scores (NaN scores, invalid, left out)."""
    scores = sorted((e.metrics[SCORE] for e in evaluated if math.isfinite(e.metrics[SCORE])), reverse=True)
    return scores[0], float(np.mean(scores[:5]))


def build_problem(cfg, out: Path) -> SearchProblem:
    """The stage's problem: proxy score (maximised) with the cost objective and budgets of ``search.*``."""
    wiring = Wiring(cfg, out, Ranks())
    costs, _, _ = wiring.costs
    search = cfg.search
    budgets = fixed_budgets(search)
    wanted = {COSTS[str(search.objective)], *budgets}
    objectives = {name: fn for name, fn in costs.items() if name in wanted}
    objectives[SCORE] = wiring.score
    archive = Archive(out / "archive.jsonl", key=wiring.space.key, context=wiring.context())
    return SearchProblem(wiring.space, Evaluator(objectives, archive), [Goal(SCORE, maximize=True)], budgets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("outputs/zero_shot_seeds"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of stage=zero_shot_search")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with initialize_config_module("segnas.conf", version_base="1.3"):
        cfg = compose("config", overrides=["stage=zero_shot_search", *args.overrides])
    if cfg.score.kind != "proxy":
        raise ValueError(f"compare_seeds compares searches of a proxy score, got score={cfg.score.kind}")
    args.out.mkdir(parents=True, exist_ok=True)
    problem = build_problem(cfg, args.out)
    search = cfg.search
    rows = []
    for seed in range(args.seeds):
        evo = run_topk(
            problem,
            n_evals=int(search.num_evals),
            population=int(search.population),
            top_k=int(search.top_k),
            children=search.children,
            p_crossover=float(search.p_crossover),
            p_mutate=float(search.mutation_prob),
            patience=search.patience,
            clear_pool=bool(search.clear_pool),
            random_per_generation=int(search.random_per_generation),
            seed=seed,
            label=f"topk_seed{seed}",
            progress=False,
        ).evaluated
        rand = run_random(problem, len(unique(problem, evo)), batch=int(search.population), seed=seed + 1000,
                          label=f"random_seed{seed}", progress=False)  # fmt: skip
        (eb, e5), (rb, r5) = summary(evo), summary(rand)
        rows.append({"seed": seed, "evaluated": len(evo), "evolution_best": eb, "random_best": rb,
                     "evolution_top5": e5, "random_top5": r5})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    table = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("seed", "evaluated")}
    table["evolution_wins"] = sum(r["evolution_best"] > r["random_best"] for r in rows)
    result = {"overrides": args.overrides, "seeds": rows, "mean": table,
              "n_computed_this_run": problem.evaluator.n_computed}  # fmt: skip
    (args.out / "compare_seeds.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(table))


if __name__ == "__main__":
    main()
