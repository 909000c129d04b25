"""Generated clips whose pixels say what they are, for the feature tests (helpers, not fixtures)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"


def run_ffmpeg(args: list[str]) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_counter_video(
    path: Path,
    seconds: float,
    fps: float = 25,
    *,
    size: str = "64x48",
    setpts: str | None = None,
    quality: tuple[str, ...] = ("-qp", "0"),
    ext_args: tuple[str, ...] = (),
) -> Path:
    """Each frame shows its own index N: left half grey (N mod 16)*16+8, right half (N div 16)*16+8.

    ffmpeg -f lavfi -i "color=c=black:s=SIZE:r=FPS:d=SECONDS,format=gray,
           geq=lum='if(lt(X,W/2),mod(N,16)*16+8,floor(N/16)*16+8)'[,settb=1/1000,setpts=EXPR]"
           -c:v libx264 -preset ultrafast -qp 0 -pix_fmt yuv420p [-fps_mode vfr] OUT
    (lossless by default, so the index survives up to N = 255; lossless x264 makes no B-frames,
    so a clip that needs them passes ``quality=("-crf", "5")``, close enough for the +-8 grey steps).
    """
    chain = (
        f"color=c=black:s={size}:r={fps}:d={seconds},format=gray,"
        "geq=lum='if(lt(X\\,W/2)\\,mod(N\\,16)*16+8\\,floor(N/16)*16+8)'"
    )
    if setpts:
        chain += f",settb=1/1000,setpts='{setpts}'"
    args = ["-f", "lavfi", "-i", chain, "-c:v", "libx264", "-preset", "ultrafast", *quality, "-pix_fmt", "yuv420p"]
    if setpts:
        args += ["-fps_mode", "vfr"]
    run_ffmpeg([*args, *ext_args, str(path)])
    return path


def frame_indices(frames) -> list[int]:
    """Read back the index ``make_counter_video`` painted into each (cropped, scaled) RGB frame."""
    import numpy as np

    size = frames.shape[1]
    row = size // 2
    left = frames[:, row, size // 8, 0].astype(int)
    right = frames[:, row, size - 1 - size // 8, 0].astype(int)
    return list((np.round((right - 8) / 16) * 16 + np.round((left - 8) / 16)).astype(int))


def frame_pts(path: Path) -> list[float]:
    """Presentation times of every decoded frame, in order (ffprobe -show_entries frame=pts_time)."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(float(line.strip().strip(",")) for line in out.splitlines() if line.strip())


BAND_COLORS = ("red", "lime", "blue", "yellow")  # RGB (255,0,0) (0,255,0) (0,0,255) (255,255,0)
BAND_RGB = {"red": (255, 0, 0), "lime": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}


def make_band_video(
    path: Path, width: int, height: int, *, vertical: bool = True, rotate: int | None = None, sar: str | None = None,
    seconds: float = 2.0, pix_fmt: str = "yuv420p",
) -> Path:
    """Four equal colour bands (red, lime, blue, yellow), left to right (``vertical``) or top to bottom.

    ffmpeg -f lavfi -i "color=red:s=BxH:d=S[a];color=lime...[b];...;[a][b][c][d]hstack=4[,setsar=SAR]"
           -c:v libx264 -preset ultrafast -pix_fmt PIX OUT
    then, for a rotation: ffmpeg -i OUT -c copy -metadata:s:v:0 rotate=R OUT2
    """
    n = len(BAND_COLORS)
    band = f"{width // n}x{height}" if vertical else f"{width}x{height // n}"
    sources = ";".join(f"color=c={c}:s={band}:r=25:d={seconds}[s{i}]" for i, c in enumerate(BAND_COLORS))
    stack = "".join(f"[s{i}]" for i in range(n)) + (f"hstack=inputs={n}" if vertical else f"vstack=inputs={n}")
    if sar:
        stack += f",setsar={sar}"
    target = path if rotate is None else path.with_name(path.stem + ".norot" + path.suffix)
    run_ffmpeg(["-f", "lavfi", "-i", f"{sources};{stack}", "-c:v", "libx264", "-preset", "ultrafast",
                "-pix_fmt", pix_fmt, str(target)])
    if rotate is not None:
        run_ffmpeg(["-i", str(target), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(path)])
        target.unlink()
    return path


def nearest_band(rgb) -> str:
    """The band colour closest to an RGB pixel."""
    return min(BAND_RGB, key=lambda name: sum((int(a) - b) ** 2 for a, b in zip(rgb, BAND_RGB[name])))
