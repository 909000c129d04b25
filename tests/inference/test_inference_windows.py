"""Window planning, merging across windows, and post-processing against the official rules."""

from __future__ import annotations

import numpy as np
import pytest


def test_plan_windows_cover_everything_and_end_aligned():
    from r2cli.inference.windows import plan_windows, window_sizes

    assert window_sizes(150, 75, 0.5) == (75, 38)
    assert [(w.start_clip, w.end_clip) for w in plan_windows(60, 75, 38)] == [(0, 60)]
    windows = plan_windows(8100, 75, 38)
    assert windows[0].start_clip == 0 and windows[-1].end_clip == 8100
    assert all(w.num_clips == 75 for w in windows)
    covered = np.zeros(8100, dtype=int)
    for w in windows:
        covered[w.start_clip : w.end_clip] += 1
    assert covered.min() >= 1
    assert all(b.start_clip - a.start_clip <= 38 for a, b in zip(windows, windows[1:]))


def test_window_moments_map_back_and_duplicates_merge():
    from r2cli.inference.windows import PostProcess, Window, merge_window_moments

    first, second = Window(0, 0, 75), Window(1, 38, 113)
    # the same event seen by both windows (local times differ by the 76 s offset), plus one per window
    rows_first = np.array([[90.0, 100.0, 0.9], [10.0, 14.0, 0.5]])
    rows_second = np.array([[14.0, 24.0, 0.8], [120.0, 130.0, 0.6]])
    merged = merge_window_moments([(first, rows_first), (second, rows_second)], fps=0.5, duration=226.0,
                                  post=PostProcess(unit=2.0))
    assert merged.tolist() == [[90.0, 100.0, 0.9], [196.0, 206.0, 0.6], [10.0, 14.0, 0.5]]


def test_window_rows_are_clamped_to_their_window():
    from r2cli.inference.windows import PostProcess, Window, merge_window_moments

    rows = np.array([[-5.0, 20.0, 0.9], [140.0, 170.0, 0.8]])
    merged = merge_window_moments([(Window(3, 100, 175), rows)], fps=0.5, duration=345.0, post=PostProcess(unit=2.0))
    assert merged[:, :2].tolist() == [[200.0, 220.0], [340.0, 345.0]]  # last row reached the video's end: not rounded


def test_saliency_comes_from_the_most_central_window():
    from r2cli.inference.windows import Window, merge_window_saliency

    a, b = Window(0, 0, 10), Window(1, 5, 15)
    merged = merge_window_saliency([(a, np.full(10, 1.0)), (b, np.full(10, 2.0))], 16)
    assert merged[:8].tolist() == [1.0] * 8 and merged[8:15].tolist() == [2.0] * 7  # clip 7: a tie, the earlier window
    assert np.isnan(merged[15])


def test_batched_nms_equals_one_pair_at_a_time():
    from r2cli.inference.windows import temporal_nms, temporal_nms_batched

    rng = np.random.default_rng(0)
    rows = np.zeros((6, 40, 3))
    counts = np.array([40, 13, 0, 1, 27, 40])
    for i in range(6):
        start = rng.uniform(0, 100, 40).round(0)
        rows[i] = np.stack([start, start + rng.uniform(0, 20, 40).round(0), rng.uniform(0, 1, 40)], axis=1)
    for kind in ("normal", "linear", "gaussian"):
        batched, kept = temporal_nms_batched(rows, counts, kind, 0.7, 0.5, keep=10)
        for i in range(6):
            alone = temporal_nms(rows[i, : counts[i]], kind, 0.7, 0.5)[:10]
            np.testing.assert_allclose(batched[i, : kept[i]], alone)


def test_post_processing_matches_the_official_vectors(parity_dir):
    from golden.parity_files import GOLDEN_DIR, load_parity, parity_files

    from r2cli.inference.windows import PostProcess, Window, merge_window_moments

    cases = [c for f in parity_files(parity_dir, "r2_head") for c in load_parity(f).get("postprocess", [])]
    if not cases:
        if parity_dir == GOLDEN_DIR:
            pytest.fail("the golden set has no post-processing case (run tests/golden/make_golden.py)")
        pytest.skip("no post-processing case in the parity files")
    for case in cases:
        expected = np.array(case["output_boundary_f64_list"], dtype=np.float64)
        kept = expected[expected[:, 2] > 0]
        post = PostProcess(unit=case["unit"], nms_type=case["nms_cfg"]["type"], nms_threshold=case["nms_cfg"]["thres"],
                           max_moments=len(expected))
        rows = case["input_boundary"].double().numpy()
        merged = merge_window_moments([(Window(0, 0, 10**6), rows)], fps=0.5, duration=case["duration"], post=post)
        np.testing.assert_allclose(merged, kept, atol=1e-5, err_msg=case["name"])


def test_single_window_equals_the_model_post_processing():
    import torch

    from r2cli.inference.windows import PostProcess, Window, merge_window_moments
    from r2cli.model import NmsConfig
    from r2cli.model.postprocess import postprocess_boundary

    rng = np.random.default_rng(3)
    start = rng.uniform(-10, 140, 50)
    rows = np.stack([start, start + rng.uniform(0.5, 30, 50), rng.uniform(0, 1, 50)], axis=1)
    for nms in (NmsConfig("normal", 0.7), NmsConfig("linear", 0.7)):
        reference = postprocess_boundary(torch.tensor(rows), 150.0, 2.0, nms).numpy()
        merged = merge_window_moments([(Window(0, 0, 75), rows)], fps=0.5, duration=150.0,
                                      post=PostProcess(unit=2.0, nms_type=nms.type, nms_threshold=nms.threshold))
        positive = reference[reference[:, 2] > 0]
        np.testing.assert_allclose(merged, positive[: len(merged)], atol=1e-9)
