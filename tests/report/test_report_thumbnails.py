"""Thumbnails: the right frames, from one ffmpeg process per video, and the CLI command."""

from __future__ import annotations

import json

import pytest

from r2cli.report.thumbnails import extract_thumbnails


def _colour(path):
    from PIL import Image

    with Image.open(path) as image:
        r, g, b = image.convert("RGB").resize((1, 1)).getpixel((0, 0))[:3]
    return "red" if r > max(g, b) + 60 else "blue" if b > max(r, g) + 60 else "green" if g > max(r, b) + 60 else "?"


def test_frames_at_the_asked_times_in_one_ffmpeg_process(ffmpeg, tmp_path, monkeypatch):
    from fixtures import make_video

    video = make_video(tmp_path / "v.mp4", seconds=6, width=160, height=120, fps=25, colors=("red", "green", "blue"))
    import r2cli.report.thumbnails as thumbnails

    calls = []
    real_run = thumbnails.run_ffmpeg

    def counting_run(args, *a, **k):  # counts the processes; the real ffmpeg still runs
        calls.append(args[0])
        return real_run(args, *a, **k)

    monkeypatch.setattr(thumbnails, "run_ffmpeg", counting_run)
    times = [0.0, 0.5, 1.99, 2.01, 3.0, 4.5, 5.999, 9.0] + [i * 0.013 for i in range(300)]  # 300 more: one process still
    thumbs = extract_thumbnails(video, times, tmp_path / "t", width=80, duration_s=6.0, fps=25.0, ffmpeg=ffmpeg)
    assert calls == [ffmpeg] and thumbs.problem is None
    assert [_colour(thumbs.get(t)) for t in (0.0, 0.5, 1.99, 2.01, 3.0, 4.5, 5.999, 9.0)] == \
        ["red", "red", "red", "green", "green", "blue", "blue", "blue"]
    # 2.01 s starts in frame 50 (2.00 s): the file is named by its time in ms
    assert thumbs.get(2.01).name == "2000.jpg" and thumbs.get(1.99).name == "1960.jpg"
    from PIL import Image

    with Image.open(thumbs.get(3.0)) as image:
        assert image.size == (80, 60)


def test_unreadable_video_is_reported_not_raised(ffmpeg, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    thumbs = extract_thumbnails(bad, [1.0], tmp_path / "t", width=80, duration_s=2.0, fps=25.0, ffmpeg=ffmpeg)
    assert thumbs.problem and thumbs.problem.startswith("ffmpeg failed") and thumbs.get(1.0) is None


def test_cli_report_json_and_bad_flag(sample_job_run, tmp_path, capsys):
    from r2cli.cli.main import main

    with pytest.raises(SystemExit) as stopped:
        main(["report", str(sample_job_run / "summarize"), "--out", str(tmp_path / "r"), "--strip", "4", "--json"])
    assert stopped.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["queries"] == 0 and data["videos"] == 5 and data["plots"] == 5
    assert (tmp_path / "r" / "index.html").is_file()
    with pytest.raises(SystemExit) as stopped:
        main(["report", str(sample_job_run), "--page-size", "0"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --page-size must be >= 1, got 0"
