"""Moments a player cannot play never reach the results (#22.3): ends past the video are clamped, moments
with no length dropped and counted; the official submission keeps the official numbers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from r2cli.inference.search import ArchiveVideo, Merged, SearchPlan, playable_moments, rank_moments
from r2cli.inference.query_files import Query


def test_playable_moments_clamp_and_drop():
    rows = np.array([[0.0, 10.0, 0.9], [0.0, 0.0, 0.8], [4.0, 6.0, 0.7], [10.0, 12.0, 0.6]])
    kept, dropped = playable_moments(rows, 9.934)
    assert kept.tolist() == [[0.0, 9.934, 0.9], [4.0, 6.0, 0.7]]
    assert dropped == 2  # 0-0, and 10-12 which starts after the end


def test_rank_moments_offers_only_playable_moments():
    record = SimpleNamespace(id=1, path="/archive/clip.mp4")
    video = ArchiveVideo(record=record, features=None, duration=9.934)
    plan = SearchPlan(videos=[video], windows=[], fps=0.5, post=None)
    merged = Merged(keys=[(0, 0)], moments=[np.array([[0.0, 10.0, 0.9], [0.0, 0.0, 0.8], [2.0, 4.0, 0.7],
                                                      [6.0, 6.0, 0.5]])], saliency={})
    dropped: list[int] = []
    frame = rank_moments(merged, plan, [Query(qid="q1", text="red", source="argument")], run_id="r", top_k=10,
                         min_score=None, model_id="m", preset="qvhighlights", dropped=dropped)
    assert frame[["start_s", "end_s"]].values.tolist() == [[0.0, 9.934], [2.0, 4.0]]
    assert frame["rank_in_query"].tolist() == [1, 2] and frame["rank_in_video"].tolist() == [1, 2]
    assert dropped == [2]


@pytest.fixture
def archive(workspace, tiny_tower):
    from fixtures import ArchiveVideo as Stored
    from fixtures import build_archive, random_features

    # durations that are not whole clips (2 s): the official rounding can reach past their ends
    build_archive(workspace, tiny_tower, [Stored("a.mp4", random_features(40, 0), duration=79.3),
                                          Stored("b.mp4", random_features(30, 1), duration=59.1)])
    return workspace


def test_search_results_are_playable_and_drops_are_counted(archive, tmp_path, tiny_clip_path, random_head_path):
    """Real search: every Parquet moment has a length and ends within its video; run.json counts the
    dropped ones; the official JSON Lines keep the official windows as the official code writes them."""
    import pandas as pd

    from r2cli.app.search import SearchOptions, search

    options = SearchOptions(checkpoint=str(random_head_path), clip_weights=str(tiny_clip_path), device="cpu",
                            out=tmp_path / "run", format="official", top_k=1000, candidates=100)
    result = search(archive, ["a red scene", "a blue scene", "people talking"], options=options)
    moments = pd.read_parquet(result.files["moments"])
    durations = {"a": 79.3, "b": 59.1}
    assert len(moments) and (moments["end_s"] > moments["start_s"]).all()
    assert all(end <= durations[path.rsplit("/", 1)[-1][0]] for path, end in zip(moments["path"], moments["end_s"]))
    official = [json.loads(line) for line in result.files["official"].read_text(encoding="utf-8").splitlines()]
    expected = sum(playable_moments(np.array(line["pred_relevant_windows"]), durations[line["vid"]])[1]
                   for line in official)
    manifest = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["moments_unplayable"] == expected
    assert len(moments) == sum(len(line["pred_relevant_windows"]) for line in official) - expected
