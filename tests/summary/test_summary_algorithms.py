"""Summaries: knapsack vs brute force, KTS on planted change points, budgets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from r2cli.errors import UsageError
from r2cli.summary import (
    budget_seconds,
    detect_shots,
    knapsack,
    kts_change_points,
    summarize_video,
    threshold_change_points,
)


def brute_force(values, weights, capacity):
    """The best total value, and the least weight among the subsets whose value ties with it.

    Values are compared as ``knapsack`` documents: each rounded to a whole multiple of
    1e-9 x (1 + sum of |values|), so a subset worth 1.0 + 2e-9 does not beat a shorter one worth 1.0.
    """
    tolerance = 1e-9 * (1.0 + sum(abs(v) for v in values))
    units = [round(v / tolerance) for v in values]
    subsets = []
    for mask in itertools.product((0, 1), repeat=len(values)):
        w = sum(wi for wi, m in zip(weights, mask) if m)
        if w <= capacity:
            subsets.append((sum(u for u, m in zip(units, mask) if m), w))
    best_u = max(u for u, _ in subsets)
    return best_u * tolerance, min(w for u, w in subsets if u == best_u)


@settings(max_examples=150, deadline=None)
@example(items=[(1.0, 1), (1.8e-09, 1)], capacity=2)  # a near-tie that the old brute force judged by 1e-9
@example(items=[(4.0, 1), (4.7e-09, 1)], capacity=2)
@example(items=[(18.51, 1), (1e-09, 1), (13.8, 1)], capacity=3)
@given(
    items=st.lists(
        # values at the scale of the tie tolerance are kept on purpose: ties must be exact
        st.tuples(st.one_of(st.floats(-5, 20, allow_nan=False), st.floats(0, 1e-8)), st.integers(1, 12)),
        min_size=0, max_size=9
    ),
    capacity=st.integers(0, 40),
)
def test_knapsack_matches_brute_force(items, capacity):
    values = [v for v, _ in items]
    weights = [w for _, w in items]
    chosen = knapsack(values, weights, capacity)
    assert chosen == sorted(set(chosen))
    total_w = sum(weights[i] for i in chosen)
    total_v = sum(values[i] for i in chosen)
    assert total_w <= capacity
    best_v, best_w = brute_force(values, weights, capacity)
    assert total_v == pytest.approx(best_v, abs=1e-6)
    assert total_w == best_w  # ties broken towards the shorter summary


def test_knapsack_tie_prefers_earlier_items():
    assert knapsack([1.0, 1.0, 1.0], [2, 2, 2], 4) == [0, 1]
    assert knapsack([2.0, 1.0, 1.0], [2, 1, 1], 2) == [0]  # equal value 2, equal weight 2: earliest
    with pytest.raises(UsageError, match="positive integers"):
        knapsack([1.0], [0], 3)
    with pytest.raises(UsageError, match="equal length"):
        knapsack([1.0, 2.0], [1], 3)


def planted_blocks(lengths, dims=32, noise=0.15, seed=0):
    rng = np.random.default_rng(seed)
    blocks = []
    for length in lengths:
        centre = rng.normal(size=dims)
        blocks.append(centre + noise * np.linalg.norm(centre) / np.sqrt(dims) * rng.normal(size=(length, dims)))
    return np.concatenate(blocks)  # [T, dims]


@pytest.mark.parametrize("lengths", [(20, 30, 25), (12, 7, 40, 15)])
@pytest.mark.parametrize("seed", [0, 1])
def test_kts_finds_planted_change_points(lengths, seed):
    emb = planted_blocks(lengths, seed=seed)
    expected = list(np.cumsum(lengths)[:-1])
    assert kts_change_points(emb) == expected
    assert threshold_change_points(emb) == expected
    shots = detect_shots(emb)
    assert shots[0][0] == 0 and shots[-1][1] == sum(lengths)


def test_kts_single_block_has_no_change_point_and_windows_split():
    emb = planted_blocks((60,), seed=3)
    assert kts_change_points(emb) == []
    # A window smaller than the video: the window edge becomes a boundary, planted cuts are still found.
    emb = planted_blocks((30, 50, 40), seed=4)
    points = kts_change_points(emb, window=64)
    assert {30, 80} <= set(points) and 64 in points


def test_kts_penalty_and_limit():
    emb = planted_blocks((20, 20, 20, 20), seed=5)
    assert kts_change_points(emb, max_change_points=1) in ([20], [40], [60])
    assert len(kts_change_points(emb, penalty=0.0, max_change_points=10)) == 10
    with pytest.raises(UsageError, match="penalty"):
        kts_change_points(emb, penalty=-1)
    with pytest.raises(UsageError, match="shot method"):
        detect_shots(emb, method="magic")


@pytest.mark.parametrize("clips, clip_seconds", [(45, 2.0), (150, 2.0), (300, 1.0), (37, 0.5)])
@pytest.mark.parametrize("ratio", [0.05, 0.15, 0.5, 1.0])
def test_summary_length_within_budget(clips, clip_seconds, ratio):
    rng = np.random.default_rng(clips)
    lengths = rng.multinomial(clips - 5, np.ones(5) / 5) + 1
    emb = planted_blocks(tuple(lengths), seed=clips)
    saliency = rng.normal(size=clips)
    duration = clips * clip_seconds - clip_seconds / 3  # last clip partial
    budget = budget_seconds(duration, ratio=ratio)
    segments = summarize_video(emb, saliency, clip_seconds, budget, duration_s=duration)
    total = sum(s.duration_s for s in segments if s.selected)
    assert total <= budget + 1e-9
    # Segments tile the video in order.
    assert segments[0].start_s == 0 and segments[-1].end_s == pytest.approx(duration)
    for a, b in zip(segments, segments[1:]):
        assert a.end_clip == b.start_clip
    assert sorted(s.rank for s in segments) == list(range(1, len(segments) + 1))
    if budget >= clip_seconds:
        assert any(s.selected for s in segments)
        # Nothing else fits: every unselected candidate is longer than the budget left.
        left = int(budget / clip_seconds + 1e-9) - sum(s.end_clip - s.start_clip for s in segments if s.selected)
        assert all(s.end_clip - s.start_clip > left for s in segments if s.candidate and not s.selected)


def test_long_shot_is_trimmed_around_its_peak():
    emb = planted_blocks((100,), seed=7)
    saliency = np.zeros(100)
    saliency[70] = 5.0
    segments = summarize_video(emb, saliency, 1.0, 10.0)
    chosen = [s for s in segments if s.selected]
    assert len(chosen) == 1 and chosen[0].start_clip <= 70 < chosen[0].end_clip
    assert chosen[0].end_clip - chosen[0].start_clip == 10
    assert [(s.start_clip, s.end_clip, s.candidate) for s in segments] == [(0, 66, False), (66, 76, True), (76, 100, False)]


def test_budget_validation():
    with pytest.raises(UsageError, match=r"--ratio must be in \(0, 1\], got 1.5"):
        budget_seconds(60, ratio=1.5)
    with pytest.raises(UsageError, match="exactly one"):
        budget_seconds(60)
    assert budget_seconds(60, seconds=90) == 60
    with pytest.raises(UsageError, match="must agree"):
        summarize_video(np.zeros((3, 4)), np.zeros(4), 1.0, 2.0)
