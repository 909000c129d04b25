"""Editor timelines from cut lists: CMX 3600 edit decision lists and OpenTimelineIO (.otio).

EDL conventions
- ``FCM: NON-DROP FRAME``; timecodes count frames at the nominal integer rate (round(fps):
  25 → 25, 29.97 → 30, 23.976 → 24). Source timecodes use each event's source rate; record
  timecodes use the rate of the first event and start at 01:00:00:00.
- Frame numbers are ``seconds × fps`` rounded half up, with the real rate; an event covers the frames
  [in, out) (the out timecode is exclusive, as CMX 3600 defines).
- Reel names: up to 8 characters from [A-Z0-9_] taken from the source file stem, made unique
  per EDL. Each event has ``* FROM CLIP NAME:`` and ``* SOURCE FILE:`` comments (the absolute
  path), which Resolve, Premiere and OpenTimelineIO's cmx_3600 adapter read.
- Track: ``AA/V`` when the source has audio, else ``V``.

OTIO: one video track (and one audio track when any source has audio) of clips whose media
references point at the source files (``file://`` URLs) with their available range, and whose
source ranges are the cut in frames at the source rate. Written with the ``opentimelineio``
package when it is installed, else as the same JSON by hand.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from r2cli._atomic import write_text_atomic
from r2cli.errors import InputError, UsageError

RECORD_START_FRAMES_HOURS = 1  # record timecode starts at 01:00:00:00
TIMELINE_FORMATS = ("edl", "otio")


@dataclass(frozen=True)
class TimelineEvent:
    """One cut to place on a timeline."""

    path: str  # absolute path of the source video
    start_s: float  # source in, seconds
    end_s: float  # source out, seconds (exclusive)
    fps: float  # source frame rate
    name: str  # clip name shown in the editor
    has_audio: bool = False  # the source has an audio stream
    duration_s: float | None = None  # source duration (available range), if known


def seconds_to_frames(seconds: float, fps: float) -> int:
    """Frame number at ``seconds``: ``seconds × fps`` rounded half up (1e-6 frame slack for float error)."""
    return int(math.floor(seconds * fps + 0.5 + 1e-6))


def nominal_rate(fps: float) -> int:
    """The integer timecode base of a frame rate (29.97 → 30)."""
    if not fps > 0:
        raise UsageError(f"frame rate must be > 0, got {fps}")
    return max(1, int(round(fps)))


def frames_to_timecode(frames: int, rate: int) -> str:
    """HH:MM:SS:FF of a frame count at an integer (non-drop) timecode rate."""
    if frames < 0:
        raise UsageError(f"timecode frames must be >= 0, got {frames}")
    seconds, ff = divmod(frames, rate)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"


def timecode_to_frames(timecode: str, rate: int) -> int:
    """Frame count of HH:MM:SS:FF (or HH:MM:SS;FF) at an integer timecode rate.

    Raises:
        InputError: not a timecode, or frames >= rate.
    """
    match = re.fullmatch(r"(\d{2}):(\d{2}):(\d{2})[:;.](\d{2,3})", timecode.strip())
    if not match:
        raise InputError(f"not a timecode: {timecode!r}")
    hh, mm, ss, ff = (int(g) for g in match.groups())
    if ff >= rate or mm >= 60 or ss >= 60:
        raise InputError(f"timecode {timecode!r} is out of range at {rate} fps")
    return ((hh * 60 + mm) * 60 + ss) * rate + ff


def _reel_names(paths: Sequence[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    used: set[str] = set()
    for path in paths:
        if path in names:
            continue
        base = re.sub(r"[^A-Z0-9_]", "", Path(path).stem.upper().replace("-", "_").replace(" ", "_"))[:8] or "REEL"
        name, n = base, 1
        while name in used:
            n += 1
            tail = f"{n:03d}"
            name = base[: 8 - len(tail)] + tail
        used.add(name)
        names[path] = name
    return names


def _comment_safe(text: str) -> str:
    return re.sub(r"[\r\n]+", " ", text)


def _atomic_write_text(path: Path, text: str, force: bool) -> Path:
    if path.exists() and not force:
        raise UsageError(f"{path} exists (use --force to overwrite)")
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def edl_text(events: Sequence[TimelineEvent], *, title: str = "r2cli") -> str:
    """The CMX 3600 text of ``events`` placed back to back.

    Raises:
        UsageError: no events, or an event that is shorter than one frame.
    """
    if not events:
        raise UsageError("an EDL needs at least one event")
    record_rate_real = events[0].fps
    record_rate = nominal_rate(record_rate_real)
    reels = _reel_names([e.path for e in events])
    record = RECORD_START_FRAMES_HOURS * 3600 * record_rate
    lines = [f"TITLE: {_comment_safe(title)[:70]}", "FCM: NON-DROP FRAME", ""]
    for number, event in enumerate(events, start=1):
        rate = nominal_rate(event.fps)
        src_in = seconds_to_frames(event.start_s, event.fps)
        src_out = seconds_to_frames(event.end_s, event.fps)
        if src_out <= src_in:
            raise UsageError(f"{event.name}: {event.start_s:.3f}-{event.end_s:.3f} s is shorter than one frame")
        length = src_out - src_in if rate == record_rate else seconds_to_frames(event.end_s - event.start_s, record_rate_real)
        track = "AA/V" if event.has_audio else "V"
        lines.append(
            f"{number:03d}  {reels[event.path]:<8} {track:<5} C        "
            f"{frames_to_timecode(src_in, rate)} {frames_to_timecode(src_out, rate)} "
            f"{frames_to_timecode(record, record_rate)} {frames_to_timecode(record + length, record_rate)}"
        )
        lines.append(f"* FROM CLIP NAME: {_comment_safe(event.name)}")
        lines.append(f"* SOURCE FILE: {_comment_safe(event.path)}")
        lines.append("")
        record += length
    return "\n".join(lines)


def write_edl(events: Sequence[TimelineEvent], path: str | os.PathLike, *, title: str = "r2cli", force: bool = False) -> Path:
    """Write a CMX 3600 EDL atomically.

    Raises:
        UsageError: no events, an event shorter than a frame, or ``path`` exists without ``force``.
        InputError: the file cannot be written.
    """
    return _atomic_write_text(Path(path), edl_text(events, title=title), force)


@dataclass
class EdlEvent:
    """One event of a parsed EDL (timecodes as frame counts at the nominal rate)."""

    number: int
    reel: str
    track: str
    transition: str
    source_in: int
    source_out: int
    record_in: int
    record_out: int
    clip_name: str | None = None
    source_file: str | None = None


@dataclass
class EdlDocument:
    title: str | None
    fcm: str | None
    events: list[EdlEvent] = field(default_factory=list)


_EVENT_RE = re.compile(
    r"^(\d{3,6})\s+(\S+)\s+(\S+)\s+(C|D|W\d+|K\S*)\s+(?:\d+\s+)?"
    r"(\d{2}:\d{2}:\d{2}[:;]\d{2})\s+(\d{2}:\d{2}:\d{2}[:;]\d{2})\s+"
    r"(\d{2}:\d{2}:\d{2}[:;]\d{2})\s+(\d{2}:\d{2}:\d{2}[:;]\d{2})\s*$"
)


def read_edl(path: str | os.PathLike, *, rate: int) -> EdlDocument:
    """Parse a CMX 3600 EDL (cuts, with FROM CLIP NAME and SOURCE FILE comments).

    ``rate`` is the integer timecode rate used to turn timecodes into frame counts.

    Raises:
        InputError: a line that is neither a header, an event nor a comment (file and line named).
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot read the EDL: {exc}") from None
    doc = EdlDocument(title=None, fcm=None)
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("TITLE:"):
            doc.title = stripped[6:].strip()
        elif stripped.startswith("FCM:"):
            doc.fcm = stripped[4:].strip()
        elif stripped.startswith("*"):
            if not doc.events:
                continue
            body = stripped[1:].strip()
            if body.startswith("FROM CLIP NAME:"):
                doc.events[-1].clip_name = body[len("FROM CLIP NAME:") :].strip()
            elif body.startswith("SOURCE FILE:"):
                doc.events[-1].source_file = body[len("SOURCE FILE:") :].strip()
        else:
            match = _EVENT_RE.match(stripped)
            if not match:
                raise InputError(f"{source}:{line_number}: not a CMX 3600 event line: {stripped!r}")
            number, reel, track, transition, *codes = match.groups()
            frames = [timecode_to_frames(code, rate) for code in codes]
            doc.events.append(EdlEvent(int(number), reel, track, transition, *frames))
    return doc


def _rational(value: float, rate: float) -> dict:
    return {"OTIO_SCHEMA": "RationalTime.1", "rate": float(rate), "value": float(value)}


def _range(start: float, duration: float, rate: float) -> dict:
    return {"OTIO_SCHEMA": "TimeRange.1", "duration": _rational(duration, rate), "start_time": _rational(start, rate)}


def _frames(event: TimelineEvent) -> tuple[int, int, int | None]:
    start = seconds_to_frames(event.start_s, event.fps)
    end = seconds_to_frames(event.end_s, event.fps)
    total = seconds_to_frames(event.duration_s, event.fps) if event.duration_s else None
    return start, end, total


def _otio_dict(events: Sequence[TimelineEvent], name: str) -> dict:
    """OTIO JSON (Timeline.1) built by hand: the fallback when opentimelineio is not installed."""

    def clip(event: TimelineEvent) -> dict:
        start, end, total = _frames(event)
        return {
            "OTIO_SCHEMA": "Clip.2",
            "metadata": {"r2cli": {"start_s": event.start_s, "end_s": event.end_s}},
            "name": event.name,
            "source_range": _range(start, end - start, event.fps),
            "effects": [],
            "markers": [],
            "enabled": True,
            "color": None,
            "media_references": {
                "DEFAULT_MEDIA": {
                    "OTIO_SCHEMA": "ExternalReference.1",
                    "metadata": {},
                    "name": Path(event.path).name,
                    "available_range": _range(0, total, event.fps) if total else None,
                    "available_image_bounds": None,
                    "target_url": Path(event.path).resolve().as_uri(),
                }
            },
            "active_media_reference_key": "DEFAULT_MEDIA",
        }

    def track(track_name: str, kind: str, items: Sequence[TimelineEvent]) -> dict:
        return {
            "OTIO_SCHEMA": "Track.1",
            "metadata": {},
            "name": track_name,
            "source_range": None,
            "effects": [],
            "markers": [],
            "enabled": True,
            "color": None,
            "children": [clip(e) for e in items],
            "kind": kind,
        }

    tracks = [track("V1", "Video", events)]
    if any(e.has_audio for e in events):
        tracks.append(track("A1", "Audio", events))
    return {
        "OTIO_SCHEMA": "Timeline.1",
        "metadata": {},
        "name": name,
        "global_start_time": _rational(0, events[0].fps),
        "tracks": {
            "OTIO_SCHEMA": "Stack.1",
            "metadata": {},
            "name": "tracks",
            "source_range": None,
            "effects": [],
            "markers": [],
            "enabled": True,
            "color": None,
            "children": tracks,
        },
    }


def otio_text(events: Sequence[TimelineEvent], *, name: str = "r2cli", use_package: bool | None = None) -> str:
    """OTIO JSON of ``events`` placed back to back on one video (and one audio) track.

    ``use_package`` None → use ``opentimelineio`` when importable; False → the built-in writer.

    Raises:
        UsageError: no events or an event shorter than one frame.
        MissingDependencyError: ``use_package=True`` but opentimelineio is not installed.
    """
    from r2cli.errors import MissingDependencyError

    if not events:
        raise UsageError("a timeline needs at least one event")
    for event in events:
        start, end, _ = _frames(event)
        if end <= start:
            raise UsageError(f"{event.name}: {event.start_s:.3f}-{event.end_s:.3f} s is shorter than one frame")
    otio = None
    if use_package is not False:
        try:
            import opentimelineio as otio
        except ImportError:
            if use_package:
                raise MissingDependencyError(
                    "opentimelineio is not installed; pip install opentimelineio (or r2cli[dev])"
                ) from None
    if otio is None:
        return json.dumps(_otio_dict(events, name), indent=4, ensure_ascii=False) + "\n"
    timeline = otio.schema.Timeline(name=name, global_start_time=otio.opentime.RationalTime(0, events[0].fps))

    def add_track(track_name: str, kind: Any) -> None:
        track = otio.schema.Track(name=track_name, kind=kind)
        for event in events:
            start, end, total = _frames(event)
            available = (
                otio.opentime.TimeRange(otio.opentime.RationalTime(0, event.fps), otio.opentime.RationalTime(total, event.fps))
                if total
                else None
            )
            reference = otio.schema.ExternalReference(
                target_url=Path(event.path).resolve().as_uri(), available_range=available
            )
            reference.name = Path(event.path).name
            track.append(
                otio.schema.Clip(
                    name=event.name,
                    media_reference=reference,
                    source_range=otio.opentime.TimeRange(
                        otio.opentime.RationalTime(start, event.fps), otio.opentime.RationalTime(end - start, event.fps)
                    ),
                    metadata={"r2cli": {"start_s": event.start_s, "end_s": event.end_s}},
                )
            )
        timeline.tracks.append(track)

    add_track("V1", otio.schema.TrackKind.Video)
    if any(e.has_audio for e in events):
        add_track("A1", otio.schema.TrackKind.Audio)
    return otio.adapters.write_to_string(timeline, "otio_json")


def write_otio(
    events: Sequence[TimelineEvent], path: str | os.PathLike, *, name: str = "r2cli", force: bool = False
) -> Path:
    """Write an OpenTimelineIO timeline (.otio JSON) atomically.

    Raises:
        UsageError: no events, an event shorter than a frame, or ``path`` exists without ``force``.
        InputError: the file cannot be written.
    """
    return _atomic_write_text(Path(path), otio_text(events, name=name), force)


def write_timeline(
    items: Sequence[tuple[Any, Any, float, float]],
    path: str | os.PathLike,
    *,
    format: str,
    title: str = "r2cli",
    force: bool = False,
) -> Path:
    """Write checked cut items ``(Segment, MediaInfo, start_s, end_s)`` as an EDL or OTIO file.

    Clip names are "<source file name> <query> #<rank>" (the query part when there is one).

    Raises:
        UsageError: no items, unknown format, or ``path`` exists without ``force``.
        InputError: the file cannot be written.
    """
    if not items:
        raise UsageError(f"{path}: no usable rows to put on the timeline")
    events = []
    for segment, info, start, end in items:
        label = Path(segment.path).name
        if segment.query:
            label += f" {segment.query}"
        if segment.rank is not None:
            label += f" #{segment.rank}"
        events.append(
            TimelineEvent(
                path=str(Path(segment.path).resolve()),
                start_s=start,
                end_s=end,
                fps=info.fps,
                name=label,
                has_audio=info.has_audio,
                duration_s=info.frame_count / info.fps if info.frame_count else info.duration,
            )
        )
    if format == "edl":
        return write_edl(events, path, title=title, force=force)
    if format == "otio":
        return write_otio(events, path, name=title, force=force)
    raise UsageError(f"--format must be edl or otio for a timeline, got {format!r}")
