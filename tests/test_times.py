"""One time convention: ISO 8601 local time with offset, in tables and JSON alike (#22.11)."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from r2cli.times import iso_local


@pytest.fixture
def kolkata(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_iso_local_takes_catalog_datetimes_and_epoch_seconds(kolkata):
    assert iso_local(dt.datetime(2026, 12, 5, 16, 0, 0)) == "2026-12-05T21:30:00+05:30"  # naive = UTC
    assert iso_local(dt.datetime(2026, 12, 5, 16, 0, tzinfo=dt.timezone.utc)) == "2026-12-05T21:30:00+05:30"
    assert iso_local(0.0) == "1970-01-01T05:30:00+05:30"
    assert iso_local(0.25, timespec="milliseconds") == "1970-01-01T05:30:00.250+05:30"
    assert iso_local(None) is None
    with pytest.raises(TypeError):
        iso_local("yesterday")  # type: ignore[arg-type]


def test_catalog_json_mtime_and_times_are_local_iso(kolkata, tmp_path, ffmpeg, capsys):
    from r2cli.cli.main import main
    from fixtures import make_video

    clip = make_video(tmp_path / "archive" / "a.mp4", seconds=1, width=64, height=48, fps=5)
    ws = ["--workspace", str(tmp_path / "ws")]

    def run(*args):
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
        return capsys.readouterr().out

    run("index", str(tmp_path / "archive"), *ws, "--no-features")
    video = json.loads(run("catalog", "show", "1", *ws, "--json"))["video"]
    assert video["mtime"] == iso_local(clip.stat().st_mtime) and video["mtime"].endswith("+05:30")
    for key in ("first_seen", "last_seen", "probed_at"):
        assert video[key].endswith("+05:30"), (key, video[key])
    listed = json.loads(run("catalog", "list", *ws, "--json"))
    rows = listed if isinstance(listed, list) else listed.get("videos", listed)
    assert all(str(row["mtime"]).endswith("+05:30") for row in rows)
    table = run("catalog", "show", "1", *ws)
    assert video["first_seen"] in table and video["mtime"] in table
