"""Chapter and caption files: WebVTT (captions or chapters), SubRip (SRT) and ffmetadata chapters.

Each file is a list of ``Mark``s (start, end, text) on one time line. The writers are plain
text formats with fixed grammars (WebVTT: W3C; SRT; ffmpeg's FFMETADATA1), so they are written
here and read back by the small readers below, which the tests use to check a round trip.

``ffmpeg -i video.mp4 -i chapters.txt -map_metadata 1 -map_chapters 1 -c copy out.mp4``
embeds an ffmetadata chapter file in a video.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from r2cli.errors import InputError, UsageError
from r2cli.safe_text import one_line

FFMETADATA_TIMEBASE = 1000  # chapter times in milliseconds


@dataclass(frozen=True)
class Mark:
    """One cue or chapter: [start_s, end_s) with a one-line text."""

    start_s: float
    end_s: float
    text: str


def _check(marks: Sequence[Mark]) -> None:
    if not marks:
        raise UsageError("a chapter or caption file needs at least one entry")
    for mark in marks:
        if not (math.isfinite(mark.start_s) and math.isfinite(mark.end_s)) or mark.start_s < 0 or mark.end_s <= mark.start_s:
            raise UsageError(f"{_one_line(mark.text)!r}: {mark.start_s}-{mark.end_s} s is not a time range (0 <= start < end)")


def _one_line(text: str) -> str:
    # names and queries are data: one line (``one_line``), and never blank (a blank line ends a cue)
    return one_line(text).strip() or "-"


def _clock(seconds: float, sep: str) -> str:
    total_ms = int(round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def _vtt_escape(text: str) -> str:
    # WebVTT cue text is markup: & and < start entities and tags; "-->" would end a timing line
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt_text(marks: Sequence[Mark]) -> str:
    """A WebVTT file with one cue per mark (use as captions, or as ``<track kind="chapters">``).

    Raises:
        UsageError: no marks, or a mark that is not a time range.
    """
    _check(marks)
    lines = ["WEBVTT", ""]
    for number, mark in enumerate(marks, start=1):
        lines += [str(number), f"{_clock(mark.start_s, '.')} --> {_clock(mark.end_s, '.')}", _vtt_escape(mark.text), ""]
    return "\n".join(lines)


def _srt_escape(text: str) -> str:
    # SubRip has no escapes; a text line that reads as a timing line ("-->") would start a new cue
    return _one_line(text).replace("-->", "-- >")


def srt_text(marks: Sequence[Mark]) -> str:
    """A SubRip file with one cue per mark.

    Raises:
        UsageError: no marks, or a mark that is not a time range.
    """
    _check(marks)
    lines = []
    for number, mark in enumerate(marks, start=1):
        lines += [str(number), f"{_clock(mark.start_s, ',')} --> {_clock(mark.end_s, ',')}", _srt_escape(mark.text), ""]
    return "\n".join(lines)


def _ffmeta_escape(text: str) -> str:
    return re.sub(r"([=;#\\])", r"\\\1", _one_line(text))


def ffmetadata_text(marks: Sequence[Mark], *, title: str | None = None) -> str:
    """An ffmpeg FFMETADATA1 file with one ``[CHAPTER]`` per mark (times in milliseconds).

    Raises:
        UsageError: no marks, a mark that is not a time range, or chapters that overlap.
    """
    _check(marks)
    ordered = sorted(marks, key=lambda m: m.start_s)
    for a, b in zip(ordered, ordered[1:]):
        if b.start_s < a.end_s - 1e-9:
            raise UsageError(f"chapters {_one_line(a.text)!r} and {_one_line(b.text)!r} overlap; chapters must not overlap")
    lines = [";FFMETADATA1"]
    if title:
        lines.append(f"title={_ffmeta_escape(title)}")
    for mark in ordered:
        lines += [
            "",
            "[CHAPTER]",
            f"TIMEBASE=1/{FFMETADATA_TIMEBASE}",
            f"START={int(round(mark.start_s * FFMETADATA_TIMEBASE))}",
            f"END={int(round(mark.end_s * FFMETADATA_TIMEBASE))}",
            f"title={_ffmeta_escape(mark.text)}",
        ]
    return "\n".join(lines) + "\n"


_CUE_TIME = re.compile(r"^(\d{2,}):(\d{2}):(\d{2})[.,](\d{3})\s+-->\s+(\d{2,}):(\d{2}):(\d{2})[.,](\d{3})")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def read_cues(path: str | Path) -> list[Mark]:
    """The cues of a WebVTT or SRT file (text unescaped for WebVTT's &amp; &lt; &gt;).

    Raises:
        InputError: the file cannot be read, or a cue has no text (file and line named).
    """
    import html

    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot read the cue file: {exc}") from None
    is_vtt = bool(lines) and lines[0].startswith("WEBVTT")
    marks = []
    for number, line in enumerate(lines):
        match = _CUE_TIME.match(line.strip())
        if not match:
            continue
        if number + 1 >= len(lines) or not lines[number + 1].strip():
            raise InputError(f"{source}:{number + 2}: a cue without text")
        text = lines[number + 1].strip()
        g = match.groups()
        marks.append(Mark(_seconds(*g[:4]), _seconds(*g[4:]), html.unescape(text) if is_vtt else text))
    return marks


def write_text(path: str | Path, text: str, force: bool) -> Path:
    """Write ``text`` atomically; refuse to overwrite unless ``force``, and then only r2cli's own file.

    Raises:
        UsageError: ``path`` exists and ``force`` is False.
        NotOwnedError: ``path`` exists and r2cli did not write it (whatever ``force``).
        InputError: the file cannot be written.
    """
    from r2cli import ownership
    from r2cli._atomic import write_text_atomic

    target = Path(path)
    if target.exists() and not force:
        raise UsageError(f"{target} exists (use --force to overwrite)")
    ownership.check_replaceable_file(target, "--out:", owned=ownership.is_recorded(target))
    try:
        write_text_atomic(target, text)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    ownership.record_written(target)
    return target
