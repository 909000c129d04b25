"""Budgets, shots, windows and query-free titles of ``r2cli.app.summarize.run_summarize`` (real media, tiny models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from r2cli.app.summarize import summarize
from r2cli.summary.stages import readable_title, video_query

FPS = 0.5
CLIP_S = 1 / FPS


@pytest.fixture
def run(archive, head_path, tiny_clip_path, tmp_path):
    """``summarize`` on the archive with the tiny models; each call writes to its own folder."""
    counter = iter(range(1000))

    def call(videos=("*.mp4",), **kwargs):
        kwargs.setdefault("out", tmp_path / f"run{next(counter)}")
        return summarize(archive.workspace, videos, checkpoint=str(head_path), clip_weights=str(tiny_clip_path),
                         device="cpu", **kwargs)

    return call


def _selected_seconds(frame, path) -> float:
    rows = frame[(frame["path"] == str(path)) & frame["selected"]]
    return float((rows["end_s"] - rows["start_s"]).sum())


@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5, 1.0])
def test_summary_stays_within_a_ratio_budget(run, archive, ratio):
    result = run(ratio=ratio)
    durations = {}
    for video in result.videos:
        durations[Path(video.path).name] = video.duration_s
        assert video.budget_s == pytest.approx(ratio * video.duration_s)
        assert _selected_seconds(result.summary, video.path) == pytest.approx(video.selected_s)
        assert video.selected_s <= video.budget_s + 1e-9
        assert video.selected_s > 0
        # segments tile the video in time order
        rows = result.summary[result.summary["path"] == video.path].sort_values("segment_index")
        assert rows["start_s"].iloc[0] == 0.0 and rows["end_s"].iloc[-1] == pytest.approx(video.duration_s)
        assert np.allclose(rows["start_s"].to_numpy()[1:], rows["end_s"].to_numpy()[:-1])
    assert durations == pytest.approx({"holiday_trip-2019.mp4": 20.0, "long_walk.mp4": 64.0, "scenes.mp4": 30.0},
                                      abs=0.1)
    if ratio == 1.0:  # a budget as long as the video takes every shot
        assert all(v.selected_s == pytest.approx(v.duration_s) for v in result.videos)


@pytest.mark.parametrize("seconds", [5.0, 13.0, 100.0])
def test_summary_stays_within_a_seconds_budget(run, seconds):
    result = run(seconds=seconds)
    for video in result.videos:
        assert video.budget_s == pytest.approx(min(seconds, video.duration_s))
        assert 0 < video.selected_s <= video.budget_s + 1e-9
        assert _selected_seconds(result.summary, video.path) == pytest.approx(video.selected_s)


def test_budget_below_one_clip_selects_the_best_clip_over_budget(run, archive):
    """Never an empty summary that looks like success (#22.5): the single most salient clip, marked."""
    result = run((str(archive.scenes),), seconds=1.5)
    video = result.videos[0]
    clip_s = 2.0  # the preset's 0.5 fps
    assert video.selected_s == pytest.approx(clip_s) and video.segments_selected == 1 and video.over_budget
    chosen = result.summary[result.summary["selected"]]
    assert len(chosen) == 1 and bool(chosen["over_budget"].iloc[0])
    assert not result.summary[~result.summary["selected"]]["over_budget"].any()
    assert result.counts["videos_over_budget"] == 1
    assert any("shorter than one clip" in w and "single best clip" in w for w in result.warnings)
    within = run((str(archive.scenes),), seconds=5.0)
    assert not within.summary["over_budget"].any() and not within.videos[0].over_budget


def test_shots_are_found_at_the_planted_cuts(run):
    """With the whole video as budget nothing is trimmed: segment boundaries are the detected shot cuts."""
    result = run(ratio=1.0)
    planted = {"scenes.mp4": [10.0, 20.0], "holiday_trip-2019.mp4": [10.0], "long_walk.mp4": [16.0, 32.0, 48.0]}
    for video in result.videos:
        name = Path(video.path).name
        rows = result.summary[result.summary["path"] == video.path]
        found = sorted(rows["start_s"].tolist())[1:]
        for cut in planted[name]:  # every planted cut is found within one clip
            assert any(abs(cut - f) <= CLIP_S for f in found), (name, cut, found)
        for f in found:  # and no cut is found where none was planted
            assert any(abs(cut - f) <= CLIP_S for cut in planted[name]), (name, f, planted[name])
        assert video.shots == len(planted[name]) + 1


def test_long_videos_are_summarized_through_overlapping_windows(run, archive, tmp_path):
    import json

    result = run((str(archive.long),), ratio=0.25, window=20.0, stride=10.0, format="official")
    video = result.videos[0]
    assert video.clips == 32 and video.windows == 6  # starts 0, 5, 10, 15, 20 and the end-aligned 22
    assert result.counts["windows"] == 6
    assert 0 < video.selected_s <= 16.0
    lines = [json.loads(line) for line in result.files["official"].read_text().splitlines()]
    scores = lines[0]["pred_saliency_scores"]
    assert len(scores) == 32 and all(np.isfinite(scores))
    whole = run((str(archive.long),), ratio=0.25, format="official")
    assert whole.videos[0].windows == 1
    whole_scores = json.loads(whole.files["official"].read_text().splitlines()[0])["pred_saliency_scores"]
    assert not np.allclose(scores, whole_scores)  # the windows saw less context, so scores differ


def _clip_scores(result, path) -> np.ndarray:
    """Per-clip saliency of ``path`` from the run's official JSON Lines file."""
    import json

    for line in result.files["official"].read_text().splitlines():
        item = json.loads(line)
        if item["vid"] == Path(path).stem:
            return np.asarray(item["pred_saliency_scores"])
    raise AssertionError(f"{path} is not in {result.files['official']}")


def test_query_free_summaries_use_the_title(run, archive):
    result = run(ratio=0.3, format="official")
    by_name = {Path(v.path).name: v for v in result.videos}
    assert (by_name["scenes.mp4"].query, by_name["scenes.mp4"].query_source) == ("Three coloured scenes", "title")
    assert (by_name["holiday_trip-2019.mp4"].query, by_name["holiday_trip-2019.mp4"].query_source) == (
        "holiday trip 2019",
        "file name",
    )
    frame = result.summary
    assert set(frame[frame["path"] == str(archive.scenes)]["query"]) == {"Three coloured scenes"}
    assert set(frame[frame["path"] == str(archive.holiday)]["query"]) == {"holiday trip 2019"}

    # the saliency really comes from the title: the same sentence as --query gives the same scores,
    # another sentence different ones (other batch sizes change float rounding only)
    same = run((str(archive.scenes),), ratio=0.3, query="Three coloured scenes", format="official")
    other = run((str(archive.scenes),), ratio=0.3, query="a man rides a horse on the beach", format="official")
    title_scores = _clip_scores(result, archive.scenes)
    assert same.videos[0].query_source == "--query"
    assert np.allclose(_clip_scores(same, archive.scenes), title_scores, rtol=0, atol=1e-4)
    assert np.abs(_clip_scores(other, archive.scenes) - title_scores).max() > 1e-3


def test_readable_titles_from_file_names():
    class Row:
        def __init__(self, path, title=None):
            self.path, self.title = path, title

    assert readable_title("/x/best_of-surfing.2019.mp4") == "best of surfing 2019"
    assert readable_title("/x/dogShow.mkv") == "dog Show"
    assert readable_title("/x/___.mp4") == "___"
    assert video_query(Row("/x/a_b.mp4", "  Surf   day ")) == ("Surf day", "title")
    assert video_query(Row("/x/a_b.mp4", "   ")) == ("a b", "file name")
    assert video_query(Row("/x/a_b.mp4", "Title"), "  goal  ") == ("goal", "--query")


SAMPLES = Path(__file__).resolve().parents[2] / "sample_media"


def test_shots_at_the_cuts_of_the_sample_clips(ffmpeg, tmp_path, tiny_tower, head_path, tiny_clip_path):
    """sample_media/README.md: red_then_blue_cut.mp4 cuts at 6 s; green_yellow_purple_scenes.mp4 at 5 s and 10 s."""
    from r2cli.catalog.scan import scan_archive
    from r2cli.features.extract import extract_features
    from r2cli.paths import resolve_workspace

    planted = {"red_then_blue_cut.mp4": [6.0], "green_yellow_purple_scenes.mp4": [5.0, 10.0]}
    if not all((SAMPLES / name).is_file() for name in planted):
        pytest.skip(f"sample clips are absent from {SAMPLES}")
    workspace = resolve_workspace(tmp_path / "ws")
    scan_archive([SAMPLES], workspace)
    extract_features(workspace, tower=tiny_tower, paths=[SAMPLES / name for name in planted])
    result = summarize(workspace, tuple(planted), ratio=1.0, checkpoint=str(head_path),
                       clip_weights=str(tiny_clip_path), device="cpu")
    by_name = {Path(v.path).name: v for v in result.videos}
    assert set(by_name) == set(planted)
    red_blue = by_name["red_then_blue_cut.mp4"]  # it has a container title tag; the other one does not
    assert (red_blue.query, red_blue.query_source) == ("Red scene, hard cut to blue at 6 s", "title")
    assert by_name["green_yellow_purple_scenes.mp4"].query == "green yellow purple scenes"
    for video in result.videos:
        name = Path(video.path).name
        found = sorted(result.summary[result.summary["path"] == video.path]["start_s"].tolist())[1:]
        assert len(found) == len(planted[name]), (name, found)
        for cut, at in zip(planted[name], found):
            assert abs(cut - at) <= CLIP_S, (name, cut, found)
