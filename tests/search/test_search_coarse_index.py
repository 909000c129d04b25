"""Issue #19.1: the approximate coarse index kept by ``index`` and used by ``search``.

Small archives of generated features (tiny CLIP, 32-dim embeddings); the index is forced with a
low ``min_clips``. One planted video leans towards the query's text embedding, so exact scoring
knows which windows must be candidates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fixtures import ArchiveVideo, build_archive, random_embed, random_features, run_cli

pytest.importorskip("faiss")

REPO = Path(__file__).resolve().parents[2]
QUERY = "a red scene"
CLIPS = 60
MIN_CLIPS = 100


def _options(head, clip, **extra):
    from r2cli.app.search import SearchOptions

    return SearchOptions(checkpoint=str(head), clip_weights=str(clip), device="cpu", top_k=1000, **extra)


def _target(tower):
    _, text_embed, _ = tower.query_features([QUERY], k=4)
    return text_embed[0].numpy()


def _videos(tower, count: int, *, start: int = 0, match: str | None = None, weight: float = 0.8):
    target = _target(tower)
    videos = [ArchiveVideo(f"v{i:03d}.mp4", random_features(CLIPS, seed=i), embed=random_embed(CLIPS, seed=i))
              for i in range(start, start + count)]
    if match is not None:
        embed = random_embed(CLIPS, seed=999)
        embed[20:26] = random_embed(6, seed=998, towards=target, weight=weight)  # the planted moment
        videos.append(ArchiveVideo(match, random_features(CLIPS, seed=999), embed=embed))
    return videos


def _update(workspace, **extra):
    from r2cli.features.coarse_index import update_workspace_indexes

    (report,) = update_workspace_indexes(workspace, min_clips=MIN_CLIPS, **extra)
    return report


def _names(frame):
    return set(frame["path"].map(lambda p: p.rsplit("/", 1)[-1]))


def _manifest(result):
    return json.loads((result.out_dir / "run.json").read_text())


def _set_status(workspace, name: str, status: str) -> None:
    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import Video

    with Catalog.open(workspace) as catalog, catalog.session() as session:
        video = next(v for v in session.query(Video) if v.path.endswith("/" + name))
        video.status = status


def _fingerprint(workspace, name: str) -> str:
    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import Video

    with Catalog.open(workspace) as catalog, catalog.session() as session:
        return next(v for v in session.query(Video) if v.path.endswith("/" + name)).fingerprint


def test_index_spec_follows_the_archive_size():
    from r2cli.features.coarse_index import index_spec

    assert index_spec(1_800_000).factory == "IVF1024,PQ64"  # 1,000 video-hours
    assert index_spec(18_000_000).factory == "IVF4096,PQ64"  # 10,000 video-hours
    assert index_spec(180_000_000).factory == "IVF4096,PQ64x4fs"  # 100,000 video-hours
    assert index_spec(100_000).codes == "SQ8"
    assert index_spec(2_000).nlist <= 2_000 // 39


def test_search_uses_the_index_and_agrees_with_exact(workspace, tiny_tower, tiny_clip_path, random_head_path):
    from r2cli.app.search import search

    build_archive(workspace, tiny_tower, _videos(tiny_tower, 30, match="match.mp4"))
    report = _update(workspace)
    assert report.action == "built" and report.vectors == 31 * CLIPS and report.factory.endswith(",SQ8")
    options = _options(random_head_path, tiny_clip_path, candidates=3)
    approximate = search(workspace, [QUERY], options=options)
    exact = search(workspace, [QUERY], options=options.replace(exact=True))
    coarse = _manifest(approximate)["settings"]["coarse"]
    assert coarse["path"] == "index" and coarse["nprobe"] >= 1 and coarse["factory"] == report.factory
    assert coarse["generation"] == report.generation and coarse["unindexed_videos"] == 0
    assert _manifest(exact)["settings"]["coarse"] == {"path": "exact", "reason": "--exact"}
    assert _names(approximate.moments) == _names(exact.moments) and "match.mp4" in _names(exact.moments)
    assert approximate.counts["pairs"] == exact.counts["pairs"] == 3
    columns = ["path", "start_s", "end_s", "score"]
    assert approximate.moments[columns].equals(exact.moments[columns])


def test_candidates_agree_with_exact_scoring_on_many_queries(workspace, tiny_tower):
    """Re-scored index candidates are the exact top windows (recall 1 on a small archive)."""
    from r2cli.features.coarse_index import load_index
    from r2cli.features.store import FeatureSettings
    from r2cli.inference.search import choose_coarse_stage, open_features, plan_archive, select_candidates
    from r2cli.inference.windows import PostProcess
    from r2cli.catalog.features import ok_videos

    build_archive(workspace, tiny_tower, _videos(tiny_tower, 40))
    _update(workspace)
    settings = FeatureSettings.for_tower(tiny_tower, fps=0.5, k=4)
    found, _ = open_features(workspace, sorted(ok_videos(workspace), key=lambda r: r.id), settings)
    plan = plan_archive(found, fps=0.5, window_clips=20, stride_clips=10, post=PostProcess())
    index = load_index(workspace.features_dir, settings.key())
    stage = choose_coarse_stage(plan, index, candidates=5)
    assert stage.path == "index"
    rng = np.random.default_rng(5)
    queries = []
    for _ in range(10):  # queries near a random clip, like a text matching one moment
        video = plan.videos[int(rng.integers(len(plan.videos)))]
        clip = np.asarray(video.features.embed[int(rng.integers(CLIPS))], dtype=np.float32)
        query = clip + 0.05 * rng.standard_normal(clip.shape).astype(np.float32)
        queries.append(query / np.linalg.norm(query))
    queries = np.stack(queries)
    approximate = select_candidates(plan, queries, 5, coarse=stage)
    exact = select_candidates(plan, queries, 5)
    assert len(approximate) == len(exact) == 50
    assert len(set(approximate) & set(exact)) >= 0.9 * len(exact)
    assert all(pair in approximate for pair in exact[:: 5])  # each query's best window is always found


@pytest.mark.parametrize("codes", ["SQ8", "fast-scan PQ"])
def test_incremental_add_delete_and_reextract(workspace, tiny_tower, tiny_clip_path, random_head_path, codes,
                                              monkeypatch):
    from r2cli.app.search import search
    from r2cli.features import coarse_index
    from r2cli.features.store import FeatureSettings, FeatureStore

    if codes != "SQ8":  # the 100,000-hour codes' family (4-bit fast-scan PQ), sized for 32-dim embeddings
        monkeypatch.setattr(coarse_index, "FAST_SCAN_ABOVE_CLIPS", MIN_CLIPS)
        monkeypatch.setattr(coarse_index, "FAST_SCAN_CODES", "PQ16x4fs")
    build_archive(workspace, tiny_tower, _videos(tiny_tower, 20, match="match.mp4"))
    first = _update(workspace)
    assert first.factory.endswith("SQ8" if codes == "SQ8" else "PQ16x4fs")
    options = _options(random_head_path, tiny_clip_path, candidates=2)

    # a new video is added without retraining, and found through the index
    build_archive(workspace, tiny_tower, _videos(tiny_tower, 1, start=50, match="late.mp4", weight=0.95))
    added = _update(workspace)
    assert (added.action, added.added_videos, added.removed_videos, added.retrained) == ("updated", 2, 0, False)
    assert added.generation != first.generation and added.vectors == 23 * CLIPS
    result = search(workspace, [QUERY], options=options)
    assert _manifest(result)["settings"]["coarse"]["path"] == "index"
    assert "late.mp4" in _names(result.moments)

    # a deleted video never comes back: not before the index is updated, not after
    _set_status(workspace, "late.mp4", "missing")
    stale = search(workspace, [QUERY], options=options)
    assert "late.mp4" not in _names(stale.moments) and "match.mp4" in _names(stale.moments)
    removed = _update(workspace)
    assert (removed.removed_videos, removed.added_videos, removed.vectors) == (1, 0, 22 * CLIPS)
    assert "late.mp4" not in _names(search(workspace, [QUERY], options=options).moments)

    # a re-extracted video's old vectors are never used: it is scored exactly until the next update
    settings = FeatureSettings.for_tower(tiny_tower, fps=0.5, k=4)
    fingerprint = _fingerprint(workspace, "match.mp4")
    FeatureStore(workspace.features_dir).put(
        fingerprint, settings, random_features(CLIPS, seed=7), random_embed(CLIPS, seed=7),
        (np.arange(CLIPS) + 0.5) * 2.0, duration=CLIPS * 2.0)
    changed = search(workspace, [QUERY], options=options)
    assert _manifest(changed)["settings"]["coarse"]["unindexed_videos"] == 1
    exact = search(workspace, [QUERY], options=options.replace(exact=True))
    assert _names(changed.moments) == _names(exact.moments)
    again = _update(workspace)
    assert (again.added_videos, again.removed_videos) == (1, 1)
    assert _manifest(search(workspace, [QUERY], options=options))["settings"]["coarse"]["unindexed_videos"] == 0


def test_growth_retrains_and_says_so(workspace, tiny_tower):
    build_archive(workspace, tiny_tower, _videos(tiny_tower, 3))
    assert _update(workspace).action == "built"
    build_archive(workspace, tiny_tower, _videos(tiny_tower, 12, start=10))
    report = _update(workspace)
    assert report.retrained and report.action == "built" and "retrained" in report.reason


def test_small_archive_keeps_no_index_and_searches_exactly(workspace, tiny_tower, tiny_clip_path, random_head_path):
    from r2cli.app.search import search
    from r2cli.features.coarse_index import update_workspace_indexes

    build_archive(workspace, tiny_tower, _videos(tiny_tower, 3))
    (report,) = update_workspace_indexes(workspace)  # the default min_clips
    assert report.action == "skipped" and "exact" in report.reason
    result = search(workspace, [QUERY], options=_options(random_head_path, tiny_clip_path))
    assert _manifest(result)["settings"]["coarse"]["path"] == "exact"


_KILL_SCRIPT = """
import sys, time
from r2cli.features import coarse_index
from r2cli.paths import resolve_workspace
point = sys.argv[2]
original_fsync, original_write = coarse_index.fsync_dir, coarse_index.write_json_atomic
def fsync(path):
    original_fsync(path)
    if point == "partial" and path.name.endswith(".partial"):
        print("ready", flush=True); time.sleep(60)
def write(path, data, **options):
    if point == "pointer" and path.name == coarse_index.CURRENT_FILE:
        print("ready", flush=True); time.sleep(60)
    original_write(path, data, **options)
coarse_index.fsync_dir, coarse_index.write_json_atomic = fsync, write
coarse_index.update_workspace_indexes(resolve_workspace(sys.argv[1]), min_clips=100, rebuild=True)
"""


@pytest.mark.parametrize("point", ["partial", "pointer"])
def test_kill_9_during_an_update_leaves_the_previous_index(workspace, tiny_tower, tiny_clip_path, random_head_path,
                                                            point):
    from r2cli.app.search import search
    from r2cli.features.coarse_index import index_root, load_index, verify_index

    build_archive(workspace, tiny_tower, _videos(tiny_tower, 20, match="match.mp4"))
    before = _update(workspace)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(workspace.root), point], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    index = load_index(workspace.features_dir, before.settings_key)
    assert index.generation == before.generation and index.vectors == before.vectors
    result = search(workspace, [QUERY], options=_options(random_head_path, tiny_clip_path, candidates=2))
    assert _manifest(result)["settings"]["coarse"]["generation"] == before.generation
    assert "match.mp4" in _names(result.moments)
    after = _update(workspace, rebuild=True)  # the next update cleans up what the killed one left
    root = index_root(workspace.features_dir, before.settings_key)
    assert not list(root.glob(".*partial")) and after.generation != before.generation
    assert verify_index(workspace.features_dir, before.settings_key, []) != []  # nothing live: flagged


def test_verify_finds_a_damaged_index_and_rebuilds_it(workspace, tiny_tower):
    from r2cli.features.coarse_index import INDEX_FILE, index_root, live_sets, verify_index
    from r2cli.catalog import Catalog

    build_archive(workspace, tiny_tower, _videos(tiny_tower, 20))
    built = _update(workspace)
    path = index_root(workspace.features_dir, built.settings_key) / built.generation / INDEX_FILE
    path.write_bytes(path.read_bytes()[:100])
    with Catalog.open(workspace) as catalog:
        live = live_sets(catalog)[built.settings_key]
    assert any("unreadable coarse index" in p for p in verify_index(workspace.features_dir, built.settings_key, live))
    repaired = _update(workspace, verify=True)
    assert repaired.action == "built" and repaired.problems and "--verify" in repaired.reason
    assert verify_index(workspace.features_dir, built.settings_key, live) == []


def test_cli_rebuilds_the_index(workspace, tiny_tower, tiny_clip_path, capsys, tmp_path):
    build_archive(workspace, tiny_tower, _videos(tiny_tower, 20))
    empty = tmp_path / "incoming"
    empty.mkdir()
    args = ["index", str(empty), "--workspace", str(workspace.root), "--clip-weights", str(tiny_clip_path),
            "--device", "cpu", "--coarse-index-min-clips", str(MIN_CLIPS)]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "coarse index" in out and "built" in out
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and "unchanged" in out
    code, out, err = run_cli(capsys, *args, "--rebuild-coarse-index")
    assert code == 0 and "rebuild asked for" in out
    code, out, err = run_cli(capsys, *args, "--rebuild-coarse-index", "--no-coarse-index")
    assert code != 0 and "--rebuild-coarse-index" in err


def _tiny_plan_and_stage(workspace, tiny_tower):
    from r2cli.catalog.features import ok_videos
    from r2cli.features.coarse_index import load_index
    from r2cli.features.store import FeatureSettings
    from r2cli.inference import search as stages
    from r2cli.inference.windows import PostProcess

    build_archive(workspace, tiny_tower, _videos(tiny_tower, 20))
    _update(workspace)
    settings = FeatureSettings.for_tower(tiny_tower, fps=0.5, k=4)
    found, _ = stages.open_features(workspace, sorted(ok_videos(workspace), key=lambda r: r.id), settings)
    plan = stages.plan_archive(found, fps=0.5, window_clips=20, stride_clips=10, post=PostProcess())
    stage = stages.choose_coarse_stage(plan, load_index(workspace.features_dir, settings.key()), candidates=2)
    assert stage.path == "index" and stage.clips == sum(v.features.num_clips for v in plan.videos)
    return plan, stage


def test_the_batch_cost_rule():
    """A batch shares one scan where that is cheaper than the index (measured costs, RESULTS-archive.md)."""
    from r2cli.inference.search import matmul_from_queries

    assert matmul_from_queries(600) == 2  # a tiny archive: any batch is cheaper on the scan
    at_100_hours, at_1000_hours = matmul_from_queries(180_000), matmul_from_queries(1_800_000)
    assert at_100_hours is not None and 3 <= at_100_hours <= 20
    assert at_1000_hours is not None and 60 <= at_1000_hours <= 150  # measured crossover ~92 queries
    assert matmul_from_queries(18_000_000) is None  # 10,000 video-hours: the index per query is cheaper


def test_large_query_batches_use_the_matrix_product(workspace, tiny_tower, monkeypatch):
    """From the cost rule's batch size on, the exact scan scores the batch instead of the index."""
    from r2cli.inference import search as stages

    plan, stage = _tiny_plan_and_stage(workspace, tiny_tower)
    scan_from = stages.matmul_from_queries(stage.clips)
    queries = np.asarray(plan.videos[0].features.embed[:scan_from], dtype=np.float32)
    calls = []
    original = stages.indexed_window_scores
    monkeypatch.setattr(stages, "indexed_window_scores", lambda *a, **k: calls.append(1) or original(*a, **k))
    stages.select_candidates(plan, queries[:1], 2, coarse=stage)
    stages.select_candidates(plan, queries, 2, coarse=stage)
    assert len(calls) == 1
    assert stage.record()["matmul_from_queries"] == scan_from


def test_the_index_serves_a_large_batch_a_few_queries_at_a_time(workspace, tiny_tower, monkeypatch):
    """Where the index wins for every batch, it answers INDEX_QUERIES_PER_PASS queries per pass, and
    each query gets the windows it would get alone (with one query per pass)."""
    from r2cli.inference import search as stages

    plan, stage = _tiny_plan_and_stage(workspace, tiny_tower)
    monkeypatch.setattr(stages, "matmul_from_queries", lambda clips: None)
    monkeypatch.setattr(stages, "INDEX_QUERIES_PER_PASS", 1)
    queries = np.asarray(plan.videos[3].features.embed[:5], dtype=np.float32)
    alone = [(w, q) for q in range(5) for w, _ in stages.select_candidates(plan, queries[q : q + 1], 2, coarse=stage)]
    calls = []
    original = stages.indexed_window_scores
    monkeypatch.setattr(stages, "indexed_window_scores", lambda *a, **k: calls.append(1) or original(*a, **k))
    together = stages.select_candidates(plan, queries, 2, coarse=stage)
    assert len(calls) == 5
    assert together == sorted(alone, key=lambda pair: (pair[1], pair[0]))
    assert stage.record()["matmul_from_queries"] is None


def test_the_index_path_reads_only_the_windows_it_rescores(workspace, tiny_tower, tiny_clip_path, random_head_path):
    """No O(archive) NaN pass before the coarse stage (#19): a damaged window is found where it is read.

    Every video is damaged; the exact scan reads every embedding, so it finds all of them; the index
    path re-scores only the windows near its hits (at most RESCORED_PER_CANDIDATE per candidate),
    so it finds the damaged planted moment and not the rest.
    """
    from r2cli.app.search import search
    from r2cli.inference.search import RESCORED_PER_CANDIDATE

    from fixtures import flip_to_nan

    build_archive(workspace, tiny_tower, _videos(tiny_tower, 30, match="match.mp4"))
    _update(workspace)
    flip_to_nan(workspace, "match.mp4", "embed", range(21, 23))  # inside the planted moment (clips 20-25)
    for i in range(30):
        flip_to_nan(workspace, f"v{i:03d}.mp4", "embed", range(3, 4))
    options = _options(random_head_path, tiny_clip_path, candidates=3)
    approximate = search(workspace, [QUERY], options=options)
    exact = search(workspace, [QUERY], options=options.replace(exact=True))

    def damaged(result):
        return {w.split(" ", 1)[0] for w in result.warnings if "non-finite CLIP embeddings" in w}

    assert _manifest(approximate)["settings"]["coarse"]["path"] == "index"
    assert len(damaged(exact)) == 31 and exact.counts["windows_skipped"] == 31  # one window per video
    assert "match.mp4" in damaged(approximate)
    assert len(damaged(approximate)) == approximate.counts["windows_skipped"] <= RESCORED_PER_CANDIDATE * 3


def test_planning_reads_no_embeddings():
    """``plan_archive`` costs per video, not per clip: it never touches the embeddings (#19)."""
    from types import SimpleNamespace

    from r2cli.inference.search import plan_archive
    from r2cli.inference.windows import PostProcess

    class Unreadable:
        num_clips = 125

        @property
        def embed(self):
            raise AssertionError("plan_archive read the embeddings")

    found = [(SimpleNamespace(id=i, duration=250.0), Unreadable()) for i in range(3)]
    plan = plan_archive(found, fps=0.5, window_clips=75, stride_clips=37, post=PostProcess())
    assert len(plan.windows) == 9 and plan.bad_windows == {}


@pytest.mark.parametrize("exact", [True, False])
def test_a_search_over_more_videos_than_open_maps_finds_the_same(workspace, tiny_tower, tiny_clip_path,
                                                                 random_head_path, monkeypatch, exact):
    """At most MAX_OPEN_MAPS feature files stay mapped, whatever the archive (100,000 videos would pass the
    usual limits on descriptors and maps): a search that must keep letting maps go finds the same moments."""
    from r2cli.app.search import search
    from r2cli.features import store as store_module

    build_archive(workspace, tiny_tower, _videos(tiny_tower, 16, match="match.mp4"))
    _update(workspace)
    options = _options(random_head_path, tiny_clip_path, candidates=3, exact=exact)
    roomy = search(workspace, [QUERY], options=options)
    maps = store_module._OpenMaps(capacity=2)
    monkeypatch.setattr(store_module, "_OPEN_MAPS", maps)
    tight = search(workspace, [QUERY], options=options)
    assert 0 < len(maps) <= 2
    assert _manifest(tight)["settings"]["coarse"]["path"] == ("exact" if exact else "index")
    columns = ["path", "start_s", "end_s", "score"]
    assert tight.moments[columns].equals(roomy.moments[columns]) and "match.mp4" in _names(tight.moments)


def test_index_hits_pick_windows_in_exact_score_order():
    """The index's own order of its hits is approximate; windows are picked best exact hit first (#19)."""
    from types import SimpleNamespace

    from r2cli.inference.search import _exact_hits

    embeds = [random_embed(CLIPS, seed=s) for s in range(3)]
    plan = SimpleNamespace(videos=[SimpleNamespace(features=SimpleNamespace(embed=e)) for e in embeds])
    query = embeds[1][7].astype(np.float32)
    stage = SimpleNamespace(plan_positions={10: [0], 11: [1], 12: [2]})  # index position 13: not selected
    positions = np.array([10, 13, 12, 11, 10, -1, 11])
    clips = np.array([3, 7, 5, 2, 9, 0, 7])
    order = _exact_hits(plan, stage, query, positions, clips, max_videos=3)
    expected = sorted([(0, 3), (2, 5), (1, 2), (0, 9), (1, 7)],
                      key=lambda h: -float(embeds[h[0]][h[1]].astype(np.float32) @ query))
    assert order == expected and order[0] == (1, 7)  # the exact best clip first, whatever the index said
    # only the first videos the hits reach are read: reading costs per video, and windows are few
    first_two = _exact_hits(plan, stage, query, positions, clips, max_videos=2)
    assert sorted(first_two) == sorted([(0, 3), (2, 5), (0, 9)])


def test_an_index_no_longer_needed_goes_but_nothing_else_in_its_folder(workspace, tiny_tower):
    """Below min_clips the index r2cli kept is removed: its pointer and generations, never a file it did not
    write; a folder holding only r2cli's files goes with them."""
    from r2cli.features.coarse_index import update_workspace_indexes

    build_archive(workspace, tiny_tower, _videos(tiny_tower, 3))
    built = _update(workspace)
    root = Path(built.path)
    assert built.action == "built" and (root / "CURRENT.json").is_file()
    keep = root / "notes-of-mine.txt"
    keep.write_text("not r2cli's\n")
    (removed,) = update_workspace_indexes(workspace, min_clips=10_000)
    assert removed.action == "removed"
    assert keep.read_text() == "not r2cli's\n" and sorted(p.name for p in root.iterdir()) == ["notes-of-mine.txt"]
    keep.unlink()
    _update(workspace)  # built again, then removed with nothing else there: the folder goes too
    assert update_workspace_indexes(workspace, min_clips=10_000)[0].action == "removed" and not root.exists()
