"""Cutting clips and reels with the real ffmpeg on generated media."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from r2cli.app.cut import cut_results
from r2cli.errors import InputError, MediaError, UsageError
from r2cli.media import _process as cut_module
from r2cli.media.clips import cut_segments
from r2cli.media.naming import OUTPUT_MARKER, render_name, safe_filename
from r2cli.media.reels import make_reel
from r2cli.media.segments import Segment
from r2cli.media.probe import probe
from r2cli.outputs import write_table


def listing(folder: Path) -> list[str]:
    """The names in ``folder`` apart from the marker r2cli puts in the folders it creates."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name != OUTPUT_MARKER)


def video_duration(path) -> float:
    info = probe(path)
    return info.frame_count / info.fps


def moments_file(path: Path, rows: list[tuple[str, float, float]], query: str = "red scene") -> Path:
    records = [
        {
            "run_id": "run-1",
            "query_id": "q1",
            "query": query,
            "video_id": None,
            "path": str(src),
            "start_s": start,
            "end_s": end,
            "score": 1.0 - 0.1 * i,
            "rank_in_query": i + 1,
            "rank_in_video": i + 1,
            "model": "tiny",
            "preset": None,
        }
        for i, (src, start, end) in enumerate(rows)
    ]
    return write_table("moments", records, path)


def test_accurate_cuts_are_within_one_frame_and_keep_audio(source_video, tmp_path):
    requests = [(0.0, 1.0), (0.53, 2.17), (3.31, 3.77), (6.9, 8.0)]
    report = cut_segments(
        [Segment(str(source_video), a, b, query="red", rank=i + 1) for i, (a, b) in enumerate(requests)],
        tmp_path / "clips",
    )
    assert report.counts() == {"written": 4, "skipped": 0, "failed": 0}
    for outcome, (a, b) in zip(report.written, requests):
        info = probe(outcome.output)
        assert abs(info.frame_count / info.fps - (b - a)) <= 1 / 25 + 1e-6, (outcome.output, info.frame_count)
        assert abs(info.duration - (b - a)) <= 1 / 25 + 1e-6
        assert info.has_audio
    assert listing(tmp_path / "clips") == [f"source-red-{i}.mp4" for i in (1, 2, 3, 4)]


def test_copy_mode_is_keyframe_aligned(source_video, tmp_path):
    report = cut_segments([Segment(str(source_video), 2.5, 4.0)], tmp_path, copy=True)
    assert report.mode == "copy" and len(report.written) == 1
    info = probe(report.written[0].output)
    assert info.codec == "h264" and info.has_audio
    # The clip starts at the keyframe at or before 2.5 s (GOP of 1 s), so it lasts 1.5 to 2.5 s.
    assert 1.5 - 1 / 25 <= video_duration(report.written[0].output) <= 2.5 + 1 / 25


def test_pad_is_clamped_to_the_video(source_video, tmp_path):
    report = cut_segments([Segment(str(source_video), 0.2, 1.0)], tmp_path, pad=0.5)
    outcome = report.written[0]
    assert (outcome.start_s, outcome.end_s) == (0.0, 1.5)
    assert abs(video_duration(outcome.output) - 1.5) <= 1 / 25 + 1e-6
    with pytest.raises(UsageError, match="--pad"):
        cut_segments([Segment(str(source_video), 0.2, 1.0)], tmp_path, pad=-1)


def test_reel_lasts_the_sum_of_its_segments(source_video, silent_video, tmp_path):
    segments = [
        Segment(str(source_video), 0.5, 2.3),
        Segment(str(silent_video), 1.0, 2.5),  # other size, other rate, no audio
        Segment(str(source_video), 6.1, 7.0),
    ]
    reel = tmp_path / "reel.mp4"
    report = make_reel(segments, reel)
    assert report.reel == str(reel) and report.counts()["written"] == 3
    info = probe(reel)
    total = 1.8 + 1.5 + 0.9
    assert abs(info.frame_count / info.fps - total) <= 3 / 25 + 1e-6
    assert abs(info.duration - total) <= 3 / 25 + 1e-6
    assert info.has_audio and (info.width, info.height) == (160, 120)
    assert [p.name for p in tmp_path.iterdir()] == ["reel.mp4"]  # pieces and temporary files are gone
    with pytest.raises(UsageError, match="exists"):
        make_reel(segments, reel)
    with pytest.raises(UsageError, match="source videos"):
        make_reel(segments, source_video, force=True)


HOSTILE = [
    "../../etc/passwd",
    "..",
    ".hidden",
    "a" * 1000,
    "Ｃａｆé ／ 日本語の クエリ",
    "con",
    "x/../../y\\z\x00\n",
    "ｰ" * 300,
]


@pytest.mark.parametrize("query", HOSTILE)
def test_names_are_sanitised(query):
    for template in ("{video}-{query}-{rank}.mp4", "{query}", "../{query}/../{video}.mov", "{query}.mkv"):
        name = render_name(template, Segment("/x/My Video.mp4", 1.0, 2.0, query=query), 0)
        assert "/" not in name and "\\" not in name and "\x00" not in name
        assert ".." not in name and not name.startswith((".", "-"))
        assert len(name.encode("utf-8")) <= 200
        assert Path(name).suffix in (".mp4", ".mov", ".mkv")
        assert (Path("/out") / name).resolve().parent == Path("/out")
    assert safe_filename("..") == "clip"
    assert safe_filename("con.mp4") == "_con.mp4"
    with pytest.raises(UsageError, match=r"\{video.__class__\}"):
        render_name("{video.__class__}", Segment("/x/a.mp4", 1.0, 2.0), 0)
    with pytest.raises(UsageError, match="not known"):
        render_name("{path}", Segment("/x/a.mp4", 1.0, 2.0), 0)


def test_hostile_query_stays_inside_out_dir(source_video, tmp_path):
    out = tmp_path / "out"
    segments = [Segment(str(source_video), 1.0, 1.5, query=q, rank=1) for q in HOSTILE[:4]]
    report = cut_segments(segments, out)
    assert report.counts()["written"] == 4
    for outcome in report.written:
        assert Path(outcome.output).parent == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    names = listing(out)
    assert (out / OUTPUT_MARKER).is_file()  # cut created the folder: marked for `r2cli index`
    assert len(names) == 4 and not any(n.startswith(".") for n in names)


def test_existing_file_needs_force_and_input_is_never_output(source_video, tmp_path):
    existing = tmp_path / "source-clip-1.mp4"
    existing.write_bytes(b"keep me")
    report = cut_segments([Segment(str(source_video), 1.0, 2.0)], tmp_path)
    assert report.counts() == {"written": 0, "skipped": 1, "failed": 0}
    assert "use --force" in report.skipped[0].reason
    assert existing.read_bytes() == b"keep me"
    # --force replaces only r2cli's own clips: a user's file of the same name is kept (#18.1)
    report = cut_segments([Segment(str(source_video), 1.0, 2.0)], tmp_path, force=True)
    assert report.counts() == {"written": 0, "skipped": 1, "failed": 0}
    assert "not written by r2cli" in report.skipped[0].reason and existing.read_bytes() == b"keep me"
    existing.unlink()
    first = cut_segments([Segment(str(source_video), 1.0, 2.0)], tmp_path)
    before = existing.stat().st_mtime_ns
    report = cut_segments([Segment(str(source_video), 2.0, 3.0)], tmp_path, force=True)
    assert first.counts()["written"] == 1 and report.counts()["written"] == 1
    assert existing.stat().st_mtime_ns != before  # r2cli's own clip was replaced

    local = tmp_path / "src" / "take.mp4"
    local.parent.mkdir()
    shutil.copy(source_video, local)
    before = local.read_bytes()
    report = cut_segments([Segment(str(local), 1.0, 2.0)], local.parent, template="{video}.mp4", force=True)
    assert report.counts() == {"written": 0, "skipped": 1, "failed": 0}
    assert "is a source video" in report.skipped[0].reason
    assert local.read_bytes() == before


def test_bad_rows_and_missing_sources_are_named_and_skipped(source_video, tmp_path):
    moved = tmp_path / "moved.mp4"
    rows = [
        (source_video, 1.0, 2.0),
        (source_video, 3.0, 3.0),  # end == start
        (source_video, 5.0, 4.0),  # end < start
        (source_video, 7.5, 9.5),  # past the end of the 8 s video
        (source_video, -1.0, 1.0),  # before the start
        (moved, 1.0, 2.0),  # missing source
    ]
    results = moments_file(tmp_path / "moments.parquet", rows)
    report = cut_results(results, tmp_path / "clips")
    assert report.counts() == {"written": 1, "skipped": 5, "failed": 0}
    reasons = {o.segment.label: o.reason for o in report.skipped}
    assert "must be after start" in reasons["moments.parquet row 2"]
    assert "must be after start" in reasons["moments.parquet row 3"]
    assert re.search(r"outside the video \(0-8\.0\d\d s\)", reasons["moments.parquet row 4"])
    assert "outside the video" in reasons["moments.parquet row 5"]
    assert f"source not found: {moved}" in reasons["moments.parquet row 6"]


def test_top_and_min_score_select_rows(source_video, tmp_path):
    results = moments_file(tmp_path / "m.parquet", [(source_video, i, i + 0.5) for i in range(5)])
    report = cut_results(results, tmp_path / "a", top=2)
    assert [o.segment.rank for o in report.outcomes] == [1, 2]
    report = cut_results(results, tmp_path / "b", min_score=0.75)  # scores 1.0, 0.9, 0.8, 0.7, 0.6
    assert [o.segment.rank for o in report.outcomes] == [1, 2, 3]


def test_summary_file_cuts_selected_segments_in_time_order(source_video, tmp_path):
    rows = [
        {"run_id": "r", "video_id": 1, "path": str(source_video), "query": "q", "segment_index": i,
         "start_s": 2.0 * i, "end_s": 2.0 * i + 2.0, "mean_saliency": s, "selected": sel, "rank": rank}
        for i, (s, sel, rank) in enumerate([(0.1, False, 4), (0.9, True, 1), (0.5, False, 3), (0.7, True, 2)])
    ]
    path = write_table("summary", rows, tmp_path / "summary.parquet")
    reel = tmp_path / "summary-reel.mp4"
    report = cut_results(path, tmp_path, concat=reel)
    assert [o.segment.start_s for o in report.outcomes] == [2.0, 6.0]
    assert abs(video_duration(reel) - 4.0) <= 2 / 25 + 1e-6
    with pytest.raises(UsageError, match="--copy cannot be combined with --concat"):
        cut_results(path, tmp_path, concat=tmp_path / "other.mp4", copy=True)
    saliency = write_table(
        "saliency",
        [{"run_id": "r", "query_id": "q", "video_id": 1, "path": "a", "clip_index": 0,
          "clip_start_s": 0.0, "clip_end_s": 2.0, "score": 0.5}],
        tmp_path / "saliency.parquet",
    )
    with pytest.raises(UsageError, match="saliency file; cut needs a moments or summary file"):
        cut_results(saliency, tmp_path)


def test_foreign_parquet_gives_a_clear_message(tmp_path):
    import pandas as pd

    foreign = tmp_path / "other.parquet"
    pd.DataFrame({"start": [1.0], "end": [2.0]}).to_parquet(foreign)
    with pytest.raises(InputError, match=r"other\.parquet: not an r2cli output"):
        cut_results(foreign, tmp_path / "clips")
    assert not (tmp_path / "clips").exists()


def _fail_like_a_full_disk(real_run):
    """Write part of the output, then fail as ffmpeg does when the disk fills up."""

    def run(args, **kwargs):
        target = Path(args[-1])
        target.write_bytes(b"\x00" * 1000)
        return 1, f"[mp4 @ 0x1] Error writing trailer of {target}: No space left on device"

    return run


def test_full_disk_removes_partial_files(source_video, tmp_path, monkeypatch):
    monkeypatch.setattr(cut_module, "run_ffmpeg", _fail_like_a_full_disk(cut_module.run_ffmpeg))
    segments = [Segment(str(source_video), i, i + 0.5) for i in range(4)]
    report = cut_segments(segments, tmp_path / "clips", jobs=1)
    assert report.counts() == {"written": 0, "skipped": 0, "failed": 4}
    assert "No space left on device" in report.failed[0].reason
    assert all(o.reason == "not attempted: the output disk is full" for o in report.failed[1:])
    assert listing(tmp_path / "clips") == []
    with pytest.raises(MediaError, match="No space left"):
        make_reel(segments, tmp_path / "reel.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clips"]


def test_failure_at_the_final_step_of_a_reel_leaves_nothing(source_video, tmp_path, monkeypatch):
    real = cut_module.run_ffmpeg

    def run(args, **kwargs):
        if "concat" in args:
            Path(args[-1]).write_bytes(b"partial")
            return 1, "No space left on device"
        return real(args, **kwargs)

    monkeypatch.setattr(cut_module, "run_ffmpeg", run)
    with pytest.raises(MediaError, match="concat failed"):
        make_reel([Segment(str(source_video), 1.0, 2.0)], tmp_path / "reel.mp4")
    assert list(tmp_path.iterdir()) == []


def test_parallel_cut_uses_several_jobs(source_video, tmp_path):
    segments = [Segment(str(source_video), i * 0.5, i * 0.5 + 0.4, rank=i + 1) for i in range(6)]
    report = cut_segments(segments, tmp_path, jobs=3)
    assert report.jobs == 3 and report.counts()["written"] == 6
    assert len(set(o.output for o in report.written)) == 6
    assert os.path.commonpath([o.output for o in report.written]) == str(tmp_path)


def test_same_names_get_numbered_suffixes(source_video, tmp_path):
    segments = [Segment(str(source_video), 1.0, 1.4, query="dog", rank=1) for _ in range(3)]
    report = cut_segments(segments, tmp_path, template="{video}-{query}.mp4")
    assert [Path(o.output).name for o in report.written] == ["source-dog.mp4", "source-dog-2.mp4", "source-dog-3.mp4"]
