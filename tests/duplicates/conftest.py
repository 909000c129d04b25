"""A small archive of real copies made by ffmpeg from the sample media, indexed with the tiny CLIP.

``source.mp4`` joins three sample clips (37 s: ``testsrc2``, three colour scenes, a red/blue cut);
its copies, each made by one ffmpeg command (recorded in ``COPIES``), are re-encodes at another
size, with another codec, trimmed, letterboxed (16:9 in 16:10) and pillarboxed (16:9 in 21:9), a
mirrored copy (a negative case: see the tests) and a byte copy. Two unrelated sample clips are
there too. Indexed through the normal index path
(``run_index``: scan, fingerprint, frames by ffmpeg, the tiny CLIP tower) at 1 clip per second.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_media"
PARTS = ("testsrc_pattern_with_beeps.mp4", "green_yellow_purple_scenes.mp4", "red_then_blue_cut.mp4")
OTHERS = ("portrait_rotated_orange_teal.mp4", "variable_frame_rate_counter.mp4")
FPS = 1.0
# copy name -> ffmpeg arguments between "-i source.mp4" and the output
COPIES = {
    "small.mp4": ["-vf", "scale=160:90", "-c:v", "libx264", "-crf", "30", "-an"],
    "other_codec.mkv": ["-c:v", "mpeg4", "-q:v", "6", "-an"],
    "trimmed.mp4": ["-ss", "5", "-t", "20", "-c:v", "libx264", "-an"],
    "letterboxed.mp4": ["-vf", "pad=320:200:0:10:black", "-c:v", "libx264", "-an"],
    "pillarboxed.mp4": ["-vf", "pad=420:180:50:0:black", "-c:v", "libx264", "-an"],
    "mirrored.mp4": ["-vf", "hflip", "-c:v", "libx264", "-an"],
}


def _ffmpeg(ffmpeg: str, *args: str) -> None:
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True)


def make_archive(ffmpeg: str, folder: Path) -> Path:
    """The source, its copies and two unrelated clips in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs: list[str] = []
    for name in PARTS:
        inputs += ["-i", str(SAMPLES / name)]
    joined = "".join(f"[{i}:v]scale=320:180,setsar=1,fps=25[v{i}];" for i in range(len(PARTS)))
    joined += "".join(f"[v{i}]" for i in range(len(PARTS))) + f"concat=n={len(PARTS)}:v=1:a=0[out]"
    source = folder / "source.mp4"
    _ffmpeg(ffmpeg, *inputs, "-filter_complex", joined, "-map", "[out]", "-c:v", "libx264", "-pix_fmt", "yuv420p",
            str(source))
    for name, args in COPIES.items():
        _ffmpeg(ffmpeg, "-i", str(source), *args, str(folder / name))
    for name in OTHERS:
        shutil.copy(SAMPLES / name, folder / name)
    shutil.copy(source, folder / "same_bytes.mp4")  # the same content under another name: "identical"
    return folder


@pytest.fixture(scope="session")
def dups_archive(ffmpeg, tiny_clip_path, tmp_path_factory):
    """(workspace, media folder) of the indexed archive."""
    from r2cli.app.index import IndexOptions, run_index
    from r2cli.paths import resolve_workspace

    root = tmp_path_factory.mktemp("dups")
    media = make_archive(ffmpeg, root / "media")
    workspace = resolve_workspace(root / "ws")
    result = run_index(workspace, IndexOptions.from_flags(paths=[media], clip_weights=str(tiny_clip_path),
                                                          fps=FPS, device="cpu"))
    assert result is not None
    return workspace, media
