"""Probe one media file with ffprobe (through ffmpeg-python) into a ``MediaInfo``.

Conventions:
- ``width``/``height`` are the coded picture size of the first video stream.
- ``rotation`` is in degrees counter-clockwise, in [0, 360), as FFmpeg's display matrix defines it
  (``av_display_rotation_get``; what ffprobe prints as ``rotation`` in ``side_data_list``). A file
  that only carries the legacy ``rotate`` tag (clockwise degrees) is converted to this convention.
  ffmpeg turns decoded frames by this angle unless ``-noautorotate`` is given.
- ``display_width``/``display_height`` apply the sample aspect ratio to the width, then swap the
  two for a rotation of 90 or 270 degrees: the size a player shows.
- ``fps`` is the average frame rate (frames / duration), so variable-frame-rate files get their
  mean rate; ``max_fps`` is ffprobe's ``r_frame_rate`` (the base rate that timestamps are on).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from r2cli.errors import MediaError

_LOG_PREFIX = re.compile(r"^(\[[^\]]* @ 0x[0-9a-f]+\] *)+")


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about one file's first video stream and its container."""

    path: str  # the file as probed
    container: str  # ffprobe format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration: float  # seconds (container duration, else the video stream's)
    fps: float  # average frames per second
    max_fps: float | None  # r_frame_rate: the rate timestamps are based on (>= fps for VFR files)
    frame_count: int  # video packets counted by ffprobe, else the header's count, else duration*fps
    width: int  # coded width in pixels
    height: int  # coded height in pixels
    display_width: int  # width a player shows (after SAR and rotation)
    display_height: int  # height a player shows (after SAR and rotation)
    rotation: int  # degrees counter-clockwise, one of 0, 90, 180, 270 (display matrix convention)
    sample_aspect_ratio: str  # "num:den", "1:1" when the file does not say
    codec: str  # video codec name, e.g. "h264"
    pixel_format: str | None  # e.g. "yuv420p"
    has_audio: bool  # at least one audio stream
    audio_codec: str | None  # codec of the first audio stream
    title: str | None  # container "title" tag
    bit_rate: int | None  # container bit rate, bits/s
    comment: str | None = None  # container "comment" tag ("r2cli output" on media r2cli wrote)

    def to_dict(self) -> dict:
        return asdict(self)


def _rate(text: str | None) -> float | None:
    if not text or text in ("0/0", "0/1"):
        return None
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN -> None


def _tag(tags: dict | None, name: str) -> str | None:
    for key, value in (tags or {}).items():
        if key.lower() == name and str(value).strip():
            return str(value).strip()
    return None


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            angle = _float(side["rotation"])
            if angle is not None:
                return int(round(angle)) % 360
    legacy = _float(_tag(stream.get("tags"), "rotate"))
    if legacy is not None:
        return int(round(-legacy)) % 360  # the legacy tag is clockwise
    return 0


def _sample_aspect_ratio(stream: dict) -> Fraction:
    text = stream.get("sample_aspect_ratio") or "1:1"
    try:
        num, den = (int(part) for part in text.split(":"))
        ratio = Fraction(num, den)
    except (ValueError, ZeroDivisionError):
        return Fraction(1)
    return ratio if ratio > 0 else Fraction(1)  # "0:1" means "unknown"


def _ffprobe_reason(exc: Exception, path: str) -> str:
    stderr = getattr(exc, "stderr", b"") or b""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else str(stderr)
    reasons: list[str] = []
    for line in text.splitlines():
        line = _LOG_PREFIX.sub("", line.strip())
        for prefix in (f"{path}: ", f"{os.path.basename(path)}: "):
            if line.startswith(prefix):
                line = line[len(prefix):]
        if line and line not in reasons:
            reasons.append(line)
    if not reasons:
        return str(exc) or "ffprobe failed without a message"
    return "; ".join(reasons[-3:])


def _run_ffprobe(path: str, ffprobe: str, **options: object) -> dict:
    import ffmpeg  # ffmpeg-python

    try:
        return ffmpeg.probe(path, cmd=ffprobe, v="error", **options)
    except ffmpeg.Error as exc:
        raise MediaError(f"{path}: ffprobe cannot read it: {_ffprobe_reason(exc, path)}") from None
    except ValueError as exc:  # ffprobe printed something that is not JSON
        raise MediaError(f"{path}: ffprobe printed unreadable output ({exc})") from None
    except OSError as exc:
        raise MediaError(f"{path}: cannot run {ffprobe}: {exc}") from None


def probe(path: str | os.PathLike, *, ffprobe: str | None = None) -> MediaInfo:
    """Probe ``path`` and describe its first video stream.

    Args:
        path: a media file.
        ffprobe: the ffprobe executable; default: ``r2cli.media.ffmpeg.find_ffprobe()``.

    Raises:
        MissingDependencyError: ffprobe is not installed.
        MediaError: the file is empty, unreadable, not media, truncated, has no video stream or no
            duration; the message starts with the file name.
    """
    from r2cli.media.ffmpeg import find_ffprobe

    name = os.fspath(path)
    exe = ffprobe or find_ffprobe()
    try:
        size = Path(name).stat().st_size
    except OSError as exc:
        raise MediaError(f"{name}: cannot read it: {exc.strerror or exc}") from None
    if size == 0:
        raise MediaError(f"{name}: file is empty (0 bytes)")
    # -count_packets demuxes the whole file (no decoding): an exact frame count, and a file cut
    # short after a valid header (a truncated "faststart" MP4) shows fewer packets than it declares.
    data = _run_ffprobe(name, exe, count_packets=None)
    streams = data.get("streams") or []
    container = data.get("format") or {}
    video, audio = _video_and_audio(name, streams)
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise MediaError(f"{name}: video stream has no picture size (width={width}, height={height})")
    avg = _rate(video.get("avg_frame_rate"))
    base = _rate(video.get("r_frame_rate"))
    fps = avg or base
    if fps is None:
        raise MediaError(f"{name}: video stream has no frame rate")
    duration, frame_count = _duration_and_frames(name, video, audio, container, fps)
    rotation = _rotation(video)
    sar = _sample_aspect_ratio(video)
    display_width, display_height = int(round(width * sar)), height
    if rotation in (90, 270):
        display_width, display_height = display_height, display_width
    bit_rate = _float(container.get("bit_rate"))
    return MediaInfo(
        path=name,
        container=str(container.get("format_name") or ""),
        duration=duration,
        fps=fps,
        max_fps=base,
        frame_count=frame_count,
        width=width,
        height=height,
        display_width=display_width,
        display_height=display_height,
        rotation=rotation,
        sample_aspect_ratio=f"{sar.numerator}:{sar.denominator}",
        codec=str(video.get("codec_name") or "unknown"),
        pixel_format=video.get("pix_fmt"),
        has_audio=audio is not None,
        audio_codec=audio.get("codec_name") if audio else None,
        title=_tag(container.get("tags"), "title"),
        comment=_tag(container.get("tags"), "comment"),
        bit_rate=int(bit_rate) if bit_rate else None,
    )


def _video_and_audio(name: str, streams: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The first real video stream (not an attached picture) and the first audio stream.

    Raises:
        MediaError: there is no real video stream.
    """
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        pictures = [s for s in streams if s.get("codec_type") == "video"]
        if pictures and audio is not None:
            raise MediaError(
                f"{name}: no real video stream, only an attached picture (cover art, "
                f"{pictures[0].get('codec_name')}) besides the {audio.get('codec_name')} audio"
            )
        kinds = sorted({f"{s.get('codec_type')}: {s.get('codec_name')}" for s in streams})
        found = ", ".join(kinds) if kinds else "no streams at all"
        raise MediaError(f"{name}: no video stream ({found})")
    return video, audio


def _duration_and_frames(name: str, video: dict[str, Any], audio: dict[str, Any] | None, container: dict[str, Any],
                         fps: float) -> tuple[float, int]:
    """The duration (s) and frame count, from the header and the packets counted.

    Raises:
        MediaError: a still picture beside audio, fewer frames readable than declared, or no duration.
    """
    duration = _float(container.get("duration")) or _float(video.get("duration"))
    declared = _float(video.get("nb_frames"))
    counted = _float(video.get("nb_read_packets"))
    frames = counted if counted is not None else declared
    if audio is not None and frames is not None and frames <= 1 and duration and duration * fps > 2:
        # a still image stored as an ordinary one-frame video track (cover art without the
        # attached_pic flag, common in Matroska and MP4 audio files): not a video to index
        raise MediaError(
            f"{name}: no real video stream, only one still picture (cover art, {video.get('codec_name')}) "
            f"beside {duration:.2f} s of {audio.get('codec_name')} audio"
        )
    if declared and counted is not None and counted + 2 < 0.98 * declared:
        raise MediaError(
            f"{name}: truncated or damaged: the header declares {int(declared)} video frames "
            f"but only {int(counted)} can be read"
        )
    if not declared and counted is not None and duration and counted + 2 < 0.5 * duration * fps:
        raise MediaError(
            f"{name}: truncated or damaged: {duration:.2f} s declared but only {int(counted)} video "
            f"frames can be read at {fps:.3f} fps"
        )
    frame_count = int(counted) if counted else (int(declared) if declared else None)
    if duration is None and frame_count:
        duration = frame_count / fps
    if duration is None or duration <= 0:
        raise MediaError(f"{name}: no duration (ffprobe reports none and no frames could be counted)")
    if frame_count is None:
        frame_count = max(1, int(round(duration * fps)))
    return duration, frame_count
