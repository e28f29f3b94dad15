"""Global placement: weighted least squares over all pairwise links, with outlier rejection.

Every measured link says ``p[b] − p[a] = offset``, weighted by its confidence (NCC). Links
under an NCC threshold are dropped; the rest are solved jointly (sparse normal equations, one
tile anchored, factorised once for y and x). Outliers are found in two stages:

1. an iteratively reweighted solve (Huber, then Tukey's biweight with a shrinking cutoff) whose
   result no far-off link can drag; links it disagrees with by more than ``max_residual`` go;
2. BigStitcher-style removal while any used link's residual exceeds ``max_residual``: only the
   worst link among those sharing a tile goes each round, because one bad link also disturbs
   its neighbours' residuals. Links removed early that the final solution agrees with come back.

Tiles with no reliable link must still land somewhere sensible: every adjacent pair also
carries a very weak "stage" link with the nominal offset. It has no say where measurements
exist (weight ``prior_weight`` ≪ 1) but positions a tile without reliable links, or a group of
tiles cut off from the rest, by the stage model relative to its neighbours.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg

_HUBER_STEPS = 5
_TUKEY_CUTOFF = 3.0
_ROBUST_PRIOR = 1e-2


class LinkState(StrEnum):
    """Why a link did or did not take part in the final solve."""

    USED = "used"
    LOW_CONFIDENCE = "low_confidence"
    OUTLIER = "outlier"


class TileStatus(StrEnum):
    """How a tile's position was obtained."""

    REGISTERED = "registered"
    FALLBACK = "fallback"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Link:
    """A measured relative position ``p[b] − p[a] ≈ offset`` (``(dy, dx)`` pixels)."""

    a: Hashable
    b: Hashable
    offset: tuple[float, float]
    confidence: float


@dataclass(frozen=True, slots=True)
class LinkResult:
    """A link after the solve: its state and its residual ``|p[b] − p[a] − offset|`` (px)."""

    link: Link
    state: LinkState
    residual: float


@dataclass(frozen=True)
class GlobalSolution:
    """Positions ``(y, x)`` per tile, how each was obtained, and every link's fate."""

    positions: dict[Hashable, tuple[float, float]]
    status: dict[Hashable, TileStatus]
    links: tuple[LinkResult, ...]
    anchor: Hashable
    iterations: int = 0

    @property
    def rms_residual(self) -> float:
        """RMS residual over the links used in the final solve (0 if none)."""
        used = [r.residual for r in self.links if r.state is LinkState.USED]
        return float(np.sqrt(np.mean(np.square(used)))) if used else 0.0


def solve_positions(
    nominal: Mapping[Hashable, Sequence[float]],
    links: Sequence[Link],
    adjacency: Sequence[tuple[Hashable, Hashable]] | None = None,
    *,
    min_confidence: float = 0.3,
    max_residual: float = 1.0,
    anchor: Hashable | None = None,
    prior_weight: float = 1e-6,
    max_stage_deviation: float | None = None,
) -> GlobalSolution:
    """Solve tile positions from pairwise links (see the module docstring).

    ``nominal``: the stage model, ``(y, x)`` per tile; its keys are the tiles to place.
    ``adjacency``: pairs that get a weak stage link; defaults to the pairs of ``links``.
    ``anchor``: the tile kept at its nominal position; defaults to the first tile of
    ``nominal``. Link weights are their confidences (NCC).
    ``max_stage_deviation``: the stage's repeatability in pixels (as in MIST); a link whose
    offset differs from the stage model's by more is an outlier from the start. It settles
    tiles most of whose links are wrong, which no amount of link voting can.
    """
    keys = list(nominal)
    if not keys:
        raise ValueError("no tiles to place")
    index = {k: i for i, k in enumerate(keys)}
    for link in links:
        if link.a not in index or link.b not in index:
            raise ValueError(f"link {link.a!r}–{link.b!r} names a tile without a nominal position")
    anchor = keys[0] if anchor is None else anchor
    if anchor not in index:
        raise ValueError(f"anchor {anchor!r} is not one of the tiles")
    if max_residual <= 0 or prior_weight <= 0:
        raise ValueError("max_residual and prior_weight must be > 0")
    stage = np.asarray([nominal[k] for k in keys], dtype=np.float64).reshape(len(keys), 2)
    pairs = [(link.a, link.b) for link in links] if adjacency is None else list(adjacency)
    prior_rows = [(index[a], index[b]) for a, b in pairs if a != b]

    state = _initial_states(links, stage, index, min_confidence, max_stage_deviation)
    solver = _Solver(stage, links, index, prior_rows, index[anchor], prior_weight)
    positions, residuals, iterations = _reject_outliers(solver, links, index, state, max_residual)
    registered = {k for link, s in zip(links, state, strict=True) if s is LinkState.USED
                  for k in (link.a, link.b)}
    return GlobalSolution(
        positions={k: (float(positions[i, 0]), float(positions[i, 1])) for k, i in index.items()},
        status={k: TileStatus.REGISTERED if k in registered else TileStatus.FALLBACK for k in keys},
        links=tuple(
            LinkResult(link, s, float(r)) for link, s, r in zip(links, state, residuals, strict=True)
        ),
        anchor=anchor,
        iterations=iterations,
    )


def _initial_states(
    links: Sequence[Link],
    stage: np.ndarray,
    index: Mapping[Hashable, int],
    min_confidence: float,
    max_stage_deviation: float | None,
) -> list[LinkState]:
    states = []
    for link in links:
        state = LinkState.USED
        if link.confidence < min_confidence or link.a == link.b:
            state = LinkState.LOW_CONFIDENCE
        elif max_stage_deviation is not None:
            expected = stage[index[link.b]] - stage[index[link.a]]
            if np.hypot(*(np.asarray(link.offset) - expected)) > max_stage_deviation:
                state = LinkState.OUTLIER
        states.append(state)
    return states


def _reject_outliers(
    solver: _Solver,
    links: Sequence[Link],
    index: Mapping[Hashable, int],
    state: list[LinkState],
    max_residual: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Robust start, then drop the locally worst links until all fit; re-admit once.

    Links rejected early can turn out to agree with the final solution (their tile was pulled
    by a neighbouring outlier); those within half the limit get one more chance.
    """
    positions, iterations = solver.robust(state, max_residual)
    residuals = _residuals(positions, links, index)
    for i, s in enumerate(state):
        if s is LinkState.USED and residuals[i] > max_residual:
            state[i] = LinkState.OUTLIER
    for readmit in (True, False):
        while True:
            iterations += 1
            positions = solver(state)
            residuals = _residuals(positions, links, index)
            worst = _worst_local(links, state, residuals, max_residual)
            if not worst:
                break
            for i in worst:
                state[i] = LinkState.OUTLIER
        back = [i for i, s in enumerate(state)
                if readmit and s is LinkState.OUTLIER and residuals[i] <= max_residual / 2]
        if not back:
            break
        for i in back:
            state[i] = LinkState.USED
    return positions, residuals, iterations


class _Solver:
    """The weighted Laplacian system of one set of tiles, links and stage links."""

    def __init__(
        self,
        stage: np.ndarray,
        links: Sequence[Link],
        index: Mapping[Hashable, int],
        prior_rows: Sequence[tuple[int, int]],
        anchor: int,
        prior_weight: float,
    ) -> None:
        n = len(stage)
        heads = [index[link.b] for link in links] + [b for _, b in prior_rows]
        tails = [index[link.a] for link in links] + [a for a, _ in prior_rows]
        self.stage = stage
        self.confidence = np.asarray([max(link.confidence, 1e-3) for link in links])
        self.prior_weight = prior_weight
        self.offsets = np.asarray(
            [link.offset for link in links] + [stage[b] - stage[a] for a, b in prior_rows],
            dtype=np.float64,
        ).reshape(-1, 2)
        rows = np.arange(len(heads))
        self.incidence = scipy.sparse.csr_array(
            (np.repeat([1.0, -1.0], len(heads)),
             (np.tile(rows, 2), np.asarray(heads + tails, dtype=np.int64))),
            shape=(len(heads), n),
        )
        self.anchor = anchor

    def __call__(
        self, state: Sequence[LinkState], robust_weights: np.ndarray | None = None
    ) -> np.ndarray:
        """Positions from the used links (optionally down-weighted) plus the stage links.

        While reweighting, the stage links weigh ``_ROBUST_PRIOR``: a tile most of whose links
        are wrong is otherwise ambiguous (each wrong link explains itself as well as the right
        one does), and the hypothesis nearer the stage model is the likely one.
        """
        used = np.asarray([s is LinkState.USED for s in state], dtype=bool)
        w = np.where(used, self.confidence, 0.0)
        prior = self.prior_weight
        if robust_weights is not None:
            w = w * robust_weights
            prior = max(prior, _ROBUST_PRIOR)
        w = np.concatenate([w, np.full(len(self.offsets) - len(w), prior)])
        positions = self.stage.copy()
        if len(self.stage) == 1 or not len(w):
            return positions
        weighted = scipy.sparse.dia_array((w, 0), shape=(len(w), len(w)))
        laplacian = (self.incidence.T @ weighted @ self.incidence).tocsc()
        rhs = self.incidence.T @ (w[:, None] * self.offsets)
        pinned = _pinned(laplacian, self.anchor)
        free = np.setdiff1d(np.arange(len(self.stage)), pinned)
        if free.size:
            reduced = laplacian[free][:, free].tocsc()
            rhs = rhs[free] - laplacian[free][:, pinned] @ self.stage[pinned]
            positions[free] = scipy.sparse.linalg.splu(reduced).solve(rhs)
        return positions

    def robust(self, state: Sequence[LinkState], scale: float) -> tuple[np.ndarray, int]:
        """Iteratively reweighted solve: Huber, then Tukey's biweight with a shrinking cutoff.

        Huber is convex, so it converges from the plain least-squares start. The biweight's
        cutoff then anneals from the largest residual down to ``3 · scale``, so far-off links
        lose all say without a tile ever losing all its links at once, which plain removal of
        the worst link cannot guarantee when outliers share tiles.
        """
        offsets = self.offsets[: len(self.confidence)]
        heads = self.incidence[: len(self.confidence)]
        positions = self(state)
        iterations = 1

        def residual() -> np.ndarray:
            return np.hypot(*(heads @ positions - offsets).T) / scale

        for _ in range(_HUBER_STEPS):
            positions = self(state, np.minimum(1.0, 1.0 / np.maximum(residual(), 1e-12)))
            iterations += 1
        used = np.asarray([s is LinkState.USED for s in state], dtype=bool)
        if not used.any():
            return positions, iterations
        cutoff = max(float(residual()[used].max()), _TUKEY_CUTOFF)
        while True:
            cutoff = max(cutoff / 2.0, _TUKEY_CUTOFF)
            r = residual()
            positions = self(state, np.where(r < cutoff, (1.0 - (r / cutoff) ** 2) ** 2, 0.0))
            iterations += 1
            if cutoff == _TUKEY_CUTOFF:
                return positions, iterations


def _pinned(laplacian: scipy.sparse.csc_array, anchor: int) -> np.ndarray:
    """The anchor, plus the first tile of every group no link connects to it (kept at stage)."""
    _, labels = scipy.sparse.csgraph.connected_components(laplacian, directed=False)
    first = {int(labels[anchor]): anchor}
    for i, label in enumerate(labels.tolist()):
        first.setdefault(label, i)
    return np.asarray(sorted(first.values()))


def _residuals(
    positions: np.ndarray, links: Sequence[Link], index: Mapping[Hashable, int]
) -> np.ndarray:
    if not links:
        return np.zeros(0)
    a = np.asarray([index[link.a] for link in links])
    b = np.asarray([index[link.b] for link in links])
    offsets = np.asarray([link.offset for link in links], dtype=np.float64)
    return np.hypot(*(positions[b] - positions[a] - offsets).T)


def _worst_local(
    links: Sequence[Link], state: Sequence[LinkState], residuals: np.ndarray, limit: float
) -> list[int]:
    """Used links over ``limit`` whose residual is the largest among links sharing a tile."""
    over = [i for i, s in enumerate(state) if s is LinkState.USED and residuals[i] > limit]
    worst_at: dict[Hashable, float] = {}
    for i in over:
        for k in (links[i].a, links[i].b):
            worst_at[k] = max(worst_at.get(k, 0.0), residuals[i])
    return [i for i in over if all(residuals[i] >= worst_at[k] for k in (links[i].a, links[i].b))]
