"""Budgeted video summaries: shots → trimmed candidates → 0/1 knapsack on saliency."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from r2cli.errors import UsageError


@dataclass(frozen=True)
class SummarySegment:
    """One segment of a video; the segments of a video tile it in time order."""

    index: int  # 0-based position in time order
    start_clip: int  # first clip (inclusive)
    end_clip: int  # last clip (exclusive)
    start_s: float  # start in seconds
    end_s: float  # end in seconds (clamped to the video duration when known)
    mean_saliency: float  # mean clip saliency over the segment
    selected: bool  # part of the summary
    rank: int  # 1-based rank by mean saliency within the video (ties: earlier first)
    candidate: bool = True  # False for the leftovers of a shot trimmed to the budget
    over_budget: bool = False  # selected although longer than the budget (a budget below one clip, #22.5)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict:
        return asdict(self)


def budget_seconds(duration_s: float, *, ratio: float | None = None, seconds: float | None = None) -> float:
    """The summary budget in seconds from ``--ratio`` (of the duration) or ``--seconds``.

    Raises:
        UsageError: both or neither given, ratio outside (0, 1], seconds <= 0.
    """
    if (ratio is None) == (seconds is None):
        raise UsageError("give exactly one of --ratio or --seconds")
    if ratio is not None:
        if not (0.0 < ratio <= 1.0) or math.isnan(ratio):
            raise UsageError(f"--ratio must be in (0, 1], got {ratio}")
        return ratio * duration_s
    if not seconds > 0 or math.isinf(seconds):
        raise UsageError(f"--seconds must be a positive number, got {seconds}")
    return min(float(seconds), duration_s)


def _trim_window(saliency, start: int, end: int, length: int) -> tuple[int, int]:
    """The ``length``-clip window of [start, end) centred on its most salient clip (clamped to the shot)."""
    import numpy as np

    peak = start + int(np.argmax(saliency[start:end]))  # first maximum on ties
    lo = peak - (length - 1) // 2
    lo = min(max(lo, start), end - length)
    return lo, lo + length


def summarize_video(
    embeddings,
    saliency,
    clip_seconds: float,
    budget: float,
    *,
    duration_s: float | None = None,
    method: str = "kts",
    max_change_points: int | None = None,
    penalty: float = 1.0,
    threshold: float | None = None,
) -> list[SummarySegment]:
    """Summarize one video to at most ``budget`` seconds.

    ``embeddings`` [T, D] are the per-clip CLIP embeddings, ``saliency`` [T] the per-clip scores,
    clip i covers ``[i * clip_seconds, (i + 1) * clip_seconds)`` (the last clip ends at
    ``duration_s`` when given). Steps: shots by ``method`` (see ``r2cli.summary.shots``); a shot
    longer than the budget is trimmed to the budget around its most salient clip (the leftover
    parts stay in the output as non-candidate segments); a 0/1 knapsack over the candidates
    (weights in clips, capacity ``floor(budget / clip_seconds)``) maximises summed saliency,
    with saliency shifted so the least salient clip scores 0 (model logits can be negative; the
    shift keeps an all-negative video from yielding an empty summary). Ties: see
    ``r2cli.summary.knapsack``. A budget shorter than one clip never gives an empty summary: the
    single most salient clip is selected and its segment marked ``over_budget``.

    Raises:
        UsageError: shapes disagree, clip_seconds or budget not positive, non-finite saliency.
    """
    import numpy as np

    from r2cli.summary.knapsack import knapsack
    from r2cli.summary.shots import detect_shots

    scores = np.asarray(saliency, dtype=np.float64).reshape(-1)  # [T]
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != scores.shape[0]:
        raise UsageError(
            f"embeddings [clips, dims] and saliency [clips] must agree, got {tuple(emb.shape)} and {scores.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise UsageError("saliency contains NaN or infinite values")
    if not clip_seconds > 0:
        raise UsageError(f"clip_seconds must be > 0, got {clip_seconds}")
    if not budget > 0:
        raise UsageError(f"the summary budget must be > 0 seconds, got {budget}")
    t = scores.shape[0]
    if t == 0:
        return []
    end_of_video = duration_s if duration_s is not None else t * clip_seconds
    capacity = int(math.floor(budget / clip_seconds + 1e-9))
    over_budget = capacity == 0
    capacity = max(capacity, 1)  # below one clip: the best single clip, marked over budget

    pieces: list[tuple[int, int, bool]] = []  # (start_clip, end_clip, candidate)
    shots = detect_shots(emb, method=method, max_change_points=max_change_points, penalty=penalty, threshold=threshold)
    for start, end in shots:
        if capacity == 0 or end - start <= capacity:
            pieces.append((start, end, capacity > 0))
            continue
        lo, hi = _trim_window(scores, start, end, capacity)
        if lo > start:
            pieces.append((start, lo, False))
        pieces.append((lo, hi, True))
        if hi < end:
            pieces.append((hi, end, False))

    shifted = scores - scores.min()  # [T], >= 0
    candidates = [k for k, (_, _, ok) in enumerate(pieces) if ok]
    chosen = knapsack(
        [float(shifted[pieces[k][0] : pieces[k][1]].sum()) for k in candidates],
        [pieces[k][1] - pieces[k][0] for k in candidates],
        capacity,
    )
    selected = {candidates[c] for c in chosen}
    means = [float(scores[a:b].mean()) for a, b, _ in pieces]
    order = sorted(range(len(pieces)), key=lambda k: (-means[k], k))
    rank = {k: r + 1 for r, k in enumerate(order)}
    segments = []
    for k, (a, b, ok) in enumerate(pieces):
        start_s = min(a * clip_seconds, end_of_video)
        end_s = min(b * clip_seconds, end_of_video)
        segments.append(
            SummarySegment(
                index=k,
                start_clip=a,
                end_clip=b,
                start_s=start_s,
                end_s=end_s,
                mean_saliency=means[k],
                selected=k in selected,
                rank=rank[k],
                candidate=ok,
                over_budget=over_budget and k in selected,
            )
        )
    return segments


def summary_rows(segments, *, run_id: str, path: str, video_id: int | None = None, query: str | None = None) -> list[dict]:
    """Rows of ``summary.parquet`` for one video (see ``r2cli.outputs``)."""
    return [
        {
            "run_id": run_id,
            "video_id": video_id,
            "path": path,
            "query": query,
            "segment_index": s.index,
            "start_s": s.start_s,
            "end_s": s.end_s,
            "mean_saliency": s.mean_saliency,
            "selected": s.selected,
            "rank": s.rank,
            "over_budget": s.over_budget,
        }
        for s in segments
    ]
