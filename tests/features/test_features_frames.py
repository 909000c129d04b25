"""Frame sampling: the official fps rule, clip counts, timestamps, geometry, rotation, SAR, VFR, 10-bit."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from features_media import (
    frame_indices,
    frame_pts,
    make_band_video,
    make_counter_video,
    nearest_band,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from r2cli.errors import UsageError
from r2cli.media.frames import (
    FRAME_RULE_NOREF,
    FpsTickTracker,
    FrameSampler,
    VideoTooShortError,
    compute_geometry,
    expected_clip_count,
    probe_stream,
    sample_frames,
)


def rule_choice(pts: list[float], fps: float, index: int) -> int:
    """The frame the rule gives clip ``index``: the last one shown before the clip's middle."""
    middle = Fraction(2 * index + 1, 2) / Fraction(str(fps))
    chosen = 0
    for j, t in enumerate(pts):
        if Fraction(str(t)) < middle:
            chosen = j
    return chosen


# ---------------------------------------------------------------------------------------------
# clip counts and timestamps on real ffmpeg output


@pytest.fixture(scope="module")
def counter_videos(ffmpeg, tmp_path_factory):
    folder = tmp_path_factory.mktemp("counter")
    return {seconds: make_counter_video(folder / f"c{seconds}.mp4", seconds) for seconds in (1.0, 5.0, 6.52, 7.0)}


@pytest.mark.parametrize("seconds", [1.0, 5.0, 6.52, 7.0])
@pytest.mark.parametrize("fps", [0.5, 1.0, 2.0])
def test_clip_count_and_timestamps_follow_the_fps_rule(counter_videos, seconds, fps):
    path = counter_videos[seconds]
    frames, stamps = sample_frames(path, fps=fps, size=32)
    # 25 fps source: the last frame ends exactly at `seconds`.
    assert len(frames) == expected_clip_count(seconds, fps) == math.floor(seconds * fps + 0.5)
    assert len(stamps) == len(frames)
    shown = frame_indices(frames)
    pts = frame_pts(path)
    expected = [rule_choice(pts, fps, i) for i in range(len(frames))]
    assert shown == expected  # the pixels are those of the frame the rule picks...
    assert list(stamps) == pytest.approx([pts[j] for j in shown], abs=1e-9)  # ...and carry its timestamp


def test_documented_counts():
    assert expected_clip_count(5.0, 0.5) == 3  # 2.5 rounds up
    assert expected_clip_count(6.52, 0.5) == 3
    assert expected_clip_count(6.52, 2) == 13
    assert expected_clip_count(0.92, 0.5) == 0
    assert expected_clip_count(150.0, 0.5) == 75  # QVHighlights: int(duration*fps) for even durations


def test_too_short_video_raises(ffmpeg, tmp_path):
    path = make_counter_video(tmp_path / "short.mp4", 0.9)
    with pytest.raises(VideoTooShortError, match="too short for one clip at 0.5 fps"):
        sample_frames(path, fps=0.5, size=32)
    frames, _ = sample_frames(path, fps=1, size=32)  # 0.9 s is more than half a 1 s clip
    assert len(frames) == 1


def test_variable_frame_rate_timestamps(ffmpeg, tmp_path):
    # 25 fps for 1 s, then one frame every 0.3 s: the rule must use the real timestamps.
    path = make_counter_video(
        tmp_path / "vfr.mkv", 3.0, setpts="if(lt(N,25),N*40,1000+(N-25)*300)/(1000*TB)"
    )
    pts = frame_pts(path)
    assert pts[26] - pts[25] == pytest.approx(0.3, abs=0.002)
    frames, stamps = sample_frames(path, fps=2, size=32)
    shown = frame_indices(frames)
    assert shown == [rule_choice(pts, 2, i) for i in range(len(frames))]
    assert list(stamps) == pytest.approx([pts[j] for j in shown], abs=1e-9)


def test_streaming_reads_are_bounded(counter_videos):
    sampler = FrameSampler(counter_videos[7.0], fps=2, size=32, chunk_frames=3)
    sizes = [len(chunk.frames) for chunk in sampler]
    assert sizes == [3, 3, 3, 3, 2]
    assert sampler.stats.clips == 14
    assert 0 < sampler.stats.max_read_bytes <= 3 * 32 * 32 * 3  # never more than one chunk per read
    assert sampler.stats.decoded_frames == 175


def test_early_stop_kills_ffmpeg(counter_videos):
    sampler = FrameSampler(counter_videos[7.0], fps=2, size=32, chunk_frames=1)
    with sampler:
        chunks = iter(sampler)
        first = next(chunks)
        process = sampler._process
        assert len(first.frames) == 1 and process.poll() is None
    assert process.poll() is not None  # leaving the block stopped ffmpeg mid-stream


def test_command_passes_thread_count_and_official_chain(counter_videos):
    args = FrameSampler(counter_videos[5.0], fps=0.5, size=224, threads=3).command()
    assert args[args.index("-threads") + 1] == "3"
    graph = args[args.index("-filter_complex") + 1]  # built with ffmpeg-python: one labelled step per filter
    # 64x48 source: w' = int(64*224/48) = 298, x = int((298-224)/2) = 37
    assert graph == ("[0:0]showinfo=checksum=0[s0];[s0]fps=0.5[s1];[s1]scale=298:224[s2];"
                     "[s2]crop=224:224:37:0[s3]")
    assert args[args.index("-map") + 1] == "[s3]"
    assert "-noautorotate" in args[: args.index("-i")]


def test_noref_mode_reports_the_frames_it_used(ffmpeg, tmp_path):
    # B-frames that no other frame references: the decoder may skip them in the opt-in fast mode.
    path = make_counter_video(
        tmp_path / "b.mp4", 4.0, quality=("-crf", "5"),
        ext_args=("-preset", "fast", "-bf", "3", "-x264-params", "b-pyramid=0:b-adapt=0"),
    )
    pts = frame_pts(path)
    _, exact = sample_frames(path, fps=1, size=32)
    frames, fast = sample_frames(path, fps=1, size=32, frame_rule=FRAME_RULE_NOREF)
    assert len(fast) == len(exact)
    assert list(fast) == pytest.approx([pts[j] for j in frame_indices(frames)], abs=1e-9)
    assert 0 < max(abs(a - b) for a, b in zip(exact, fast)) <= 0.2  # B-frames skipped, at most 3 frames off


# ---------------------------------------------------------------------------------------------
# the fps filter replayed


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=60),
    first=st.integers(min_value=0, max_value=3000),
    fps=st.sampled_from([0.5, 1.0, 2.0, 3.0, 0.25]),
)
def test_tick_tracker_matches_the_filter_rule(gaps, first, fps):
    time_base = Fraction(1, 1000)
    pts = [first]
    for gap in gaps[1:]:
        pts.append(pts[-1] + gap)
    tracker = FpsTickTracker(fps, time_base)
    for value in pts:
        tracker.push(value)
    resolved = tracker.pop_ready(10**6)

    def tick(value: int) -> int:  # round half away from zero, in ticks of 1/fps
        exact = Fraction(value) * time_base * Fraction(str(fps))
        return math.floor(exact + Fraction(1, 2))

    start = tick(pts[0])
    last_tick = tick(pts[-1])
    expected = []
    for n in range(start, last_tick):  # ticks decided before the end of the stream
        chosen = max(j for j, value in enumerate(pts) if tick(value) <= n or j == 0)
        expected.append(float(pts[chosen] * time_base))
    assert resolved == expected
    assert tracker.last_timestamp() == float(pts[-1] * time_base)


def test_tick_tracker_memory_is_constant():
    tracker = FpsTickTracker(0.5, Fraction(1, 25))
    for n in range(100_000):  # an hour at 25 fps, drained as a consumer would
        tracker.push(n)
        tracker.pop_ready(4)
    assert tracker.resolved() == 0


# ---------------------------------------------------------------------------------------------
# geometry


@pytest.mark.parametrize(
    ("width", "height", "scaled", "offset"),
    [
        (1280, 720, (398, 224), (87, 0)),  # int(1280*224/720) = 398
        (720, 1280, (224, 398), (0, 87)),
        (641, 479, (299, 224), (37, 0)),  # odd sizes truncate
        (224, 224, (224, 224), (0, 0)),
        (100, 50, (448, 224), (112, 0)),  # upscaling
    ],
)
def test_geometry_matches_the_official_formula(width, height, scaled, offset):
    geometry = compute_geometry(width, height, 224)
    assert (geometry.scaled_width, geometry.scaled_height) == scaled
    assert (geometry.crop_x, geometry.crop_y) == offset
    if width > height:  # the official float formula
        assert geometry.scaled_width == int(width * 224 / height)
    assert geometry.rotation_filters() == []


def test_geometry_uses_display_size():
    rotated = compute_geometry(1280, 720, 224, rotation=90)
    assert (rotated.scaled_width, rotated.scaled_height, rotated.crop_y) == (224, 398, 87)
    assert rotated.rotation_filters() == ["transpose=cclock"]
    assert compute_geometry(1280, 720, 224, rotation=270).rotation_filters() == ["transpose=clock"]
    assert compute_geometry(1280, 720, 224, rotation=180).rotation_filters() == ["hflip", "vflip"]
    anamorphic = compute_geometry(720, 576, 224, sample_aspect_ratio="16:11")  # display 1047.27 x 576
    assert (anamorphic.scaled_width, anamorphic.scaled_height) == (407, 224)
    with pytest.raises(UsageError, match="multiple of 90"):
        compute_geometry(100, 100, 224, rotation=45)


def _bands(frame) -> tuple[str, str, str, str]:
    """Colours at the centres of the four quadrants of a square frame: TL, TR, BL, BR."""
    s = frame.shape[0]
    a, b = s // 4, 3 * s // 4
    return tuple(nearest_band(frame[y, x]) for y, x in ((a, a), (a, b), (b, a), (b, b)))


def test_landscape_crop_keeps_the_middle_bands(ffmpeg, tmp_path):
    # 256x64 with 4 vertical bands of 64 px: scaled to 256x64 (S=64), crop x = 96 keeps columns
    # 96..160 = the right half of lime and the left half of blue.
    path = make_band_video(tmp_path / "land.mp4", 256, 64)
    frames, _ = sample_frames(path, fps=1, size=64)
    assert _bands(frames[0]) == ("lime", "blue", "lime", "blue")


def test_portrait_crop_keeps_the_middle_bands(ffmpeg, tmp_path):
    path = make_band_video(tmp_path / "port.mp4", 64, 256, vertical=False)
    frames, _ = sample_frames(path, fps=1, size=64)
    assert _bands(frames[0]) == ("lime", "lime", "blue", "blue")


@pytest.mark.parametrize(("rotate", "expected"), [
    (90, ("blue", "blue", "lime", "lime")),  # display = coded turned 90° counter-clockwise: right band on top
    (270, ("lime", "lime", "blue", "blue")),
    (180, ("blue", "lime", "blue", "lime")),
])
def test_rotated_input_is_turned_upright(ffmpeg, tmp_path, rotate, expected):
    path = make_band_video(tmp_path / f"rot{rotate}.mp4", 256, 64, rotate=rotate)
    info = probe_stream(path)
    assert info.rotation == rotate
    frames, _ = sample_frames(path, fps=1, size=64)
    assert _bands(frames[0]) == expected


def test_non_square_pixels_use_display_width(ffmpeg, tmp_path):
    # 128x64 coded with SAR 2:1 displays as 256x64: same crop as the landscape case.
    path = make_band_video(tmp_path / "sar.mp4", 128, 64, sar="2/1")
    assert probe_stream(path).sample_aspect_ratio == 2
    frames, _ = sample_frames(path, fps=1, size=64)
    assert _bands(frames[0]) == ("lime", "blue", "lime", "blue")


def test_ten_bit_source_becomes_rgb24(ffmpeg, tmp_path):
    path = make_band_video(tmp_path / "ten.mp4", 256, 64, pix_fmt="yuv420p10le")
    assert probe_stream(path).pixel_format == "yuv420p10le"
    frames, _ = sample_frames(path, fps=1, size=64)
    assert frames.dtype.name == "uint8" and frames.shape == (2, 64, 64, 3)
    assert _bands(frames[0]) == ("lime", "blue", "lime", "blue")


def test_bad_arguments_are_named():
    with pytest.raises(UsageError, match="--fps must be a number in"):
        FrameSampler("x.mp4", fps=0)
    with pytest.raises(UsageError, match="frame rule must be one of"):
        FrameSampler("x.mp4", fps=1, frame_rule="keyframes")
