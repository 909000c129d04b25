"""The committed sample clips are what sample_media/README.md says they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from r2cli.catalog.scan import scan_archive
from r2cli.media.probe import probe
from r2cli.paths import resolve_workspace

SAMPLES = Path(__file__).resolve().parents[2] / "sample_media"

# clip -> (duration s, mean fps, frames, display size, rotation, audio, title starts with)
EXPECTED = {
    "red_then_blue_cut.mp4": (12.0, 25.0, 300, (320, 180), 0, True, "Red scene, hard cut to blue"),
    "green_yellow_purple_scenes.mp4": (15.0, 25.0, 375, (320, 180), 0, True, None),
    "testsrc_pattern_with_beeps.mp4": (10.0, 25.0, 250, (320, 180), 0, True, "Moving test pattern"),
    "portrait_rotated_orange_teal.mp4": (10.0, 25.0, 250, (180, 320), 90, False, "Portrait clip"),
    "variable_frame_rate_counter.mp4": (9.93, 20.4, 200, (320, 180), 0, False, None),
}


def test_the_committed_set_is_small_and_documented():
    clips = sorted(p.name for p in SAMPLES.glob("*.mp4"))
    assert clips == sorted(EXPECTED)
    assert sum((SAMPLES / name).stat().st_size for name in clips) <= 2 * 1024 * 1024
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in clips)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_clip_properties(ffmpeg, name):
    duration, fps, frames, display, rotation, audio, title = EXPECTED[name]
    info = probe(SAMPLES / name)
    assert info.duration == pytest.approx(duration, abs=0.05)
    assert info.fps == pytest.approx(fps, abs=0.05)
    assert info.frame_count == frames
    assert (info.display_width, info.display_height) == display and info.rotation == rotation
    assert (info.width, info.height) == (320, 180) and info.codec == "h264" and info.pixel_format == "yuv420p"
    assert info.has_audio is audio
    assert (info.title or None) is None if title is None else info.title.startswith(title)
    if name.startswith("variable_frame_rate"):
        assert info.max_fps == 30.0  # timestamps on a 30 fps base, mean 20.4: variable frame rate


def test_sample_media_indexes_cleanly(ffmpeg, tmp_path):
    report = scan_archive([SAMPLES], resolve_workspace(tmp_path / "ws"))
    assert (report.new, report.errors, report.seen) == (len(EXPECTED), 0, len(EXPECTED))
