"""`r2cli cut --format X` for every timeline format: each file is read back by its reader and compared
with the cut list (the adapters of OpenTimelineIO for editor files; cue parsers for captions; ffmpeg
and ffprobe for the ffmetadata chapters, embedded into a real video)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from r2cli.media.chapters import Mark, ffmetadata_text, read_cues, webvtt_text
from r2cli.app.cut import cut_results
from r2cli.media.timeline import TIMELINE_FORMATS, chapters_vtt_path, read_timeline
from r2cli.ownership import WRITTEN_LEDGER
from r2cli.outputs import write_table
from r2cli.paths import OUTPUT_MARKER

QUERIES = ("a red scene", "cats & <dogs>", "a \"quoted\" one; = # \\ done")


def _moments(path: Path, rows) -> Path:
    return write_table(
        "moments",
        [
            {"run_id": "r", "query_id": f"q{i}", "query": query, "video_id": None, "path": str(src), "start_s": a,
             "end_s": b, "score": 0.9 - i / 10, "rank_in_query": 1, "rank_in_video": 1, "model": "m", "preset": "p"}
            for i, (src, a, b, query) in enumerate(rows)
        ],
        path,
    )


@pytest.fixture
def cut_list(source_video, silent_video, tmp_path):
    return _moments(
        tmp_path / "moments.parquet",
        [(source_video, 1.0, 2.5, QUERIES[0]), (silent_video, 0.5, 1.7, QUERIES[1]), (source_video, 4.0, 6.0, QUERIES[2])],
    )


def _written(report):
    return [o for o in report.outcomes if o.status == "written"]


@pytest.mark.parametrize("fmt", ["edl", "otio", "fcpxml", "fcp7"])
def test_editor_formats_round_trip(fmt, cut_list, tmp_path):
    report = cut_results(cut_list, tmp_path / "out", format=fmt)
    assert Path(report.timeline).is_file() and report.counts()["written"] == 3
    timeline = read_timeline(report.timeline, fmt, rate=25 if fmt == "edl" else None)
    video = [t for t in timeline.tracks if t.kind == "Video"][0]
    clips = [c for c in video if c.schema_name() == "Clip"]  # the FCPXML reader may add gaps between rates
    cuts = _written(report)
    assert len(clips) == len(cuts)
    for clip, cut in zip(clips, cuts):
        assert clip.name == f"{Path(cut.segment.path).name} {cut.segment.query} #1"
        assert clip.media_reference.target_url == Path(cut.segment.path).resolve().as_uri()
        # frame-exact: half a frame of the timebase at most (EDL: 25 fps for every event)
        assert clip.source_range.start_time.to_seconds() == pytest.approx(cut.start_s, abs=0.5 / 25 + 1e-9)
        assert clip.source_range.end_time_exclusive().to_seconds() == pytest.approx(cut.end_s, abs=0.5 / 25 + 1e-9)
    if fmt != "fcpxml":
        for a, b in zip(clips, clips[1:]):  # back to back on the record side
            assert b.range_in_parent().start_time.to_seconds() == pytest.approx(
                a.range_in_parent().end_time_exclusive().to_seconds(), abs=1e-6)


@pytest.mark.parametrize("fmt", ["vtt", "srt"])
def test_captions_label_each_cut_with_its_query(fmt, cut_list, tmp_path):
    report = cut_results(cut_list, tmp_path / "out", format=fmt)
    assert report.timeline.endswith(f"moments.{fmt}")
    cues = read_cues(report.timeline)
    cuts = _written(report)
    assert [c.text for c in cues] == [f"{c.segment.query} ({Path(c.segment.path).name} #1)" for c in cuts]
    clock = 0.0
    for cue, cut in zip(cues, cuts):  # back to back, each as long as its cut (to a frame)
        assert cue.start_s == pytest.approx(clock, abs=1e-3)
        assert cue.end_s - cue.start_s == pytest.approx(cut.end_s - cut.start_s, abs=1 / 25 + 1e-3)
        clock = cue.end_s
    if fmt == "vtt":
        text = Path(report.timeline).read_text()
        assert text.startswith("WEBVTT") and "<dogs>" not in text and "&lt;dogs&gt;" in text


def test_chapters_embed_with_ffmpeg_and_read_back_with_ffprobe(cut_list, source_video, tmp_path, ffmpeg):
    report = cut_results(cut_list, tmp_path / "out", format="chapters")
    chapters = Path(report.timeline)
    assert chapters.name == "moments.chapters.txt" and chapters.read_text().startswith(";FFMETADATA1")
    cuts = _written(report)
    out = tmp_path / "with-chapters.mp4"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(source_video), "-i", str(chapters),
                    "-map_metadata", "1", "-map_chapters", "1", "-c", "copy", str(out)], check=True)
    probed = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(out)],
                                       check=True, capture_output=True, text=True).stdout)["chapters"]
    assert [c["tags"]["title"] for c in probed] == [f"{c.segment.query} ({Path(c.segment.path).name} #1)" for c in cuts]
    clock = 0.0
    for chapter, cut in zip(probed, cuts):
        assert float(chapter["start_time"]) == pytest.approx(clock, abs=1e-3)
        assert float(chapter["end_time"]) - float(chapter["start_time"]) == pytest.approx(cut.end_s - cut.start_s, abs=0.041)
        clock = float(chapter["end_time"])
    # the WebVTT twin holds the same chapters
    twin = read_cues(chapters_vtt_path(chapters))
    assert [(round(m.start_s, 3), round(m.end_s, 3), m.text) for m in twin] == [
        (round(float(c["start_time"]), 3), round(float(c["end_time"]), 3), c["tags"]["title"]) for c in probed]


def test_every_format_is_accepted_by_the_cli(cut_list, tmp_path):
    from r2cli.cli.main import main

    for fmt in TIMELINE_FORMATS:
        with pytest.raises(SystemExit) as stopped:
            main(["cut", str(cut_list), "--out", str(tmp_path / fmt), "--format", fmt, "--json"])
        assert stopped.value.code == 0, fmt
    written = sorted(p.name for p in (tmp_path / "chapters").iterdir() if p.name not in (OUTPUT_MARKER, WRITTEN_LEDGER))
    assert written == ["moments.chapters.txt", "moments.chapters.vtt"]
    assert (tmp_path / "fcp7" / "moments.xml").is_file() and (tmp_path / "fcpxml" / "moments.fcpxml").is_file()


def test_overlapping_chapters_and_empty_lists_are_refused():
    from r2cli.errors import UsageError

    with pytest.raises(UsageError, match="overlap"):
        ffmetadata_text([Mark(0, 2, "a"), Mark(1, 3, "b")])
    with pytest.raises(UsageError, match="at least one"):
        webvtt_text([])


def test_a_missing_adapter_plugin_is_named(monkeypatch, tmp_path):
    from r2cli.errors import MissingDependencyError
    from r2cli.media import timeline
    from r2cli.media.timeline import TimelineEvent, write_events

    monkeypatch.setitem(timeline._ADAPTERS, "fcp7", "an_adapter_that_is_not_installed")
    event = TimelineEvent("/m/a.mp4", 0.0, 1.0, fps=25, name="a")
    with pytest.raises(MissingDependencyError, match="pip install otio-fcp-adapter"):
        write_events("fcp7", [event], tmp_path / "a.xml")
    assert not (tmp_path / "a.xml").exists()
