"""One search engine for every space, score and algorithm, usable without Hydra.

- :mod:`~segnas.search.archive`: append-only JSONL archive keyed by the space's canonical key, checked
  against an evaluation context (resume, nothing evaluated twice).
- :mod:`~segnas.search.objectives`: objectives ``genotype -> float`` (supernet / standalone mIoU,
  zero-cost proxy score, measured latency, MACs, params, activation memory); cost objectives take a ``build`` callable such as
  ``functools.partial(segnas.models.build_network, num_classes=19)``.
- :mod:`~segnas.search.evaluator`: objectives evaluated through the archive.
- :mod:`~segnas.search.problem`: a :class:`SearchProblem` (space, evaluator, goals, budgets, floors).
- :mod:`~segnas.search.algorithms`, :mod:`~segnas.search.topk`: NSGA-II (pymoo, over the generic space
  adapters of :mod:`~segnas.search.operators`), random search and greedy top-k evolution over any space.
- :mod:`~segnas.search.pareto`, :mod:`~segnas.search.plot`, :mod:`~segnas.search.report`: fronts,
  hypervolume, the Figure-3-style plot and the written outputs.
"""

from segnas.search.algorithms import run_nsga2, run_random, unique
from segnas.search.archive import Archive, ArchiveMismatch
from segnas.search.evaluator import Evaluator
from segnas.search.pareto import hypervolume, pareto_indices
from segnas.search.problem import Evaluated, Goal, SearchProblem
from segnas.search.topk import TopKResult, run_topk

__all__ = [
    "Archive",
    "ArchiveMismatch",
    "Evaluated",
    "Evaluator",
    "Goal",
    "SearchProblem",
    "TopKResult",
    "hypervolume",
    "pareto_indices",
    "run_nsga2",
    "run_random",
    "run_topk",
    "unique",
]
