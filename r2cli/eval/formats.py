"""Prediction files in the official submission formats: readers (for ``r2cli evaluate``) and writers (for
``r2cli search`` / ``r2cli summarize --format official``).

Moment retrieval / QVHighlights (Moment-DETR submission, R2-Tuning ``--dump``), one JSON object per line::

    {"qid": 2579, "query": "...", "vid": "NUsG9BgSes0_210.0_360.0",
     "pred_relevant_windows": [[84.68, 150.0, 0.5733], ...],   # [start s, end s, score], best first
     "pred_saliency_scores": [0.17, -0.68, ...]}               # one per 2-second clip (QVHighlights)

YouTube Highlights / TVSum (no official file exists: R2-Tuning scores in memory), one line per video::

    {"vid": "Se3oxnaPsz0", "domain": "BK", "pred_saliency_scores": [0.1, 0.7, ...]}   # one per clip

No numpy here: the writers take plain Python numbers (``float()`` your arrays first).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r2cli._atomic import atomic_output
from r2cli.data._io import Location, as_number, iter_json_records
from r2cli.errors import InputError

__all__ = [
    "MomentPrediction",
    "SaliencyPrediction",
    "read_moment_predictions",
    "read_saliency_predictions",
    "write_moment_predictions",
    "write_saliency_predictions",
]


@dataclass(frozen=True)
class MomentPrediction:
    """One query's result in the official moment-retrieval submission format."""

    qid: int | str  # the ground truth's query id (keep its type: int for QVHighlights)
    windows: Sequence[Sequence[float]]  # [start s, end s, score] rows, best first (R1 uses row 0, mAP rows 0-9)
    saliency: Sequence[float] | None = None  # one score per clip (QVHighlights: 2-second clips), or None
    query: str | None = None
    vid: str | None = None

    def to_official(self) -> dict[str, Any]:
        """The JSON object of one submission line, keys in the official order."""
        out: dict[str, Any] = {"qid": self.qid}
        if self.query is not None:
            out["query"] = self.query
        if self.vid is not None:
            out["vid"] = self.vid
        out["pred_relevant_windows"] = [[float(x) for x in row] for row in self.windows]
        if self.saliency is not None:
            out["pred_saliency_scores"] = [float(x) for x in self.saliency]
        return out


@dataclass(frozen=True)
class SaliencyPrediction:
    """One video's per-clip saliency for YouTube Highlights or TVSum."""

    vid: str  # YouTube id, the key of the annotation file
    scores: Sequence[float]  # one score per clip, in clip order
    domain: str | None = None
    query: str | None = None

    def to_official(self) -> dict[str, Any]:
        out: dict[str, Any] = {"vid": self.vid}
        if self.domain is not None:
            out["domain"] = self.domain
        if self.query is not None:
            out["query"] = self.query
        out["pred_saliency_scores"] = [float(x) for x in self.scores]
        return out


def _write_jsonl(lines: Iterable[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    with atomic_output(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as stream:
            for line in lines:
                stream.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def _as_official(item: Any, kind: type) -> dict[str, Any]:
    if isinstance(item, kind):
        return item.to_official()
    if isinstance(item, Mapping):
        return dict(item)
    raise InputError(f"expected {kind.__name__} or a mapping, got {type(item).__name__}")


def write_moment_predictions(predictions: Iterable[MomentPrediction | Mapping[str, Any]], path: str | Path) -> Path:
    """Write a moment-retrieval submission (JSON Lines, atomically) that ``r2cli evaluate`` and the official
    evaluators read. Mappings are written as given (use the official keys).

    Raises:
        InputError: an item is neither a MomentPrediction nor a mapping, or holds NaN/inf.
    """
    try:
        return _write_jsonl((_as_official(p, MomentPrediction) for p in predictions), path)
    except ValueError as exc:  # json refuses NaN/inf with allow_nan=False
        raise InputError(f"{path}: predictions must hold finite numbers ({exc})") from None


def write_saliency_predictions(predictions: Iterable[SaliencyPrediction | Mapping[str, Any]], path: str | Path) -> Path:
    """Write per-video saliency for YouTube Highlights / TVSum (JSON Lines, atomically).

    Raises:
        InputError: an item is neither a SaliencyPrediction nor a mapping, or holds NaN/inf.
    """
    try:
        return _write_jsonl((_as_official(p, SaliencyPrediction) for p in predictions), path)
    except ValueError as exc:
        raise InputError(f"{path}: predictions must hold finite numbers ({exc})") from None


def _scores(location: Location, item: dict, field: str) -> list[float]:
    raw = item[field]
    if not isinstance(raw, list) or not raw:
        raise location.fail(field, "must be a non-empty list of numbers", raw)
    values = [as_number(x) for x in raw]
    bad = next((i for i, v in enumerate(values) if v is None), None)
    if bad is not None:
        raise location.fail(f"{field}[{bad}]", "must be a finite number", raw[bad])
    return values


def read_moment_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Read a moment-retrieval submission into official dicts (file order).

    Each line needs ``qid`` and at least one of ``pred_relevant_windows`` (``[[start, end, score], ...]``)
    and ``pred_saliency_scores``; every line must carry the same one(s). ``query`` and ``vid`` are optional.

    Raises:
        InputError: naming the file, line and field of the first invalid record.
    """
    records: list[dict[str, Any]] = []
    fields_seen: tuple[bool, bool] | None = None
    first_location = None
    for location, item in iter_json_records(path):
        record: dict[str, Any] = {"qid": location.identifier(item, "qid")}
        for optional in ("query", "vid"):
            if isinstance(item.get(optional), str):
                record[optional] = item[optional]
        has = ("pred_relevant_windows" in item, "pred_saliency_scores" in item)
        if not any(has):
            raise InputError(f"{location}: needs field 'pred_relevant_windows' or 'pred_saliency_scores'")
        if fields_seen is None:
            fields_seen, first_location = has, location
        elif has != fields_seen:
            names = " and ".join(n for n, h in zip(("pred_relevant_windows", "pred_saliency_scores"), fields_seen) if h)
            raise InputError(f"{location}: every line must carry the same fields as {first_location} ({names})")
        if has[0]:
            windows = item["pred_relevant_windows"]
            if not isinstance(windows, list):
                raise location.fail("pred_relevant_windows", "must be a list of [start, end, score] rows", windows)
            clean = []
            for index, row in enumerate(windows):
                values = [as_number(x) for x in row] if isinstance(row, list) and len(row) == 3 else None
                if values is None or None in values:
                    raise location.fail(
                        f"pred_relevant_windows[{index}]", "must be [start, end, score] (three finite numbers)", row
                    )
                clean.append(values)
            record["pred_relevant_windows"] = clean
        if has[1]:
            record["pred_saliency_scores"] = _scores(location, item, "pred_saliency_scores")
        record["_source"] = str(location)
        records.append(record)
    if not records:
        raise InputError(f"{path}: holds no predictions")
    return records


def read_saliency_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Read per-video saliency predictions (YouTube Highlights / TVSum): ``{vid, pred_saliency_scores}`` per
    line (``qid`` is accepted in place of ``vid``).

    Raises:
        InputError: naming the file, line and field of the first invalid record.
    """
    records = []
    for location, item in iter_json_records(path):
        key = "vid" if "vid" in item else "qid"
        if key not in item:
            raise InputError(f"{location}: required field 'vid' is missing")
        vid = item[key]
        if not isinstance(vid, str) or not vid:
            raise location.fail(key, "must be the video's id (a non-empty string)", vid)
        if "pred_saliency_scores" not in item:
            raise InputError(f"{location}: required field 'pred_saliency_scores' is missing")
        scores = _scores(location, item, "pred_saliency_scores")
        records.append({"vid": vid, "pred_saliency_scores": scores, "_source": str(location)})
    if not records:
        raise InputError(f"{path}: holds no predictions")
    return records
