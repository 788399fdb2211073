"""One search engine for every space, score and algorithm, usable without Hydra.

- :mod:`~segnas.search.assembly`: :func:`build_problem` and :func:`build_algorithm`, the one path from a
  composed config to a search (score component, space, costs, goal, archive context).
- :mod:`~segnas.search.scoring`: the ``score=`` components (supernet, proxy, standalone).
- :mod:`~segnas.search.goal`: what every search shares (cost objective, budgets, floors, warm start, baseline).
- :mod:`~segnas.search.archive`: append-only JSONL archive keyed by the space's canonical key, checked
  against an evaluation context (resume, nothing evaluated twice).
- :mod:`~segnas.search.objectives`, :mod:`~segnas.search.costs`: objectives ``genotype -> float``.
- :mod:`~segnas.search.evaluator`: objectives evaluated through the archive.
- :mod:`~segnas.search.problem`: a :class:`SearchProblem` (space, evaluator, goals, budgets, floors).
- :mod:`~segnas.search.algorithms`, :mod:`~segnas.search.topk`: :class:`NSGA2` (pymoo, over the generic
  space adapters of :mod:`~segnas.search.operators`), :class:`RandomSearch` and :class:`TopK` (greedy top-k
  evolution), one protocol: constructed with their settings, ``.run(problem)`` returns a :class:`SearchResult`.
- :mod:`~segnas.search.runner`, :mod:`~segnas.search.pareto`, :mod:`~segnas.search.plot`,
  :mod:`~segnas.search.report`: a whole search with its random baseline, fronts, hypervolume, outputs.
"""

from segnas.search.algorithms import (
    NSGA2,
    RandomSearch,
    SearchAlgorithm,
    SearchResult,
    run_nsga2,
    run_random,
    unique,
)
from segnas.search.archive import Archive, ArchiveMismatch
from segnas.search.assembly import Assembly, build_algorithm, build_problem
from segnas.search.evaluator import Evaluator
from segnas.search.pareto import hypervolume, pareto_indices
from segnas.search.problem import Evaluated, Goal, SearchProblem
from segnas.search.topk import TopK, TopKResult, run_topk

__all__ = [
    "NSGA2",
    "Archive",
    "ArchiveMismatch",
    "Assembly",
    "Evaluated",
    "Evaluator",
    "Goal",
    "RandomSearch",
    "SearchAlgorithm",
    "SearchProblem",
    "SearchResult",
    "TopK",
    "TopKResult",
    "build_algorithm",
    "build_problem",
    "hypervolume",
    "pareto_indices",
    "run_nsga2",
    "run_random",
    "run_topk",
    "unique",
]
