"""The ffmpeg ``fps`` filter's rule, replayed: which source frame each clip shows, and how many clips.

Clip ``i`` covers ``[i/F, (i+1)/F)``; the filter rounds every input timestamp to ticks of
``1/F`` seconds (to nearest, halves away from zero) and emits for tick ``n`` the last input frame
whose tick is ``<= n``. ``FpsTickTracker`` replays that on the timestamps ffmpeg reports, in O(1)
memory, so every sampled frame carries the presentation time of the frame actually used.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
from fractions import Fraction

from r2cli.errors import MediaError
from r2cli.media.stream import StreamInfo, _last_line, probe_stream

# the line ffmpeg's showinfo filter logs for every frame entering the filter graph
_SHOWINFO_RE = re.compile(rb"\[Parsed_showinfo_\d+ @ [^\]]*\] n:\s*(\d+) pts:\s*(-?\d+) ")


def _round_half_away(value: Fraction) -> int:
    """AV_ROUND_NEAR_INF: to nearest, halves away from zero."""
    magnitude = (abs(value) * 2 + 1) // 2
    return int(magnitude if value >= 0 else -magnitude)


def expected_clip_count(end_time: float | Fraction, fps: float | Fraction, start_time: float | Fraction = 0) -> int:
    """Clips the frame rule yields for a stream whose first frame starts at ``start_time`` and whose
    last frame ends at ``end_time`` (seconds): ``round(E*F) - round(S*F)``, halves rounded up.

    With ``start_time = 0`` this is ``floor(E*F + 1/2)``: a 5 s video gives 3 clips at 0.5 fps,
    a 6.5 s video 3 clips at 0.5 fps and 13 at 2 fps, a 0.9 s video none at 0.5 fps.
    """
    rate = _fps_fraction(fps)
    end = Fraction(end_time).limit_denominator(1 << 30) if not isinstance(end_time, Fraction) else end_time
    start = Fraction(start_time).limit_denominator(1 << 30) if not isinstance(start_time, Fraction) else start_time
    return max(0, _round_half_away(end * rate) - _round_half_away(start * rate))


def _fps_fraction(fps: float | Fraction | str) -> Fraction:
    """The output rate as the fps filter stores it (``av_d2q(fps, INT_MAX)``; exact for 0.5, 1, 2, 29.97...)."""
    if isinstance(fps, Fraction):
        return fps
    return Fraction(str(fps)).limit_denominator(2**31 - 1)


class FpsTickTracker:
    """Replays the ffmpeg ``fps`` filter's choice of input frame for each output tick, in O(1) memory.

    Feed the timestamps of the frames entering the filter, in order (``push``); read back, for each
    output tick in order, the timestamp (seconds) of the frame the filter emits (``pop_ready``).
    Ticks after the last input frame (end-of-stream padding) repeat the last frame (``finish``).
    """

    def __init__(self, fps: float | Fraction, time_base: Fraction) -> None:
        self._ticks_per_unit = time_base * _fps_fraction(fps)  # output ticks per input pts unit
        self._time_base = time_base
        self._next_tick: int | None = None
        self.first_tick: int | None = None  # the tick of the first frame: output i is tick first_tick + i
        self._held_pts: int | None = None  # the frame buffered as frames[0]
        self._ready: collections.deque[float] = collections.deque()

    def _tick(self, pts: int) -> int:
        return _round_half_away(pts * self._ticks_per_unit)

    def tick_of(self, pts: int) -> int:
        """The output tick a frame with this pts (input time base) rounds to."""
        return self._tick(pts)

    def push(self, pts: int) -> None:
        """A frame with presentation timestamp ``pts`` (input time base) enters the filter."""
        tick = self._tick(pts)
        if self._held_pts is None:
            self._held_pts = pts
            if self._next_tick is None:
                self._next_tick = tick
                self.first_tick = tick
            return
        # frames[0] is emitted for every tick before the new frame's tick; then the new frame replaces it.
        while self._next_tick < tick:
            self._ready.append(float(self._held_pts * self._time_base))
            self._next_tick += 1
        self._held_pts = pts

    def pop_ready(self, limit: int) -> list[float]:
        """Up to ``limit`` resolved output timestamps, oldest first."""
        out = []
        while self._ready and len(out) < limit:
            out.append(self._ready.popleft())
        return out

    def resolved(self) -> int:
        return len(self._ready)

    def last_timestamp(self) -> float | None:
        """Timestamp of the last frame seen (what end-of-stream ticks repeat)."""
        return None if self._held_pts is None else float(self._held_pts * self._time_base)


# ----------------------------------------------------------------------------------------------
# Streaming sampler


def _apply_filter(stream, text: str):
    """``name=a:b:key=value`` (a filter as the docs and ``FrameGeometry.filters`` write it) as an
    ffmpeg-python filter call: positional arguments stay positional, ``key=value`` ones keyword."""
    name, _, arguments = text.partition("=")
    positional: list[str] = []
    keywords: dict[str, str] = {}
    for part in arguments.split(":") if arguments else []:
        key, sep, value = part.partition("=")
        if sep:
            keywords[key] = value
        else:
            positional.append(part)
    return stream.filter(name, *positional, **keywords)


class SeekGapError(MediaError):
    """A segment's seek landed after the frame its first clip needs (a long still in a VFR video)."""


def first_tick(path: str | os.PathLike, fps: float, *, stream: StreamInfo | None = None,
               ffmpeg: str | None = None) -> int:
    """The fps tick of a video's first frame, as the whole-video decode sees it: clip ``i`` of the
    video is tick ``first_tick + i``. One ffmpeg run that decodes a single frame.

    Raises:
        MediaError: ffmpeg fails or reports no frame.
    """
    from r2cli.media.ffmpeg import find_ffmpeg

    info = stream or probe_stream(path)
    exe = ffmpeg or find_ffmpeg()
    import ffmpeg  # ffmpeg-python

    stream = ffmpeg.input(os.fspath(path), noautorotate=None)[str(info.index)].filter("showinfo", checksum=0)
    args = ffmpeg.output(stream, "-", an=None, sn=None, dn=None, format="null", **{"frames:v": 1}).compile(
        cmd=[exe, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"])
    result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True)
    match = _SHOWINFO_RE.search(result.stderr)
    if result.returncode != 0 or match is None:
        raise MediaError(f"{os.fspath(path)}: cannot read the first frame's timestamp: {_last_line(result.stderr)}")
    return _round_half_away(int(match.group(2)) * info.time_base * _fps_fraction(fps))
