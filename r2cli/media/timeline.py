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
- OTIO: ranges at each source's real rate. FCPXML, FCP 7: ranges at the source's rate when it is a
  timecode rate (24, 25, 30, 48, 50, 60 or their NTSC forms 23.976, 29.97, 47.952, 59.94), else at
  the rate ``edl_timebase`` picks for it (20.41 fps variable -> 60, 1 -> 24, 15 -> 30); each
  such choice is a warning (``rate_warnings``) that ``r2cli cut`` puts in its result.
- FCPXML is written here (version 1.8: resources, then one project whose spine holds one
  ``asset-clip`` per cut), not by the adapter, whose writer looks clips up by name in XPath
  predicates (a quote in a name crashed it) and has no frame duration for NTSC or other rates.

Names are data: every file name, query and title reaches a line through ``one_line``
(``r2cli.safe_text``: no line breaks, control or bidirectional characters; bytes of non-UTF-8
names shown as ``\\xNN``), and the exact file travels as its percent-encoded ``file://`` URL.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

from r2cli.errors import InputError, MissingDependencyError, UsageError
from r2cli.safe_text import one_line

from r2cli.media.names import TIMELINE_FORMATS  # defined there once (#23)

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

# OTIO adapter (plugin) names of the editor formats (FCPXML is written here, read by its adapter)
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
        source = one_line(Path(self.path).name)
        rank = f" #{self.rank}" if self.rank is not None else ""
        return f"{one_line(self.query)} ({source}{rank})" if self.query else f"{source}{rank}"


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
            raise UsageError(f"{one_line(event.name)}: {event.start_s:.3f}-{event.end_s:.3f} s is shorter than one frame")


SMPTE_RATES = (24, 25, 30, 48, 50, 60)  # the timecode rates OpenTimelineIO (and CMX 3600 editors) accept
_RATE_TOLERANCE = 0.002  # fps: a source this close to a timecode rate (or its NTSC form) is at that rate


def edl_timebase(fps: float) -> int:
    """The EDL timecode rate of a source: its nominal rate when SMPTE allows it (29.97 -> 30), else the
    smallest SMPTE rate that is a multiple of it (10 -> 30, 12 -> 24, 5 -> 25, 20.41 -> 60), else the
    largest that divides it (120 -> 60, 100 -> 50), else 30."""
    rate = nominal_rate(fps)
    if rate in SMPTE_RATES:
        return rate
    multiple = next((r for r in SMPTE_RATES if r % rate == 0), None)
    divisor = next((r for r in reversed(SMPTE_RATES) if rate % r == 0), None)
    return multiple or divisor or 30


def editor_rate(fps: float) -> Fraction:
    """The rate FCPXML and FCP 7 XML place a source at: its own when it is a timecode rate (24, 25,
    30, 48, 50, 60, or 23.976, 29.97, 47.952, 59.94 exactly as n*1000/1001), else ``edl_timebase``
    of it (20.41 fps, a variable-rate average -> 60; 1 -> 24; 15 -> 30).

    Editors and OpenTimelineIO's timecode take only those rates; cut ranges are then whole frames
    of the chosen rate (for a substitute rate: within half a frame of it, finer than the source's).
    """
    for rate in SMPTE_RATES:
        if abs(fps - rate) <= _RATE_TOLERANCE:
            return Fraction(rate)
        ntsc = Fraction(rate * 1000, 1001)
        if abs(fps - float(ntsc)) <= _RATE_TOLERANCE:
            return ntsc
    return Fraction(edl_timebase(fps))


def _rate_text(fps: float) -> str:
    return f"{fps:.3f}".rstrip("0").rstrip(".")


def rate_warnings(format: str, events: Sequence["TimelineEvent"]) -> list[str]:
    """One line per source that ``format`` cannot place at its own frame rate, naming the rate chosen.

    OTIO keeps every rate and the captions and chapters are timed in seconds: no warnings. EDL has
    one timebase (``edl_timebase`` of the first source): a source counted at another rate is named.
    FCPXML and FCP 7: a source whose rate is not a timecode rate (``editor_rate``) is named.
    """
    if format not in ("edl", "fcpxml", "fcp7") or not events:
        return []
    warnings: list[str] = []
    seen: set[str] = set()
    for event in events:
        if event.path in seen:
            continue
        seen.add(event.path)
        if format == "edl":
            chosen = _edl_rate(event, events[0].fps)
            why = f"the EDL's timebase is {edl_timebase(events[0].fps)} fps"
        else:
            chosen = float(editor_rate(event.fps))
            why = f"{format} timelines take only timecode rates"
        if abs(chosen - event.fps) > _RATE_TOLERANCE:
            warnings.append(f"{one_line(Path(event.path).name)} is {_rate_text(event.fps)} fps and {why}: "
                            f"its cuts are placed in frames of {_rate_text(chosen)} fps")
    return warnings


def _edl_rate(event: TimelineEvent, edl_fps: float) -> float:
    """The rate an EDL event's frames are counted at (see the module notes)."""
    timebase = edl_timebase(edl_fps)
    other = edl_fps if nominal_rate(edl_fps) == timebase else float(timebase)
    return event.fps if nominal_rate(event.fps) == timebase else other


def _edl_frames(event: TimelineEvent, edl_fps: float) -> tuple[int, int]:
    """Source in/out frames of an EDL event on the EDL's timebase (see the module notes)."""
    return _frames(event, _edl_rate(event, edl_fps))


def build_timeline(
    events: Sequence[TimelineEvent], *, name: str = "r2cli", format: str = "otio", audio_track: bool = True
) -> Any:
    """An ``opentimelineio`` Timeline of ``events`` placed back to back, for the writer of ``format``.

    ``edl`` builds the single-video-track form the CMX 3600 writer takes: ranges on the EDL
    timebase and reel names in the clips' ``cmx_3600`` metadata. ``fcp7`` (and ``fcpxml``) place
    each source at ``editor_rate`` of it; ``otio`` at its own rate. ``audio_track=False`` leaves
    out the audio track. Names are passed through ``one_line``.

    Raises:
        UsageError: no events or an event shorter than one frame.
    """
    otio = _otio()
    _check_events(events)
    edl = format == "edl"
    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    edl_fps = events[0].fps
    edl_rate = edl_timebase(edl_fps)
    reels = _reel_names([e.path for e in events]) if edl else {}

    def rate_of(event: TimelineEvent) -> float:
        return float(edl_rate) if edl else event.fps if format == "otio" else float(editor_rate(event.fps))

    timeline = otio.schema.Timeline(name=one_line(name), global_start_time=rt(0, rate_of(events[0])))

    def clip(event: TimelineEvent) -> Any:
        rate = rate_of(event)
        if edl:
            start, end = _edl_frames(event, edl_fps)
            total = None
        else:
            start, end = _frames(event, rate)
            total = seconds_to_frames(event.duration_s, rate) if event.duration_s else None
            if total is None and format == "fcp7":  # its writer needs the media's length: at least the cut's end
                total = end
        reference = otio.schema.ExternalReference(
            target_url=_file_url(event.path),
            available_range=tr(rt(0, rate), rt(total, rate)) if total else None,
        )
        reference.name = one_line(Path(event.path).name)
        metadata: dict[str, Any] = {
            "r2cli": {"start_s": event.start_s, "end_s": event.end_s, "query": event.query, "rank": event.rank,
                      "score": event.score}
        }
        if edl:
            metadata["cmx_3600"] = {"reel": reels[event.path]}
        return otio.schema.Clip(name=one_line(event.name), media_reference=reference,
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


def _frames(event: TimelineEvent, rate: float) -> tuple[int, int]:
    """Source in/out frames of ``event`` at ``rate`` (``seconds_to_frames``), at least one frame long."""
    start, end = seconds_to_frames(event.start_s, rate), seconds_to_frames(event.end_s, rate)
    if end <= start:
        raise UsageError(f"{one_line(event.name)}: {event.start_s:.3f}-{event.end_s:.3f} s is shorter than one frame")
    return start, end


def _file_url(path: str) -> str:
    """The ``file://`` URL of ``path``, percent-encoded from its bytes (any legal name round-trips)."""
    return Path(path).resolve().as_uri()


def _fcpx_time(seconds: Fraction) -> str:
    """An FCPXML time: rational seconds, ``0s``, ``3s`` or ``1001/30000s``."""
    if seconds == 0:
        return "0s"
    return f"{seconds.numerator}s" if seconds.denominator == 1 else f"{seconds.numerator}/{seconds.denominator}s"


def fcpxml_text(events: Sequence[TimelineEvent], *, title: str = "r2cli") -> str:
    """FCPXML 1.8 of ``events``: one ``format`` per rate and one ``asset`` per source in the
    resources, then one project whose spine holds one ``asset-clip`` per event, back to back.

    Each source is placed at ``editor_rate`` of it; ranges are whole frames of that rate, written
    as exact rational seconds. Names are set as attribute values by ElementTree (quoted as XML
    requires) after ``one_line``; ``src`` is the percent-encoded file URL.

    Raises:
        UsageError: no events or an event shorter than one frame.
    """
    import xml.etree.ElementTree as ET

    _check_events(events)
    root = ET.Element("fcpxml", {"version": "1.8"})
    resources = ET.SubElement(root, "resources")
    formats: dict[Fraction, str] = {}
    assets: dict[str, str] = {}

    def next_id() -> str:
        return f"r{len(formats) + len(assets) + 1}"

    def format_id(rate: Fraction) -> str:
        if rate not in formats:
            formats[rate] = next_id()
            ET.SubElement(resources, "format", {"id": formats[rate], "frameDuration": _fcpx_time(1 / rate)})
        return formats[rate]

    spine_items = []
    offset = Fraction(0)
    for event in events:
        rate = editor_rate(event.fps)
        start, end = _frames(event, float(rate))
        fmt = format_id(rate)
        if event.path not in assets:
            total = seconds_to_frames(event.duration_s, float(rate)) if event.duration_s else end
            assets[event.path] = next_id()
            ET.SubElement(resources, "asset", {
                "id": assets[event.path], "name": one_line(Path(event.path).name), "src": _file_url(event.path),
                "start": "0s", "duration": _fcpx_time(max(total, end) / rate), "hasVideo": "1",
                "hasAudio": "1" if event.has_audio else "0", "format": fmt,
            })
        duration = (end - start) / rate
        spine_items.append({
            "name": one_line(event.name), "ref": assets[event.path], "offset": _fcpx_time(offset),
            "start": _fcpx_time(start / rate), "duration": _fcpx_time(duration), "format": fmt, "tcFormat": "NDF",
        })
        offset += duration
    project = ET.SubElement(root, "project", {"name": one_line(title)})
    sequence = ET.SubElement(project, "sequence", {
        "format": format_id(editor_rate(events[0].fps)), "duration": _fcpx_time(offset), "tcStart": "0s",
        "tcFormat": "NDF",
    })
    spine = ET.SubElement(sequence, "spine")
    for item in spine_items:
        ET.SubElement(spine, "asset-clip", item)
    ET.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n\n' + ET.tostring(root, encoding="unicode") + "\n"


def timeline_text(format: str, events: Sequence[TimelineEvent], *, title: str = "r2cli") -> str:
    """The text of ``events`` as an editor file (``edl``, ``otio``, ``fcpxml`` or ``fcp7``).

    Raises:
        UsageError: unknown format, no events, or an event shorter than one frame.
        MissingDependencyError: the OTIO adapter plugin of the format is not installed.
    """
    if format not in _ADAPTERS:
        raise UsageError(f"editor format must be one of {', '.join(_ADAPTERS)}, got {format!r}")
    if format == "fcpxml":
        return fcpxml_text(events, title=title)
    otio = _otio()
    timeline = build_timeline(events, name=one_line(title)[:70], format=format)
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
    written = chapters.write_text(target, chapters.ffmetadata_text(marks, title=title), force)
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

    Clip names are "<source file name> <query> #<rank>" (the query part when there is one); the
    writers pass them through ``one_line``.
    """
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
