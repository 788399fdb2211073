"""The FasterSeg search space (Chen et al., ICLR 2020) as SasWOT searches it: FasterSeg's architecture matrices.

A network is a :class:`FasterSegMatrices` over a lattice of ``layers`` (FasterSeg: 16) x 3 scales (strides 8,
16, 32): ``alpha`` (operator logits per layer, one matrix per scale; both outputs of a lattice cell, keep and
downsample, use its row), ``beta`` (input of the 1/16 and 1/32 cells: column 0 from the finer scale's
downsampling, 1 kept at the scale), ``ratio`` (output width logits; none at a fixed pruning rate) and
``last``, where the second branch ends (1/8 or 1/16: FasterSeg picks it by accuracy and latency after its
search; here it is searched). Entries are integer logits in ``[0, LEVELS)``. :func:`decode_matrices`
decodes them as FasterSeg's ``network_metas`` (train/model_seg.py) does into two branches, one ending at 1/32
and the other at ``last``: the :class:`FasterSegGenotype` (per cell an operator, input scale and output
width) that the network builder consumes. Cells are shared by the two branches from the first one as long
as they agree (FasterSeg's branch groups): the shipped FasterSeg shares three.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from segnas.spaces.base import METADATA_KEYS, SearchSpace, canonical_json

# FasterSeg operator order (alpha columns): skip, conv, zoomed conv, conv x2, zoomed conv x2.
OPS = ("skip", "conv", "conv_downup", "conv_2x", "conv_2x_downup")
WIDTHS = (4 / 12, 6 / 12, 8 / 12, 10 / 12, 1.0)
MAX_LAYERS = 16
MIN_LAYERS = 6  # FasterSeg's decoding needs round(layers / 3) + 4 <= layers for the 1/32 branch
LEVELS = 16  # integer logits of a matrix entry: 0 .. LEVELS - 1
Matrix = tuple[tuple[int, ...], ...]


def _width_ok(w: float) -> bool:
    return any(abs(w - c) < 1e-4 for c in WIDTHS)


@dataclass(frozen=True)
class FasterSegBranch:
    """One branch: per cell the operator, input scale index and (except the last cell) output width."""

    ops: tuple[str, ...]
    path: tuple[int, ...]
    widths: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(str(o) for o in self.ops))
        object.__setattr__(self, "path", tuple(int(p) for p in self.path))
        object.__setattr__(self, "widths", tuple(round(float(w), 6) for w in self.widths))
        if len(self.path) != len(self.ops) or len(self.widths) != max(len(self.ops) - 1, 0):
            raise ValueError(
                f"branch needs one path entry per op and one width per op but the last, got "
                f"{len(self.ops)} ops, {len(self.path)} path entries, {len(self.widths)} widths"
            )

    @property
    def depth(self) -> int:
        return len(self.ops)

    @property
    def last(self) -> int:
        """Scale index of the branch output (0, 1, 2 for strides 8, 16, 32)."""
        return self.path[-1] if self.path else 0

    def downs(self) -> tuple[int, ...]:
        """Per cell 1 when it downsamples (the next cell's scale is higher), else 0."""
        return (*tuple(int(b > a) for a, b in zip(self.path, self.path[1:], strict=False)), 0)

    def violations(self) -> list[str]:
        """Rule violations of this branch (empty when valid)."""
        out = []
        if not self.ops:
            return ["branch has no cells"]
        if len(self.ops) > MAX_LAYERS:
            out.append(f"branch has {len(self.ops)} cells, at most {MAX_LAYERS}")
        bad = sorted(set(self.ops) - set(OPS))
        if bad:
            out.append(f"unknown operators {bad}; expected {list(OPS)}")
        if self.path[0] != 0:
            out.append("path must start at scale 0 (stride 8)")
        if any(b - a not in (0, 1) for a, b in zip(self.path, self.path[1:], strict=False)):
            out.append(f"path {list(self.path)} must be non-decreasing in steps of at most 1")
        if any(not _width_ok(w) for w in self.widths):
            out.append(f"widths {list(self.widths)} must be in {[round(w, 4) for w in WIDTHS]}")
        downs = self.downs()
        if any(d and o == "skip" for o, d in zip(self.ops, downs, strict=True)):
            out.append("a downsampling cell cannot be skip")
        segments, cur = [], []
        for o, d in zip(self.ops, downs, strict=True):
            cur.append(o)
            if d:
                segments.append(cur)
                cur = []
        segments.append(cur)
        if any(seg and all(s == "skip" for s in seg) for seg in segments):
            out.append("a segment between downsamplings may not be all skip")
        return out


@dataclass(frozen=True)
class FasterSegMatrices:
    """FasterSeg's architecture parameters of one network, as integer logits (see the module docstring).

    ``alpha``: scales 0, 1, 2 with ``layers``, ``layers - 1``, ``layers - 2`` rows x 5 operators (row ``i - s``
    is layer ``i`` at scale ``s``); ``beta``: scales 1, 2 with ``layers - 2``, ``layers - 3`` rows x (from
    down, keep); ``ratio``: scales 0, 1, 2 with ``layers - 1``, ``layers - 1``, ``layers - 2`` rows x widths,
    empty at a fixed width; ``last``: scale index (0 or 1) where the second branch ends.
    """

    alpha: tuple[Matrix, ...]
    beta: tuple[Matrix, ...]
    ratio: tuple[Matrix, ...] = ()
    last: int = 1

    KEYS: ClassVar[tuple[str, ...]] = ("last", "alpha", "beta", "ratio")

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "ratio"):
            matrices = tuple(tuple(tuple(int(v) for v in row) for row in m) for m in getattr(self, name))
            object.__setattr__(self, name, matrices)
        object.__setattr__(self, "last", int(self.last))

    @property
    def layers(self) -> int:
        """Depth of the lattice (FasterSeg: 16)."""
        return len(self.alpha[0]) if self.alpha else 0

    def shapes(self) -> list[tuple[int, int]]:
        """``(rows, columns)`` of every matrix: alphas, betas, ratios."""
        return [(len(m), len(m[0]) if m else 0) for m in (*self.alpha, *self.beta, *self.ratio)]

    def flat(self) -> list[int]:
        """``last`` then every entry, matrix by matrix (alphas, betas, ratios), row by row."""
        return [self.last, *(v for m in (*self.alpha, *self.beta, *self.ratio) for row in m for v in row)]

    def to_dict(self) -> dict[str, Any]:
        lists = {k: [[list(row) for row in m] for m in getattr(self, k)] for k in ("alpha", "beta", "ratio")}
        return {"last": self.last, **lists}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FasterSegMatrices:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on an unknown key."""
        unknown = sorted(set(data) - set(cls.KEYS))
        if unknown:
            raise ValueError(f"unknown fasterseg matrices keys {unknown}; expected {list(cls.KEYS)}")
        return cls(tuple(data["alpha"]), tuple(data["beta"]), tuple(data.get("ratio", ())), data.get("last", 1))


def _softmax(row: np.ndarray) -> np.ndarray:
    """Softmax with the max subtracted and an exact sum: rows equal up to order and shift tie exactly."""
    z = np.exp(row - row.max())
    return z / math.fsum(z)


def _beta_path(betas: list[np.ndarray], last: int, layers: int) -> list[int]:
    """Input scale of every layer's cell on the path to scale ``last`` (FasterSeg's ``betas2path``)."""
    downs = [0] * layers
    if last == 1:
        downs[int(np.argmax(betas[0][1:-1, 0])) + 1] = 1
    elif last == 2:
        best, (bi, bj) = 0.0, (0, 1)
        for j in range(layers - 4):
            for i in range(1, j - 1):
                if betas[0][i, 0] * betas[1][j, 0] > best:
                    best, (bi, bj) = betas[0][i, 0] * betas[1][j, 0], (i, j)
        downs[bi + 1] = downs[bj + 2] = 1
    return [int(s) for s in np.cumsum([0, *downs[:-1]])]


def _path_widths(path: list[int], ratios: list[np.ndarray], widths: Sequence[float]) -> list[float]:
    """Output width of every cell but the last: argmax of the ratio row of the next cell's lattice node
    (FasterSeg's ``path2widths``); the only width when the width is fixed."""
    if not ratios:
        return [widths[0]] * (len(path) - 1)
    rows = [ratios[s][i - 1 if s == 0 else i - s] for i, s in enumerate(path) if i > 0]
    return [widths[int(np.argmax(r))] for r in rows]


def _alpha_ops(alphas: list[np.ndarray], path: list[int], widths: list[float]) -> FasterSegBranch:
    """Operators along ``path`` with skips dropped or replaced (FasterSeg's ``alphas2ops_path_width``, see
    :func:`decode_matrices`); like the reference it edits ``alphas`` in place."""
    n = len(path)
    rows = [alphas[s][i - s] for i, s in enumerate(path)]  # views: edits reach ``alphas``
    min_len = round(n / 3) + 2 * path[-1]
    skips = [(i, _softmax(r)[0]) for i, r in enumerate(rows)
             if np.argmax(r) == 0 and (i == n - 1 or path[i] == path[i + 1])]  # fmt: skip
    positions = [i for i, _ in skips]
    ends = [i for i in range(n - 1) if path[i] < path[i + 1]]  # downsampling cells, then the end
    ends = [*ends, n] if ends else []
    for a, b in itertools.pairwise(ends):
        if a + 1 in positions and b - 1 in positions and positions.index(b - 1) - positions.index(a + 1) == b - a - 2:
            scores = [_softmax(rows[j])[0] for j in range(a + 1, b)]
            j = a + 1 + max(k for k, s in enumerate(scores) if s == min(scores))
            rows[j][0] = -np.inf  # all skips from a downsampling to the next: the least likely is not
    if len(skips) > n - min_len:
        skips = sorted(skips, key=lambda s: s[1], reverse=True)[: n - min_len]
    dropped = {i for i, _ in skips}
    ops, kept_path, kept_widths = [], [], []
    for i, (s, row) in enumerate(zip(path, rows, strict=True)):
        op = int(np.argmax(row))
        if op == 0 and i in dropped:
            if i == n - 1:
                del kept_widths[-1:]  # the new last cell outputs the head width
            continue
        if op == 0:
            row[0] = -np.inf
            op = int(np.argmax(row))
        ops.append(OPS[op])
        kept_path.append(s)
        if i < n - 1:
            kept_widths.append(widths[i])
    return FasterSegBranch(tuple(ops), tuple(kept_path), tuple(kept_widths))


def decode_matrices(
    matrices: FasterSegMatrices, ops: Sequence[str] = OPS, widths: Sequence[float] = WIDTHS
) -> tuple[FasterSegBranch, FasterSegBranch]:
    """The branches ending at 1/32 and at ``matrices.last`` that FasterSeg decodes from the matrices.

    As FasterSeg's ``network_metas`` runs for the ends 1/8, 1/16 and 1/32 in turn on the same tensors
    (each run softmaxes the betas once more and masks skip logits in place):

    - path: from the softmaxed betas; 1/16 downsamples at layer ``argmax(beta_1[1:-1, 0]) + 1``, 1/32 at
      layers ``i + 1`` and ``j + 2`` for the first ``(i, j)`` maximising ``beta_1[i, 0] * beta_2[j, 0]`` over
      ``j < layers - 4``, ``1 <= i < j - 1`` (``(0, 1)`` when there is none);
    - widths: the output width of a cell is the argmax of the ratio row of the next cell's node;
    - ops: the argmax of the alpha row of each node of the path. A skip that does not downsample is dropped
      (the cell is removed), at most ``len - min_len`` of them (``min_len = round(layers / 3) + 2 * end``)
      and those of highest skip probability; in a run of skips from a downsampling to the next (or to the
      end) the least likely one is not a skip; every skip not dropped becomes the next best operator.

    Operators not in ``ops`` are masked out (FasterSeg's teacher, ``ignore_skip``, masks skip); ``widths`` are
    the ratio columns (one: a fixed width, and ``matrices.ratio`` is empty).
    """
    mask = np.array([0.0 if o in ops else -np.inf for o in OPS])
    alphas = [np.asarray(a, dtype=float) + mask for a in matrices.alpha]
    betas = [np.asarray(b, dtype=float) for b in matrices.beta]
    ratios = [np.asarray(r, dtype=float) for r in matrices.ratio]
    branches = []
    for last in range(3):
        betas = [np.apply_along_axis(_softmax, 1, b) for b in betas]
        path = _beta_path(betas, last, matrices.layers)
        branches.append(_alpha_ops(alphas, path, _path_widths(path, ratios, widths)))
    return branches[2], branches[matrices.last]


@dataclass(frozen=True)
class FasterSegGenotype:
    """An immutable FasterSeg network: two branches (first ends at 1/32, second at 1/8 or 1/16).

    ``matrices``, when known, are the FasterSeg matrices it was decoded from (what the space encodes); they
    do not take part in equality, hashing or the space's key.
    """

    branches: tuple[FasterSegBranch, ...]
    fch: int = 12
    stem_head_width: float = 8 / 12
    matrices: FasterSegMatrices | None = field(default=None, compare=False, repr=False)

    space_name: ClassVar[str] = "fasterseg"

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(self.branches))
        object.__setattr__(self, "fch", int(self.fch))
        object.__setattr__(self, "stem_head_width", round(float(self.stem_head_width), 6))

    @property
    def lasts(self) -> tuple[int, ...]:
        return tuple(b.last for b in self.branches)

    def rule_violations(self) -> list[str]:
        """Structural rules of the space (empty when valid)."""
        out = []
        if len(self.branches) != 2:
            return [f"need exactly 2 branches, got {len(self.branches)}"]
        if self.lasts[0] != 2 or self.lasts[1] not in (0, 1):
            out.append(f"branch outputs must be at scales (2, 0|1), got {self.lasts}")
        for i, b in enumerate(self.branches):
            out += [f"branch {i}: {v}" for v in b.violations()]
        if self.fch < 1:
            out.append(f"fch must be positive, got {self.fch}")
        if not 0 < self.stem_head_width <= 1:
            out.append(f"stem_head_width must be in (0, 1], got {self.stem_head_width}")
        return out

    def to_dict(self, matrices: bool = True) -> dict[str, Any]:
        """Plain-data form; with ``matrices`` (and when known) the matrices too."""
        data = {
            "space": self.space_name,
            "fch": self.fch,
            "stem_head_width": self.stem_head_width,
            "branches": [
                {"ops": list(b.ops), "path": list(b.path), "widths": list(b.widths)} for b in self.branches
            ],
        }
        if matrices and self.matrices is not None:
            data["matrices"] = self.matrices.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FasterSegGenotype:
        """Inverse of :meth:`to_dict` (metadata keys allowed); raises ``ValueError`` on a malformed layout
        or an unknown (e.g. misspelled) key."""
        genotype_keys = ("space", "fch", "stem_head_width", "branches", "matrices")
        branch_keys = ("ops", "path", "widths")
        if data.get("space", cls.space_name) != cls.space_name:
            raise ValueError(f"not a {cls.space_name} genotype: space={data.get('space')!r}")
        unknown = sorted(set(data) - set(genotype_keys) - set(METADATA_KEYS))
        if unknown:
            raise ValueError(f"unknown fasterseg genotype keys {unknown}; expected {[*genotype_keys, *METADATA_KEYS]}")
        try:
            for i, b in enumerate(data["branches"]):
                extra = sorted(set(b) - set(branch_keys))
                if extra:
                    raise ValueError(f"unknown fasterseg keys {extra} in branch {i}; expected {list(branch_keys)}")
            branches = tuple(
                FasterSegBranch(tuple(b["ops"]), tuple(b["path"]), tuple(b["widths"]))
                for b in data["branches"]
            )
            matrices = FasterSegMatrices.from_dict(data["matrices"]) if data.get("matrices") else None
        except (KeyError, TypeError) as err:
            raise ValueError(f"malformed fasterseg genotype: {err!r}") from err
        return cls(branches, int(data.get("fch", 12)), float(data.get("stem_head_width", 8 / 12)), matrices)


class FasterSegSpace(SearchSpace):
    """FasterSeg's matrices as a fixed-length integer vector, decoded the FasterSeg way.

    The vector is ``last`` then every matrix entry (alphas of scales 0-2, betas of scales 1-2, ratios of
    scales 0-2 unless ``width`` is fixed), row by row; samples are uniform random matrices. Mutation redraws
    whole rows, each with probability ``p`` and at least one (SasWOT: "randomly change the rows of the alpha
    or beta matrix"; ratio rows and ``last`` are rows too), crossover takes every matrix (and ``last``) from
    either parent ("randomly select the alpha and beta matrices from the two architectures"), and the key is
    the decoded network's, so encodings that decode to one network are duplicates. Only genotypes that carry
    their matrices (decoded by a space, or a YAML with ``matrices``) can be encoded.

    Args:
        min_depth: fewest cells a decoded branch may have (FasterSeg's own floor: ``round(layers / 3) + 2 *
            end``).
        max_depth: lattice depth ``layers`` = most cells of a branch (FasterSeg: 16; at least 6).
        ops: operators the alphas may choose (the others are masked out, as FasterSeg's teacher masks skip).
        fch: base channel count (``round(stride * fch * width)`` channels).
        stem_head_width: width of the stem and of every branch's last cell.
        width: the fixed pruning rate, every cell's output width (SasWOT fixes it; FasterSeg's fixed student
            width is 4/12); ``None`` searches it with the ratio matrices (FasterSeg's student).
        second_lasts: scale indices the second branch may end at (0: 1/8, 1: 1/16).
    """

    name: ClassVar[str] = "fasterseg"
    genotype_cls: ClassVar[type] = FasterSegGenotype

    def __init__(
        self,
        min_depth: int = 4,
        max_depth: int = MAX_LAYERS,
        ops: Sequence[str] = OPS,
        fch: int = 12,
        stem_head_width: float = 8 / 12,
        width: float | None = 4 / 12,
        second_lasts: Sequence[int] = (0, 1),
    ) -> None:
        if not (MIN_LAYERS <= max_depth <= MAX_LAYERS and 1 <= min_depth <= max_depth):
            raise ValueError(
                f"need 1 <= min_depth <= max_depth and {MIN_LAYERS} <= max_depth <= {MAX_LAYERS} (max_depth is "
                f"the lattice depth; FasterSeg's 1/32 branch has at least 6 cells), got {min_depth}, {max_depth}"
            )
        bad = sorted(set(ops) - set(OPS))
        if bad or not ops:
            raise ValueError(f"ops must be a non-empty subset of {list(OPS)}, got {list(ops)}")
        if all(o == "skip" for o in ops):
            raise ValueError("ops need at least one operator besides skip")
        if width is not None and not _width_ok(float(width)):
            raise ValueError(f"width must be null or one of {[round(w, 4) for w in WIDTHS]}, got {width}")
        if not second_lasts or not set(second_lasts) <= {0, 1}:
            raise ValueError(f"second_lasts must be a non-empty subset of [0, 1], got {list(second_lasts)}")
        self.min_depth, self.max_depth = int(min_depth), int(max_depth)
        self.ops = tuple(ops)
        self.fch, self.stem_head_width = int(fch), float(stem_head_width)
        self.widths = WIDTHS if width is None else (float(width),)
        self.second_lasts = tuple(sorted(int(s) for s in set(second_lasts)))
        layers = self.max_depth
        shapes = [(layers - s, len(OPS)) for s in range(3)] + [(layers - 2, 2), (layers - 3, 2)]
        if width is None:
            shapes += [(layers - 1, len(WIDTHS)), (layers - 1, len(WIDTHS)), (layers - 2, len(WIDTHS))]
        self._shapes = shapes
        self._starts = [1 + sum(r * c for r, c in shapes[:k]) for k in range(len(shapes) + 1)]
        self._lo, self._hi = self._bounds()

    # -- layout of the vector ------------------------------------------------------------------------
    def _indices(self) -> list[np.ndarray]:
        """Vector indices of every matrix, shaped like it."""
        return [s + np.arange(r * c).reshape(r, c) for s, (r, c) in zip(self._starts, self._shapes, strict=False)]

    def variable_groups(self) -> list[list[int]]:
        """Mutation units: ``last`` and every matrix row."""
        return [[0]] + [row.tolist() for m in self._indices() for row in m]

    def crossover_groups(self) -> list[list[int]]:
        """Crossover units: ``last`` and every whole matrix."""
        return [[0]] + [m.ravel().tolist() for m in self._indices()]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self._lo.copy(), self._hi.copy()

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        n = self._starts[-1]
        lo, hi = np.zeros(n, dtype=np.int64), np.full(n, LEVELS - 1, dtype=np.int64)
        lo[0], hi[0] = self.second_lasts[0], self.second_lasts[-1]
        disabled = [k for k, o in enumerate(OPS) if o not in self.ops]
        for alpha in self._indices()[:3]:
            hi[alpha[:, disabled].ravel()] = 0  # masked out when decoding
        return lo, hi

    def matrices(self, x: np.ndarray | Sequence[int]) -> FasterSegMatrices:
        """The matrices of an encoding."""
        x = np.asarray(x, dtype=np.int64)
        if x.shape != (self.n_var,):
            raise ValueError(f"expected {self.n_var} variables, got shape {x.shape}")
        ms = [x[idx].tolist() for idx in self._indices()]
        return FasterSegMatrices(tuple(ms[:3]), tuple(ms[3:5]), tuple(ms[5:]), int(x[0]))

    # -- sampling, encoding --------------------------------------------------------------------------
    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        """Random matrices (uniform integer logits) whose network has no violations."""
        for _ in range(1000):
            x = rng.integers(self._lo, self._hi + 1)
            if not self.violations(self.decode(x)):
                return x
        raise RuntimeError("could not sample a valid fasterseg genotype in 1000 tries")

    def sample_encoding(self, rng: np.random.Generator) -> np.ndarray:
        return self._draw(rng)

    def sample(self, rng: np.random.Generator) -> FasterSegGenotype:
        return self.decode(self._draw(rng))

    def decode(self, x: np.ndarray | Sequence[int]) -> FasterSegGenotype:
        """The network FasterSeg decodes from the matrices of ``x`` (which it keeps)."""
        m = self.matrices(x)
        return FasterSegGenotype(decode_matrices(m, self.ops, self.widths), self.fch, self.stem_head_width, m)

    def encode(self, genotype: FasterSegGenotype) -> np.ndarray:
        """The genotype's matrices as a vector; ``ValueError`` if it has none (e.g. a genotype YAML without
        ``matrices``) or they do not decode to its branches in this space."""
        if genotype.matrices is None:
            raise ValueError("this fasterseg genotype has no matrices (a YAML without 'matrices'?): cannot encode")
        problem = self._matrix_problem(genotype.matrices)
        if problem:
            raise ValueError(problem)
        x = np.array(genotype.matrices.flat(), dtype=np.int64)
        if self.decode(x) != genotype:
            raise ValueError("the genotype's matrices do not decode to its branches in this space")
        return x

    def key(self, genotype: FasterSegGenotype) -> str:
        """The decoded network's key (matrices left out)."""
        return canonical_json(genotype.to_dict(matrices=False))

    def crossover(
        self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Two complementary children, each matrix (and ``last``) from either parent."""
        first, second = np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)
        for group in self.crossover_groups():
            if rng.random() < 0.5:
                first[group], second[group] = b[group], a[group]
        return first, second

    # -- constraints ---------------------------------------------------------------------------------
    def _matrix_problem(self, m: FasterSegMatrices) -> str:
        """Why ``m`` does not fit this space ('' when it does)."""
        if m.shapes() != self._shapes:
            return f"matrices of shapes {m.shapes()} do not fit this space's {self._shapes}"
        x = np.array(m.flat(), dtype=np.int64)
        if np.any(x < self._lo) or np.any(x > self._hi):
            return f"matrix entries outside [0, {LEVELS - 1}], a disabled operator or an unknown second branch end"
        return ""

    def violations(self, genotype: FasterSegGenotype) -> list[str]:
        out = genotype.rule_violations()
        for i, b in enumerate(genotype.branches):
            if not self.min_depth <= b.depth <= self.max_depth:
                out.append(f"branch {i}: depth {b.depth} outside [{self.min_depth}, {self.max_depth}]")
            extra = sorted(set(b.ops) - set(self.ops))
            if extra:
                out.append(f"branch {i}: operators {extra} not enabled in this space")
            if len(self.widths) == 1 and any(abs(w - self.widths[0]) > 1e-4 for w in b.widths):
                out.append(f"branch {i}: widths must all be {self.widths[0]:.4f} (fixed pruning rate)")
        if len(genotype.branches) == 2 and genotype.lasts[1] not in self.second_lasts:
            out.append(f"the second branch ends at scale {genotype.lasts[1]}, not in {list(self.second_lasts)}")
        problem = self._matrix_problem(genotype.matrices) if genotype.matrices is not None else ""
        return [*out, problem] if problem else out
