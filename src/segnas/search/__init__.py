"""HyCTAS architecture search, usable without Hydra.

- :mod:`~segnas.search.archive`: append-only JSONL archive (resume, no evaluation twice).
- :mod:`~segnas.search.objectives`, :mod:`~segnas.search.latency_table`: objectives ``genotype -> float``
  (supernet mIoU after BN recalibration, measured and lookup-table latency, MACs, params).
- :mod:`~segnas.search.evaluator`: objectives evaluated through the archive.
- :mod:`~segnas.search.operators`, :mod:`~segnas.search.algorithms`: pymoo operators on the genotype
  encoding, the evaluation-only problem, NSGA-II and random search.
- :mod:`~segnas.search.pareto`, :mod:`~segnas.search.plot`: fronts, hypervolume, Figure-3-style plot.
- :mod:`~segnas.search.ablation`: the Table 7/8 ablation architectures.
"""

from segnas.search.algorithms import Evaluated, SearchProblem, run_nsga2, run_random
from segnas.search.archive import Archive, genotype_key
from segnas.search.evaluator import Evaluator
from segnas.search.pareto import hypervolume, pareto_indices

__all__ = [
    "Archive",
    "Evaluated",
    "Evaluator",
    "SearchProblem",
    "genotype_key",
    "hypervolume",
    "pareto_indices",
    "run_nsga2",
    "run_random",
]
