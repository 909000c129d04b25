#!/usr/bin/env python3
"""Regenerate the sample clips in this folder with ffmpeg's lavfi sources (no downloads, no inputs).

    python sample_media/generate.py            # writes the clips next to this file
    python sample_media/generate.py OUT_DIR    # writes them somewhere else

Every clip is 320x180 (the portrait one displays as 180x320), H.264 yuv420p, short, and made
from synthetic sources, so it is free of rights questions and small enough to commit.
README.md lists what each clip shows; the exact ffmpeg arguments are in CLIPS below.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Same bytes from the same ffmpeg build: one encoder thread, no version strings in the files.
ENCODE = ["-c:v", "libx264", "-preset", "medium", "-crf", "30", "-pix_fmt", "yuv420p", "-threads", "1",
          "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact"]
AUDIO = ["-c:a", "aac", "-b:a", "32k", "-ac", "1"]
BOX = "drawbox=x='mod(t*60\\,iw-40)':y='ih/2-20+40*sin(t*2)':w=40:h=40:c=white:t=fill"


def scenes(colors: list[str], seconds: float, box: str = BOX) -> tuple[list[str], str]:
    """Inputs and filter for equal-length solid-colour scenes joined by hard cuts, with a moving box."""
    inputs: list[str] = []
    for color in colors:
        inputs += ["-f", "lavfi", "-i", f"color=c={color}:s=320x180:r=25:d={seconds}"]
    joined = "".join(f"[{i}:v]" for i in range(len(colors)))
    return inputs, f"{joined}concat=n={len(colors)}:v=1:a=0,{box}[v]"


def red_then_blue_cut() -> list[str]:
    inputs, graph = scenes(["red", "blue"], 6)
    return [*inputs, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050:duration=12",
            "-filter_complex", graph, "-map", "[v]", "-map", "2:a", *ENCODE, *AUDIO,
            "-metadata", "title=Red scene, hard cut to blue at 6 s", "-shortest"]


def green_yellow_purple_scenes() -> list[str]:
    inputs, graph = scenes(["green", "yellow", "purple"], 5)
    tone = "aevalsrc=exprs='0.3*sin(2*PI*(330+220*floor(t/5))*t)':s=22050:d=15"
    return [*inputs, "-f", "lavfi", "-i", tone, "-filter_complex", graph, "-map", "[v]", "-map", "3:a",
            *ENCODE, *AUDIO, "-shortest"]


def testsrc_pattern_with_beeps() -> list[str]:
    return ["-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=10",
            "-f", "lavfi", "-i", "sine=frequency=880:beep_factor=4:sample_rate=22050:duration=10",
            "-map", "0:v", "-map", "1:a", *ENCODE, *AUDIO,
            "-metadata", "title=Moving test pattern with a beep every second", "-shortest"]


def portrait_rotated_orange_teal() -> list[str]:
    inputs, graph = scenes(["orange", "teal"], 5)
    return [*inputs, "-filter_complex", graph, "-map", "[v]", *ENCODE]


def variable_frame_rate_counter() -> list[str]:
    # testsrc draws a running frame counter; keep every frame for 5 s (30 fps), then every third (10 fps).
    return ["-f", "lavfi", "-i", "testsrc=s=320x180:r=30:d=10",
            "-vf", "select='if(lt(t\\,5)\\,1\\,not(mod(n\\,3)))'", "-fps_mode", "vfr", *ENCODE]


# name -> (arguments before the output file, post-processing: "rotate90" adds a display matrix)
CLIPS: dict[str, tuple] = {
    "red_then_blue_cut.mp4": (red_then_blue_cut, None),
    "green_yellow_purple_scenes.mp4": (green_yellow_purple_scenes, None),
    "testsrc_pattern_with_beeps.mp4": (testsrc_pattern_with_beeps, None),
    "portrait_rotated_orange_teal.mp4": (portrait_rotated_orange_teal, "rotate90"),
    "variable_frame_rate_counter.mp4": (variable_frame_rate_counter, None),
}


def run(ffmpeg: str, args: list[str]) -> None:
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def main(argv: list[str]) -> int:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("ffmpeg not found on PATH; install it with `sudo apt-get install ffmpeg`", file=sys.stderr)
        return 3
    out_dir = Path(argv[0]).resolve() if argv else HERE
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (make, post) in CLIPS.items():
        target = out_dir / name
        if post == "rotate90":
            # ffmpeg 5.x writes a display matrix from the rotate tag only on stream copy; ffprobe then
            # reports rotation 90 (counter-clockwise) and players show the clip as 180x320 portrait.
            coded = target.with_name(target.stem + ".coded.mp4")
            run(ffmpeg, [*make(), str(coded)])
            run(ffmpeg, ["-i", str(coded), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                         "-metadata", "title=Portrait clip: orange then teal", "-fflags", "+bitexact", str(target)])
            coded.unlink()
        else:
            run(ffmpeg, [*make(), str(target)])
        print(f"{target} ({target.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
