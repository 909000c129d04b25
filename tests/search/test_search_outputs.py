"""Search outputs: Parquet files read back with plain pandas, the run folder, the catalog run record."""

from __future__ import annotations

import json

import pytest

from fixtures import ArchiveVideo, build_archive, marker_features, run_cli


@pytest.fixture
def archive(workspace, tiny_tower):
    build_archive(workspace, tiny_tower, [
        ArchiveVideo("a.mp4", marker_features(75, [(10, 14, 0.95)], seed=1), duration=149.3),
        ArchiveVideo("b.mp4", marker_features(30, [(5, 7, 0.8)], seed=2)),
    ])
    return workspace


def _search(workspace, head, clip, queries=("a red scene", "blue"), **extra):
    from r2cli.app.search import SearchOptions, search

    return search(workspace, list(queries), options=SearchOptions(checkpoint=str(head), clip_weights=str(clip),
                                                                  device="cpu", **extra))


def test_parquet_files_round_trip_with_plain_pandas(archive, tiny_clip_path, marker_head_path):
    import pandas as pd
    import pyarrow.parquet as pq

    from r2cli.outputs import columns
    from r2cli.outputs.schemas import kind_version

    result = _search(archive, marker_head_path, tiny_clip_path, top_k=5)
    moments = pd.read_parquet(result.files["moments"])
    assert list(moments.columns) == [c.name for c in columns("moments")]
    assert len(moments) == 10
    pd.testing.assert_frame_equal(moments, result.moments, check_dtype=False)
    assert moments["rank_in_query"].dtype == "int32" and moments["start_s"].dtype == "float64"
    assert (moments["end_s"] > moments["start_s"]).all()
    assert (moments["end_s"] <= 149.3 + 1e-9).all()  # clamped to the catalog duration, not T / fps = 150
    assert set(moments["preset"]) == {"qvhighlights"}
    assert moments["model"].iloc[0].startswith("tiny_marker_head.pth sha256:")
    saliency = pd.read_parquet(result.files["saliency"])
    assert list(saliency.columns) == [c.name for c in columns("saliency")]
    assert len(saliency) == 2 * (75 + 30)  # every clip of every (query, video) pair
    assert saliency["score"].dtype == "float32"
    first = saliency[(saliency["query_id"] == "q1") & saliency["path"].str.endswith("a.mp4")].sort_values("clip_index")
    assert first["clip_start_s"].iloc[1] == 2.0 and first["clip_end_s"].iloc[-1] == pytest.approx(149.3)
    for name in ("moments", "saliency"):
        meta = pq.read_schema(result.files[name]).metadata
        assert meta[b"r2cli.schema_version"] == str(kind_version(name)).encode()
        assert meta[b"r2cli.kind"] == name.encode()
        assert meta[b"r2cli.run_id"] == result.run_id.encode()


def test_run_folder_and_catalog_record(archive, tiny_clip_path, marker_head_path):
    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import Run

    result = _search(archive, marker_head_path, tiny_clip_path)
    assert result.out_dir == archive.runs_dir / result.run_id
    manifest = json.loads((result.out_dir / "run.json").read_text())
    assert manifest["status"] == "done" and manifest["run_id"] == result.run_id
    with Catalog.open(archive) as catalog, catalog.session() as session:
        run = session.get(Run, result.run_id)
        assert run.kind == "search" and run.status == "done"
        assert run.finished_at is not None and run.finished_at >= run.created_at
        assert [q["query"] for q in run.queries] == ["a red scene", "blue"]
        assert run.settings["window_s"] == 150.0 and run.settings["preset"] == "qvhighlights"
        assert run.model["clip_weights"].startswith("sha256:") and run.model["dims"] == 16
        assert run.counts["pairs"] == 4 and run.counts["moments"] == len(result.moments)
        assert run.timings["fine_s"] >= 0 and run.timings["total_s"] >= run.timings["fine_s"]
        assert run.out_dir == str(result.out_dir)


def test_out_folder_resume_and_official_format(archive, tmp_path, tiny_clip_path, marker_head_path):
    from r2cli.eval.formats import read_moment_predictions

    out = tmp_path / "results"
    first = _search(archive, marker_head_path, tiny_clip_path, out=out, resume=True, format="official")
    assert first.out_dir == out and not first.resumed
    again = _search(archive, marker_head_path, tiny_clip_path, out=out, resume=True, format="official")
    assert again.resumed and again.run_id == first.run_id
    changed = _search(archive, marker_head_path, tiny_clip_path, out=out, resume=True, format="official", top_k=2)
    assert not changed.resumed and changed.run_id != first.run_id
    lines = read_moment_predictions(changed.files["official"])
    assert len(lines) == 4  # one per (query, video)
    line = next(x for x in lines if x["vid"] == "b")
    assert len(line["pred_saliency_scores"]) == 30
    assert all(row[0] < row[1] for row in line["pred_relevant_windows"])


def test_cli_table_and_json(capsys, archive, tiny_clip_path, marker_head_path):
    base = ["search", "a red scene", "-w", str(archive.root), "--checkpoint", str(marker_head_path),
            "--clip-weights", str(tiny_clip_path), "--device", "cpu", "--top-k", "3"]
    code, out, err = run_cli(capsys, *base)
    assert code == 0, err
    assert "a red scene" in out and "a.mp4" in out
    assert "outputs:" in out
    code, out, err = run_cli(capsys, *base, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [m["rank"] for m in data["moments"]] == [1, 2, 3]
    assert data["moments"][0]["path"].endswith("a.mp4")
    assert data["counts"]["queries"] == 1 and set(data["files"]) >= {"moments", "saliency", "manifest"}
