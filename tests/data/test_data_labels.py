"""Label construction helpers (spec §5.2-5.5) on hand-derived cases."""

from __future__ import annotations

import random

import numpy as np
import pytest

from r2cli.data.labels import (
    bind_boundary,
    lower_median,
    positive_clips,
    sample_positive_clip,
    saliency_from_clip_scores,
    saliency_from_windows,
    tvsum_binary_labels,
    tvsum_saliency,
    youtube_binary_labels,
    youtube_saliency,
)
from r2cli.errors import InputError


def test_bind_boundary_clamps_swaps_and_widens():
    # 10 clips at fps 1 -> max_time 10 s
    out = bind_boundary([[-1, 3], [8, 4], [9.8, 12], [0, 0.2], [5, 5.5]], num_clips=10, fps=1.0)
    assert out.dtype == np.float32
    assert out[0].tolist() == [0, 3]  # clamped start
    assert out[1].tolist() == [4, 8]  # swapped
    assert out[2].tolist() == [9, 10]  # [9.8, 10] is 0.2 s long: centre 9.9 clamped to 9.5 -> [9, 10]
    assert out[3].tolist() == [0, 1]  # centre 0.1 clamped to 0.5
    assert out[4].tolist() == [4.75, 5.75]  # centre 5.25
    with pytest.raises(InputError):
        bind_boundary([], num_clips=3, fps=1.0)


def test_saliency_from_windows_uses_ceil():
    # fps 0.5: window [3, 9] s -> clips ceil(1.5)=2 .. ceil(4.5)-1=4
    boundary = bind_boundary([[3, 9]], num_clips=10, fps=0.5)
    assert positive_clips(boundary, 0.5, 10) == [2, 3, 4]
    assert saliency_from_windows(boundary, 0.5, 10).tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]


def test_qvhighlights_saliency():
    out = saliency_from_clip_scores([1, 3], [[4, 4, 4], [1, 2, 0]], duration=10, fps=0.5, num_clips=4)
    assert out.tolist() == pytest.approx([0, 1, 0, 0.25])  # 5 labels truncated to 4 features
    with pytest.raises(InputError, match="exceed it by fewer than 5"):
        saliency_from_clip_scores([1], [[1, 1, 1]], duration=20, fps=0.5, num_clips=4)


def test_tvsum_rules():
    assert tvsum_saliency([[1] * 20, [5] * 20, [3] * 20]).tolist() == [0.0, 1.0, 0.5]
    assert tvsum_saliency([[1] * 20] * 8, num_clips=6).shape == (6,)
    with pytest.raises(InputError, match="differ by < 5"):
        tvsum_saliency([[1] * 20] * 8, num_clips=2)
    # lower median of [1, 1, 2, 2] is 1; strict ">" keeps only the 2s
    assert lower_median(np.array([2, 1, 2, 1])) == 1
    assert tvsum_binary_labels([1, 1, 2, 2]).tolist() == [0, 0, 1, 1]


def test_youtube_rules():
    assert youtube_saliency([-1, 0, 1]).tolist() == [0.0, 0.5, 1.0]
    assert youtube_binary_labels([-1, 0, 1]).tolist() == [0, 0, 1]
    with pytest.raises(InputError):
        youtube_saliency([1, 1], num_clips=3)


def test_positive_clip_sampling_is_seeded_and_follows_rules():
    saliency = np.array([0, 0.5, 1.0, 0.25], dtype=np.float32)
    draws = [sample_positive_clip(saliency, rng=random.Random(7)) for _ in range(3)]
    assert len(set(draws)) == 1 and draws[0] in (1, 2, 3)
    assert random.Random(7).sample([1, 2, 3], 1)[0] == draws[0]  # same stream as the official random.sample
    assert sample_positive_clip(saliency, "above_half", random.Random(0)) == 2
    # lower median of [0, .25, .5, 1] is .25 -> candidates .5 and 1
    assert sample_positive_clip(saliency, "above_median", random.Random(0)) in (1, 2)
    with pytest.raises(InputError):
        sample_positive_clip(np.zeros(3), rng=random.Random(0))
