"""Search behaviour on generated features: ranking across videos, long-video windows, batch invariance."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures import FPS, ArchiveVideo, build_archive, marker_features, random_features


def _options(head, clip, **extra):
    from r2cli.app.search import SearchOptions

    return SearchOptions(checkpoint=str(head), clip_weights=str(clip), device="cpu", **extra)


def _iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def test_moments_are_ranked_across_videos(workspace, tiny_tower, tiny_clip_path, marker_head_path):
    from r2cli.app.search import search

    build_archive(workspace, tiny_tower, [
        ArchiveVideo("plain.mp4", marker_features(40, seed=1)),
        ArchiveVideo("weak.mp4", marker_features(60, [(30, 33, 0.6)], seed=2)),
        ArchiveVideo("strong.mp4", marker_features(75, [(20, 25, 0.95)], seed=3)),
    ])
    result = search(workspace, ["a red scene"], options=_options(marker_head_path, tiny_clip_path, top_k=1000))
    frame = result.moments
    assert result.counts["videos_searched"] == 3 and result.counts["pairs"] == 3
    names = frame["path"].map(lambda p: p.rsplit("/", 1)[-1])
    best = {name: frame.loc[names == name, "score"].max() for name in ("strong.mp4", "weak.mp4", "plain.mp4")}
    assert best["strong.mp4"] > best["weak.mp4"] > best["plain.mp4"]
    top = frame.iloc[0]
    assert names.iloc[0] == "strong.mp4"
    # the marked clips 20..24 start at 40..48 s; a stride-1 point spans one clip either side
    assert 38.0 <= top["start_s"] and top["end_s"] <= 52.0
    assert list(frame["rank_in_query"]) == list(range(1, len(frame) + 1))
    assert (np.diff(frame["score"].to_numpy()) <= 1e-12).all()
    for name, group in frame.groupby("path"):
        ordered = group.sort_values("rank_in_video")
        assert list(ordered["rank_in_video"]) == list(range(1, len(group) + 1))
        assert (np.diff(ordered["score"].to_numpy()) <= 1e-12).all()


def test_top_k_and_min_score_cut_the_ranking(workspace, tiny_tower, tiny_clip_path, marker_head_path):
    from r2cli.app.search import search

    build_archive(workspace, tiny_tower, [
        ArchiveVideo("a.mp4", marker_features(75, [(10, 14, 0.95)], seed=1)),
        ArchiveVideo("b.mp4", marker_features(75, [(50, 52, 0.9)], seed=2)),
    ])
    result = search(workspace, ["one", "two"], options=_options(marker_head_path, tiny_clip_path, top_k=3))
    assert result.moments.groupby("query_id").size().to_dict() == {"q1": 3, "q2": 3}
    strict = search(workspace, ["one"], options=_options(marker_head_path, tiny_clip_path, top_k=1000, min_score=0.5))
    assert len(strict.moments) > 0
    assert (strict.moments["score"] >= 0.5).all()
    assert len(strict.moments) < 30  # background points (score ~0.12) are gone


def test_moment_in_last_window_of_a_three_hour_video(workspace, tiny_tower, tiny_clip_path, marker_head_path):
    """8,100 clips at 0.5 fps: far beyond the official 1,024-clip limit; the planted moment sits in the last window only."""
    from r2cli.app.search import search
    from r2cli.outputs import read_results

    num_clips = 8100
    late = (8090, 8094)  # 16180-16188 s, only the end-aligned last window covers it entirely
    middle = (4000, 4003)  # covered by two overlapping windows
    build_archive(workspace, tiny_tower, [
        ArchiveVideo("long.mp4", marker_features(num_clips, [(*late, 0.95), (*middle, 0.8)], seed=4)),
        ArchiveVideo("short.mp4", marker_features(50, seed=5)),
    ])
    result = search(workspace, ["the end"], options=_options(marker_head_path, tiny_clip_path, top_k=200, candidates=10_000))
    assert result.counts["windows"] > 200  # 150 s windows every 76 s over 3 hours
    frame = result.moments
    top = frame.iloc[0]
    assert top["path"].endswith("long.mp4")
    assert late[0] / FPS - 2 <= top["start_s"] < top["end_s"] <= late[1] / FPS + 2
    long_rows = frame[frame["path"].str.endswith("long.mp4")]
    middle_rows = long_rows[(long_rows["start_s"] >= middle[0] / FPS - 2) & (long_rows["end_s"] <= middle[1] / FPS + 2)]
    assert len(middle_rows) >= 1  # found, on the video's timeline
    # merged across windows: no duplicate survives NMS
    spans = long_rows[["start_s", "end_s"]].to_numpy()
    for i in range(len(spans)):
        for j in range(i + 1, len(spans)):
            assert _iou(spans[i], spans[j]) < 0.7, (spans[i], spans[j])
    saliency = read_results(result.files["saliency"], kind="saliency").df
    long_saliency = saliency[saliency["path"].str.endswith("long.mp4")].sort_values("clip_index")
    assert list(long_saliency["clip_index"]) == list(range(num_clips))
    peak = int(long_saliency["clip_index"].iloc[int(np.argmax(long_saliency["score"].to_numpy()))])
    assert late[0] <= peak < late[1]
    assert long_saliency["clip_end_s"].iloc[-1] == pytest.approx(num_clips / FPS)


def test_pair_result_does_not_depend_on_the_batch(workspace, tiny_tower, tiny_clip_path, random_head_path):
    from r2cli.app.search import search
    from r2cli.outputs import read_results

    lengths = (75, 50, 7, 23, 75, 200)
    build_archive(workspace, tiny_tower, [ArchiveVideo(f"v{i}.mp4", random_features(n, seed=i)) for i, n in enumerate(lengths)])
    texts = ["a dog", "a man opens the door", "sunset over the sea", "red", "two people talk in a kitchen"]
    big = search(workspace, texts, options=_options(random_head_path, tiny_clip_path, top_k=100_000, batch_size=7,
                                                     chunk_windows=3))
    assert big.counts["pairs"] == len(texts) * big.counts["windows"]
    alone = search(workspace, [texts[3]], options=_options(random_head_path, tiny_clip_path, top_k=100_000,
                                                            batch_size=1, chunk_windows=1, videos=("v5.mp4",)))
    assert alone.counts["pairs"] == alone.counts["windows"] == 5  # 200 clips: starts 0, 38, 76, 114 and 125 (end-aligned)

    def pair_rows(frame):
        rows = frame[(frame["query"] == texts[3]) & frame["path"].str.endswith("v5.mp4")]
        return rows.sort_values("rank_in_video")[["start_s", "end_s", "score"]].to_numpy()

    batched, single = pair_rows(big.moments), pair_rows(alone.moments)
    assert len(batched) == len(single) > 0
    np.testing.assert_allclose(batched, single, atol=1e-4, rtol=0)

    def pair_saliency(result, qid):
        frame = read_results(result.files["saliency"], kind="saliency").df
        rows = frame[(frame["query_id"] == qid) & frame["path"].str.endswith("v5.mp4")]
        return rows.sort_values("clip_index")["score"].to_numpy()

    np.testing.assert_allclose(pair_saliency(big, "q4"), pair_saliency(alone, "q1"), atol=1e-5, rtol=0)


def test_coarse_stage_keeps_the_windows_closest_to_the_query(workspace, tiny_tower, tiny_clip_path, random_head_path):
    from fixtures import random_embed

    from r2cli.app.search import search

    _, text_embed, _ = tiny_tower.query_features(["a red scene"], k=4)
    target = text_embed[0].numpy()
    build_archive(workspace, tiny_tower, [
        ArchiveVideo(f"other{i}.mp4", random_features(30, seed=i), embed=random_embed(30, seed=i)) for i in range(4)
    ] + [ArchiveVideo("match.mp4", random_features(30, seed=9), embed=random_embed(30, seed=9, towards=target, weight=0.9))])
    result = search(workspace, ["a red scene"], options=_options(random_head_path, tiny_clip_path, candidates=1,
                                                                  top_k=1000))
    assert result.counts["pairs"] == 1
    assert set(result.moments["path"].map(lambda p: p.rsplit("/", 1)[-1])) == {"match.mp4"}
