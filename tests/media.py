"""Generate test media with ffmpeg's lavfi sources (the command is recorded in each function).

Every function runs the real ffmpeg binary and returns the output path.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FFMPEG = shutil.which("ffmpeg")


def _run(args: list[str]) -> None:
    subprocess.run([FFMPEG or "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_video(
    path: str | Path,
    seconds: float = 6.0,
    width: int = 160,
    height: int = 120,
    fps: float = 25,
    colors: tuple[str, ...] = ("red", "blue"),
    audio: bool = False,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    gop: int | None = None,
    rotate: int | None = None,
    sar: str | None = None,
) -> Path:
    """Coloured scenes of equal length, each with a moving box so frames differ.

    ffmpeg -f lavfi -i color=c=<c>:s=WxH:r=FPS:d=<seconds/len(colors)> (one per colour)
           [-f lavfi -i sine=frequency=440:duration=<seconds>]
           -filter_complex "[0][1]...concat=n=N:v=1:a=0,drawbox=x='mod(t*40,W)':y=10:w=20:h=20:c=white:t=fill"
           -c:v libx264 -pix_fmt yuv420p [-g GOP] [-metadata:s:v rotate=R] OUT
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = seconds / len(colors)
    args: list[str] = []
    for color in colors:
        args += ["-f", "lavfi", "-i", f"color=c={color}:s={width}x{height}:r={fps}:d={part}"]
    n = len(colors)
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    chain = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0,"
    chain += "drawbox=x='mod(t*40\\,iw-20)':y=10:w=20:h=20:c=white:t=fill"
    if sar:
        chain += f",setsar={sar.replace(':', '/')}"
    chain += "[v]"
    args += ["-filter_complex", chain, "-map", "[v]"]
    if audio:
        args += ["-map", f"{n}:a", "-c:a", "aac", "-shortest"]
    args += ["-c:v", codec, "-pix_fmt", pix_fmt]
    if codec == "libx264":
        args += ["-preset", "ultrafast"]
    if gop:
        args += ["-g", str(gop)]
    args += [str(path)]
    _run(args)
    if rotate is not None:
        # ffmpeg writes the display matrix from the rotate tag only on stream copy:
        # ffmpeg -i OUT -c copy -metadata:s:v:0 rotate=R OUT.rot
        tmp = path.with_name(path.stem + ".rot" + path.suffix)
        _run(["-i", str(path), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(tmp)])
        tmp.replace(path)
    return path


def make_testsrc(path: str | Path, seconds: float = 10.0, size: str = "320x240", fps: float = 25) -> Path:
    """ffmpeg -f lavfi -i testsrc2=s=SIZE:r=FPS:d=SECONDS -c:v libx264 -preset ultrafast -pix_fmt yuv420p OUT"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(["-f", "lavfi", "-i", f"testsrc2=s={size}:r={fps}:d={seconds}", "-c:v", "libx264",
          "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)])
    return path
