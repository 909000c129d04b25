"""Thumbnails for the report: ONE ffmpeg process per video extracts every frame the report needs.

The frames are chosen by a ``select`` filter (written to a filter script, so thousands of
timestamps fit): for a wanted time T the first frame whose timestamp is >= T is kept, timestamps
counted from the first frame (``setpts=PTS-STARTPTS``), so a file whose first packet is not at 0
lines up. Output files are named by their timestamp in milliseconds (``-frame_pts`` with a
1/1000 encoder time base), which tells which file answers which wanted time. The player's
rotation is applied (ffmpeg's default autorotate), so portrait clips look portrait.
"""

from __future__ import annotations

import bisect
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from r2cli.errors import UsageError
from r2cli.media._process import run_ffmpeg


@dataclass
class VideoThumbs:
    """The thumbnails of one video: wanted time (ms) -> file, or why there are none."""

    files: dict[int, Path] = field(default_factory=dict)
    problem: str | None = None  # ffmpeg's last error lines when extraction failed
    seconds: float = 0.0  # wall time of the ffmpeg process

    def get(self, seconds: float) -> Path | None:
        return self.files.get(wanted_ms(seconds))


def wanted_ms(seconds: float) -> int:
    """The key of a wanted time: whole milliseconds."""
    return int(round(max(0.0, seconds) * 1000))


def _select_expression(times_s: list[float]) -> str:
    """The sum of one term per wanted time, as a balanced tree: ffmpeg's expression evaluator allows
    about 100 levels of nesting, and a flat ``a+b+c...`` nests one level per term."""
    # first frame at or after T: t >= T and the previous frame's t < T (prev_t is NAN on the first frame)
    terms = [f"gte(t\\,{t:.3f})*not(gte(prev_t\\,{t:.3f}))" for t in times_s]

    def tree(lo: int, hi: int) -> str:
        if hi - lo == 1:
            return terms[lo]
        mid = (lo + hi) // 2
        return f"({tree(lo, mid)})+({tree(mid, hi)})"

    return tree(0, len(terms))


def extract_thumbnails(
    video: str | os.PathLike,
    times_s: Iterable[float],
    folder: str | os.PathLike,
    *,
    width: int,
    duration_s: float,
    fps: float,
    ffmpeg: str,
) -> VideoThumbs:
    """Extract the frames at ``times_s`` (seconds) of ``video`` into ``folder`` as JPEG, ``width`` wide.

    Times are clamped into the video (the last wanted time is at most one frame before the end).
    Returns the files by wanted time; a failing ffmpeg is reported in ``problem``, not raised.

    Raises:
        UsageError: ``width`` below 16 pixels.
    """
    import time

    if width < 16:
        raise UsageError(f"--thumb-width must be >= 16, got {width}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    last = max(0.0, duration_s - 1.5 / max(fps, 1e-3))
    # each wanted time -> the start of its frame (at the mean rate), so nearby times share one frame
    asked = {wanted_ms(t): _frame_start_ms(min(max(0.0, t), last), fps) for t in times_s}
    wanted = sorted(set(asked.values()))
    result = VideoThumbs()
    if not wanted:
        return result
    began = time.monotonic()
    script_text = f"setpts=PTS-STARTPTS,select='{_select_expression([ms / 1000 for ms in wanted])}'," \
                  f"settb=1/1000,scale={int(width)}:-2"
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix=".r2cli-select-", dir=out, delete=False,
                                     encoding="utf-8") as script:
        script.write(script_text)
    try:
        # Written by hand: the select expression (one term per thumbnail) goes in a -filter_script
        # file, which ffmpeg-python has no way to name; inlined it would outgrow the command line.
        args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-threads", "1", "-i", str(video),
                "-an", "-sn", "-dn", "-map", "0:v:0", "-filter_script:v", script.name, "-fps_mode", "passthrough",
                "-enc_time_base:v", "1:1000", "-frame_pts", "1", "-q:v", "5", "-f", "image2", str(out / "%d.jpg")]
        # its own process group, killed with r2cli (as every ffmpeg r2cli starts)
        code, stderr = run_ffmpeg(args)
    finally:
        os.unlink(script.name)
    result.seconds = time.monotonic() - began
    made = sorted(int(p.stem) for p in out.glob("*.jpg") if p.stem.isdigit() and p.stat().st_size > 0)
    if code != 0 or not made:
        lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
        result.problem = f"ffmpeg failed (exit {code}): {'; '.join(lines[-2:]) or 'no frames'}"
        return result
    answer = {}
    for ms in wanted:  # the frame that answered T is the first one at or after it
        i = bisect.bisect_left(made, ms - 1)
        answer[ms] = out / f"{made[min(i, len(made) - 1)]}.jpg"
    result.files = {key: answer[frame] for key, frame in asked.items()}
    return result


def _frame_start_ms(seconds: float, fps: float) -> int:
    if fps > 0:
        return wanted_ms(math.floor(seconds * fps + 1e-6) / fps)
    return wanted_ms(seconds)
