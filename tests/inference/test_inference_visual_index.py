"""Search by picture through the approximate coarse index (#20.2 with #19.1).

Archives of generated features (tiny CLIP, 32-dim embeddings) with runs of clips planted near a
still's real CLIP embedding (the still goes through the index's crop and the tiny tower), the index
forced with a low ``min_clips`` as in test_search_coarse_index.py; and one archive indexed for real
by ``r2cli index --coarse-index-min-clips`` from generated media.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fixtures import ArchiveVideo, build_archive, random_embed, random_features, run_cli

pytest.importorskip("faiss")

CLIPS = 60
MIN_CLIPS = 100


@pytest.fixture
def still(tmp_path) -> Path:
    """A 64x64 PNG of colour bands, written with numpy and Pillow (no media tool needed)."""
    from PIL import Image

    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    pixels[:, :22] = (200, 30, 40)
    pixels[:, 22:44] = (20, 180, 60)
    pixels[:, 44:] = (30, 40, 210)
    pixels[20:40, 20:40] = (250, 250, 250)
    path = tmp_path / "still.png"
    Image.fromarray(pixels).save(path)
    return path


def _embedding(tower, still: Path) -> np.ndarray:
    """The still's query embedding, made exactly as the search makes it."""
    from r2cli.app.search_visual import PictureQuery, query_embeddings
    from r2cli.features.store import FeatureSettings

    settings = FeatureSettings.for_tower(tower, fps=0.5)
    return query_embeddings([PictureQuery(qid="q1", kind="image", text=str(still), path=still)], tower, settings)[0]


def _planted(name: str, target, runs: list[tuple[int, int, float]], seed: int) -> ArchiveVideo:
    """A video whose clips [a, b) lean to ``target`` by each run's weight; random elsewhere."""
    embed = random_embed(CLIPS, seed=seed)
    for number, (start, end, weight) in enumerate(runs):
        embed[start:end] = random_embed(end - start, seed=seed * 100 + number, towards=target, weight=weight)
    return ArchiveVideo(name, random_features(CLIPS, seed=seed), embed=embed)


def _archive(workspace, tower, still, *, background: int = 30) -> None:
    target = _embedding(tower, still)
    videos = [ArchiveVideo(f"v{i:03d}.mp4", random_features(CLIPS, seed=i), embed=random_embed(CLIPS, seed=i))
              for i in range(background)]
    videos.append(_planted("match.mp4", target, [(20, 26, 0.95), (40, 43, 0.9)], seed=901))
    videos.append(_planted("long.mp4", target, [(3, 57, 0.9)], seed=902))  # a run longer than any hit radius
    videos.append(_planted("weak.mp4", target, [(10, 14, 0.85)], seed=903))
    build_archive(workspace, tower, videos)


def _update(workspace):
    from r2cli.features.coarse_index import update_workspace_indexes

    (report,) = update_workspace_indexes(workspace, min_clips=MIN_CLIPS)
    return report


def _search(workspace, clip_weights, still, tmp_path, name, **extra):
    from r2cli.app.search import SearchOptions, run_search

    options = dict(image=(still,), clip_weights=str(clip_weights), device="cpu", top_k=20, match_margin=0.12,
                   out=tmp_path / name)
    options.update(extra)
    return run_search(workspace, SearchOptions.from_flags(**options))


def _coarse(result) -> dict:
    return json.loads((result.out_dir / "run.json").read_text())["settings"]["coarse"]


def _moments(result):
    frame = result.moments.copy()
    frame["name"] = frame["path"].map(lambda p: p.rsplit("/", 1)[-1])
    return frame[["name", "start_s", "end_s", "score", "rank_in_query"]].reset_index(drop=True)


def _names(result) -> set[str]:
    return set(_moments(result)["name"])


def _set_status(workspace, name: str, status: str) -> None:
    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import Video

    with Catalog.open(workspace) as catalog, catalog.session() as session:
        video = next(v for v in session.query(Video) if v.path.endswith("/" + name))
        video.status = status


def test_image_search_through_the_index_finds_the_exact_top_moments(workspace, tiny_tower, tiny_clip_path, still,
                                                                     tmp_path):
    import pandas as pd

    _archive(workspace, tiny_tower, still)
    report = _update(workspace)
    assert report.action == "built" and report.vectors == 33 * CLIPS
    indexed = _search(workspace, tiny_clip_path, still, tmp_path, "indexed")
    exact = _search(workspace, tiny_clip_path, still, tmp_path, "exact", exact=True)

    coarse = _coarse(indexed)
    assert coarse["path"] == "index" and coarse["factory"] == report.factory and coarse["nprobe"] >= 1
    assert coarse["generation"] == report.generation and coarse["unindexed_videos"] == 0
    assert coarse["clips_per_query"] == 640 and coarse["expand_clips"] > 0  # 32 hits per moment, top_k 20
    assert _coarse(exact) == {"path": "exact", "reason": "--exact"}

    pd.testing.assert_frame_equal(_moments(indexed), _moments(exact))
    assert {"match.mp4", "long.mp4", "weak.mp4"} <= _names(exact)
    long_run = _moments(exact).query("name == 'long.mp4'")
    assert (long_run["start_s"].min(), long_run["end_s"].max()) == (6.0, 114.0)  # clips 3..56, whole
    # the saliency of each video with a moment is every clip of it, scored exactly, on both paths
    columns = ["path", "clip_index", "score"]
    indexed_saliency = pd.read_parquet(indexed.files["saliency"])[columns]
    exact_saliency = pd.read_parquet(exact.files["saliency"])[columns]
    pd.testing.assert_frame_equal(indexed_saliency.sort_values(columns[:2]).reset_index(drop=True),
                                  exact_saliency.sort_values(columns[:2]).reset_index(drop=True))
    # the index path compared fewer clips than the scan, and says how many hits it asked for
    assert exact.counts["clips"] == 33 * CLIPS and indexed.counts["clips"] < exact.counts["clips"]
    assert indexed.counts["index_rounds"] >= 1 and indexed.counts["index_hits_per_query"] >= 640


def test_below_min_clips_or_without_an_index_the_scan_runs(workspace, tiny_tower, tiny_clip_path, still, tmp_path):
    _archive(workspace, tiny_tower, still)
    scan = _search(workspace, tiny_clip_path, still, tmp_path, "none")
    assert _coarse(scan)["path"] == "exact" and "no coarse index" in _coarse(scan)["reason"]
    _update(workspace)
    one = _search(workspace, tiny_clip_path, still, tmp_path, "one", videos=("weak.mp4",))  # 60 clips
    assert _coarse(one)["path"] == "exact" and "fewer than the index's min_clips" in _coarse(one)["reason"]
    narrow = _search(workspace, tiny_clip_path, still, tmp_path, "narrow", videos=("match.mp4", "weak.mp4"))
    assert _coarse(narrow)["path"] == "exact" and "a scan is surer" in _coarse(narrow)["reason"]  # text's share rule
    assert _names(narrow) == {"match.mp4", "weak.mp4"}


def test_runs_are_grown_whole_and_more_hits_are_asked_when_a_moment_could_be_missed(workspace, tiny_tower, still):
    """Two hits per query at first: the 54-clip run is grown whole, and rounds double the hits until the
    top-k moments of the exact scan are found."""
    from r2cli.catalog.features import ok_videos
    from r2cli.features.coarse_index import load_index
    from r2cli.features.store import FeatureSettings
    from r2cli.inference.search import coarse_stage_for, open_features
    from r2cli.inference.visual import runs_to_moments
    from r2cli.inference.visual_index import picture_scores

    _archive(workspace, tiny_tower, still)
    _update(workspace)
    settings = FeatureSettings.for_tower(tiny_tower, fps=0.5)
    found, _ = open_features(workspace, sorted(ok_videos(workspace), key=lambda r: r.id), settings)
    stored = [features for _, features in found]
    query = _embedding(tiny_tower, still)[None]
    index = load_index(workspace.features_dir, stored[0].settings.key())
    stage = coarse_stage_for(stored, index, clips_per_query=2)
    assert stage.path == "index" and stage.clips_per_query == 2

    def moments(scores):
        best = max(float(s[np.isfinite(s)].max()) for s in scores.similarities if s is not None)
        found_moments = []
        for v, sims in enumerate(scores.similarities):
            if sims is not None:
                rows = runs_to_moments(sims[:, 0], threshold=best - 0.12, min_run=1, fps=0.5, duration=CLIPS * 2.0)
                found_moments.extend((v, *row) for row in rows.tolist())
        return sorted(found_moments, key=lambda m: -m[3])

    exact = moments(picture_scores(query, stored, None, margin=0.12, min_run=1, top_k=4))
    assert len(exact) == 4
    for top_k in (1, 4):
        scores = picture_scores(query, stored, stage, margin=0.12, min_run=1, top_k=top_k)
        assert moments(scores)[:top_k] == exact[:top_k]
        assert scores.clips_scored < 33 * CLIPS
    assert scores.rounds > 1 and scores.hits_per_query > 2  # two hits could not show four moments
    long_video = next(v for v, (record, _) in enumerate(found) if record.path.endswith("/long.mp4"))
    assert (3.0 * 2, 57.0 * 2) in [(m[1], m[2]) for m in moments(scores) if m[0] == long_video]


def test_a_video_added_after_the_index_is_found_and_a_deleted_one_never_returns(workspace, tiny_tower, tiny_clip_path,
                                                                                still, tmp_path):
    _archive(workspace, tiny_tower, still)
    _update(workspace)
    target = _embedding(tiny_tower, still)
    build_archive(workspace, tiny_tower, [_planted("late.mp4", target, [(30, 34, 0.99)], seed=904)])
    late = _search(workspace, tiny_clip_path, still, tmp_path, "late")
    assert _coarse(late)["path"] == "index" and _coarse(late)["unindexed_videos"] == 1
    assert _moments(late)["name"].iloc[0] == "late.mp4"  # scored exactly though the index does not hold it
    assert _moments(late).equals(_moments(_search(workspace, tiny_clip_path, still, tmp_path, "late-exact",
                                                  exact=True)))

    _set_status(workspace, "match.mp4", "missing")  # deleted: the index still holds its vectors
    stale = _search(workspace, tiny_clip_path, still, tmp_path, "stale")
    assert _coarse(stale)["path"] == "index"
    assert "match.mp4" not in _names(stale) and {"late.mp4", "long.mp4"} <= _names(stale)
    removed = _update(workspace)
    assert (removed.removed_videos, removed.added_videos) == (1, 1)
    after = _search(workspace, tiny_clip_path, still, tmp_path, "after")
    assert _coarse(after)["unindexed_videos"] == 0 and "match.mp4" not in _names(after)
    assert _moments(after).equals(_moments(stale))


def test_indexed_for_real_a_still_finds_its_moment_through_the_index(tmp_path, tiny_clip_path, capsys):
    """`r2cli index --coarse-index-min-clips 4` on generated media, then `r2cli search --image` with and
    without --exact: media from make_video(seconds=16, colors=SCENES) and make_testsrc(seconds=12)
    (ffmpeg lavfi), the still grabbed with ffmpeg -ss 7 -frames:v 1."""
    if not shutil.which("ffmpeg") or not shutil.which("ffprobe"):
        pytest.skip("ffmpeg/ffprobe not found on PATH (apt-get install ffmpeg)")
    from fixtures import make_testsrc, make_video

    archive = tmp_path / "archive"
    make_video(archive / "scenes.mp4", seconds=16, width=160, height=120,
               colors=("red", "blue", "green", "yellow", "purple", "orange", "navy", "gray"))
    make_testsrc(archive / "pattern.mp4", seconds=12)
    workspace = ["--workspace", str(tmp_path / "ws")]
    weights = ["--clip-weights", str(tiny_clip_path), "--device", "cpu"]
    code, out, err = run_cli(capsys, "index", str(archive), *workspace, *weights, "--coarse-index-min-clips", "4")
    assert code == 0, err
    assert "coarse index" in out and "built" in out
    grabbed = tmp_path / "still.jpg"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-ss", "7", "-i", str(archive / "scenes.mp4"),
                    "-frames:v", "1", "-q:v", "2", str(grabbed)], check=True)
    runs = {}
    for name, extra in (("indexed", ()), ("exact", ("--exact",))):
        code, out, err = run_cli(capsys, "search", "--image", str(grabbed), "--match-margin", "0.01", "--out",
                                 str(tmp_path / name), "--json", *workspace, *weights, *extra)
        assert code == 0, err
        runs[name] = json.loads((tmp_path / name / "run.json").read_text())
    assert runs["indexed"]["settings"]["coarse"]["path"] == "index"
    assert runs["exact"]["settings"]["coarse"]["path"] == "exact"
    import pandas as pd

    first = {name: pd.read_parquet(tmp_path / name / "moments.parquet").iloc[0] for name in runs}
    for row in first.values():
        assert (Path(row["path"]).name, row["start_s"], row["end_s"]) == ("scenes.mp4", 6.0, 8.0)
    assert first["indexed"]["score"] == first["exact"]["score"]
