"""Evolution vs random search on the proxy's own score, over seeds, with the stage's scorer.

``stage=zero_shot_search``'s problem from :func:`segnas.search.build_problem` (the same proxy score on the same batch, the same cost objective and
budgets as ``python -m segnas stage=zero_shot_search``): for every seed, greedy top-k evolution
(the ``search=`` group's :class:`segnas.search.TopK`) and random search
(:class:`segnas.search.RandomSearch`, seed + 1000) score the same number of architectures
within the budgets. Every metric goes through one archive (``OUT/archive.jsonl``): the seeds share work
(scores and costs are deterministic per genotype), and a killed run resumes where it stopped. Usage from
the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python experiments/saswot_zero_shot_search/compare_seeds.py \
        --seeds 3 search.num_evals=96 +score.options.loss_reduction=mean
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module

from segnas.search import Evaluated, RandomSearch, build_algorithm, build_problem, unique


def summary(evaluated: list[Evaluated], score: str) -> tuple[float, float]:
    """Best score and mean of the top-5 scores (NaN scores, invalid, left out)."""
    scores = sorted((e.metrics[score] for e in evaluated if math.isfinite(e.metrics[score])), reverse=True)
    return scores[0], float(np.mean(scores[:5]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("outputs/zero_shot_seeds"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of stage=zero_shot_search")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with initialize_config_module("segnas.conf", version_base="1.3"):
        cfg = compose("config", overrides=["stage=zero_shot_search", "stage.progress=false", *args.overrides])
    args.out.mkdir(parents=True, exist_ok=True)
    problem = build_problem(cfg, args.out, single_objective=True)
    score = problem.assembly.score_metric
    template = build_algorithm(cfg)
    rows = []
    for seed in range(args.seeds):
        algorithm = copy.copy(template)
        algorithm.seed = seed
        evo = algorithm.run(problem).evaluated
        rand = RandomSearch(len(unique(problem, evo)), batch=algorithm.batch_size, seed=seed + 1000,
                            progress=False).run(problem).evaluated
        (eb, e5), (rb, r5) = summary(evo, score), summary(rand, score)
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
