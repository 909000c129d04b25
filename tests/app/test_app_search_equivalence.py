"""`r2cli search` on the command line equals the same settings as a job's [search] table
(APP_CONTRACT item 4), including a checkpoint whose preset is not QVHighlights: both take fps,
windows and NMS from the checkpoint's own preset (the bug of issue #10: a job with such a
checkpoint searched with QVHighlights' settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fixtures import ArchiveVideo, build_archive, random_features, run_cli

QUERIES = ["a red scene", "someone opens a door"]


@pytest.fixture
def archive(tmp_path, tiny_clip_path):
    from r2cli.features.clip import load_clip
    from r2cli.paths import resolve_workspace

    workspace = resolve_workspace(tmp_path / "ws")
    tower = load_clip(str(tiny_clip_path), device="cpu")
    build_archive(workspace, tower, [ArchiveVideo("short.mp4", random_features(40, 0)),
                                     ArchiveVideo("long.mp4", random_features(125, 1))])
    return workspace


@pytest.fixture(params=["qvhighlights", "tacos"])
def head(request, tiny_model_path):
    """The registry's random head: official layout (QVHighlights), or r2cli layout with the TACoS preset."""
    return request.param, tiny_model_path("head-random" if request.param == "qvhighlights" else "head-tacos")


def _frame(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).drop(columns=["run_id"])


def test_command_line_equals_job(capsys, archive, head, tiny_clip_path, tmp_path):
    from r2cli.app.jobs import run_job

    preset, head_path = head
    code, out, err = run_cli(capsys, "search", *QUERIES, "-w", str(archive.root), "--checkpoint", str(head_path),
                             "--clip-weights", str(tiny_clip_path), "--device", "cpu", "--top-k", "20",
                             "--out", str(tmp_path / "cli"))
    assert code == 0, err
    job = tmp_path / "jobs" / "search.toml"
    job.parent.mkdir()
    job.write_text(f"""
[job]
workspace = "../ws"
out = "../job"

[search]
queries = {json.dumps(QUERIES)}
checkpoint = "{head_path}"
clip_weights = "{tiny_clip_path}"
device = "cpu"
top_k = 20
""", encoding="utf-8")
    result = run_job(job)
    assert [s.status for s in result.steps] == ["done"]

    cli_dir, job_dir = tmp_path / "cli", tmp_path / "job" / "search"
    pd.testing.assert_frame_equal(_frame(cli_dir / "moments.parquet"), _frame(job_dir / "moments.parquet"))
    pd.testing.assert_frame_equal(_frame(cli_dir / "saliency.parquet"), _frame(job_dir / "saliency.parquet"))
    cli_run = json.loads((cli_dir / "run.json").read_text())
    job_run = json.loads((job_dir / "run.json").read_text())
    assert cli_run["settings"] == job_run["settings"] and cli_run["settings_key"] == job_run["settings_key"]
    settings = job_run["settings"]
    assert settings["preset"] == preset and settings["window_source"] == f"preset {preset}"
    if preset == "tacos":  # the checkpoint's preset, not QVHighlights'
        assert settings["window_s"] == 1404.0 and settings["unit"] is None and settings["nms"]["type"] == "linear"
        assert job_run["counts"]["windows"] == 2  # both videos whole
    else:
        assert settings["window_s"] == 150.0 and settings["unit"] == 2.0 and settings["nms"]["type"] == "normal"
        assert job_run["counts"]["windows"] == 4  # the 250-s video in three windows
