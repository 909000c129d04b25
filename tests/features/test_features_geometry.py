"""--geometry official: frames scaled by the coded size like the official extractor; display stays the default (#14)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from fixtures import make_video

from r2cli.features.store import FeatureSettings
from r2cli.media.frames import GEOMETRY_OFFICIAL, compute_geometry, sample_frames

SIZE = 64
FPS = 1.0


def official_frames(ffmpeg: str, path, width: int, height: int) -> np.ndarray:
    """tools/extract_frames.py (spec section 1.1): ffprobe w, h; short side -> SIZE by int(); centre crop
    at int offsets; ffmpeg fps -> scale -> crop -> rgb24 (ffmpeg's own defaults otherwise)."""
    if width > height:
        w, h = int(width * SIZE / height), SIZE
    else:
        w, h = SIZE, int(height * SIZE / width)
    x, y = int((w - SIZE) / 2), int((h - SIZE) / 2)
    out = subprocess.run(
        [ffmpeg, "-loglevel", "error", "-i", str(path), "-vf", f"fps={FPS},scale={w}:{h},crop={SIZE}:{SIZE}:{x}:{y}",
         "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:"], capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.uint8).reshape(-1, SIZE, SIZE, 3)


@pytest.mark.parametrize("name, make, coded", [
    ("sar.mp4", dict(width=176, height=144, sar="128:117"), (176, 144)),  # non-square pixels (PAL-like)
    ("rotated.mp4", dict(width=96, height=64, rotate=90), (96, 64)),  # display matrix: shown upright 64x96
])
def test_official_geometry_equals_the_official_chain(ffmpeg, tmp_path, name, make, coded):
    clip = make_video(tmp_path / name, seconds=4, colors=("red", "blue", "green", "white"), **make)
    expected = official_frames(ffmpeg, clip, *coded)
    official, _ = sample_frames(clip, fps=FPS, size=SIZE, geometry=GEOMETRY_OFFICIAL)
    assert official.shape == expected.shape == (4, SIZE, SIZE, 3)
    np.testing.assert_array_equal(official, expected)
    display, _ = sample_frames(clip, fps=FPS, size=SIZE)  # the default honours SAR and rotation
    assert not np.array_equal(display, expected)


def test_the_two_geometries_are_different_feature_sets():
    display = FeatureSettings(clip_model="ViT-B-32", weights_id="ViT-B-32/openai")
    official = FeatureSettings(clip_model="ViT-B-32", weights_id="ViT-B-32/openai", geometry="official")
    assert display.key() != official.key()
    assert '"geometry"' not in display.canonical_json()  # keys of sets written before the setting are kept
    assert FeatureSettings.from_dict(official.to_dict()) == official


def test_geometry_arithmetic():
    sar = compute_geometry(176, 144, 224, sample_aspect_ratio="128:117")
    assert (sar.scaled_width, sar.scaled_height) == (299, 224)  # 176*128/117 = 192.5 wide on screen
    coded = compute_geometry(176, 144, 224, sample_aspect_ratio="128:117", geometry="official")
    assert (coded.scaled_width, coded.scaled_height, coded.crop_x) == (273, 224, 24)
    turned = compute_geometry(96, 64, 224, rotation=90, geometry="official")
    assert (turned.scaled_width, turned.scaled_height) == (336, 224) and turned.rotation_filters() == ["transpose=cclock"]
