"""ffmpeg/ffprobe discovery and probing of real generated files."""

from __future__ import annotations

import subprocess

import pytest

from r2cli.errors import MediaError, MissingDependencyError
from r2cli.media import probe as probe_module
from r2cli.media.ffmpeg import describe_tools, find_ffprobe, tool_version
from r2cli.media.probe import probe


def test_tools_are_found_with_versions(ffmpeg):
    tools = describe_tools()
    assert tools["ffmpeg"].path == ffmpeg or tools["ffmpeg"].path.endswith("ffmpeg")
    assert tools["ffprobe"].version == tool_version(find_ffprobe())
    first_line = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    assert first_line.startswith(f"ffmpeg version {tools['ffmpeg'].version}")


def test_missing_ffprobe_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("R2CLI_FFPROBE", str(tmp_path / "no-ffprobe"))
    with pytest.raises(MissingDependencyError, match=r"ffprobe not found on \$R2CLI_FFPROBE.*apt-get install ffmpeg"):
        find_ffprobe()
    assert "not found" in describe_tools()["ffprobe"]


def test_rotation_audio_title_and_frame_count(ffmpeg, tmp_path):
    from fixtures import make_video

    clip = make_video(tmp_path / "rot.mp4", seconds=2, width=96, height=64, fps=10, audio=True, rotate=90)
    info = probe(clip)
    assert (info.width, info.height) == (96, 64)
    assert (info.display_width, info.display_height, info.rotation) == (64, 96, 90)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.frame_count == 20 and info.fps == 10 and info.duration == pytest.approx(2.0, abs=0.05)
    assert info.codec == "h264" and info.pixel_format == "yuv420p" and info.title is None
    titled = tmp_path / "titled.mkv"
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(clip), "-c", "copy", "-metadata", "title=Ünïcode title",
                    str(titled)], check=True)
    info = probe(titled)
    assert info.title == "Ünïcode title" and info.frame_count == 20  # Matroska: frames counted, not declared


def test_sample_aspect_ratio_widens_the_display(ffmpeg, tmp_path):
    from fixtures import make_video

    info = probe(make_video(tmp_path / "sar.mp4", seconds=1, width=80, height=60, fps=5, sar="2/1"))  # "2:1" would parse as setsar=r=2:max=1
    assert info.sample_aspect_ratio == "2:1" and (info.display_width, info.display_height) == (160, 60)


def test_legacy_rotate_tag_is_clockwise():
    assert probe_module._rotation({"tags": {"rotate": "90"}}) == 270
    assert probe_module._rotation({"side_data_list": [{"rotation": -90}], "tags": {"rotate": "90"}}) == 270
    assert probe_module._rotation({}) == 0


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.mp4", b"", "file is empty"),
        ("text.mp4", b"this is not a video\n" * 20, "ffprobe cannot read it"),
    ],
)
def test_bad_files_raise_media_error_naming_the_file(ffmpeg, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MediaError, match=message) as caught:
        probe(path)
    assert str(caught.value).startswith(str(path))


def test_audio_only_and_truncated_files(ffmpeg, tmp_path):
    from fixtures import make_testsrc

    audio = tmp_path / "voice.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", str(audio)], check=True)
    with pytest.raises(MediaError, match=r"no video stream \(audio: aac\)"):
        probe(audio)
    clip = make_testsrc(tmp_path / "full.mp4", seconds=3, size="160x90")
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"  # moov at the end (ffmpeg's default): the index is gone
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="moov atom not found"):
        probe(cut)
    faststart = tmp_path / "faststart.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(clip), "-c", "copy", "-movflags", "+faststart",
                    str(faststart)], check=True)
    cut.write_bytes(faststart.read_bytes()[: len(data) // 2])  # index intact, frames cut off
    with pytest.raises(MediaError, match=r"truncated or damaged: the header declares 75 video frames but only"):
        probe(cut)


@pytest.mark.parametrize("name, codecs, flag", [
    ("song.mkv", ["-c:a", "libvorbis", "-c:v", "mjpeg"], []),  # one-frame track, no attached_pic flag
    ("song.mp4", ["-c:a", "aac", "-c:v", "mjpeg"], []),
    ("song.m4a", ["-c:a", "aac", "-c:v", "png"], ["-disposition:v:0", "attached_pic"]),
])
def test_audio_with_cover_art_has_no_real_video_stream(ffmpeg, tmp_path, name, codecs, flag):
    cover = tmp_path / "cover.png"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "color=c=red:s=64x64", "-frames:v", "1",
                    str(cover)], check=True)
    song = tmp_path / name
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=6", "-i",
                    str(cover), "-map", "0:a", "-map", "1:v", *codecs, *flag, str(song)], check=True)
    with pytest.raises(MediaError, match=r"no real video stream, only (an attached|one still) picture \(cover art"):
        probe(song)
