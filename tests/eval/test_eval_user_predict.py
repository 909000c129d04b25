"""Your own annotations end to end (#22.4): `r2cli predict` grounds each query in its own video and
`r2cli evaluate --dataset user` reads the predictions as they are (real media, index, tiny models)."""

from __future__ import annotations

import json

import pytest

from fixtures import make_video
from fixtures import run_cli as run


@pytest.fixture
def annotated(tmp_path, ffmpeg, tiny_clip_path, capsys):
    clips = tmp_path / "clips"
    make_video(clips / "party.mp4", seconds=12, width=96, height=64, fps=10, colors=("red", "blue"))
    make_video(clips / "wedding 2019.mp4", seconds=8, width=96, height=64, fps=10, colors=("green",))
    code, out, err = run(capsys, "index", clips, "--workspace", tmp_path / "ws", "--clip-weights", tiny_clip_path,
                         "--device", "cpu")
    assert code == 0, err
    mine = tmp_path / "mine.jsonl"
    mine.write_text(
        json.dumps({"video": "clips/party.mp4", "query": "the cake is carried in", "relevant_windows": [[2, 6]]}) + "\n"
        + json.dumps({"qid": "speech-1", "vid": "wedding 2019", "query": "the best man speaks",
                      "relevant_windows": [[0, 4]]}) + "\n"
        + json.dumps({"video": "clips/party.mp4", "query": "people dance", "relevant_windows": [[6, 12]]}) + "\n",
        encoding="utf-8")
    return tmp_path, mine


def test_predict_then_evaluate_user_annotations(annotated, capsys, tiny_clip_path, random_head_path):
    tmp_path, mine = annotated
    preds = tmp_path / "preds.jsonl"
    model = ["--checkpoint", random_head_path, "--clip-weights", tiny_clip_path, "--device", "cpu"]
    code, out, err = run(capsys, "predict", mine, "--out", preds, "--workspace", tmp_path / "ws", *model)
    assert code == 0, err
    assert "3 predictions" in out
    lines = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines()]
    assert [line["qid"] for line in lines] == [1, "speech-1", 3]  # one line per annotation, its own qid
    assert [line["vid"] for line in lines] == ["party", "wedding 2019", "party"]
    for line, seconds in zip(lines, (12, 8, 12)):
        assert line["pred_relevant_windows"] and all(0 <= w[0] < w[1] <= seconds + 1e-6
                                                      for w in line["pred_relevant_windows"])
        assert len(line["pred_saliency_scores"]) == seconds // 2  # one per 2-second clip of its own video

    code, out, err = run(capsys, "evaluate", "--dataset", "user", preds, mine, "--json")
    assert code == 0, err
    brief = json.loads(out)
    assert 0 <= brief["MR-full-R1@0.3"] <= 100 and "MR-full-mIoU" in brief

    code, _, err = run(capsys, "predict", mine, "--out", preds, "--workspace", tmp_path / "ws", *model)
    assert code != 0 and "exists; pass --force" in err


def test_search_official_output_is_what_evaluate_refused(annotated, capsys, tiny_clip_path, random_head_path):
    """Why predict exists: search's official lines repeat a query id per video."""
    tmp_path, mine = annotated
    code, _, err = run(capsys, "search", "the cake is carried in", "--format", "official", "--out", tmp_path / "run",
                       "--workspace", tmp_path / "ws", "--checkpoint", random_head_path,
                       "--clip-weights", tiny_clip_path, "--device", "cpu")
    assert code == 0, err
    code, _, err = run(capsys, "evaluate", "--dataset", "user", tmp_path / "run" / "predictions_official.jsonl", mine)
    assert code != 0 and "repeat" in err
