"""`summarize --ray` runs R2-Tuning's saliency on Ray actors through the shared run lifecycle
(``r2cli.app.model_run.grounder``) and gives the single-process summary exactly."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def archive(tmp_path_factory, tiny_clip_path):
    from r2cli.features.clip import load_clip
    from r2cli.paths import resolve_workspace
    from tests.fixtures import ArchiveVideo, build_archive, marker_features, random_features

    tower = load_clip(str(tiny_clip_path), device="cpu")
    workspace = resolve_workspace(tmp_path_factory.mktemp("ray-summarize") / "ws")
    build_archive(workspace, tower, [
        ArchiveVideo("a.mp4", marker_features(75, [(10, 14, 0.95)], seed=1)),
        ArchiveVideo("long_walk.mp4", random_features(260, seed=3)),  # several windows
        ArchiveVideo("c.mp4", marker_features(50, [(20, 30, 0.9)], seed=4)),
    ])
    return workspace


def _summarize(workspace, head, clip, out, **extra):
    from r2cli.app.summarize import SummarizeOptions, run_summarize

    options = SummarizeOptions.from_flags(ratio=0.3, checkpoint=str(head), clip_weights=str(clip), device="cpu",
                                          out=out, **extra)
    return run_summarize(workspace, options)


def test_summarize_on_a_two_node_cluster_equals_the_local_run(ray_cluster, archive, tiny_model_path, tiny_clip_path,
                                                              tmp_path):
    import pandas as pd

    head = tiny_model_path("head-random")
    local = _summarize(archive, head, tiny_clip_path, tmp_path / "local")
    on_ray = _summarize(archive, head, tiny_clip_path, tmp_path / "ray", ray=ray_cluster.address)
    assert on_ray.counts == local.counts and local.counts["windows"] > 3
    a = pd.read_parquet(local.files["summary"]).drop(columns=["run_id"])
    b = pd.read_parquet(on_ray.files["summary"]).drop(columns=["run_id"])
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a["selected"].any()
    left, right = (json.loads((run.out_dir / "run.json").read_text()) for run in (local, on_ray))
    assert left["settings"] == right["settings"] and left["videos"] == right["videos"]
    assert (tmp_path / "ray" / "ray.log").is_file()  # Ray's own output went to the run folder
