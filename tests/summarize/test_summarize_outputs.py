"""summary.parquet, the official format, the catalog run record, resume and the reel (real ffmpeg)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from r2cli.errors import UsageError
from r2cli.app.summarize import summarize


@pytest.fixture
def options(head_path, tiny_clip_path):
    return {"checkpoint": str(head_path), "clip_weights": str(tiny_clip_path), "device": "cpu"}


def test_summary_parquet_round_trip(archive, options, tmp_path):
    from r2cli.outputs import read_results
    from r2cli.outputs.schemas import SUMMARY, kind_version

    result = summarize(archive.workspace, ("scenes.mp4", "holiday*"), ratio=0.4, out=tmp_path / "run", **options)
    assert result.files["summary"] == tmp_path / "run" / "summary.parquet"
    read = read_results(result.files["summary"], kind="summary")
    assert read.kind == "summary" and read.schema_version == kind_version("summary")
    assert read.metadata["r2cli.run_id"] == result.run_id
    assert list(read.df.columns)[: len(SUMMARY)] == [c.name for c in SUMMARY]
    pd.testing.assert_frame_equal(read.df, result.summary, check_dtype=False)
    assert set(read.df["path"]) == {str(archive.scenes), str(archive.holiday)}
    assert read.df["selected"].dtype == bool and read.df["rank"].min() == 1
    for _, rows in read.df.groupby("path"):  # ranks order the segments by mean saliency, 1..n
        ordered = rows.sort_values("rank")
        assert list(ordered["rank"]) == list(range(1, len(rows) + 1))
        assert ordered["mean_saliency"].is_monotonic_decreasing
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["kind"] == "summarize" and manifest["status"] == "done"
    assert manifest["files"]["summary"] == "summary.parquet"
    assert [v["path"] for v in manifest["videos"]] == [v.path for v in result.videos]


def test_run_is_recorded_in_the_catalog(archive, options):
    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import Run

    result = summarize(archive.workspace, (str(archive.scenes), str(archive.unextracted)), seconds=8, **options)
    assert result.out_dir == archive.workspace.runs_dir / result.run_id
    with Catalog.open(archive.workspace) as catalog, catalog.session() as session:
        run = session.get(Run, result.run_id)
        assert (run.kind, run.status, run.out_dir) == ("summarize", "done", str(result.out_dir))
        assert run.settings["seconds"] == 8 and run.settings["ratio"] is None
        assert run.queries == [{"video_id": result.videos[0].video_id, "query": "Three coloured scenes",
                                "source": "title"}]
        assert run.counts["videos_summarized"] == 1 and run.counts["videos_skipped"] == 1
        assert run.model["checkpoint_id"].startswith("grounding.safetensors sha256:")
        assert run.finished_at is not None and run.timings["total_s"] > 0


def test_official_format_with_a_saliency_only_preset(archive, saliency_head_path, tiny_clip_path, tmp_path):
    from r2cli.eval.formats import read_saliency_predictions

    result = summarize(archive.workspace, ("scenes.mp4", "long_walk.mp4"), ratio=0.2, preset="tvsum_bk",
                       checkpoint=str(saliency_head_path), clip_weights=str(tiny_clip_path), device="cpu",
                       out=tmp_path / "run", format="official")
    assert result.model["preset"] == "tvsum_bk"
    predictions = read_saliency_predictions(result.files["official"])
    assert [p["vid"] for p in predictions] == ["long_walk", "scenes"]
    raw = [json.loads(line) for line in result.files["official"].read_text().splitlines()]
    assert [r["domain"] for r in raw] == ["BK", "BK"]
    assert [r["query"] for r in raw] == ["long walk", "Three coloured scenes"]
    assert [len(r["pred_saliency_scores"]) for r in raw] == [32, 15]
    assert all(v.selected_s <= v.budget_s for v in result.videos)


def test_resume_returns_the_finished_run(archive, options, tmp_path):
    first = summarize(archive.workspace, ("scenes.mp4",), ratio=0.3, out=tmp_path / "run", **options)
    again = summarize(archive.workspace, ("scenes.mp4",), ratio=0.3, out=tmp_path / "run", resume=True, **options)
    assert again.resumed and again.run_id == first.run_id
    assert again.videos == first.videos
    changed = summarize(archive.workspace, ("scenes.mp4",), ratio=0.4, out=tmp_path / "run", resume=True, **options)
    assert not changed.resumed and changed.run_id != first.run_id


def _probe_duration(path: Path) -> tuple[float, list[str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    data = json.loads(out)
    return float(data["format"]["duration"]), [s["codec_type"] for s in data["streams"]]


def test_reel_lasts_the_sum_of_the_selected_segments(archive, options, tmp_path):
    reel = tmp_path / "reel.mp4"
    result = summarize(archive.workspace, ("scenes.mp4", "holiday_trip-2019.mp4"), ratio=0.3, reel=reel,
                       out=tmp_path / "run", **options)
    selected = result.summary[result.summary["selected"]]
    expected = float((selected["end_s"] - selected["start_s"]).sum())
    assert expected == pytest.approx(sum(v.selected_s for v in result.videos)) and expected > 0
    duration, streams = _probe_duration(reel)
    assert duration == pytest.approx(expected, abs=0.05 * len(selected) + 0.05)
    assert sorted(streams) == ["audio", "video"]  # scenes.mp4 has audio; the silent video gets silence
    assert result.files["reel"] == reel and result.reel.reel == str(reel)
    # the pieces are the selected segments, videos in catalog order, segments in time order
    pieces = [(Path(o.segment.path).name, o.segment.start_s, o.segment.end_s) for o in result.reel.outcomes]
    wanted = [(Path(v.path).name, a, b) for v in result.videos for a, b in v.selected]
    assert pieces == wanted and all(o.status == "written" for o in result.reel.outcomes)

    with pytest.raises(UsageError, match=r"--reel .*reel\.mp4 exists \(use --force to overwrite\)"):
        summarize(archive.workspace, ("scenes.mp4",), ratio=0.3, reel=reel, **options)
    with pytest.raises(UsageError, match=r"--reel must end in \.mp4, .*reel\.gif"):
        summarize(archive.workspace, ("scenes.mp4",), ratio=0.3, reel=tmp_path / "reel.gif", **options)
    with pytest.raises(UsageError, match="is a source video of the catalog; an input is never an output"):
        summarize(archive.workspace, ("scenes.mp4",), ratio=0.3, reel=archive.scenes, force=True, **options)
