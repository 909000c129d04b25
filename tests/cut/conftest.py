"""Generated sources shared by the cut tests (real ffmpeg; skipped when it is absent)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def source_video(ffmpeg, tmp_path_factory):
    """8 s, 25 fps, 160x120, three coloured scenes, 440 Hz audio, keyframe every 25 frames.

    make_video(PATH, seconds=8, fps=25, colors=("red", "green", "blue"), audio=True, gop=25)
    """
    from media import make_video

    return make_video(
        tmp_path_factory.mktemp("sources") / "source.mp4",
        seconds=8,
        fps=25,
        colors=("red", "green", "blue"),
        audio=True,
        gop=25,
    )


@pytest.fixture(scope="session")
def silent_video(ffmpeg, tmp_path_factory):
    """4 s, 30 fps, 320x240, no audio: make_video(PATH, seconds=4, width=320, height=240, fps=30)."""
    from media import make_video

    return make_video(tmp_path_factory.mktemp("sources") / "silent clip.mp4", seconds=4, width=320, height=240, fps=30)
