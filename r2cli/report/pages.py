"""What every report page shares, whichever report builds it (``build`` for search, summary and job runs,
``duplicates`` for a duplicates run): the report folder's marker and result, relative URLs, timecodes,
whether a browser plays a source, and the Jinja2 templates. A module of its own, so that neither report
imports the other's helpers (#23)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from r2cli import ownership

MARKER = ownership.REPORT_MARKER
REPORT_DIR = "report"
BROWSER_CODECS = {"h264", "vp8", "vp9", "av1", "theora"}  # what Chromium and Firefox decode in <video>
BROWSER_CONTAINERS = ("mp4", "mov", "webm", "ogg", "matroska")  # ffprobe format names (any part)


@dataclass
class ReportResult:
    """What ``build_report`` wrote."""

    out_dir: Path  # the report folder
    index: Path  # its index.html
    pages: int  # HTML pages written
    cards: int  # moment and summary-segment cards
    queries: int  # query pages' queries
    videos: int  # video pages
    thumbnails: int  # JPEG files
    plots: int  # SVG files
    bytes: int  # size of the report folder
    seconds: float  # wall time
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage: read, probe, cards, thumbnails, plots, pages, finish
    runs: list[str] = field(default_factory=list)  # run ids (or file names) the report shows
    warnings: list[str] = field(default_factory=list)  # sources missing, unplayable or without thumbnails

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir), "index": str(self.index), "pages": self.pages, "cards": self.cards,
            "queries": self.queries, "videos": self.videos, "thumbnails": self.thumbnails, "plots": self.plots,
            "bytes": self.bytes, "seconds": round(self.seconds, 3), "timings": self.timings, "runs": self.runs,
            "warnings": self.warnings,
        }


def url_of(target: str | os.PathLike, base: str | os.PathLike) -> str:
    """A relative, percent-encoded URL of ``target`` from the folder ``base`` (a file:// URI across drives)."""
    try:
        rel = os.path.relpath(os.path.abspath(target), os.path.abspath(base))
    except ValueError:  # pragma: no cover - another drive on Windows
        return Path(target).resolve().as_uri()
    return "/".join(quote(part, safe="") for part in Path(rel).parts)


def timecode(seconds: float, fps: float | None) -> str:
    """HH:MM:SS:FF at the video's nominal rate (HH:MM:SS.mmm when the rate is unknown)."""
    from r2cli.media.timeline import frames_to_timecode, nominal_rate, seconds_to_frames

    if fps and fps > 0:
        return frames_to_timecode(seconds_to_frames(max(0.0, seconds), fps), nominal_rate(fps))
    ms = int(round(max(0.0, seconds) * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def fragment(start: float, end: float) -> str:
    return f"#t={max(0.0, start):.3f},{end:.3f}"


def playability(info: Any) -> tuple[bool, str | None]:
    codec = (info.codec or "").lower()
    container = (info.container or "").lower()
    if codec in BROWSER_CODECS and any(name in container for name in BROWSER_CONTAINERS):
        return True, None
    return False, (f"browsers usually cannot play this source ({codec or 'unknown codec'} in "
                   f"{container.split(',')[0] or 'an unknown container'}); `r2cli cut` makes H.264 clips that they can")


def check_out(out: Path, force: bool) -> None:
    from r2cli.ownership import check_report_target

    # an earlier r2cli report is replaced; a folder holding anything else never is, whatever ``force``
    check_report_target(out, "--out")


def folder_size(folder: Path) -> tuple[int, int, int]:
    total = thumbs = svgs = 0
    for path in folder.rglob("*"):
        if path.is_file():
            total += path.stat().st_size
            thumbs += path.suffix == ".jpg"
            svgs += path.suffix == ".svg"
    return total, thumbs, svgs


def environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("r2cli.report", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["seconds"] = lambda s: f"{float(s):.2f}"
    return env
