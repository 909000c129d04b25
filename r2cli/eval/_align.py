"""Matching prediction ids to ground-truth ids, with one clear error for missing or extra ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from r2cli.errors import InputError

_SHOWN = 5  # ids named in a message before "... (N in all)"


def id_key(value: Any) -> str:
    """Comparison key of a query/video id: 12 and "12" are the same id (JSON writers differ on this)."""
    return str(value)


def describe_ids(ids: Sequence[Any]) -> str:
    """``"3, 'a', 7 and 12 more (15 in all)"``: the first few ids and the count."""
    shown = ", ".join(repr(i) for i in ids[:_SHOWN])
    if len(ids) > _SHOWN:
        return f"{shown} and {len(ids) - _SHOWN} more ({len(ids)} in all)"
    return shown


def align(
    predictions: Sequence[dict],
    ground_truth: Sequence[dict],
    *,
    prediction_key: str,
    truth_key: str,
    allow_missing: bool,
    what: str = "query ids",
) -> tuple[list[dict], list[dict], list[Any], list[Any]]:
    """Keep the records whose id is in both lists, in each list's own order.

    Returns ``(predictions, ground_truth, missing, extra)``: ``missing`` are ground-truth ids without a
    prediction, ``extra`` are predicted ids absent from the ground truth.

    Raises:
        InputError: an id repeats in either list; ids differ and ``allow_missing`` is False; nothing is shared.
    """
    for records, key, side in ((predictions, prediction_key, "predictions"), (ground_truth, truth_key, "ground truth")):
        seen: set[str] = set()
        repeated = []
        for record in records:
            k = id_key(record[key])
            if k in seen:
                repeated.append(record[key])
            seen.add(k)
        if repeated:
            raise InputError(f"{side} repeat {what} {describe_ids(repeated)}; each id must appear once")
    predicted = {id_key(r[prediction_key]) for r in predictions}
    expected = {id_key(r[truth_key]) for r in ground_truth}
    missing = [r[truth_key] for r in ground_truth if id_key(r[truth_key]) not in predicted]
    extra = [r[prediction_key] for r in predictions if id_key(r[prediction_key]) not in expected]
    if (missing or extra) and not allow_missing:
        parts = []
        if missing:
            parts.append(f"no prediction for {what} {describe_ids(missing)}")
        if extra:
            parts.append(f"predictions for {what} not in the ground truth: {describe_ids(extra)}")
        raise InputError(
            "; ".join(parts) + " (the official evaluator requires the same ids; "
            "--allow-missing / allow_missing=True scores only the shared ones)"
        )
    shared = predicted & expected
    if not shared:
        raise InputError(f"predictions and ground truth share no {what}")
    kept_predictions = [r for r in predictions if id_key(r[prediction_key]) in shared]
    kept_truth = [r for r in ground_truth if id_key(r[truth_key]) in shared]
    return kept_predictions, kept_truth, missing, extra
