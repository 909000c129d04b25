"""Moment-retrieval metrics (spec §6.1, §6.3), reproducing the official evaluators to the printed digit.

Two protocols:

- ``"r2tuning"`` (default): R2-Tuning's ``vtg_eval`` (UniVTG's copy of Moment-DETR's evaluator): R1 and R5 at
  IoU 0.3..0.95, mIoU, mAP at 0.5..0.95, buckets short (0, 10], middle (10, 30], long (30, inf) s; a bucket
  with no query falls back to the full sets.
- ``"moment_detr"``: QVHighlights' ``standalone_eval/eval.py``: R1 at 0.5..0.95, no R5/mIoU, long (30, 150].

Inputs are the official dicts: predictions ``{qid, pred_relevant_windows: [[start, end, score], ...]}`` and
ground truth ``{qid, relevant_windows: [[start, end], ...]}``. Quirks kept on purpose: R1/mIoU use the
*first* predicted window in list order; mAP uses the first 10 windows in list order, re-sorted by score with a
stable sort; GT windows are matched greedily in decreasing IoU order; precision is interpolated VOC-style over
every recall step; values are rounded with ``float(f"{100 * v:.2f}")`` where the official code rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from r2cli.errors import InputError, UsageError
from r2cli.eval._align import describe_ids, id_key

__all__ = [
    "MAP_THRESHOLDS",
    "PROTOCOLS",
    "R1_THRESHOLDS",
    "average_precision_detection",
    "length_bucket",
    "moment_map",
    "moment_recall_at_1",
    "moment_recall_at_5",
    "moment_retrieval_metrics",
    "temporal_iou_cross",
    "temporal_iou_paired",
]

# Thresholds as the official code builds them: np.linspace(...) then float(f"{e:.2f}").
MAP_THRESHOLDS: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
R1_THRESHOLDS: tuple[float, ...] = (0.3, 0.35, 0.4, 0.45, *MAP_THRESHOLDS)
MAX_PREDICTED_WINDOWS = 10  # mAP keeps the first 10 predicted windows of each query (list order)
RECALL_AT_5 = 5

from r2cli.eval.names import PROTOCOLS  # noqa: E402  (re-exported)
INF = float("inf")
_BUCKETS = {
    # name -> (low, high): a GT window of length L is in the bucket when low < L <= high
    "r2tuning": (("short", (0, 10)), ("middle", (10, 30)), ("long", (30, INF)), ("full", (0, INF))),
    "moment_detr": (("short", (0, 10)), ("middle", (10, 30)), ("long", (30, 150)), ("full", (0, 150))),
}


def _round(value: float) -> float:
    return float(f"{value:.2f}")


def temporal_iou_cross(spans_a: np.ndarray, spans_b: np.ndarray) -> np.ndarray:
    """IoU of every span of ``spans_a`` [N, 2] with every span of ``spans_b`` [M, 2] -> [N, M].

    ``inter / (len_a + len_b - inter)``; two zero-length spans give NaN (0/0), as in the official code.
    """
    spans_a = np.asarray(spans_a, dtype=float).reshape(-1, 2)
    spans_b = np.asarray(spans_b, dtype=float).reshape(-1, 2)
    length_a = spans_a[:, 1] - spans_a[:, 0]  # [N]
    length_b = spans_b[:, 1] - spans_b[:, 0]  # [M]
    left = np.maximum(spans_a[:, None, 0], spans_b[None, :, 0])  # [N, M]
    right = np.minimum(spans_a[:, None, 1], spans_b[None, :, 1])  # [N, M]
    inter = np.clip(right - left, 0, None)  # [N, M]
    union = length_a[:, None] + length_b[None, :] - inter  # [N, M]
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def temporal_iou_paired(spans_a: np.ndarray, spans_b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two [N, 2] arrays -> [N], with the official "union" ``max(end) - min(start)``
    (equal to the true union for overlapping spans) and 0 where that is 0."""
    spans_a = np.asarray(spans_a, dtype=float).reshape(-1, 2)
    spans_b = np.asarray(spans_b, dtype=float).reshape(-1, 2)
    inter = np.maximum(0, np.minimum(spans_a[:, 1], spans_b[:, 1]) - np.maximum(spans_a[:, 0], spans_b[:, 0]))
    hull = np.maximum(spans_a[:, 1], spans_b[:, 1]) - np.minimum(spans_a[:, 0], spans_b[:, 0])
    return np.divide(inter, hull, out=np.zeros_like(inter), where=hull != 0)


def _interpolated_area(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-2011 AP: precision made non-increasing from the right, summed over every recall step; recall is
    padded with 0 in front and 1 at the end (precision with 0 at both ends)."""
    padded_precision = np.concatenate(([0.0], precision, [0.0]))
    padded_recall = np.concatenate(([0.0], recall, [1.0]))
    padded_precision = np.maximum.accumulate(padded_precision[::-1])[::-1]
    steps = np.nonzero(padded_recall[1:] != padded_recall[:-1])[0] + 1
    return float(np.sum((padded_recall[steps] - padded_recall[steps - 1]) * padded_precision[steps]))


def average_precision_detection(
    truth_windows: Sequence[Sequence[float]],
    predicted_windows: Sequence[Sequence[float]],
    thresholds: Sequence[float] = MAP_THRESHOLDS,
) -> np.ndarray:
    """ActivityNet-style AP of one query at each IoU threshold -> [len(thresholds)].

    ``predicted_windows`` are ``[start, end, score]`` rows; they are ranked by score with a stable sort (ties keep
    list order). Each prediction, in rank order, claims the unclaimed GT window with the highest IoU (GTs are
    visited in decreasing IoU, ``argsort()[::-1]`` order) if that IoU reaches the threshold.
    """
    num_thresholds = len(thresholds)
    ap = np.zeros(num_thresholds)
    if len(predicted_windows) == 0:
        return ap
    ranked = sorted(predicted_windows, key=lambda row: -row[2])
    truth = np.asarray(truth_windows, dtype=float).reshape(-1, 2)  # [num_gt, 2]
    num_truth = truth.shape[0]
    claimed_by = np.full((num_thresholds, num_truth), -1)
    true_positive = np.zeros((num_thresholds, len(ranked)))
    false_positive = np.zeros((num_thresholds, len(ranked)))
    for rank, row in enumerate(ranked):
        if num_truth == 0:
            false_positive[:, rank] = 1
            continue
        ious = temporal_iou_cross(np.array([[row[0], row[1]]], dtype=float), truth).reshape(-1)  # [num_gt]
        visit_order = ious.argsort()[::-1]
        for t, threshold in enumerate(thresholds):
            for g in visit_order:
                if ious[g] < threshold:
                    false_positive[t, rank] = 1
                    break
                if claimed_by[t, g] >= 0:
                    continue
                true_positive[t, rank] = 1
                claimed_by[t, g] = rank
                break
            if true_positive[t, rank] == 0 and false_positive[t, rank] == 0:
                false_positive[t, rank] = 1
    tp_cumulative = np.cumsum(true_positive, axis=1).astype(float)  # [thresholds, preds]
    fp_cumulative = np.cumsum(false_positive, axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp_cumulative / float(num_truth)
        precision = tp_cumulative / (tp_cumulative + fp_cumulative)
    for t in range(num_thresholds):
        ap[t] = _interpolated_area(precision[t], recall[t])
    return ap


def moment_map(
    predictions: Sequence[dict],
    ground_truth: Sequence[dict],
    thresholds: Sequence[float] = MAP_THRESHOLDS,
    max_predicted_windows: int | None = MAX_PREDICTED_WINDOWS,
) -> dict[str, float]:
    """``{"0.5": mAP, ..., "0.95": mAP, "average": mean}`` in percent, 2 decimals (official ``compute_mr_ap``).

    Queries whose (truncated) prediction list is empty never enter the average, as officially.
    """
    truth_by_qid: dict[str, list] = {}
    for record in ground_truth:
        truth_by_qid.setdefault(id_key(record["qid"]), []).extend(record["relevant_windows"])
    per_query: dict[str, np.ndarray] = {}
    grouped: dict[str, list] = {}
    for record in predictions:
        windows = record["pred_relevant_windows"]
        if max_predicted_windows is not None:
            windows = windows[:max_predicted_windows]
        if windows:
            grouped.setdefault(id_key(record["qid"]), []).extend(windows)
    for qid, windows in grouped.items():
        per_query[qid] = average_precision_detection(truth_by_qid.get(qid, []), windows, thresholds)
    ap_array = np.array(list(per_query.values()))  # [queries, thresholds]
    if ap_array.size == 0:
        raise InputError("no query has a predicted window, so mAP is undefined")
    per_threshold = ap_array.mean(0)
    out = {str(t): v for t, v in zip(thresholds, per_threshold)}
    out["average"] = np.mean(per_threshold)
    return {k: _round(100 * v) for k, v in out.items()}


def _first_windows(predictions: Sequence[dict]) -> dict[str, list]:
    out = {}
    for record in predictions:
        windows = record["pred_relevant_windows"]
        if not windows:
            raise InputError(
                f"query {record['qid']!r} has no predicted window; R1 uses the first one (the official evaluator fails here)"
            )
        out[id_key(record["qid"])] = list(windows[0][:2])
    return out


def moment_recall_at_1(
    predictions: Sequence[dict], ground_truth: Sequence[dict], thresholds: Sequence[float] = R1_THRESHOLDS
) -> tuple[dict[str, float], float]:
    """R1 at each threshold and mIoU (percent, 2 decimals): the first predicted window against the GT window of
    highest IoU (first on ties), scored with the paired IoU."""
    first = _first_windows(predictions)
    truth_window: dict[str, list] = {}
    for record in ground_truth:
        windows = record["relevant_windows"]
        qid = id_key(record["qid"])
        best = 0
        if windows:
            best = int(np.argmax(temporal_iou_cross(np.array([first[qid]], dtype=float), np.array(windows, dtype=float))))
        truth_window[qid] = list(windows[best])
    qids = list(first)
    ious = temporal_iou_paired(
        np.array([first[q] for q in qids], dtype=float), np.array([truth_window[q] for q in qids], dtype=float)
    )
    mean_iou = _round(np.mean(ious) * 100)
    return {str(t): _round(np.mean(ious >= t) * 100) for t in thresholds}, mean_iou


def moment_recall_at_5(
    predictions: Sequence[dict], ground_truth: Sequence[dict], thresholds: Sequence[float] = R1_THRESHOLDS
) -> dict[str, float]:
    """R5 (R2-Tuning/UniVTG): the (prediction among the first 5, GT) pair of highest IoU (NaN -> 0, first pair
    in prediction-major order on ties), scored with the paired IoU."""
    top: dict[str, list] = {}
    for record in predictions:
        if not record["pred_relevant_windows"]:
            raise InputError(f"query {record['qid']!r} has no predicted window")
        top[id_key(record["qid"])] = [list(w[:2]) for w in record["pred_relevant_windows"][:RECALL_AT_5]]
    best_prediction: dict[str, list] = {}
    best_truth: dict[str, list] = {}
    for record in ground_truth:
        qid = id_key(record["qid"])
        windows = record["relevant_windows"]
        row = column = 0
        if windows:
            ious = temporal_iou_cross(np.array(top[qid], dtype=float), np.array(windows, dtype=float))
            ious[np.isnan(ious)] = 0
            rows, columns = np.where(ious == np.max(ious))
            row, column = int(rows[0]), int(columns[0])
        best_prediction[qid] = top[qid][row]
        best_truth[qid] = list(windows[column])
    qids = list(top)
    ious = temporal_iou_paired(
        np.array([best_prediction[q] for q in qids], dtype=float), np.array([best_truth[q] for q in qids], dtype=float)
    )
    return {str(t): _round(np.mean(ious >= t) * 100) for t in thresholds}


def length_bucket(
    predictions: Sequence[dict], ground_truth: Sequence[dict], low: float, high: float, *, is_full: bool
) -> tuple[list[dict], list[dict]]:
    """Queries with at least one GT window of length in ``(low, high]``, keeping only those windows.

    ``is_full`` returns everything unchanged (the official "full" range). An empty bucket falls back to the
    full sets (R2-Tuning's behaviour; Moment-DETR's evaluator would fail).
    """
    if is_full:
        return list(predictions), list(ground_truth)
    kept_truth = []
    for record in ground_truth:
        windows = [w for w in record["relevant_windows"] if low < w[1] - w[0] <= high]
        if windows:
            kept_truth.append({**record, "relevant_windows": windows})
    kept_ids = {id_key(r["qid"]) for r in kept_truth}
    kept_predictions = [r for r in predictions if id_key(r["qid"]) in kept_ids]
    if not kept_truth and not kept_predictions:
        return list(predictions), list(ground_truth)
    return kept_predictions, kept_truth


def _check_truth_windows(ground_truth: Sequence[dict]) -> None:
    without = [r["qid"] for r in ground_truth if not r.get("relevant_windows")]
    if without:
        raise InputError(
            f"ground truth has no relevant_windows for query ids {describe_ids(without)}; moment retrieval cannot be scored"
        )


def moment_retrieval_metrics(
    predictions: Sequence[dict], ground_truth: Sequence[dict], protocol: str = "r2tuning"
) -> dict[str, dict[str, Any]]:
    """Per-bucket metrics ``{"short"|"middle"|"long"|"full": {"MR-mAP": {...}, "MR-R1": {...}, ...}}``.

    With ``protocol="r2tuning"`` each bucket also holds ``MR-mIoU`` and ``MR-R5``. Ids must already be aligned
    (see :func:`r2cli.eval.evaluate_moments`).

    Raises:
        UsageError: unknown protocol.
        InputError: a GT record has no window, or a prediction has none.
    """
    if protocol not in PROTOCOLS:
        raise UsageError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    _check_truth_windows(ground_truth)
    empty = [r["qid"] for r in predictions if not r["pred_relevant_windows"]]
    if empty:
        raise InputError(
            f"no predicted window for query ids {describe_ids(empty)}; R1 scores the first window "
            "(the official evaluator fails on an empty list)"
        )
    out: dict[str, dict[str, Any]] = {}
    r1_thresholds = R1_THRESHOLDS if protocol == "r2tuning" else MAP_THRESHOLDS
    for name, (low, high) in _BUCKETS[protocol]:
        bucket_predictions, bucket_truth = length_bucket(predictions, ground_truth, low, high, is_full=name == "full")
        average_precisions = moment_map(bucket_predictions, bucket_truth)
        recall_at_1, mean_iou = moment_recall_at_1(bucket_predictions, bucket_truth, r1_thresholds)
        if protocol == "r2tuning":
            out[name] = {
                "MR-mIoU": mean_iou,
                "MR-mAP": average_precisions,
                "MR-R1": recall_at_1,
                "MR-R5": moment_recall_at_5(bucket_predictions, bucket_truth, R1_THRESHOLDS),
            }
        else:
            out[name] = {"MR-mAP": average_precisions, "MR-R1": recall_at_1}
    return out


def moment_brief(buckets: dict[str, dict[str, Any]], protocol: str = "r2tuning") -> dict[str, float]:
    """The official ``brief`` moment-retrieval keys, sorted by name as the official code sorts them."""
    full = buckets["full"]
    brief = {
        "MR-full-mAP": full["MR-mAP"]["average"],
        "MR-full-mAP@0.5": full["MR-mAP"]["0.5"],
        "MR-full-mAP@0.75": full["MR-mAP"]["0.75"],
        "MR-short-mAP": buckets["short"]["MR-mAP"]["average"],
        "MR-middle-mAP": buckets["middle"]["MR-mAP"]["average"],
        "MR-long-mAP": buckets["long"]["MR-mAP"]["average"],
        "MR-full-R1@0.5": full["MR-R1"]["0.5"],
        "MR-full-R1@0.7": full["MR-R1"]["0.7"],
    }
    if protocol == "r2tuning":
        brief.update(
            {
                "MR-short-mIoU": buckets["short"]["MR-mIoU"],
                "MR-middle-mIoU": buckets["middle"]["MR-mIoU"],
                "MR-long-mIoU": buckets["long"]["MR-mIoU"],
                "MR-full-mIoU": full["MR-mIoU"],
                "MR-full-R1@0.3": full["MR-R1"]["0.3"],
                "MR-full-R5@0.3": full["MR-R5"]["0.3"],
                "MR-full-R5@0.5": full["MR-R5"]["0.5"],
                "MR-full-R5@0.7": full["MR-R5"]["0.7"],
            }
        )
    return dict(sorted(brief.items()))
