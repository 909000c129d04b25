"""Exact, streamed frame sampling with the ffmpeg binary, as R2-Tuning's frame extraction does it.

The frame rule (``FRAME_RULE_EXACT = "ffmpeg-fps-near"``) reproduces the official extractor
(``tools/extract_frames.py``, spec §1.1) and fixes only what it gets wrong for real archives:

1. Geometry is computed on the *display* size: the coded size with the sample aspect ratio applied
   to the width, then turned by the display-matrix rotation. The short side becomes ``size``
   (``int`` truncation of the long side, as the official tool does), then a centre crop of
   ``size x size`` at integer offsets ``int((w' - size) / 2)``, ``int((h' - size) / 2)``. For a
   square-pixel, unrotated file this is exactly the official geometry. The official one itself
   (sizes from the coded width and height, SAR and rotation ignored) is the named setting
   ``geometry="official"`` (``GEOMETRY_OFFICIAL``; a separate feature set, pinned by the tests
   against the official ffmpeg chain).
2. The ffmpeg filter chain is the official one, ``fps=F`` (default ``round=near``) →
   ``scale=w':h'`` (default flags: bicubic) → ``crop=S:S:x:y`` → raw ``rgb24``, with the rotation
   (``transpose``/``hflip,vflip``) inserted after ``fps`` and before ``scale`` (ffmpeg's
   autorotation is switched off so the rotation happens once, on the sampled frames only).
   10-bit and other pixel formats are converted to ``rgb24`` by the same scaler pass.
3. Which source frame each output takes, and so its timestamp: the ``fps`` filter converts every
   input timestamp to ticks of ``1/F`` seconds, rounding to nearest (halves away from zero), and
   emits for tick ``n`` the last input frame whose rounded tick is ``<= n``. In seconds: clip
   ``i`` covers ``[i/F, (i+1)/F)`` and gets the last frame shown before ``(i + 0.5)/F``, i.e. the
   frame at (or just before) the middle of the clip. A ``showinfo`` filter placed before ``fps``
   reports every decoded frame's timestamp on stderr, and ``FpsTickTracker`` replays the filter's
   rule on them, so every sampled frame carries the presentation time of the frame actually used.
4. Clip count: the ``fps`` filter ends at the end time of the last frame ``E`` (its timestamp
   plus its duration), rounded the same way, so a video yields ``N = floor(E*F + 1/2)`` clips
   (``E*F`` rounded half up), with the last frame repeated when the final clip's middle lies past
   the last frame. That count is exactly what the official extractor emits, so no padding or
   trimming is applied; ``expected_clip_count`` states the rule, and a video with ``N = 0``
   (shorter than half a clip) raises ``VideoTooShortError``.

Memory does not grow with the video: frames are read from ffmpeg's stdout in chunks of at most
``chunk_frames`` frames, and the timestamp tracker keeps O(1) state.

A faster, opt-in rule ``FRAME_RULE_NOREF = "ffmpeg-fps-near-noref"`` makes the decoder skip
non-reference frames (``-skip_frame noref``): the fps rule then picks among the decoded frames
only, so a sampled frame can be up to a few frame intervals earlier than the exact one (the
timestamps it reports are the true ones of the frames used). Features from the two rules are
different feature sets (the rule is part of the feature-store key).
"""

from __future__ import annotations

import collections
import os
import subprocess
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from r2cli.errors import MediaError, UsageError
from r2cli.media.fps_rule import (  # noqa: F401  (re-exported: the rule is part of this module's API)
    _SHOWINFO_RE,
    FpsTickTracker,
    SeekGapError,
    _apply_filter,
    _fps_fraction,
    _round_half_away,
    expected_clip_count,
    first_tick,
)
from r2cli.media.stream import StreamInfo, _parse_sar, probe_stream

__all__ = ["FRAME_RULES", "GEOMETRIES", "FrameChunk", "FrameGeometry", "FrameSampler", "StreamInfo",
           "VideoTooShortError", "check_sampling_args", "compute_geometry", "expected_clip_count", "probe_stream",
           "sample_frames"]

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

FRAME_RULE_EXACT = "ffmpeg-fps-near"
FRAME_RULE_NOREF = "ffmpeg-fps-near-noref"
FRAME_RULES = (FRAME_RULE_EXACT, FRAME_RULE_NOREF)

# How frames are scaled before the centre crop:
# - "display": by the size a player shows (sample aspect ratio applied, display rotation honoured);
#   r2cli's default, the picture CLIP sees is not stretched;
# - "official": like the official extractor (spec section 1.1): by the CODED width and height, sample
#   aspect ratio and rotation ignored when sizing (ffmpeg still turns rotated frames upright, as its
#   autorotation does in the official command), so non-square-pixel and rotated videos are stretched.
from r2cli.media.names import GEOMETRIES, GEOMETRY_DISPLAY, GEOMETRY_OFFICIAL  # defined there once (#23)

DEFAULT_CHUNK_FRAMES = 16  # frames per read from ffmpeg's pipe (16 x 224 x 224 x 3 = 2.4 MB)
_STDERR_TAIL_LINES = 40  # non-showinfo stderr lines kept for error messages



class VideoTooShortError(MediaError):
    """The video is shorter than half a clip, so the frame rule yields no clip at all."""


# ----------------------------------------------------------------------------------------------
# Geometry


@dataclass(frozen=True)
class FrameGeometry:
    """How one video's frames become ``size x size`` crops (spec §1.1, on the display size)."""

    width: int  # coded width of the stream
    height: int  # coded height of the stream
    sample_aspect_ratio: Fraction  # pixel width / pixel height (1 for square pixels)
    rotation: int  # display rotation, degrees counter-clockwise (0, 90, 180, 270)
    size: int  # output side S (the CLIP tower's image size)
    display_width: Fraction  # width a player shows, after SAR and rotation
    display_height: Fraction  # height a player shows, after SAR and rotation
    scaled_width: int  # w': width after the scale filter
    scaled_height: int  # h': height after the scale filter
    crop_x: int  # left offset of the centre crop in the scaled frame
    crop_y: int  # top offset of the centre crop in the scaled frame

    def rotation_filters(self) -> list[str]:
        """ffmpeg filters that turn coded frames upright (what ffmpeg's autorotation would insert)."""
        clockwise = (360 - self.rotation) % 360
        return {0: [], 90: ["transpose=clock"], 180: ["hflip", "vflip"], 270: ["transpose=cclock"]}[clockwise]

    def filters(self) -> list[str]:
        """The filters after ``fps``: rotation, scale (default bicubic), centre crop."""
        return [
            *self.rotation_filters(),
            f"scale={self.scaled_width}:{self.scaled_height}",
            f"crop={self.size}:{self.size}:{self.crop_x}:{self.crop_y}",
        ]


def compute_geometry(
    width: int,
    height: int,
    size: int,
    *,
    sample_aspect_ratio: Fraction | str | None = None,
    rotation: int = 0,
    geometry: str = GEOMETRY_DISPLAY,
) -> FrameGeometry:
    """Scale and crop so that the display's short side becomes ``size`` and a centred square remains.

    ``rotation`` uses the display-matrix convention (degrees counter-clockwise, as
    ``r2cli.media.probe`` reports it). With square pixels and no rotation this equals the official
    ``w' = int(w*size/h)`` (or ``h' = int(h*size/w)``) and ``x = int((w'-size)/2)``.

    Raises:
        UsageError: a size or angle breaks its rule (sizes > 0, rotation a multiple of 90).
    """
    if width <= 0 or height <= 0:
        raise UsageError(f"frame size must be positive, got {width}x{height}")
    if size <= 0:
        raise UsageError(f"image size must be positive, got {size}")
    rotation = int(rotation) % 360
    if rotation % 90:
        raise UsageError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    if geometry not in GEOMETRIES:
        raise UsageError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {geometry!r}")
    sar = _parse_sar(sample_aspect_ratio)
    if geometry == GEOMETRY_OFFICIAL:  # the coded size, as tools/extract_frames.py reads it
        display_width, display_height = Fraction(width), Fraction(height)
    else:
        display_width, display_height = Fraction(width) * sar, Fraction(height)
        if rotation in (90, 270):
            display_width, display_height = display_height, display_width
    # Fractions floor exactly what Python's float int() floors for the integer case of the official tool.
    if display_width > display_height:
        scaled_width, scaled_height = int(display_width * size / display_height), size
    else:
        scaled_width, scaled_height = size, int(display_height * size / display_width)
    return FrameGeometry(
        width=width,
        height=height,
        sample_aspect_ratio=sar,
        rotation=rotation,
        size=size,
        display_width=display_width,
        display_height=display_height,
        scaled_width=scaled_width,
        scaled_height=scaled_height,
        crop_x=int((scaled_width - size) / 2),
        crop_y=int((scaled_height - size) / 2),
    )


# ----------------------------------------------------------------------------------------------
# Sampling


@dataclass
class FrameChunk:
    """Consecutive sampled frames of one video."""

    start: int  # clip index of the first frame in this chunk
    frames: "np.ndarray"  # [n, S, S, 3] uint8 RGB
    timestamps: "np.ndarray"  # [n] float64: presentation time (s) of the source frame each came from


@dataclass
class SamplingStats:
    """Filled in while a ``FrameSampler`` runs."""

    clips: int = 0  # frames emitted (= clips)
    decoded_frames: int = 0  # frames that entered the fps filter
    reads: int = 0  # pipe reads performed
    max_read_bytes: int = 0  # largest single pipe read (bounded by chunk_frames x frame bytes)
    end_padding: int = 0  # trailing clips that repeat the last frame (end-of-stream ticks)


def default_decode_threads() -> int:
    """Decoder threads passed to ffmpeg when none are given: every core this process may use, at most 16."""
    from r2cli.media._process import default_jobs

    return min(16, default_jobs())


@dataclass
class FrameSampler:
    """Stream the frames of one video under the frame rule, in bounded chunks.

    Use as an iterator of ``FrameChunk`` (or ``with sampler: ...`` to make sure ffmpeg is stopped
    when the consumer stops early). ``stats`` is filled in as frames arrive.

    Raises (while iterating):
        MissingDependencyError: ffmpeg/ffprobe are not installed.
        MediaError: ffmpeg fails on the file (the message ends with ffmpeg's last error line).
        VideoTooShortError: the video yields no clip.
    """

    path: str | os.PathLike
    fps: float  # the caller's setting (r2cli.features.store.FEATURE_FPS is r2cli's default)
    size: int = 224
    frame_rule: str = FRAME_RULE_EXACT
    geometry_rule: str = GEOMETRY_DISPLAY  # GEOMETRIES: how frames are scaled (see geometry())
    threads: int | None = None
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    ffmpeg: str | None = None
    stream: StreamInfo | None = None  # probed on first use when not given
    stats: SamplingStats = field(default_factory=SamplingStats)
    # A segment of the video (clips start_clip .. end_clip - 1), for decoding one long video in
    # parallel pieces: ffmpeg seeks to seek_margin_s before the segment and the clips before it are
    # dropped, so each clip gets exactly the frame and timestamp the whole-video decode gives it.
    start_clip: int = 0
    end_clip: int | None = None  # None: to the end of the video
    tick_origin: int | None = None  # fps tick of the video's first frame (``first_tick``); probed when needed
    seek_margin_s: float = 10.0
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _padded: int = field(default=0, init=False, repr=False)  # end-of-video repeats among the last chunk's outputs

    def __post_init__(self) -> None:
        check_sampling_args(self.fps, self.size, self.frame_rule)
        if self.geometry_rule not in GEOMETRIES:
            raise UsageError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {self.geometry_rule!r}")
        if isinstance(self.chunk_frames, bool) or not isinstance(self.chunk_frames, int) or self.chunk_frames < 1:
            raise UsageError(f"chunk_frames must be a positive integer, got {self.chunk_frames!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1):
            raise UsageError(f"decode threads must be a positive integer, got {self.threads!r}")
        if self.start_clip < 0 or (self.end_clip is not None and self.end_clip <= self.start_clip):
            raise UsageError(f"a segment needs 0 <= start_clip < end_clip, got {self.start_clip}..{self.end_clip}")

    def _seek_seconds(self) -> float | None:
        """Where ffmpeg seeks for a segment (None: decode from the start)."""
        if self.start_clip == 0:
            return None
        if self.tick_origin is None:
            self.tick_origin = first_tick(self.path, self.fps, stream=self._stream(), ffmpeg=self.ffmpeg)
        start = Fraction(self.tick_origin + self.start_clip) / _fps_fraction(self.fps)
        return max(0.0, float(start) - self.seek_margin_s)

    # -- command ---------------------------------------------------------------------------------

    def geometry(self) -> FrameGeometry:
        info = self._stream()
        return compute_geometry(
            info.width, info.height, self.size, sample_aspect_ratio=info.sample_aspect_ratio, rotation=info.rotation,
            geometry=self.geometry_rule,
        )

    def _stream(self) -> StreamInfo:
        if self.stream is None:
            self.stream = probe_stream(self.path)
        return self.stream

    def command(self) -> list[str]:
        """The ffmpeg argument list (also recorded in benchmarks and docs), built with ffmpeg-python.

        ``-nostdin ... -loglevel info`` come first, then the input with its options (decoder
        threads, ``-skip_frame``, a segment's seek, no autorotation), then the filter graph
        ``showinfo -> fps -> [rotation] -> scale -> crop`` on the video stream, then raw rgb24 frames
        on stdout.
        """
        import ffmpeg  # ffmpeg-python

        from r2cli.media.ffmpeg import find_ffmpeg

        info = self._stream()
        exe = self.ffmpeg or find_ffmpeg()
        threads = self.threads or default_decode_threads()
        input_options: dict[str, object] = {"threads": threads}
        if self.frame_rule == FRAME_RULE_NOREF:
            input_options["skip_frame"] = "noref"
        seek = self._seek_seconds()
        if seek is not None:
            # accurate input seek; timestamps kept on the whole video's zero-based timeline
            input_options.update({"ss": f"{seek:.6f}", "copyts": None, "start_at_zero": None})
        input_options["noautorotate"] = None
        stream = ffmpeg.input(os.fspath(self.path), **input_options)[str(info.index)]
        for text in ["showinfo=checksum=0", f"fps={self.fps}", *self.geometry().filters()]:
            stream = _apply_filter(stream, text)
        output = ffmpeg.output(stream, "pipe:1", an=None, sn=None, dn=None, filter_complex_threads=1,
                               pix_fmt="rgb24", format="rawvideo")
        return output.compile(cmd=[exe, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"])

    # -- iteration -------------------------------------------------------------------------------

    def __enter__(self) -> "FrameSampler":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop ffmpeg if it is still running (safe to call twice)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if process is not None:
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()

    def __iter__(self) -> Iterator[FrameChunk]:
        import numpy as np

        info = self._stream()
        args = self.command()
        name = os.fspath(self.path)
        try:
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise MediaError(f"{name}: cannot run {args[0]}: {exc}") from None
        self._process = process
        tracker = FpsTickTracker(self.fps, info.time_base)
        condition = threading.Condition()
        tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        done = threading.Event()

        def read_stderr() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                match = _SHOWINFO_RE.search(line)
                if match:
                    with condition:
                        pts = int(match.group(2))
                        tracker.push(pts)
                        if self._in_segment(tracker, pts):
                            self.stats.decoded_frames += 1
                        condition.notify_all()
                elif not line.startswith(b"[Parsed_showinfo"):
                    tail.append(line.decode("utf-8", "replace").rstrip())
            with condition:
                done.set()
                condition.notify_all()

        reader = threading.Thread(target=read_stderr, name="ffmpeg-stderr", daemon=True)
        reader.start()
        size = self.size
        frame_bytes = size * size * 3
        produced = 0  # outputs of the fps filter read so far
        emitted = 0  # clips handed to the caller
        skip: int | None = 0 if self.start_clip == 0 else None  # outputs before the segment
        wanted = None if self.end_clip is None else self.end_clip - self.start_clip
        try:
            assert process.stdout is not None
            while True:
                buffer = np.empty((self.chunk_frames, size, size, 3), dtype=np.uint8)
                filled = _read_into(process.stdout, memoryview(buffer).cast("B"), self.stats)
                count = filled // frame_bytes
                if count == 0:
                    if filled:
                        raise MediaError(f"{name}: ffmpeg ended in the middle of a frame ({filled} stray bytes)")
                    break
                timestamps = self._timestamps(count, tracker, condition, done)
                if skip is None:
                    skip = self.tick_origin + self.start_clip - tracker.first_tick
                    if skip <= 0:
                        # The first frame after the seek already belongs to the segment's first clip:
                        # a frame of that clip (or the one it shows) may lie before it. Seeking is
                        # inexact in some containers (MPEG-TS), and a VFR still can outlast the margin.
                        raise SeekGapError(f"{name}: the seek {self.seek_margin_s:g} s before clip "
                                           f"{self.start_clip} landed inside it; use a larger seek margin")
                lo = min(max(skip - produced, 0), count)
                hi = count if wanted is None else min(count, skip + wanted - produced)
                if self._padded:  # the chunk's last outputs repeat the last frame (end of the video)
                    self.stats.end_padding += max(0, hi - max(lo, count - self._padded))
                produced += count
                if hi > lo:
                    yield FrameChunk(start=self.start_clip + emitted, frames=buffer[lo:hi], timestamps=timestamps[lo:hi])
                    emitted += hi - lo
                    self.stats.clips = emitted
                if wanted is not None and emitted >= wanted:
                    return  # the segment is complete; ffmpeg is stopped below
                if filled % frame_bytes:
                    raise MediaError(f"{name}: ffmpeg ended in the middle of a frame")
                if filled < buffer.nbytes:
                    break
            returncode = process.wait()
            reader.join()
            if returncode != 0:
                detail = next((line for line in reversed(tail) if line.strip()), f"exit code {returncode}")
                raise MediaError(f"{name}: ffmpeg failed while sampling frames: {detail}")
            if emitted == 0 and self.start_clip == 0:
                raise VideoTooShortError(
                    f"{name}: too short for one clip at {self.fps:g} fps (the frame rule needs at least "
                    f"{0.5 / self.fps:g} s of video, i.e. half a {1 / self.fps:g} s clip)"
                )
        finally:
            self.close()

    def _in_segment(self, tracker: FpsTickTracker, pts: int) -> bool:
        """Whether a decoded frame is the segment's own: its tick lies in the segment's clips, so
        that over all segments every frame of the video is counted once (a whole decode: all)."""
        if self.start_clip == 0 and self.end_clip is None:
            return True
        origin = tracker.first_tick if self.start_clip == 0 else self.tick_origin
        tick = tracker.tick_of(pts)
        if self.start_clip and tick < origin + self.start_clip:
            return False
        return self.end_clip is None or tick < origin + self.end_clip

    def _timestamps(self, count: int, tracker: FpsTickTracker, condition: threading.Condition, done: threading.Event):
        import numpy as np

        stamps: list[float] = []
        padding = 0
        with condition:
            while True:
                stamps += tracker.pop_ready(count - len(stamps))
                if len(stamps) == count:
                    break
                if done.is_set():
                    last = tracker.last_timestamp()
                    if last is None:
                        raise MediaError(f"{os.fspath(self.path)}: ffmpeg emitted frames but reported no timestamps")
                    padding = count - len(stamps)
                    stamps += [last] * padding
                    break
                condition.wait(timeout=1.0)
        self._padded = padding
        return np.asarray(stamps, dtype=np.float64)


def _read_into(stream, view: memoryview, stats: SamplingStats) -> int:
    """Fill ``view`` from ``stream`` (or until EOF); returns bytes read. Each read is at most ``len(view)``."""
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        stats.reads += 1
        stats.max_read_bytes = max(stats.max_read_bytes, got or 0)
        if not got:
            break
        filled += got
    return filled


def check_sampling_args(fps: float, size: int, frame_rule: str) -> None:
    """Validate sampling settings where they enter.

    Raises:
        UsageError: fps not in (0, 1000], size not a positive integer, unknown frame rule.
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < float(fps) <= 1000:
        raise UsageError(f"--fps must be a number in (0, 1000], got {fps!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise UsageError(f"image size must be a positive integer, got {size!r}")
    if frame_rule not in FRAME_RULES:
        raise UsageError(f"frame rule must be one of {', '.join(FRAME_RULES)}, got {frame_rule!r}")


def sample_frames(
    path: str | os.PathLike,
    *,
    fps: float,
    size: int = 224,
    frame_rule: str = FRAME_RULE_EXACT,
    threads: int | None = None,
    geometry: str = GEOMETRY_DISPLAY,
) -> tuple["np.ndarray", "np.ndarray"]:
    """All sampled frames of a video in memory: ``(frames [N, S, S, 3] uint8, timestamps [N] float64)``.

    For short videos and tests; long videos should stream through ``FrameSampler``.

    Raises:
        MediaError, VideoTooShortError, MissingDependencyError: as ``FrameSampler``.
    """
    import numpy as np

    frames, stamps = [], []
    with FrameSampler(Path(path), fps=fps, size=size, frame_rule=frame_rule, threads=threads,
                      geometry_rule=geometry) as sampler:
        for chunk in sampler:
            frames.append(chunk.frames)
            stamps.append(chunk.timestamps)
    return np.concatenate(frames), np.concatenate(stamps)


# ----------------------------------------------------------------------------------------------
# Query frames (r2cli search --image / --clip): the same decode, rotation, scale and crop as the index


def still_frame(path: str | os.PathLike, *, size: int = 224, geometry: str = GEOMETRY_DISPLAY,
                ffmpeg: str | None = None) -> "np.ndarray":
    """The first picture of an image file (or any file ffmpeg reads) as the index would crop it: ``[S, S, 3]`` uint8.

    The picture goes through the index's filter chain without the ``fps`` step: the display-matrix
    rotation, ``scale`` (default bicubic) to the short side ``size`` and the centre crop, computed by
    ``compute_geometry`` from the probed size, sample aspect ratio and rotation, then raw ``rgb24``.
    So a still cut from an indexed video at a sampled time becomes the very pixels its clip got
    (up to the still's own compression).

    Raises:
        MissingDependencyError: ffmpeg/ffprobe are not installed.
        MediaError: the file cannot be read as a picture (the message names it).
        UsageError: ``size`` or ``geometry`` breaks its rule.
    """
    import numpy as np

    from r2cli.media.ffmpeg import find_ffmpeg

    name = os.fspath(path)
    if not Path(name).is_file():
        raise MediaError(f"{name}: no such file")
    try:
        info = probe_stream(name)
    except MediaError as exc:
        detail = str(exc)[len(name) + 2:] if str(exc).startswith(name + ": ") else str(exc)
        raise MediaError(f"{name}: not a picture ffmpeg can read ({detail})") from None
    shape = compute_geometry(info.width, info.height, size, sample_aspect_ratio=info.sample_aspect_ratio,
                             rotation=info.rotation, geometry=geometry)
    exe = ffmpeg or find_ffmpeg()
    args = [exe, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-noautorotate", "-i", name,
            "-map", f"0:{info.index}", "-frames:v", "1", "-vf", ",".join(shape.filters()),
            "-an", "-sn", "-dn", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    try:
        result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MediaError(f"{name}: cannot run {exe}: {exc}") from None
    frame_bytes = size * size * 3
    if result.returncode != 0 or len(result.stdout) < frame_bytes:
        lines = [line for line in result.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit code {result.returncode}, no picture decoded"
        raise MediaError(f"{name}: ffmpeg cannot decode a picture: {detail}")
    return np.frombuffer(result.stdout[:frame_bytes], dtype=np.uint8).reshape(size, size, 3).copy()


def clip_range(start_s: float, end_s: float | None, fps: float) -> tuple[int, int | None]:
    """The clips ``[first, last)`` of the index's fps rule whose span overlaps ``[start_s, end_s)``.

    Clip ``i`` covers ``[i/fps, (i+1)/fps)``; a range shorter than a clip still gets the clip it lies in.
    ``end_s=None``: to the end of the video.

    Raises:
        UsageError: ``start_s < 0`` or ``end_s <= start_s``.
    """
    import math

    if start_s < 0 or (end_s is not None and end_s <= start_s):
        raise UsageError(f"a range needs 0 <= start < end, got {start_s:g}-{'' if end_s is None else f'{end_s:g}'}")
    first = int(math.floor(start_s * fps + 1e-9))
    if end_s is None:
        return first, None
    return first, max(first + 1, int(math.ceil(end_s * fps - 1e-9)))


def range_frames(path: str | os.PathLike, *, fps: float, start_s: float = 0.0, end_s: float | None = None,
                 size: int = 224, frame_rule: str = FRAME_RULE_EXACT, geometry: str = GEOMETRY_DISPLAY,
                 threads: int | None = None) -> tuple["np.ndarray", "np.ndarray"]:
    """The frames the index samples for the clips overlapping ``[start_s, end_s)`` of a video:
    ``(frames [n, S, S, 3] uint8, clip indices [n] int64)``, through ``FrameSampler`` (same rule, same chain).

    Raises:
        UsageError: a bad range (see ``clip_range``) or sampling setting.
        MediaError: ffmpeg fails, or the range lies past the end of the video (the message says how long it is).
        MissingDependencyError: ffmpeg/ffprobe are not installed.
    """
    import numpy as np

    first, last = clip_range(start_s, end_s, fps)
    frames, indices = [], []
    with FrameSampler(Path(path), fps=fps, size=size, frame_rule=frame_rule, geometry_rule=geometry, threads=threads,
                      start_clip=first, end_clip=last) as sampler:
        for chunk in sampler:
            frames.append(chunk.frames.copy())
            indices.append(np.arange(chunk.start, chunk.start + len(chunk.frames), dtype=np.int64))
    if not frames:
        stream = probe_stream(path)
        length = f"{stream.duration:g} s long" if getattr(stream, "duration", None) else "shorter"
        raise MediaError(f"{os.fspath(path)}: no frame in {start_s:g}-{'end' if end_s is None else f'{end_s:g}'} s "
                         f"(the video is {length})")
    return np.concatenate(frames), np.concatenate(indices)
