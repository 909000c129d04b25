"""`search` with the fine stage on Ray actors gives the single-process moments and saliency."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tower(tiny_clip_path):
    from r2cli.features.clip import load_clip

    return load_clip(str(tiny_clip_path), device="cpu")


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    from tests.fixtures import build_marker_head, save_official

    return save_official(build_marker_head(), tmp_path_factory.mktemp("heads") / "marker_head.pth")


@pytest.fixture(scope="module")
def archive(tmp_path_factory, tower):
    from r2cli.paths import resolve_workspace
    from tests.fixtures import ArchiveVideo, build_archive, marker_features, random_features

    workspace = resolve_workspace(tmp_path_factory.mktemp("ray-search") / "ws")
    build_archive(workspace, tower, [
        ArchiveVideo("a.mp4", marker_features(75, [(10, 14, 0.95)], seed=1), duration=149.3),
        ArchiveVideo("b.mp4", marker_features(30, [(5, 7, 0.8)], seed=2)),
        ArchiveVideo("long.mp4", random_features(260, seed=3)),  # several windows
        ArchiveVideo("c.mp4", marker_features(50, [(20, 30, 0.9)], seed=4)),
    ])
    return workspace


def _search(workspace, head, clip, **extra):
    from r2cli.app.search import SearchOptions, run_search

    options = SearchOptions.from_flags(queries=("a red scene", "blue", "the third query"), checkpoint=str(head),
                                       clip_weights=str(clip), device="cpu", top_k=20, **extra)
    return run_search(workspace, options)


def test_search_on_a_two_node_cluster_equals_the_local_run(ray_cluster, archive, head, tiny_clip_path, tmp_path):
    import pandas as pd

    local = _search(archive, head, tiny_clip_path, out=tmp_path / "local")
    on_ray = _search(archive, head, tiny_clip_path, out=tmp_path / "ray", ray=ray_cluster.address)
    assert on_ray.counts["pairs"] == local.counts["pairs"] > 3
    for name in ("moments", "saliency"):
        a = pd.read_parquet(local.files[name]).drop(columns=["run_id"])
        b = pd.read_parquet(on_ray.files[name]).drop(columns=["run_id"])
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_windows_are_sharded_whole_and_balanced():
    from r2cli.distributed.search import shard_windows

    pairs = [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0), (2, 1), (3, 0)]
    shards = shard_windows(pairs, 2)
    assert sorted(w for shard in shards for w in shard) == [0, 1, 2, 3]
    loads = [sum(1 for w, _ in pairs if w in shard) for shard in shards]
    assert sorted(loads) == [3, 4]


def test_one_query_over_an_archive_spread_over_three_actors_equals_local(ray_cluster, tower, head, tiny_clip_path,
                                                                         tmp_path, monkeypatch):
    """Every window of a 40-video archive is a candidate of one query; the fine stage runs on three
    actors on the two 1-CPU nodes (a third of a CPU each: with one CPU each, the third actor never
    started and its shard waited forever), and the moments are the local ones exactly (#19.4)."""
    import pandas as pd

    import r2cli.distributed.search as ray_search
    from r2cli.paths import resolve_workspace
    from tests.fixtures import ArchiveVideo, build_archive, marker_features

    workspace = resolve_workspace(tmp_path / "ws")
    videos = [ArchiveVideo(f"v{i:02d}.mp4", marker_features(40 + 7 * i, [(3 + i % 11, 6 + i % 11, 0.6 + 0.01 * i)],
                                                            seed=100 + i)) for i in range(40)]
    build_archive(workspace, tower, videos)
    used = {}

    class ThreeActors(ray_search.RayGrounder):
        def __init__(self, grounder, *, actors=None):
            super().__init__(grounder, actors=3)

        def _pool(self):
            pool = super()._pool()
            used["actors"] = len(pool)
            return pool

    monkeypatch.setattr(ray_search, "RayGrounder", ThreeActors)
    from r2cli.app.search import SearchOptions, run_search

    def run(out, **extra):
        options = SearchOptions.from_flags(queries=("a red scene",), checkpoint=str(head), clip_weights=str(tiny_clip_path),
                                           device="cpu", top_k=1000, candidates=100_000, out=out, **extra)
        return run_search(workspace, options)

    local = run(tmp_path / "local")
    on_ray = run(tmp_path / "ray", ray=ray_cluster.address)
    assert used["actors"] == 3
    windows = on_ray.counts["pairs"]
    assert windows == local.counts["pairs"] >= 40
    for name in ("moments", "saliency"):
        a = pd.read_parquet(local.files[name]).drop(columns=["run_id"])
        b = pd.read_parquet(on_ray.files[name]).drop(columns=["run_id"])
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert len(pd.read_parquet(on_ray.files["moments"]).video_id.unique()) == 40
