"""Readers for moment-retrieval annotations (spec §5.1): QVHighlights, Charades-STA, TACoS, Ego4D-NLQ and
a user's own annotations in the QVHighlights JSON Lines format.

All readers return :class:`MomentAnnotation` records in file order and raise :class:`r2cli.errors.InputError`
naming the file, line and field of the first problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2cli.data._io import Location, as_number, iter_json_records
from r2cli.errors import InputError

__all__ = [
    "GROUNDING_DATASETS",
    "MomentAnnotation",
    "read_charades",
    "read_charades_sta_txt",
    "read_ego4d_nlq",
    "read_grounding_annotations",
    "read_moment_annotations",
    "read_qvhighlights",
    "read_tacos",
    "read_user_annotations",
]

GROUNDING_DATASETS = ("qvhighlights", "charades", "tacos", "ego4d")

# QVHighlights saliency: 3 annotators, each 0 (very bad) .. 4 (very good), per 2-second clip.
QVH_CLIP_SECONDS = 2.0
QVH_ANNOTATORS = 3
QVH_MAX_SCORE = 4

# Tolerance when checking window ends against the duration: durations in some files carry 2 decimals.
_END_TOLERANCE = 1e-3


@dataclass(frozen=True)
class MomentAnnotation:
    """One (video, query) record of a moment-retrieval annotation file."""

    qid: int | str  # query id, unique within the file (int in QVHighlights/Charades tvr, str in TACoS/Ego4D)
    query: str  # the sentence
    vid: str | None  # video id (feature file stem); None when the user gave only a video path
    duration: float | None  # seconds; None only in user annotations that omit it
    windows: tuple[tuple[float, float], ...]  # relevant windows [start, end] in seconds, file order
    clip_ids: tuple[int, ...] | None = None  # QVHighlights: indices of 2-second clips with saliency labels
    saliency_scores: tuple[tuple[int, ...], ...] | None = None  # QVHighlights: one (a1, a2, a3) per clip id
    video_path: str | None = None  # user annotations: path of the video file (resolved later via the catalog)
    source: str = ""  # "<file>, line <n>" for messages
    extra: Mapping[str, Any] = field(default_factory=dict)  # other fields kept as read (e.g. Ego4D video_uid)

    def to_official(self) -> dict[str, Any]:
        """The record as the official evaluator and trainer read it (QVHighlights JSON Lines keys)."""
        out: dict[str, Any] = {"qid": self.qid, "query": self.query}
        if self.duration is not None:
            out["duration"] = self.duration
        if self.vid is not None:
            out["vid"] = self.vid
        if self.video_path is not None:
            out["video_path"] = self.video_path
        if self.clip_ids is not None:
            out["relevant_clip_ids"] = list(self.clip_ids)
            out["saliency_scores"] = [list(s) for s in (self.saliency_scores or ())]
        out["relevant_windows"] = [list(w) for w in self.windows]
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out


def _windows(
    location: Location,
    record: dict,
    duration: float | None,
    *,
    required: bool,
    allow_reversed: bool = False,
) -> tuple[tuple[float, float], ...]:
    if "relevant_windows" not in record or record["relevant_windows"] is None:
        if required:
            raise InputError(f"{location}: required field 'relevant_windows' is missing")
        return ()
    raw = record["relevant_windows"]
    rule = "must be a list of [start, end] pairs in seconds"
    if not isinstance(raw, list):
        raise location.fail("relevant_windows", rule, raw)
    if required and not raw:
        raise location.fail("relevant_windows", "must hold at least one [start, end] window", raw)
    out = []
    for index, window in enumerate(raw):
        name = f"relevant_windows[{index}]"
        if not isinstance(window, (list, tuple)) or len(window) != 2:
            raise location.fail(name, "must be a [start, end] pair in seconds", window)
        start, end = as_number(window[0]), as_number(window[1])
        if start is None or end is None:
            raise location.fail(name, "must hold two finite numbers", window)
        if start < 0:
            raise location.fail(name, "must start at or after 0 s", window)
        if end < start and not allow_reversed:
            raise location.fail(name, "must have start <= end", window)
        if duration is not None and max(start, end) > duration + _END_TOLERANCE:
            raise location.fail(name, f"must end within the video's duration ({duration:g} s)", window)
        out.append((start, end))
    return tuple(out)


def _saliency(location: Location, record: dict, duration: float | None):
    has_ids, has_scores = "relevant_clip_ids" in record, "saliency_scores" in record
    if not has_ids and not has_scores:
        return None, None
    if has_ids != has_scores:
        missing = "saliency_scores" if has_ids else "relevant_clip_ids"
        raise InputError(f"{location}: field {missing!r} is missing (relevant_clip_ids and saliency_scores go together)")
    ids, scores = record["relevant_clip_ids"], record["saliency_scores"]
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise location.fail("relevant_clip_ids", "must be a list of clip indices (integers >= 0)", ids)
    if len(set(ids)) != len(ids):
        raise location.fail("relevant_clip_ids", "must not repeat a clip index", ids)
    if duration is not None:
        num_clips = int(duration / QVH_CLIP_SECONDS)
        too_far = [i for i in ids if i >= num_clips]
        if too_far:
            raise location.fail(
                "relevant_clip_ids",
                f"must index 2-second clips below int(duration / 2) = {num_clips}",
                too_far[:3],
            )
    if not isinstance(scores, list) or len(scores) != len(ids):
        raise location.fail(
            "saliency_scores", f"must be a list with one entry per relevant clip id ({len(ids)})", scores
        )
    clean = []
    for index, triple in enumerate(scores):
        ok = (
            isinstance(triple, list)
            and len(triple) == QVH_ANNOTATORS
            and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= QVH_MAX_SCORE for s in triple)
        )
        if not ok:
            raise location.fail(
                f"saliency_scores[{index}]", f"must be {QVH_ANNOTATORS} integer scores in 0..{QVH_MAX_SCORE}", triple
            )
        clean.append(tuple(triple))
    return tuple(ids), tuple(clean)


_KNOWN = {"qid", "query", "duration", "vid", "relevant_windows", "relevant_clip_ids", "saliency_scores"}


def _check_unique(records: list[MomentAnnotation]) -> None:
    seen: dict[str, str] = {}
    for record in records:
        key = str(record.qid)
        if key in seen:
            raise InputError(f"{record.source}: field 'qid' repeats {record.qid!r} (first seen at {seen[key]})")
        seen[key] = record.source


def read_moment_annotations(path: str | Path, *, require_windows: bool = True) -> list[MomentAnnotation]:
    """Read a benchmark moment-retrieval file in the QVHighlights/R2-Tuning JSON Lines schema.

    Fields: ``qid`` (int or str), ``query``, ``duration`` (s), ``vid``, ``relevant_windows``
    (``[[start, end], ...]``, s); optional ``relevant_clip_ids`` + ``saliency_scores`` (QVHighlights).
    Other fields are kept in ``extra``. Works for QVHighlights, Charades-STA (tvr/UniVTG format), TACoS
    and Ego4D-NLQ.

    Args:
        path: the ``.jsonl`` file (a JSON list is accepted too).
        require_windows: False for files without labels (QVHighlights test).

    Raises:
        InputError: naming the file, line and field of the first invalid record, or a repeated qid.
    """
    records = []
    for location, item in iter_json_records(path):
        qid = location.identifier(item, "qid")
        query = location.text(item, "query")
        vid = location.text(item, "vid")
        duration = location.number(item, "duration", positive=True)
        windows = _windows(location, item, duration, required=require_windows)
        clip_ids, scores = _saliency(location, item, duration)
        records.append(
            MomentAnnotation(
                qid=qid,
                query=query,
                vid=vid,
                duration=duration,
                windows=windows,
                clip_ids=clip_ids,
                saliency_scores=scores,
                source=str(location),
                extra={k: v for k, v in item.items() if k not in _KNOWN},
            )
        )
    _check_unique(records)
    return records


def read_qvhighlights(path: str | Path, *, require_windows: bool = True) -> list[MomentAnnotation]:
    """Read ``highlight_{train,val}_release.jsonl`` / ``qvhighlights_{train,val,test}.jsonl``.

    Raises:
        InputError: as :func:`read_moment_annotations`.
    """
    return read_moment_annotations(path, require_windows=require_windows)


def read_tacos(path: str | Path) -> list[MomentAnnotation]:
    """Read TACoS ``{train,val,test}.jsonl`` (bare ``vid``; the official loader appends ``-cam-002`` to find
    features, see :func:`tacos_feature_id`).

    Raises:
        InputError: as :func:`read_moment_annotations`.
    """
    return read_moment_annotations(path)


def tacos_feature_id(vid: str) -> str:
    """The feature-file stem the official TACoS loader uses for ``vid`` (spec §9 quirk 14)."""
    return vid if vid.endswith("-cam-002") else f"{vid}-cam-002"


def read_ego4d_nlq(path: str | Path) -> list[MomentAnnotation]:
    """Read Ego4D-NLQ ``nlq_{train,val}.jsonl`` (UniVTG schema; ``video_uid`` is kept in ``extra``).

    Raises:
        InputError: as :func:`read_moment_annotations`.
    """
    return read_moment_annotations(path)


_CHARADES_LINE = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s*$")


def read_charades_sta_txt(
    path: str | Path, *, durations: Mapping[str, float] | None = None, qid_prefix: str | None = None
) -> list[MomentAnnotation]:
    """Read the original Charades-STA release (``VID START END##sentence`` per line).

    The raw files carry no query ids and no durations. Query ids are ``<prefix><index>`` with the 0-based
    line index, as in R2-Tuning's ``charades_{train,test}.jsonl`` (``"train0"``, ``"test0"``...); the prefix
    defaults to ``train``/``test`` when the file name contains it, else ``q``. ``durations`` (vid -> seconds)
    fills ``duration`` when given. Windows are kept as written: 4 training lines have START > END and the
    trainer's :func:`r2cli.data.labels.bind_boundary` swaps them, as the official loader does.

    Raises:
        InputError: a line does not have the ``VID START END##sentence`` shape.
    """
    from r2cli.data._io import _open_text

    path = Path(path)
    if qid_prefix is None:
        name = path.name.lower()
        qid_prefix = "train" if "train" in name else "test" if "test" in name else "q"
    records = []
    index = 0
    for number, line in enumerate(_open_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        location = Location(path, line=number)
        head, sep, sentence = line.partition("##")
        match = _CHARADES_LINE.match(head)
        if not sep or not match or not sentence.strip():
            raise InputError(f"{location}: expected 'VID START END##sentence', got {line[:60]!r}")
        vid = match.group(1)
        start, end = _float_or_none(match.group(2)), _float_or_none(match.group(3))
        if start is None or end is None or start < 0 or end < 0:
            raise InputError(f"{location}: START and END must be numbers of seconds >= 0, got {head!r}")
        duration = None
        if durations is not None:
            if vid not in durations:
                raise InputError(f"{location}: video {vid!r} has no entry in the durations table")
            duration = float(durations[vid])
        records.append(
            MomentAnnotation(
                qid=f"{qid_prefix}{index}",
                query=sentence.strip(),
                vid=vid,
                duration=duration,
                windows=((start, end),),
                source=str(location),
            )
        )
        index += 1
    return records


def _float_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def read_charades(path: str | Path, *, durations: Mapping[str, float] | None = None) -> list[MomentAnnotation]:
    """Read Charades-STA in either layout: the raw ``.txt`` release or the JSON Lines conversion
    (``charades_{train,test}.jsonl`` / ``charades_sta_*_tvr_format.jsonl``).

    Raises:
        InputError: as :func:`read_charades_sta_txt` or :func:`read_moment_annotations`.
    """
    if Path(path).suffix.lower() == ".txt":
        return read_charades_sta_txt(path, durations=durations)
    return read_moment_annotations(path)


def read_grounding_annotations(dataset: str, path: str | Path, **options: Any) -> list[MomentAnnotation]:
    """Dispatch to the reader of ``dataset`` (one of :data:`GROUNDING_DATASETS`).

    Raises:
        UsageError: unknown dataset name.
        InputError: as the dataset's reader.
    """
    from r2cli.errors import UsageError

    readers = {
        "qvhighlights": read_qvhighlights,
        "charades": read_charades,
        "tacos": read_tacos,
        "ego4d": read_ego4d_nlq,
        "user": read_user_annotations,  # a user's own annotations (``r2cli evaluate --dataset user``)
    }
    if dataset not in readers:
        raise UsageError(f"dataset must be one of {', '.join(readers)}, got {dataset!r}")
    return readers[dataset](path, **options)


def read_user_annotations(path: str | Path) -> list[MomentAnnotation]:
    """Read a user's own annotations in the QVHighlights JSON Lines format.

    Required per line: ``query``; ``vid`` (a video id, e.g. a catalog fingerprint or file stem) or
    ``video`` / ``video_path`` (a file path, relative paths resolved against the annotation file's folder);
    ``relevant_windows`` (``[[start, end], ...]`` in seconds, at least one). Optional: ``qid`` (defaults to
    the line number), ``duration`` (seconds; filled from the catalog later when absent), and QVHighlights
    ``relevant_clip_ids`` + ``saliency_scores``.

    Raises:
        InputError: naming the file, line and field of the first invalid record, or a repeated qid.
    """
    path = Path(path)
    records = []
    for location, item in iter_json_records(path):
        qid = location.identifier(item, "qid") if "qid" in item else (location.line or len(records) + 1)
        query = location.text(item, "query")
        vid = location.text(item, "vid", required=False)
        video_key = "video_path" if "video_path" in item else "video"
        video_path = location.text(item, video_key, required=False)
        if vid is None and video_path is None:
            raise InputError(f"{location}: give the video as field 'vid' (an id) or 'video' (a file path)")
        if video_path is not None and not Path(video_path).is_absolute():
            video_path = str((path.parent / video_path).resolve())
        duration = location.number(item, "duration", required=False, positive=True)
        windows = _windows(location, item, duration, required=True)
        zero = [w for w in windows if w[1] <= w[0]]
        if zero:
            raise location.fail("relevant_windows", "must have end > start", [list(w) for w in zero][:1])
        clip_ids, scores = _saliency(location, item, duration)
        records.append(
            MomentAnnotation(
                qid=qid,
                query=query,
                vid=vid,
                duration=duration,
                windows=windows,
                clip_ids=clip_ids,
                saliency_scores=scores,
                video_path=video_path,
                source=str(location),
                extra={k: v for k, v in item.items() if k not in _KNOWN | {"video", "video_path"}},
            )
        )
    if not records:
        raise InputError(f"{path}: holds no annotations")
    _check_unique(records)
    return records
