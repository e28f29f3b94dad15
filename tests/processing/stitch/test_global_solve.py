import numpy as np
import pytest

from opticstream_napari.processing.stitch.global_solve import (
    Link,
    LinkState,
    TileStatus,
    solve_positions,
)

STEP = 900.0


def _grid(rows: int, cols: int, jitter: float, seed: int):
    """Nominal and true positions keyed (row, col), and the adjacent pairs."""
    rng = np.random.default_rng(seed)
    keys = [(r, c) for r in range(rows) for c in range(cols)]
    nominal = {k: (k[0] * STEP, k[1] * STEP) for k in keys}
    truth = {k: (y + rng.uniform(-jitter, jitter), x + rng.uniform(-jitter, jitter))
             for k, (y, x) in nominal.items()}
    pairs = [((r, c), n) for r, c in keys for n in ((r, c + 1), (r + 1, c)) if n in nominal]
    return nominal, truth, pairs


def _link(truth, a, b, error=(0.0, 0.0), confidence=0.9):
    return Link(a, b, tuple(np.subtract(truth[b], truth[a]) + error), confidence)


def _error_rms(solution, truth, anchor):
    keys = sorted(truth)
    p = np.asarray([solution.positions[k] for k in keys])
    t = np.asarray([truth[k] for k in keys])
    error = (p - p[keys.index(anchor)]) - (t - t[keys.index(anchor)])
    return float(np.sqrt((error**2).sum(axis=1).mean()))


def test_exact_links_give_the_true_positions_with_the_anchor_at_nominal() -> None:
    nominal, truth, pairs = _grid(3, 4, 3.0, seed=0)
    solution = solve_positions(nominal, [_link(truth, a, b) for a, b in pairs], anchor=(1, 2))
    assert solution.positions[(1, 2)] == pytest.approx(nominal[(1, 2)])
    assert _error_rms(solution, truth, (1, 2)) < 1e-4  # the weak stage links pull ~1e-6 px
    assert set(solution.status.values()) == {TileStatus.REGISTERED}
    assert solution.rms_residual < 1e-4
    assert solution.anchor == (1, 2)


def test_five_percent_outlier_links_are_rejected() -> None:
    nominal, truth, pairs = _grid(12, 12, 3.0, seed=1)
    rng = np.random.default_rng(2)
    bad: set[int] = set()
    touched: set[tuple[int, int]] = set()
    for i in rng.permutation(len(pairs)):
        a, b = pairs[i]
        if len(bad) < round(0.05 * len(pairs)) and not {a, b} & touched:
            bad.add(int(i))
            touched |= {a, b}
    links = []
    for i, (a, b) in enumerate(pairs):
        angle = rng.uniform(0, 2 * np.pi)
        error = rng.uniform(3, 20) * np.array([np.cos(angle), np.sin(angle)]) if i in bad else (
            rng.normal(0, 0.05, 2))
        links.append(_link(truth, a, b, error, rng.uniform(0.5, 1.0)))
    solution = solve_positions(nominal, links, pairs, anchor=(0, 0))
    rejected = {i for i, r in enumerate(solution.links) if r.state is LinkState.OUTLIER}
    assert rejected == bad
    assert _error_rms(solution, truth, (0, 0)) < 0.15
    assert all(r.residual <= 1.0 for r in solution.links if r.state is LinkState.USED)


def test_a_tile_without_reliable_links_follows_its_neighbours_by_the_stage_model() -> None:
    nominal, truth, pairs = _grid(3, 3, 2.0, seed=3)
    centre = (1, 1)
    links = [_link(truth, a, b, confidence=0.1 if centre in (a, b) else 0.9) for a, b in pairs]
    solution = solve_positions(nominal, links, pairs)
    assert solution.status[centre] is TileStatus.FALLBACK
    assert {r.state for r in solution.links if centre in (r.link.a, r.link.b)} == {
        LinkState.LOW_CONFIDENCE
    }
    neighbours = [(0, 1), (1, 0), (1, 2), (2, 1)]
    expected = np.mean([np.add(solution.positions[n], np.subtract(nominal[centre], nominal[n]))
                        for n in neighbours], axis=0)
    assert solution.positions[centre] == pytest.approx(tuple(expected), abs=1e-6)
    others = {k: v for k, v in truth.items() if k != centre}
    assert _error_rms(solution, others, (0, 0)) < 1e-4


def test_a_group_cut_off_from_the_anchor_keeps_its_shape_and_sits_by_the_stage_model() -> None:
    nominal, truth, pairs = _grid(1, 4, 2.0, seed=4)
    links = [_link(truth, a, b, confidence=0.0 if (a, b) == ((0, 1), (0, 2)) else 0.9)
             for a, b in pairs]
    solution = solve_positions(nominal, links, pairs, anchor=(0, 0))
    p = solution.positions
    assert np.subtract(p[(0, 3)], p[(0, 2)]) == pytest.approx(
        np.subtract(truth[(0, 3)], truth[(0, 2)]), abs=1e-6)
    assert np.subtract(p[(0, 2)], p[(0, 1)]) == pytest.approx((0.0, STEP), abs=1e-3)
    assert all(s is TileStatus.REGISTERED for s in solution.status.values())


def test_links_far_from_the_stage_model_can_be_refused_up_front() -> None:
    nominal, truth, pairs = _grid(2, 2, 1.0, seed=5)
    links = [_link(truth, a, b) for a, b in pairs]
    links[0] = _link(truth, *pairs[0], error=(40.0, 0.0))
    solution = solve_positions(nominal, links, pairs, max_stage_deviation=10.0)
    assert solution.links[0].state is LinkState.OUTLIER
    assert _error_rms(solution, truth, (0, 0)) < 1e-4


def test_single_tile_and_no_links() -> None:
    assert solve_positions({"only": (5.0, 6.0)}, []).positions == {"only": (5.0, 6.0)}
    solution = solve_positions({1: (0.0, 0.0), 2: (0.0, 100.0)}, [])
    assert solution.positions == {1: (0.0, 0.0), 2: (0.0, 100.0)}
    assert set(solution.status.values()) == {TileStatus.FALLBACK}


def test_bad_arguments_are_reported() -> None:
    nominal = {1: (0.0, 0.0), 2: (0.0, 10.0)}
    with pytest.raises(ValueError, match="no tiles"):
        solve_positions({}, [])
    with pytest.raises(ValueError, match="without a nominal position"):
        solve_positions(nominal, [Link(1, 3, (0.0, 10.0), 1.0)])
    with pytest.raises(ValueError, match="anchor"):
        solve_positions(nominal, [], anchor=7)
    with pytest.raises(ValueError, match="> 0"):
        solve_positions(nominal, [], max_residual=0)
