"""One search engine for every space, score and algorithm, usable without Hydra.

- :mod:`~segnas.search.archive`: append-only JSONL archive keyed by the space's canonical key, checked
  against an evaluation context (resume, nothing evaluated twice).
- :mod:`~segnas.search.objectives`, :mod:`~segnas.search.latency_table`: objectives ``genotype -> float``
  (supernet / standalone mIoU, zero-cost proxy score, measured and lookup-table latency, MACs, params,
  activation memory); cost objectives take a ``build`` callable such as
  ``functools.partial(segnas.models.build_network, num_classes=19)``.
- :mod:`~segnas.search.evaluator`: objectives evaluated through the archive.
- :mod:`~segnas.search.problem`: a :class:`SearchProblem` (space, evaluator, goals, budgets, floors).
- :mod:`~segnas.search.algorithms`, :mod:`~segnas.search.topk`: NSGA-II (pymoo, over the generic space
  adapters of :mod:`~segnas.search.operators`), random search and greedy top-k evolution over any space.
- :mod:`~segnas.search.pareto`, :mod:`~segnas.search.plot`, :mod:`~segnas.search.report`: fronts,
  hypervolume, the Figure-3-style plot and the written outputs.
- :mod:`~segnas.search.ablation`: the Table 7/8 ablation architectures.
"""

from segnas.search.algorithms import run_nsga2, run_random, unique
from segnas.search.archive import Archive, ArchiveMismatch, genotype_key
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
    "genotype_key",
    "hypervolume",
    "pareto_indices",
    "run_nsga2",
    "run_random",
    "run_topk",
    "unique",
]
