"""Generated sources shared by the cut tests (the registry of tests/fixtures.py ``MEDIA``; real
ffmpeg, skipped when it is absent)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def source_video(tiny_media_path):
    """8 s, 25 fps, 160x120, three coloured scenes, 440 Hz audio, keyframe every 25 frames (``cut-source``)."""
    return tiny_media_path("cut-source")


@pytest.fixture(scope="session")
def silent_video(tiny_media_path):
    """4 s, 30 fps, 320x240, no audio, named "silent clip.mp4" (``silent``)."""
    return tiny_media_path("silent")
