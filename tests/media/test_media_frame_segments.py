"""Decoding a video in segments gives exactly the whole-video decode: frames, timestamps, counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _decode(path, fps, **segment):
    from r2cli.media.frames import FrameSampler

    sampler = FrameSampler(path, fps=fps, **segment)
    chunks = list(sampler)
    frames = np.concatenate([c.frames for c in chunks]) if chunks else np.zeros((0,))
    stamps = np.concatenate([c.timestamps for c in chunks]) if chunks else np.zeros((0,))
    starts = [c.start for c in chunks]
    return frames, stamps, starts, sampler.stats


def _in_segments(path, fps, count, pieces):
    from r2cli.media.frames import SeekGapError

    size = max(1, count // pieces)
    frames, stamps, decoded, padding = [], [], 0, 0
    for start in range(0, count, size):
        end = start + size if start + size < count else None
        margin = 3.0
        while True:
            try:
                f, t, starts, stats = _decode(path, fps, start_clip=start, end_clip=end, seek_margin_s=margin)
                break
            except SeekGapError:
                margin *= 4
        assert starts[0] == start
        frames.append(f)
        stamps.append(t)
        decoded += stats.decoded_frames
        padding += stats.end_padding
    return np.concatenate(frames), np.concatenate(stamps), decoded, padding


@pytest.fixture(scope="module")
def clips(ffmpeg, tmp_path_factory):
    """A 95 s H.264 MP4 (keyframe every 10 s), an MPEG-TS that starts at 8.7 s, and the sample media."""
    import subprocess

    folder = tmp_path_factory.mktemp("segments")
    mp4, ts = folder / "long.mp4", folder / "offset.ts"
    run = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi"]
    subprocess.run([*run, "-i", "testsrc2=size=160x120:rate=25:duration=95", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", "250", "-pix_fmt", "yuv420p", str(mp4)], check=True)
    subprocess.run([*run, "-i", "testsrc2=size=160x120:rate=25:duration=60", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", "100", "-pix_fmt", "yuv420p", "-f", "mpegts", "-output_ts_offset", "7.3",
                    str(ts)], check=True)
    return [mp4, ts, *sorted((REPO / "sample_media").glob("*.mp4"))]


@pytest.mark.parametrize("fps", [0.5, 1.0])
def test_segments_equal_the_whole_decode(clips, fps):
    for path in clips:
        whole, stamps, _, stats = _decode(path, fps)
        frames, seg_stamps, decoded, padding = _in_segments(path, fps, len(whole), pieces=3)
        assert frames.shape == whole.shape, path
        assert (frames == whole).all(), path
        assert (seg_stamps == stamps).all(), path
        assert (decoded, padding) == (stats.decoded_frames, stats.end_padding), path


def test_a_seek_that_lands_inside_the_segment_is_refused(clips):
    """MPEG-TS seeks are inexact: a zero margin lands on the segment's own frames and must say so."""
    from r2cli.media.frames import FrameSampler, SeekGapError

    with pytest.raises(SeekGapError, match="landed inside it"):
        list(FrameSampler(clips[1], fps=0.5, start_clip=10, end_clip=20, seek_margin_s=0.0))


def test_bad_segment_bounds_are_refused():
    from r2cli.errors import UsageError
    from r2cli.media.frames import FrameSampler

    with pytest.raises(UsageError, match="0 <= start_clip < end_clip"):
        FrameSampler("x.mp4", fps=0.5, start_clip=5, end_clip=5)
