"""Editor timelines and sidecar files from cut lists, written and read through OpenTimelineIO.

Formats (``TIMELINE_FORMATS``; ``r2cli cut --format``):

- ``otio``: OpenTimelineIO JSON; ``edl``: CMX 3600 (``otio-cmx3600-adapter``); ``fcpxml``: Final
  Cut Pro X XML (``otio-fcpx-xml-adapter``); ``fcp7``: Final Cut Pro 7 / Premiere XML
  (``otio-fcp-adapter``). One video track (and for otio/fcp7 one audio track when any source has
  audio; FCPXML clips carry their audio) of clips back to back whose media references point at the source files (``file://``
  URLs) and whose source ranges are the cuts in frames.
- ``vtt`` / ``srt``: captions labelling each cut with its query (and source name, rank), and
  ``chapters``: an ffmetadata chapter file (``<stem>.chapters.txt``) plus the same chapters as
  WebVTT (``<stem>.chapters.vtt``). These are timed on the record side: the cuts back to back from
  0 s, exactly as ``r2cli cut --concat`` joins the same rows into a reel, so
  ``ffmpeg -i reel.mp4 -i X.chapters.txt -map_metadata 1 -map_chapters 1 -c copy out.mp4`` embeds them.

Frame conventions
- Frame numbers are ``seconds x fps`` rounded half up with the real rate; a cut covers the frames
  [in, out) (out exclusive, as CMX 3600 defines).
- EDL: one timebase, the nominal integer rate of the first event (25 -> 25, 29.97 -> 30,
  23.976 -> 24; a rate SMPTE timecode lacks goes to a multiple of it: 10 -> 30, see
  ``edl_timebase``), non-drop; events whose source has that nominal rate count frames at their real
  rate, others count frames at the timebase. The record side starts at 00:00:00:00
  (what the adapter writes). Reel names: up to 8 characters of [A-Z0-9_] from the source file
  stem, unique per EDL; each event carries ``* FROM CLIP NAME:`` and ``* FROM CLIP:`` (the file URL).
- OTIO, FCPXML, FCP 7: ranges at each source's real rate.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from r2cli.errors import InputError, MissingDependencyError, UsageError

TIMELINE_FORMATS = ("edl", "otio", "fcpxml", "fcp7", "vtt", "srt", "chapters")
"""Every ``--format`` of ``r2cli cut`` that writes a file describing the cut list (not media)."""

TIMELINE_SUFFIXES = {
    "edl": ".edl",
    "otio": ".otio",
    "fcpxml": ".fcpxml",
    "fcp7": ".xml",
    "vtt": ".vtt",
    "srt": ".srt",
    "chapters": ".chapters.txt",
}
CHAPTERS_VTT_SUFFIX = ".chapters.vtt"  # the WebVTT twin of the ffmetadata chapter file

# OTIO adapter (plugin) names of the editor formats
_ADAPTERS = {"edl": "cmx_3600", "otio": "otio_json", "fcpxml": "fcpx_xml", "fcp7": "fcp_xml"}
_PLUGINS = {"edl": "otio-cmx3600-adapter", "fcpxml": "otio-fcpx-xml-adapter", "fcp7": "otio-fcp-adapter"}


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
    query: str | None = None  # the query the cut answers (captions, chapters)
    rank: int | None = None  # its rank
    score: float | None = None  # its score (or mean saliency)

    @property
    def label(self) -> str:
        """Caption / chapter text: the query (or the clip name) with the source name and rank."""
        source = Path(self.path).name
        rank = f" #{self.rank}" if self.rank is not None else ""
        return f"{self.query} ({source}{rank})" if self.query else f"{source}{rank}"


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


def _otio() -> Any:
    try:
        import opentimelineio as otio
    except ImportError:  # a runtime dependency; only a broken install lacks it
        raise MissingDependencyError("opentimelineio is not installed; pip install opentimelineio") from None
    return otio


def _check_events(events: Sequence[TimelineEvent]) -> None:
    if not events:
        raise UsageError("a timeline needs at least one event")
    for event in events:
        if seconds_to_frames(event.end_s, event.fps) <= seconds_to_frames(event.start_s, event.fps):
            raise UsageError(f"{event.name}: {event.start_s:.3f}-{event.end_s:.3f} s is shorter than one frame")


SMPTE_RATES = (24, 25, 30, 48, 50, 60)  # the timecode rates OpenTimelineIO (and CMX 3600 editors) accept


def edl_timebase(fps: float) -> int:
    """The EDL timecode rate of a source: its nominal rate when SMPTE allows it (29.97 -> 30), else the
    smallest SMPTE rate that is a multiple of it (10 -> 30, 12 -> 24, 5 -> 25), else 30."""
    rate = nominal_rate(fps)
    if rate in SMPTE_RATES:
        return rate
    return next((r for r in SMPTE_RATES if r % rate == 0), 30)


def _edl_frames(event: TimelineEvent, edl_fps: float) -> tuple[int, int]:
    """Source in/out frames of an EDL event on the EDL's timebase (see the module notes)."""
    timebase = edl_timebase(edl_fps)
    other = edl_fps if nominal_rate(edl_fps) == timebase else float(timebase)
    fps = event.fps if nominal_rate(event.fps) == timebase else other
    start, end = seconds_to_frames(event.start_s, fps), seconds_to_frames(event.end_s, fps)
    if end <= start:
        raise UsageError(f"{event.name}: {event.start_s:.3f}-{event.end_s:.3f} s is shorter than one frame")
    return start, end


def build_timeline(
    events: Sequence[TimelineEvent], *, name: str = "r2cli", edl: bool = False, audio_track: bool = True
) -> Any:
    """An ``opentimelineio`` Timeline of ``events`` placed back to back.

    ``edl=True`` builds the single-video-track form the CMX 3600 writer takes: ranges on the EDL
    timebase and reel names in the clips' ``cmx_3600`` metadata. ``audio_track=False`` leaves out
    the audio track (FCPXML keeps a clip's audio with its video, and its writer takes one spine).

    Raises:
        UsageError: no events or an event shorter than one frame.
    """
    otio = _otio()
    _check_events(events)
    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    edl_fps = events[0].fps
    edl_rate = edl_timebase(edl_fps)
    reels = _reel_names([e.path for e in events]) if edl else {}
    timeline = otio.schema.Timeline(name=name, global_start_time=rt(0, edl_rate if edl else events[0].fps))

    def clip(event: TimelineEvent) -> Any:
        if edl:
            start, end = _edl_frames(event, edl_fps)
            rate, total = float(edl_rate), None
        else:
            start, end = seconds_to_frames(event.start_s, event.fps), seconds_to_frames(event.end_s, event.fps)
            rate = event.fps
            total = seconds_to_frames(event.duration_s, event.fps) if event.duration_s else None
        reference = otio.schema.ExternalReference(
            target_url=Path(event.path).resolve().as_uri(),
            available_range=tr(rt(0, rate), rt(total, rate)) if total else None,
        )
        reference.name = Path(event.path).name
        metadata: dict[str, Any] = {
            "r2cli": {"start_s": event.start_s, "end_s": event.end_s, "query": event.query, "rank": event.rank,
                      "score": event.score}
        }
        if edl:
            metadata["cmx_3600"] = {"reel": reels[event.path]}
        return otio.schema.Clip(name=event.name, media_reference=reference,
                                source_range=tr(rt(start, rate), rt(end - start, rate)), metadata=metadata)

    tracks = [("V1", otio.schema.TrackKind.Video)]
    if audio_track and not edl and any(e.has_audio for e in events):
        tracks.append(("A1", otio.schema.TrackKind.Audio))
    for track_name, kind in tracks:
        track = otio.schema.Track(name=track_name, kind=kind)
        for event in events:
            track.append(clip(event))
        timeline.tracks.append(track)
    return timeline


def timeline_text(format: str, events: Sequence[TimelineEvent], *, title: str = "r2cli") -> str:
    """The text of ``events`` as an editor file (``edl``, ``otio``, ``fcpxml`` or ``fcp7``).

    Raises:
        UsageError: unknown format, no events, or an event shorter than one frame.
        MissingDependencyError: the OTIO adapter plugin of the format is not installed.
    """
    if format not in _ADAPTERS:
        raise UsageError(f"editor format must be one of {', '.join(_ADAPTERS)}, got {format!r}")
    otio = _otio()
    timeline = build_timeline(events, name=_one_line(title)[:70], edl=format == "edl", audio_track=format != "fcpxml")
    options = {"rate": edl_timebase(events[0].fps)} if format == "edl" else {}
    _check_adapter(otio, format)
    return otio.adapters.write_to_string(timeline, _ADAPTERS[format], **options)


def _check_adapter(otio: Any, format: str) -> None:
    """Raise MissingDependencyError when the OTIO plugin of ``format`` is not installed."""
    try:
        otio.plugins.ActiveManifest().from_name(_ADAPTERS[format])
    except otio.exceptions.NotSupportedError:
        plugin = _PLUGINS.get(format, "opentimelineio")
        raise MissingDependencyError(
            f"--format {format} needs the OpenTimelineIO plugin {plugin}; pip install {plugin}"
        ) from None


def edl_text(events: Sequence[TimelineEvent], *, title: str = "r2cli") -> str:
    """The CMX 3600 text of ``events`` (see the module notes for the conventions)."""
    return timeline_text("edl", events, title=title)


def otio_text(events: Sequence[TimelineEvent], *, name: str = "r2cli") -> str:
    """OTIO JSON of ``events`` placed back to back on one video (and one audio) track."""
    return timeline_text("otio", events, title=name)


def read_timeline(path: str | os.PathLike, format: str, *, rate: float | None = None) -> Any:
    """Read an editor file back into an ``opentimelineio`` Timeline (``rate``: an EDL's timebase).

    Raises:
        UsageError: unknown format, or an EDL without ``rate``.
        InputError: the file cannot be read or parsed (file named).
    """
    if format not in _ADAPTERS:
        raise UsageError(f"editor format must be one of {', '.join(_ADAPTERS)}, got {format!r}")
    if format == "edl" and not rate:
        raise UsageError("reading an EDL needs its timecode rate")
    otio = _otio()
    _check_adapter(otio, format)
    options = {"rate": rate} if format == "edl" else {}
    try:
        return otio.adapters.read_from_file(str(path), _ADAPTERS[format], **options)
    except (OSError, ValueError, otio.exceptions.OTIOError) as exc:
        raise InputError(f"{path}: cannot read the {format} file: {exc}") from None


def record_marks(events: Sequence[TimelineEvent]) -> list:
    """Caption/chapter marks of ``events`` timed back to back from 0 s (the reel's time line).

    Each event lasts its frame-exact length at its source rate (as the reel cuts it).
    """
    from r2cli.media.chapters import Mark

    _check_events(events)
    marks, clock = [], 0.0
    for event in events:
        frames = seconds_to_frames(event.end_s, event.fps) - seconds_to_frames(event.start_s, event.fps)
        length = frames / event.fps
        marks.append(Mark(clock, clock + length, event.label))
        clock += length
    return marks


def _one_line(text: str) -> str:
    return re.sub(r"[\r\n]+", " ", text)


def write_events(
    format: str, events: Sequence[TimelineEvent], path: str | os.PathLike, *, title: str = "r2cli", force: bool = False
) -> Path:
    """Write ``events`` in ``format`` (one of ``TIMELINE_FORMATS``) at ``path``, atomically.

    ``chapters`` writes the ffmetadata file at ``path`` and its WebVTT twin next to it
    (``path`` with ``.chapters.vtt`` instead of ``.chapters.txt``).

    Raises:
        UsageError: unknown format, no events, an event shorter than a frame, or ``path``
            (or the chapters' twin) exists without ``force``.
        InputError: the file cannot be written.
        MissingDependencyError: the OTIO adapter plugin of the format is not installed.
    """
    from r2cli.media import chapters

    if format not in TIMELINE_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(TIMELINE_FORMATS)} for a timeline, got {format!r}")
    target = Path(path)
    if format in _ADAPTERS:
        text = timeline_text(format, events, title=title)
        return chapters.write_text(target, text, force)
    marks = record_marks(events)
    if format == "vtt":
        return chapters.write_text(target, chapters.webvtt_text(marks), force)
    if format == "srt":
        return chapters.write_text(target, chapters.srt_text(marks), force)
    twin = chapters_vtt_path(target)
    if twin.exists() and not force:
        raise UsageError(f"{twin} exists (use --force to overwrite)")
    written = chapters.write_text(target, chapters.ffmetadata_text(marks, title=_one_line(title)), force)
    chapters.write_text(twin, chapters.webvtt_text(marks), True)
    return written


def chapters_vtt_path(path: str | os.PathLike) -> Path:
    """The WebVTT twin of an ffmetadata chapter file."""
    target = Path(path)
    name = target.name
    stem = name[: -len(".chapters.txt")] if name.endswith(".chapters.txt") else target.stem
    return target.with_name(stem + CHAPTERS_VTT_SUFFIX)


def cut_events(items: Sequence[tuple[Any, Any, float, float]]) -> list[TimelineEvent]:
    """Timeline events of checked cut items ``(Segment, MediaInfo, start_s, end_s)``.

    Clip names are "<source file name> <query> #<rank>" (the query part when there is one).
    """
    events = []
    for segment, info, start, end in items:
        label = Path(segment.path).name
        if segment.query:
            label += f" {_one_line(segment.query)}"
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
                query=segment.query,
                rank=segment.rank,
                score=segment.score,
            )
        )
    return events


def write_timeline(
    items: Sequence[tuple[Any, Any, float, float]],
    path: str | os.PathLike,
    *,
    format: str,
    title: str = "r2cli",
    force: bool = False,
) -> Path:
    """Write checked cut items ``(Segment, MediaInfo, start_s, end_s)`` in ``format`` (``TIMELINE_FORMATS``).

    Raises:
        UsageError: no items, unknown format, or ``path`` exists without ``force``.
        InputError: the file cannot be written.
    """
    if not items:
        raise UsageError(f"{path}: no usable rows to put on the timeline")
    return write_events(format, cut_events(items), path, title=title, force=force)


def timeline_path(out_dir: str | os.PathLike, stem: str, format: str) -> Path:
    """Where ``r2cli cut --format FORMAT`` writes: ``out_dir/<stem><suffix of the format>``."""
    if format not in TIMELINE_SUFFIXES:
        raise UsageError(f"--format must be one of {', '.join(TIMELINE_FORMATS)} for a timeline, got {format!r}")
    return Path(out_dir) / f"{stem}{TIMELINE_SUFFIXES[format]}"
