"""Fixtures of the summarize tests: an archive of generated videos indexed with the real scan and
feature extraction (tiny CLIP), and two tiny random heads.

Media (real ffmpeg, see tests/fixtures.py ``make_video``):

- ``scenes.mp4``: 30 s, red → blue → green (cuts at 10 s and 20 s = clips 5 and 10 at 0.5 fps),
  440 Hz audio, container title "Three coloured scenes"
  (``make_video(PATH, seconds=30, colors=("red", "blue", "green"), audio=True)``, then
  ``ffmpeg -i PATH -c copy -metadata title="Three coloured scenes" OUT``);
- ``holiday_trip-2019.mp4``: 20 s, yellow → magenta, no title
  (``make_video(PATH, seconds=20, colors=("yellow", "magenta"))``);
- ``long_walk.mp4``: 64 s, four scenes (``make_video(PATH, seconds=64, colors=("red", "white", "blue", "black"))``);
- ``late/unextracted.mp4``: 8 s, scanned into the catalog without features.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

TITLE = "Three coloured scenes"


@dataclass
class Archive:
    workspace: object  # r2cli.paths.Workspace
    media: Path  # folder of the indexed videos
    scenes: Path
    holiday: Path
    long: Path
    unextracted: Path


@pytest.fixture(scope="session")
def head_path(tiny_model_path) -> Path:
    """A random grounding head (boundary head included) in the r2cli safetensors layout."""
    return tiny_model_path("head-grounding")


@pytest.fixture(scope="session")
def saliency_head_path(tiny_model_path) -> Path:
    """A random saliency-only head (no boundary head, like the TVSum/YouTube heads) in the official .pth layout."""
    return tiny_model_path("head-saliency")


@pytest.fixture(scope="session")
def archive(ffmpeg, tmp_path_factory, tiny_tower) -> Archive:
    from fixtures import make_video

    from r2cli.catalog.scan import scan_archive
    from r2cli.features.extract import extract_features
    from r2cli.paths import resolve_workspace

    root = tmp_path_factory.mktemp("summarize")
    media = root / "media"
    plain = make_video(root / "raw" / "scenes.mp4", seconds=30, colors=("red", "blue", "green"), audio=True)
    scenes = media / "scenes.mp4"
    media.mkdir(parents=True)
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(plain), "-c", "copy",
                    "-metadata", f"title={TITLE}", str(scenes)], check=True)
    holiday = make_video(media / "holiday_trip-2019.mp4", seconds=20, colors=("yellow", "magenta"))
    long = make_video(media / "long_walk.mp4", seconds=64, colors=("red", "white", "blue", "black"))
    unextracted = make_video(root / "late" / "unextracted.mp4", seconds=8, colors=("green",))
    workspace = resolve_workspace(root / "ws")
    scan_archive([media], workspace)
    extract_features(workspace, tower=tiny_tower)
    scan_archive([unextracted.parent], workspace)
    return Archive(workspace, media, scenes, holiday, long, unextracted)


@pytest.fixture
def cli(capsys):
    """Run ``r2cli ARGS`` in-process (errors become one line and an exit code, as for a user).

    Returns (exit code, stdout, stderr); the CLI always ends with SystemExit in standalone mode.
    """
    from r2cli.cli.main import main

    def invoke(*args: object) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as stopped:
            main([str(a) for a in args])
        captured = capsys.readouterr()
        code = stopped.value.code
        return (code if isinstance(code, int) else int(code is not None)), captured.out, captured.err

    return invoke
