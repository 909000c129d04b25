"""Per-domain highlight mAP of YouTube Highlights (spec §6.4) and TVSum top-5 mAP (spec §6.5).

Both rank a video's clips by predicted saliency (descending; ties keep clip order, a stable sort, where the
official GPU ``argsort`` leaves ties unspecified) and accumulate AP with the trapezoid rule starting from
recall 0 and precision 1. Domain values are rounded to 5 decimals as R2-Tuning reports them (fractions, not
percent).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from r2cli.data.labels import lower_median

__all__ = ["TVSUM_TOP_K", "trapezoid_average_precision", "tvsum_domain_map", "youtube_domain_map"]

TVSUM_TOP_K = 5


def trapezoid_average_precision(ranked_labels: Sequence[float]) -> float:
    """AP of 0/1 labels already in rank order: ``sum (rec_j - rec_{j-1}) * (prc_{j-1} + prc_j) / 2`` with
    ``rec_0 = 0, prc_0 = 1``; 0 when there is no positive among them."""
    positives = sum(ranked_labels)
    if positives == 0:
        return 0
    hits = ap = recall = 0
    precision = 1
    for rank, label in enumerate(ranked_labels):
        hits += label
        new_recall = hits / positives
        new_precision = hits / (rank + 1)
        ap += (new_recall - recall) * (precision + new_precision) / 2
        recall, precision = new_recall, new_precision
    return ap


def _rank(scores: Sequence[float]) -> np.ndarray:
    return np.argsort(-np.asarray(scores, dtype=float), kind="stable")


def youtube_video_ap(match: Sequence[int], scores: Sequence[float]) -> float:
    """AP of one YouTube Highlights video: labels ``match > 0`` ranked by ``scores`` (same length)."""
    labels = [1.0 if m > 0 else 0.0 for m in match]
    order = _rank(scores)
    return trapezoid_average_precision([labels[i] for i in order])


def youtube_domain_map(videos: Sequence[tuple[Sequence[int], Sequence[float]]]) -> float:
    """Mean AP over ``(match, scores)`` pairs, unrounded."""
    collected = [youtube_video_ap(match, scores) for match, scores in videos]
    return sum(collected) / len(collected)


def tvsum_domain_map(
    videos: Sequence[tuple[Sequence[Sequence[float]], Sequence[float]]], top_k: int = TVSUM_TOP_K
) -> float:
    """TVSum top-k mAP over ``(annotation rows [shots][20], scores)`` pairs, unrounded.

    For each annotator: labels = that annotator's column ``>`` its lower median (over the full column); the
    labels of the ``top_k`` highest-scored clips give the AP; average over videos, then over annotators.
    ``scores`` may be shorter than the annotation (the official loader truncates to ``min(T, n)``); longer
    scores must be truncated by the caller.
    """
    matrices = [np.asarray(anno, dtype=np.float32) for anno, _ in videos]  # [shots, annotators] each
    orders = [_rank(scores) for _, scores in videos]
    annotators = matrices[0].shape[1]
    collected = []
    for annotator in range(annotators):
        video_ap = []
        for matrix, order in zip(matrices, orders):
            column = matrix[:, annotator]
            labels = np.where(column > np.float32(lower_median(column)), 1.0, 0.0).tolist()
            video_ap.append(trapezoid_average_precision([labels[i] for i in order][:top_k]))
        collected.append(sum(video_ap) / len(video_ap))
    return sum(collected) / len(collected)
