"""Long videos in overlapping windows, and the post-processing of predicted moments.

R2-Tuning was trained on videos of a few minutes (QVHighlights: 150 s = 75 clips at 0.5 fps)
and the official point table stops at 1,024 clips. A long video is therefore grounded in
overlapping windows of ``window_clips`` clips every ``stride_clips`` clips; the last window is
aligned to the end of the video so that every window has the full length the model expects.
Each window's moments are post-processed inside the window (clamp, unit rounding, as the
official ``Grounding.evaluate`` does for one video), shifted back to the source timeline, then
merged across windows with one NMS. A video no longer than one window gets exactly the
official post-processing.

Saliency of a clip covered by several windows comes from the window in which the clip sits
furthest from an edge: the model saw the most context around it there.

numpy only (imported inside functions). The clamp, rounding and NMS rules themselves are written
once, in ``r2cli.model.postprocess`` (#23); this module applies them to windows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from r2cli.errors import UsageError
from r2cli.model.config import (MAX_MOMENTS, MAX_WINDOW_CLIPS, MIN_WINDOW_CLIPS, NMS_SIGMA, NMS_THRESHOLD, NMS_TYPES,
                                ROUND_UNIT_S, Problem, stride_problem)
from r2cli.model.postprocess import clamp_and_round, temporal_nms, temporal_nms_batched

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["PostProcess", "Window", "clamp_and_round", "merge_many", "merge_window_moments", "merge_window_saliency",
           "plan_windows", "shift_and_clip", "temporal_nms", "temporal_nms_batched", "window_sizes"]


@dataclass(frozen=True)
class Window:
    """A contiguous run of clips of one video, grounded as if it were a video of its own."""

    index: int  # 0-based position among the video's windows
    start_clip: int  # first clip (inclusive)
    end_clip: int  # last clip (exclusive)

    @property
    def num_clips(self) -> int:
        return self.end_clip - self.start_clip


@dataclass(frozen=True)
class PostProcess:
    """Evaluation post-processing of one preset: clamp to the duration, round to ``unit``, NMS."""

    unit: float | None = ROUND_UNIT_S  # rounding unit in seconds (None: no rounding)
    nms_type: str | None = "normal"  # "normal" | "linear" | "gaussian" | None (no NMS)
    nms_threshold: float = NMS_THRESHOLD  # IoU at or above which "normal" NMS zeroes a score
    nms_sigma: float = NMS_SIGMA  # width of the gaussian decay
    max_moments: int = MAX_MOMENTS  # moments kept per (query, video) after merging

    def __post_init__(self) -> None:
        if self.unit is not None and not self.unit > 0:
            raise UsageError(f"post-processing unit must be > 0 or None, got {self.unit}")
        if self.nms_type is not None and self.nms_type not in NMS_TYPES:
            raise UsageError(f"NMS type must be one of {NMS_TYPES} or None, got {self.nms_type!r}")
        if self.max_moments < 1:
            raise UsageError(f"max_moments must be >= 1, got {self.max_moments}")


def window_clips_problem(window_s: float, fps: float) -> Problem | None:
    """The rule ``window >= MIN_WINDOW_CLIPS clips`` at ``fps``, or None when it holds."""
    if int(round(window_s * fps)) < MIN_WINDOW_CLIPS:
        return (("window",), f"{{0}} must cover at least {MIN_WINDOW_CLIPS} clips "
                             f"({MIN_WINDOW_CLIPS / fps:g} s at {fps:g} fps), got {window_s:g} s")
    return None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def window_sizes(window_s: float, stride_s: float, fps: float, *,
                 name_of: Callable[[str], str] = _flag) -> tuple[int, int]:
    """Convert ``--window``/``--stride`` seconds into clip counts at ``fps``.

    ``name_of`` names a field in an error (the CLI's flags by default; a job file's keys).

    Raises:
        UsageError: a value is not positive, the stride exceeds the window, or the window is
            shorter than ``MIN_WINDOW_CLIPS`` clips (the coarsest pyramid level would vanish).
    """
    if not (isinstance(window_s, (int, float)) and window_s > 0):
        raise UsageError(f"{name_of('window')} must be > 0 seconds, got {window_s}")
    if not (isinstance(stride_s, (int, float)) and stride_s > 0):
        raise UsageError(f"{name_of('stride')} must be > 0 seconds, got {stride_s}")
    problem = stride_problem(window_s, stride_s) or window_clips_problem(window_s, fps)
    if problem is not None:
        names, rule = problem
        raise UsageError(rule.format(*[name_of(name) for name in names]))
    window_clips = int(round(window_s * fps))
    stride_clips = max(1, int(round(stride_s * fps)))
    return window_clips, min(stride_clips, window_clips)


def plan_windows(num_clips: int, window_clips: int, stride_clips: int) -> list[Window]:
    """Overlapping windows covering clips ``[0, num_clips)``; the last one ends at the last clip.

    A video of at most ``window_clips`` clips is one window (the whole video).

    Raises:
        UsageError: a size is not a positive integer or the stride exceeds the window.
    """
    if num_clips < 1:
        raise UsageError(f"num_clips must be >= 1, got {num_clips}")
    if window_clips < 1 or stride_clips < 1 or stride_clips > window_clips:
        raise UsageError(f"need 1 <= stride_clips <= window_clips, got {stride_clips} and {window_clips}")
    if num_clips <= window_clips:
        return [Window(0, 0, num_clips)]
    starts = list(range(0, num_clips - window_clips + 1, stride_clips))
    if starts[-1] + window_clips < num_clips:
        starts.append(num_clips - window_clips)  # end-aligned: every window has the trained length
    return [Window(i, s, s + window_clips) for i, s in enumerate(starts)]


def shift_and_clip(rows: "np.ndarray", window: Window, *, fps: float, duration: float, unit: float | None) -> "np.ndarray":
    """Window-local ``[start, end, score]`` rows on the video's timeline, clamped and rounded inside the window.

    The window's upper bound is its end (the video's duration for a window that reaches the end);
    rounding is relative to the window start, so a whole video gets the official post-processing.
    """
    import numpy as np

    offset = window.start_clip / fps
    upper = min(window.end_clip / fps, duration) if duration > offset else window.end_clip / fps
    shifted = np.array(rows, dtype=np.float64).reshape(-1, 3).copy()
    shifted[:, 0:2] += offset
    return clamp_and_round(shifted, upper=upper, unit=unit, lower=offset)


def merge_window_moments(
    per_window: list[tuple[Window, "np.ndarray"]],
    *,
    fps: float,
    duration: float,
    post: PostProcess,
) -> "np.ndarray":
    """Moments of one (query, video) pair from its windows, on the video's timeline.

    ``per_window`` holds each window with its ``[start, end, score]`` rows in seconds relative to
    the window start (the model's output for the window as a video of its own). See
    ``merge_many``; returns float64 ``[n, 3]``.
    """
    return merge_many([per_window], fps=fps, durations=[duration], post=post)[0]


def merge_many(
    groups: list[list[tuple[Window, "np.ndarray"]]],
    *,
    fps: float,
    durations: list[float],
    post: PostProcess,
) -> list["np.ndarray"]:
    """``merge_window_moments`` for many (query, video) groups, with one batched NMS per group size.

    Each window's rows are clamped to the window and rounded (``shift_and_clip``), all rows of a
    group are merged with NMS, sorted by score and cut to ``post.max_moments``; with NMS, rows it
    drove to a score of 0 are dropped.
    """
    import numpy as np

    merged = []
    for per_window, duration in zip(groups, durations):
        parts = [shift_and_clip(rows, w, fps=fps, duration=duration, unit=post.unit) for w, rows in per_window]
        merged.append(np.concatenate(parts, axis=0) if parts else np.zeros((0, 3)))
    results: list = [None] * len(groups)
    buckets: dict[int, list[int]] = {}
    for index, rows in enumerate(merged):
        buckets.setdefault(len(rows), []).append(index)
    for width, members in buckets.items():
        stacked = np.stack([merged[i] for i in members]) if width else np.zeros((len(members), 0, 3))
        counts = np.full(len(members), width)
        rows, kept = temporal_nms_batched(
            stacked, counts, post.nms_type, post.nms_threshold, post.nms_sigma, keep=post.max_moments
        )
        for j, index in enumerate(members):
            pair_rows = rows[j, : kept[j]]
            if post.nms_type is not None:
                pair_rows = pair_rows[pair_rows[:, 2] > 0]
            results[index] = pair_rows
    return results


def merge_window_saliency(per_window: list[tuple[Window, "np.ndarray"]], num_clips: int) -> "np.ndarray":
    """Per-clip saliency of a whole video from its windows' saliency (float32 ``[num_clips]``).

    Each clip takes its score from the window in which it is furthest from both edges (ties: the
    earlier window). Clips that no given window covers are NaN (the coarse stage may keep only some
    windows of a long video).

    Raises:
        UsageError: a window's saliency length differs from its clip count.
    """
    import numpy as np

    best = np.full(num_clips, np.nan, dtype=np.float32)
    margin = np.full(num_clips, -1, dtype=np.int64)
    for window, scores in sorted(per_window, key=lambda item: item[0].start_clip):
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        if len(scores) != window.num_clips:
            raise UsageError(f"window {window.index} has {len(scores)} saliency scores for {window.num_clips} clips")
        clips = np.arange(window.start_clip, window.end_clip)
        edge = np.minimum(clips - window.start_clip, window.end_clip - 1 - clips)
        better = edge > margin[clips]
        best[clips[better]] = scores[better]
        margin[clips[better]] = edge[better]
    return best

