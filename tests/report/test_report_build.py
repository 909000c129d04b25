"""`build_report` on real runs: the folder it writes, its pages, thumbnails, plots and links."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from r2cli.errors import InputError, UsageError
from r2cli.outputs import read_results
from r2cli.report.build import build_report


def _players(html: str) -> list[str]:
    return re.findall(r'<video class="player" controls preload="none" src="([^"]+)"', html)


def test_sample_job_report_has_a_page_per_query_and_video(sample_report, sample_job_run):
    out = sample_report.out_dir
    moments = read_results(sample_job_run / "search" / "moments.parquet").df
    summary = read_results(sample_job_run / "summarize" / "summary.parquet").df
    assert sample_report.queries == moments["query_id"].nunique() == 3
    assert sample_report.videos == len(set(moments["path"]) | set(summary["path"]))
    assert sample_report.cards == len(moments) + int(summary["selected"].sum())
    assert (out / "index.html").is_file() and (out / "r2cli-report.json").is_file()
    index = (out / "index.html").read_text()
    for query in ("a red scene", "a blue scene", "a purple scene"):
        assert query in index
    # one ffmpeg process per video made the thumbnails; one SVG per (video, query with moments there) + per summary
    assert sample_report.thumbnails > 0 and sample_report.plots >= sample_report.videos
    for svg in out.glob("plots/*.svg"):
        head = svg.read_text()[:400]
        assert "<svg" in head and "Matplotlib" in svg.read_text()
    assert sample_report.bytes == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def test_every_link_and_image_points_at_an_existing_file(sample_report):
    out = sample_report.out_dir
    for page in out.glob("*.html"):
        html = page.read_text()
        for url in re.findall(r'(?:src|href|poster)="([^"]+)"', html):
            assert not re.match(r"^[a-z]+:", url), f"{page.name}: absolute URL {url}"
            path = (out / unquote(url.split("#", 1)[0])).resolve()
            assert path.exists(), f"{page.name}: {url} -> {path}"


def test_players_play_exactly_each_moment(sample_report, sample_job_run):
    out = sample_report.out_dir
    moments = read_results(sample_job_run / "search" / "moments.parquet").df
    players = []
    for page in sorted(out.glob("q*.html")):
        players += _players(page.read_text())
    assert len(players) == len(moments)
    clips = 0
    for url, row in zip(players, moments.sort_values(["query_id", "rank_in_query"]).to_dict("records")):
        file, fragment = url.split("#t=")
        start, end = (float(x) for x in fragment.split(","))
        target = (out / unquote(file)).resolve()
        if target.parent.name == "clips":  # the job cut the 3 best of each query, with 0.5 s padding
            clips += 1
            assert end - start == pytest.approx(row["end_s"] - row["start_s"], abs=2e-3)
            assert start == pytest.approx(min(0.5, row["start_s"]), abs=0.05)
        else:
            assert target == Path(row["path"]).resolve()
            assert (start, end) == (pytest.approx(row["start_s"], abs=1e-3), pytest.approx(row["end_s"], abs=1e-3))
    assert clips == min(3, 5) * 3  # top 3 of each of the 3 queries were cut


def test_report_of_a_parquet_file_and_errors(sample_job_run, tmp_path):
    result = build_report(sample_job_run / "search" / "moments.parquet", tmp_path / "r")
    assert result.queries == 3 and (tmp_path / "r" / "index.html").is_file()
    again = build_report(sample_job_run / "search" / "moments.parquet", tmp_path / "r")  # a report replaces a report
    assert again.pages == result.pages
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="r2cli did not write"):
        build_report(sample_job_run, tmp_path / "other")
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="no moments.parquet"):
        build_report(tmp_path / "other")
    with pytest.raises(InputError, match="no such"):
        build_report(tmp_path / "missing")


def test_unplayable_codec_and_missing_source_are_said(ffmpeg, tmp_path):
    from fixtures import make_video

    from r2cli.outputs import write_table

    avi = make_video(tmp_path / "media" / "old tape.avi", seconds=4, width=96, height=64, fps=25, codec="mpeg4")
    rows = [
        {"run_id": "r", "query_id": "q1", "query": "tape", "video_id": None, "path": str(p), "start_s": 1.0,
         "end_s": 2.0, "score": 0.5, "rank_in_query": i + 1, "rank_in_video": 1, "model": "m", "preset": "p"}
        for i, p in enumerate([avi, tmp_path / "media" / "gone.mp4"])
    ]
    result = build_report(write_table("moments", rows, tmp_path / "run" / "moments.parquet"))
    assert result.out_dir == tmp_path / "run" / "report"
    assert any("source not found" in w and "gone.mp4" in w for w in result.warnings)
    page = (result.out_dir / "q001.html").read_text()
    assert "browsers usually cannot play this source (mpeg4 in avi)" in page
    assert len(_players(page)) == 1  # the missing source has a card but no player and no thumbnail
    assert page.count('class="thumb"') == 1 and "source not found" in page
