"""The few facts about a video stream that frame sampling needs (one ffprobe call)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from fractions import Fraction

from r2cli.errors import MediaError


def _parse_sar(value: Fraction | str | None) -> Fraction:
    if value is None:
        return Fraction(1)
    if isinstance(value, Fraction):
        sar = value
    else:
        try:
            num, den = (int(part) for part in str(value).replace("/", ":").split(":"))
            sar = Fraction(num, den)
        except (ValueError, ZeroDivisionError):
            return Fraction(1)
    return sar if sar > 0 else Fraction(1)  # "0:1" means the file does not say


@dataclass(frozen=True)
class StreamInfo:
    """The few facts about a video stream that frame sampling needs (one ffprobe call)."""

    index: int  # absolute stream index in the container (for -map 0:<index>)
    width: int  # coded width
    height: int  # coded height
    sample_aspect_ratio: Fraction  # 1 when unknown
    rotation: int  # degrees counter-clockwise (display matrix convention)
    time_base: Fraction  # stream time base (the unit of the pts showinfo prints)
    pixel_format: str | None  # e.g. "yuv420p10le"
    duration: float | None  # seconds, container duration else stream duration


def probe_stream(path: str | os.PathLike, *, ffprobe: str | None = None) -> StreamInfo:
    """Describe the first (non cover-art) video stream of ``path``.

    Raises:
        MissingDependencyError: ffprobe is not installed.
        MediaError: the file cannot be read or has no video stream.
    """
    import json

    from r2cli.media.ffmpeg import find_ffprobe

    name = os.fspath(path)
    exe = ffprobe or find_ffprobe()
    args = [exe, "-v", "error", "-of", "json", "-show_streams", "-show_format", "-select_streams", "v", name]
    try:
        result = subprocess.run(args, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MediaError(f"{name}: cannot run {exe}: {exc}") from None
    if result.returncode != 0:
        reason = _last_line(result.stderr) or f"exit code {result.returncode}"
        raise MediaError(f"{name}: ffprobe cannot read it: {reason}")
    try:
        data = json.loads(result.stdout or b"{}")
    except ValueError as exc:
        raise MediaError(f"{name}: ffprobe printed unreadable output ({exc})") from None
    streams = [s for s in data.get("streams") or [] if not (s.get("disposition") or {}).get("attached_pic")]
    if not streams:
        raise MediaError(f"{name}: no video stream")
    stream = streams[0]
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0:
        raise MediaError(f"{name}: video stream has no picture size (width={width}, height={height})")
    try:
        time_base = Fraction(str(stream.get("time_base") or "1/90000"))
    except (ValueError, ZeroDivisionError):
        time_base = Fraction(1, 90000)
    duration = _float((data.get("format") or {}).get("duration")) or _float(stream.get("duration"))
    return StreamInfo(
        index=int(stream.get("index") or 0),
        width=width,
        height=height,
        sample_aspect_ratio=_parse_sar(stream.get("sample_aspect_ratio")),
        rotation=_rotation(stream),
        time_base=time_base,
        pixel_format=stream.get("pix_fmt"),
        duration=duration,
    )


def _float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number == number else None


def _rotation(stream: dict) -> int:
    """Display rotation, degrees counter-clockwise; the legacy ``rotate`` tag is clockwise."""
    for side in stream.get("side_data_list") or []:
        angle = _float(side.get("rotation"))
        if angle is not None:
            return int(round(angle / 90.0)) * 90 % 360
    for key, value in (stream.get("tags") or {}).items():
        if key.lower() == "rotate":
            angle = _float(value)
            if angle is not None:
                return int(round(-angle / 90.0)) * 90 % 360
    return 0


def _last_line(data: bytes | str | None) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
