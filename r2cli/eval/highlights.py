"""QVHighlights highlight-detection metrics (spec §6.2): HL-min-{Fair,Good,VeryGood} mAP and Hit@1.

Reproduces the official evaluator without scikit-learn: per query and annotator, the AP is the mean of the
interpolated precision at each distinct recall level of the precision-recall curve over distinct score
thresholds (scikit-learn's ``precision_recall_curve`` followed by Moment-DETR's ``get_ap``), recall compared in
float32 as the official code casts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from r2cli.errors import InputError
from r2cli.eval._align import id_key

__all__ = ["HIGHLIGHT_LEVELS", "binary_average_precision", "clip_score_matrix", "highlight_metrics"]

# name -> minimum annotator score (0..4) for a clip to count as a highlight
HIGHLIGHT_LEVELS: tuple[tuple[str, int], ...] = (("Fair", 2), ("Good", 3), ("VeryGood", 4))
CLIP_SECONDS = 2
ANNOTATORS = 3


def binary_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AP of 0/1 ``labels`` ranked by ``scores`` as the official ``get_ap`` computes it.

    All-negative labels give 0 and all-positive labels give 1 without looking at the scores.
    """
    labels = np.asarray(labels, dtype=float)
    scores = np.asarray(scores, dtype=float)
    distinct = set(labels.tolist())
    if len(distinct) == 1:
        return 0.0 if labels[0] == 0 else 1.0
    order = np.argsort(scores, kind="mergesort")[::-1]
    ranked_scores = scores[order]
    ranked_labels = labels[order]
    # last position of each group of equal scores = one threshold, highest first
    thresholds = np.r_[np.nonzero(np.diff(ranked_scores))[0], ranked_labels.size - 1]
    true_positives = np.cumsum(ranked_labels)[thresholds]
    false_positives = 1 + thresholds - true_positives
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / true_positives[-1]
    # lowest threshold (recall 1) first, then the (precision 1, recall 0) end point
    precision = np.r_[precision[::-1], 1.0]
    recall = np.r_[recall[::-1], 0.0].astype(np.float32)
    precision = np.maximum.accumulate(precision)
    steps = np.nonzero(np.diff(recall))
    return float(np.mean(precision[steps]))


def clip_score_matrix(record: dict) -> np.ndarray:
    """[int(duration / 2), 3] annotator scores: zeros except the rows of ``relevant_clip_ids``."""
    matrix = np.zeros((int(record["duration"] / CLIP_SECONDS), ANNOTATORS))
    ids = np.array(record["relevant_clip_ids"], dtype=int)
    if ids.size and ids.max() >= matrix.shape[0]:
        raise InputError(
            f"query {record['qid']!r}: relevant clip id {int(ids.max())} is beyond the "
            f"{matrix.shape[0]} clips of a {record['duration']} s video"
        )
    if ids.size:
        matrix[ids] = np.array(record["saliency_scores"], dtype=float)
    return matrix


def _fit(scores: np.ndarray, length: int) -> np.ndarray:
    if scores.size >= length:
        return scores[:length]
    padded = np.zeros(length)
    padded[: scores.size] = scores
    return padded


def highlight_metrics(predictions: Sequence[dict], ground_truth: Sequence[dict]) -> dict[str, dict[str, Any]]:
    """``{"HL-min-Fair": {"HL-mAP": x, "HL-Hit1": y}, "HL-min-Good": ..., "HL-min-VeryGood": ...}`` (percent,
    2 decimals). Predicted scores are truncated or zero-padded to the GT clip count for mAP; Hit@1 takes the
    argmax of the full predicted list (first on ties) and scores 0 beyond the GT clip count.

    Raises:
        InputError: a prediction has no saliency scores, or a GT clip id lies beyond the video.
    """
    truth = {id_key(r["qid"]): clip_score_matrix(r) for r in ground_truth}
    predicted = {}
    for record in predictions:
        scores = record.get("pred_saliency_scores")
        if not scores:
            raise InputError(f"query {record['qid']!r} has no pred_saliency_scores")
        predicted[id_key(record["qid"])] = np.asarray(scores, dtype=float)
    out: dict[str, dict[str, Any]] = {}
    for name, minimum in HIGHLIGHT_LEVELS:
        hits = np.zeros((len(predicted), ANNOTATORS))
        average_precisions = np.zeros((len(predicted), ANNOTATORS))
        for row, (qid, scores) in enumerate(predicted.items()):
            binary = (truth[qid] >= minimum).astype(float)  # [clips, 3]
            best_clip = int(np.argmax(scores))
            if best_clip < binary.shape[0]:
                hits[row] = binary[best_clip]
            fitted = _fit(scores, binary.shape[0])
            for annotator in range(ANNOTATORS):
                average_precisions[row, annotator] = binary_average_precision(binary[:, annotator], fitted)
        out[f"HL-min-{name}"] = {
            "HL-mAP": float(f"{100 * np.mean(average_precisions):.2f}"),
            "HL-Hit1": float(f"{100 * np.mean(np.max(hits, 1)):.2f}"),
        }
    return out
