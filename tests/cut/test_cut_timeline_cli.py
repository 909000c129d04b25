"""EDL / OTIO exports parse back through the OpenTimelineIO adapters; the `r2cli cut` command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from r2cli.errors import InputError, UsageError
from r2cli.app.cut import cut_results
from r2cli.media.probe import probe
from r2cli.media.timeline import (
    TIMELINE_FORMATS,
    TimelineEvent,
    frames_to_timecode,
    read_timeline,
    timecode_to_frames,
    write_events,
)
from r2cli.outputs import read_results, write_table


def moments(path: Path, rows) -> Path:
    return write_table(
        "moments",
        [
            {"run_id": "r", "query_id": "q1", "query": query, "video_id": 7, "path": str(src), "start_s": a,
             "end_s": b, "score": 1.0 - i / 10, "rank_in_query": i + 1, "rank_in_video": 1, "model": "m",
             "preset": "p"}
            for i, (src, a, b, query) in enumerate(rows)
        ],
        path,
    )


def test_timecodes_round_trip():
    for frames in (0, 1, 24, 25, 90_000, 3600 * 30 + 29):
        for rate in (24, 25, 30, 60):
            assert timecode_to_frames(frames_to_timecode(frames, rate), rate) == frames
    assert frames_to_timecode(3600 * 25 + 25 * 61 + 3, 25) == "01:01:01:03"
    with pytest.raises(InputError, match="out of range"):
        timecode_to_frames("00:00:00:25", 25)


def _edl_events(path, rate):
    """(reel, source in, source out, record in, record out, clip name, url) of each EDL event, read by the adapter."""
    timeline = read_timeline(path, "edl", rate=rate)
    (track,) = timeline.tracks
    out = []
    for clip in track:
        record = clip.range_in_parent()
        out.append((
            clip.metadata["cmx_3600"]["reel"],
            round(clip.source_range.start_time.value), round(clip.source_range.end_time_exclusive().value),
            round(record.start_time.value), round(record.end_time_exclusive().value),
            clip.name, clip.media_reference.target_url,
        ))
    return out


def test_edl_ntsc_rate_uses_nominal_timebase(tmp_path):
    event = TimelineEvent("/media/a b.mov", 10.0, 12.0, fps=30000 / 1001, name="a b.mov #1")
    doc_path = write_events("edl", [event], tmp_path / "x.edl", title="t")
    assert "00:00:10:00 00:00:12:00" in doc_path.read_text()  # frames 300 and 360 at the 30 fps timebase
    ((reel, src_in, src_out, rec_in, rec_out, name, url),) = _edl_events(doc_path, 30)
    assert (src_in, src_out) == (300, 360)  # 299.7 and 359.64 frames
    assert rec_in == 0 and rec_out - rec_in == src_out - src_in
    assert reel == "A_B" and name == "a b.mov #1" and url == Path("/media/a b.mov").as_uri()
    with pytest.raises(UsageError, match="exists"):
        write_events("edl", [event], doc_path)


def test_edl_parses_back(source_video, silent_video, tmp_path):
    path = moments(
        tmp_path / "moments.parquet",
        [(source_video, 1.0, 2.5, "red"), (silent_video, 0.5, 1.7, "dark"), (source_video, 4.02, 6.0, "x\ny")],
    )
    report = cut_results(path, tmp_path / "out", format="edl")
    assert report.timeline == str(tmp_path / "out" / "moments.edl")
    assert report.counts()["written"] == 3
    timeline = read_timeline(report.timeline, "edl", rate=25)  # the timebase: the first source's
    assert timeline.name.startswith("r2cli moments")
    first, second, third = _edl_events(report.timeline, 25)
    assert first[1:3] == (25, 63)  # 2.5 s is frame 62.5: half rounds up
    assert first[0] == third[0] == "SOURCE" and second[0] == "SILENT_C"
    assert first[5] == "source.mp4 red #1" and third[5] == "source.mp4 x\\ny #3"  # a line break is shown, not kept
    assert second[6] == Path(silent_video).resolve().as_uri()
    # Record side: back to back from 00:00:00:00, each event as long as its source range.
    assert first[3] == 0
    for a, b in zip((first, second, third), (second, third)):
        assert b[3] == a[4]
    assert third[4] - third[3] == 150 - 101  # 4.02 s is frame 100.5: half rounds up
    # The silent source is 30 fps, not the EDL's 25: its frames are counted on the 25 fps timebase.
    assert second[1:3] == (13, 43)  # 0.5 s = 12.5 -> 13, 1.7 s = 42.5 -> 43


def test_otio_parses_back(source_video, silent_video, tmp_path):
    otio = pytest.importorskip("opentimelineio")
    path = moments(tmp_path / "moments.parquet", [(source_video, 1.0, 2.5, "red"), (silent_video, 0.5, 1.7, "dark")])
    report = cut_results(path, tmp_path / "out", format="otio")
    timeline = otio.adapters.read_from_file(report.timeline)
    video, audio = timeline.tracks
    assert video.kind == otio.schema.TrackKind.Video and audio.kind == otio.schema.TrackKind.Audio
    first, second = list(video)
    assert first.media_reference.target_url == Path(source_video).resolve().as_uri()
    assert first.source_range.start_time.to_seconds() == pytest.approx(1.0)
    assert first.source_range.duration.value == 63 - 25
    assert second.source_range.start_time.rate == 30
    assert second.source_range.duration.value == 36
    info = probe(source_video)
    assert first.media_reference.available_range.duration.value == info.frame_count
    assert timeline.duration().to_seconds() == pytest.approx(38 / 25 + 36 / 30)
    assert first.metadata["r2cli"]["query"] == "red" and first.metadata["r2cli"]["rank"] == 1


def test_cli_cut_json_and_errors(source_video, tmp_path):
    from r2cli.cli.main import app

    path = moments(tmp_path / "moments.parquet", [(source_video, 1.0, 2.0, "red"), (tmp_path / "gone.mp4", 1.0, 2.0, "x")])
    path = write_table("moments", [{**row, "video_id": None} for row in read_results(path).df.to_dict("records")], path)
    runner = CliRunner()
    result = runner.invoke(app, ["cut", str(path), "--out", str(tmp_path / "clips"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["counts"] == {"written": 1, "skipped": 1, "failed": 0}
    assert Path(data["clips"][0]["output"]).name == "source-red-1.mp4"

    result = runner.invoke(app, ["cut", str(path), "--out", str(tmp_path / "clips")])
    assert result.exit_code == 0
    assert "0 written, 2 skipped, 0 failed" in result.stdout


    foreign = tmp_path / "foreign.parquet"
    import pandas as pd

    pd.DataFrame({"a": [1]}).to_parquet(foreign)
    from r2cli.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["cut", str(foreign), "--out", str(tmp_path / "x")])
    assert info.value.code == 1


def test_cli_bad_format_is_one_line(source_video, tmp_path, capsys):
    from r2cli.cli.main import main

    path = moments(tmp_path / "moments.parquet", [(source_video, 1.0, 2.0, "red")])
    with pytest.raises(SystemExit) as info:
        main(["cut", str(path), "--out", str(tmp_path), "--format", "gif"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    choices = ("media", *TIMELINE_FORMATS)
    formats = ", ".join(choices[:-1]) + " or " + choices[-1]
    assert err.strip() == f"error: --format must be {formats}, got 'gif'"  # one line, no usage box


def test_edl_of_a_rate_smpte_lacks_uses_a_multiple(tmp_path):
    from r2cli.media.timeline import edl_timebase

    assert [edl_timebase(f) for f in (10, 12, 15, 5, 25, 29.97, 23.976, 7, 120, 100)] == [30, 24, 30, 25, 25, 30, 24, 30, 60, 50]
    events = [TimelineEvent("/m/ten fps.mp4", 1.0, 2.5, fps=10, name="ten #1"),
              TimelineEvent("/m/other.mp4", 0.5, 1.0, fps=25, name="other #1")]
    path = write_events("edl", events, tmp_path / "ten.edl")
    first, second = _edl_events(path, 30)
    assert first[1:3] == (30, 75)  # 1.0 s and 2.5 s at the 30 fps timebase
    assert second[1:3] == (15, 30) and second[3] == first[4]
