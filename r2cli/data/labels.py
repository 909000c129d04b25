"""Training-label construction (spec §5.2-5.5), as pure numpy functions.

These mirror the official loaders' arithmetic in float32 (the official code builds float32 torch tensors), so
the trainer can feed them to the losses unchanged. No torch import here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from r2cli.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "QVH_MAX_SALIENCY",
    "bind_boundary",
    "lower_median",
    "positive_clips",
    "sample_positive_clip",
    "saliency_from_clip_scores",
    "saliency_from_windows",
    "tvsum_binary_labels",
    "tvsum_saliency",
    "youtube_binary_labels",
    "youtube_saliency",
]

QVH_MAX_SALIENCY = 12  # 3 annotators x max score 4: (s1 + s2 + s3) / 12 lies in [0, 1]


def bind_boundary(windows: Sequence[Sequence[float]], num_clips: int, fps: float) -> "np.ndarray":
    """Ground-truth windows prepared for training (spec §5.2), float32 ``[num_windows, 2]`` in seconds.

    With ``max_time = num_clips / fps``: clamp both ends to ``[0, max_time]``; swap reversed rows; widen rows
    shorter than one clip to exactly ``1 / fps`` around their centre, the centre clamped to
    ``[0.5 / fps, max_time - 0.5 / fps]``.

    Raises:
        InputError: no windows, or ``num_clips``/``fps`` not positive.
    """
    import numpy as np

    if num_clips <= 0 or fps <= 0:
        raise InputError(f"bind_boundary needs num_clips > 0 and fps > 0, got {num_clips} and {fps}")
    boundary = np.asarray(windows, dtype=np.float32).reshape(-1, 2)  # [num_windows, 2]
    if boundary.shape[0] == 0:
        raise InputError("bind_boundary needs at least one [start, end] window")
    max_time = num_clips / fps
    boundary = np.clip(boundary, np.float32(0), np.float32(max_time))
    reversed_rows = boundary[:, 1] - boundary[:, 0] < 0
    boundary[reversed_rows] = boundary[reversed_rows][:, ::-1]
    half = np.float32(0.5 / fps)
    short_rows = np.nonzero(boundary[:, 1] - boundary[:, 0] < np.float32(1 / fps))[0]
    for row in short_rows:
        centre = (boundary[row, 0] + boundary[row, 1]) / np.float32(2)
        centre = np.clip(centre, half, np.float32(max_time - 0.5 / fps))
        boundary[row, 0] = centre - half
        boundary[row, 1] = centre + half
    return boundary


def saliency_from_clip_scores(
    clip_ids: Sequence[int],
    scores: Sequence[Sequence[int]],
    duration: float,
    fps: float,
    num_clips: int,
    max_saliency: int = QVH_MAX_SALIENCY,
) -> "np.ndarray":
    """QVHighlights graded saliency (spec §5.3), float32 ``[num_clips]``.

    ``sal = zeros(int(duration * fps))``; ``sal[c] = sum(scores) / max_saliency``; the label length must be
    at least ``num_clips`` and exceed it by fewer than 5; it is truncated to ``num_clips``.

    Raises:
        InputError: the label length and the feature length disagree, or a clip id is out of range.
    """
    import numpy as np

    length = int(duration * fps)
    if not (length >= num_clips and length - num_clips < 5):
        raise InputError(
            f"saliency labels have int(duration * fps) = {length} clips but the video has {num_clips} features "
            "(the label length must be >= the feature count and exceed it by fewer than 5)"
        )
    saliency = np.zeros(length, dtype=np.float32)  # [length]
    for clip, triple in zip(clip_ids, scores):
        if not 0 <= clip < length:
            raise InputError(f"relevant clip id {clip} is outside the {length} clips of the video")
        saliency[clip] = np.float32(sum(triple)) / np.float32(max_saliency)
    return saliency[:num_clips]


def positive_clips(boundary: "np.ndarray", fps: float, num_clips: int) -> list[int]:
    """Clip indices covered by prepared windows (spec §5.3): ``ceil(start*fps) .. ceil(end*fps) - 1`` per row.

    Indices at or beyond ``num_clips`` (possible only through float round-off at the video end) are dropped.
    """
    import numpy as np

    in_clips = (np.asarray(boundary, dtype=np.float32) * np.float32(fps)).tolist()  # [num_windows, 2]
    out: list[int] = []
    for start, end in in_clips:
        out.extend(range(math.ceil(start), math.ceil(end)))
    return [c for c in out if c < num_clips]


def saliency_from_windows(boundary: "np.ndarray", fps: float, num_clips: int) -> "np.ndarray":
    """Binary saliency for Charades-STA, TACoS, Ego4D and user data (spec §5.3), float32 ``[num_clips]``.

    Raises:
        InputError: no clip is covered by the windows.
    """
    import numpy as np

    clips = positive_clips(boundary, fps, num_clips)
    if not clips:
        raise InputError("the relevant windows cover no clip of the video (at least one positive clip is needed)")
    saliency = np.zeros(num_clips, dtype=np.float32)
    saliency[clips] = 1
    return saliency


def lower_median(values: "np.ndarray") -> float:
    """Median that returns the lower middle value for even counts (PyTorch ``Tensor.median``)."""
    import numpy as np

    ordered = np.sort(np.asarray(values).ravel())
    if ordered.size == 0:
        raise InputError("median of an empty list")
    return ordered[(ordered.size - 1) // 2].item()


def tvsum_saliency(scores: Sequence[Sequence[float]], num_clips: int | None = None) -> "np.ndarray":
    """TVSum soft saliency (spec §5.4): ``(sum of the 20 ratings - 20) / 80`` per shot, float32.

    With ``num_clips`` (the feature count ``T``), ``|T - n| < 5`` is required and the labels are truncated to
    ``min(T, n)`` (the features must be truncated the same way).

    Raises:
        InputError: ``|T - n| >= 5``.
    """
    import numpy as np

    matrix = np.asarray(scores, dtype=np.float32)  # [shots, 20]
    saliency = (matrix.sum(axis=1) - np.float32(20)) / np.float32(80)
    if num_clips is not None:
        if abs(num_clips - saliency.shape[0]) >= 5:
            raise InputError(
                f"TVSum video has {saliency.shape[0]} annotated shots but {num_clips} features (must differ by < 5)"
            )
        saliency = saliency[: min(num_clips, saliency.shape[0])]
    return saliency


def tvsum_binary_labels(values: Sequence[float]) -> "np.ndarray":
    """``values > lower_median(values)`` as int64: TVSum positives for training (on the soft saliency) and for
    evaluation (on one annotator's column). Strict ``>``, lower median (spec §9 quirk 29)."""
    import numpy as np

    array = np.asarray(values, dtype=np.float32)
    return (array > np.float32(lower_median(array))).astype(np.int64)


def youtube_saliency(match: Sequence[int], num_clips: int | None = None) -> "np.ndarray":
    """YouTube Highlights saliency (spec §5.5): ``(match + 1) / 2`` in {0, 0.5, 1}, float32.

    Raises:
        InputError: ``num_clips`` given and different from ``len(match)`` (the official loader asserts equality).
    """
    import numpy as np

    if num_clips is not None and num_clips != len(match):
        raise InputError(f"YouTube Highlights video has {len(match)} labelled clips but {num_clips} features")
    return (np.asarray(match, dtype=np.float32) + np.float32(1)) / np.float32(2)


def youtube_binary_labels(match: Sequence[int]) -> "np.ndarray":
    """Evaluation labels: 1 where ``match > 0`` (``match == 0``, "unsure", counts as negative)."""
    import numpy as np

    return (np.asarray(match) > 0).astype(np.int64)


def sample_positive_clip(saliency: "np.ndarray", rule: str = "nonzero", rng: random.Random | None = None) -> int:
    """Draw the positive clip for the saliency loss (re-drawn on every access in the official loader).

    Rules: ``"nonzero"`` (QVHighlights and window-based labels), ``"above_median"`` (TVSum: ``sal >`` lower
    median), ``"above_half"`` (YouTube: ``sal > 0.5``). Uses ``rng.sample(candidates, 1)`` like the official
    ``random.sample``, so a seeded ``random.Random`` gives the same draws.

    Raises:
        InputError: no candidate clip, or an unknown rule.
    """
    import numpy as np

    values = np.asarray(saliency, dtype=np.float32)
    if rule == "nonzero":
        candidates = np.nonzero(values)[0]
    elif rule == "above_median":
        candidates = np.nonzero(tvsum_binary_labels(values))[0]
    elif rule == "above_half":
        candidates = np.nonzero(values > 0.5)[0]
    else:
        raise InputError(f"rule must be 'nonzero', 'above_median' or 'above_half', got {rule!r}")
    if candidates.size == 0:
        raise InputError(f"no positive clip to sample under rule {rule!r}")
    return int((rng or random).sample(candidates.tolist(), 1)[0])
