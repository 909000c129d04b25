"""The one post-processing implementation (r2cli.model.postprocess) on both paths (#23).

The official numbers are checked against the parity vectors in test_model_parity.py and
tests/search/test_search_windows.py; these tests pin what the vectors do not cover.
"""

from __future__ import annotations

import numpy as np
import pytest


def test_zero_length_pairs_follow_the_official_nan_or_count_as_no_overlap():
    from r2cli.model.postprocess import temporal_nms

    # two zero-length windows at the same place: IoU 0/0
    rows = np.array([[4.0, 4.0, 0.9], [4.0, 4.0, 0.8], [0.0, 10.0, 0.5]], dtype=np.float32)
    official = temporal_nms(rows, "linear", zero_length_nan=True)
    assert official.dtype == np.float32
    assert np.isnan(official[0, 2]) and official[1:, 2].tolist() == [pytest.approx(0.9), 0.5]  # NaN sorts first
    search = temporal_nms(rows, "linear", zero_length_nan=False)
    assert search[:, 2].tolist() == [pytest.approx(0.9), pytest.approx(0.8), 0.5]
    # "normal": a NaN IoU never suppresses, a zero IoU neither
    for flag in (True, False):
        assert temporal_nms(rows, "normal", zero_length_nan=flag)[:, 2].tolist() == pytest.approx([0.9, 0.8, 0.5])


def test_torch_entry_point_keeps_dtype_and_matches_the_numpy_rules():
    torch = pytest.importorskip("torch")

    from r2cli.model import NmsConfig
    from r2cli.model.postprocess import clamp_and_round, postprocess_boundary, temporal_nms

    rng = np.random.default_rng(5)
    start = rng.uniform(-10, 160, 40)
    rows = np.stack([start, start + rng.uniform(0, 30, 40), rng.uniform(0, 1, 40)], axis=1).astype(np.float32)
    out = postprocess_boundary(torch.from_numpy(rows), 150.0, 2.0, NmsConfig("normal"))
    assert out.dtype == torch.float32 and out.shape == (40, 3)
    expected = temporal_nms(clamp_and_round(rows, 150.0, 2.0), "normal", zero_length_nan=True)
    assert np.array_equal(out.numpy(), expected)
    assert (out[:, 0] >= 0).all() and (out[:, 1] <= 150.0).all()
    assert out[:, 2].tolist() == sorted(out[:, 2].tolist(), reverse=True)


def test_unknown_nms_type_names_the_rule():
    from r2cli.errors import UsageError
    from r2cli.model.postprocess import temporal_nms

    with pytest.raises(UsageError, match=r"NMS type must be one of \('normal', 'linear', 'gaussian'\), got 'soft'"):
        temporal_nms(np.zeros((2, 3)), "soft")
