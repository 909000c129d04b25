"""`r2cli summarize` on the command line equals the same settings as a job's [summarize] table
(APP_CONTRACT item 4), including a checkpoint whose preset is not QVHighlights."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fixtures import ArchiveVideo, build_archive, random_features, run_cli


@pytest.fixture
def archive(tmp_path, tiny_clip_path):
    from r2cli.features.clip import load_clip
    from r2cli.paths import resolve_workspace

    workspace = resolve_workspace(tmp_path / "ws")
    tower = load_clip(str(tiny_clip_path), device="cpu")
    build_archive(workspace, tower, [ArchiveVideo("short_clip.mp4", random_features(40, 0)),
                                     ArchiveVideo("long_walk.mp4", random_features(125, 1))])
    return workspace


@pytest.fixture(params=["qvhighlights", "tacos"])
def head(request, tiny_model_path):
    """The registry's random head: official layout (QVHighlights), or r2cli layout with the TACoS preset."""
    return request.param, tiny_model_path("head-random" if request.param == "qvhighlights" else "head-tacos")


def test_command_line_equals_job(capsys, archive, head, tiny_clip_path, tmp_path):
    from r2cli.app.jobs import run_job

    preset, head_path = head
    code, out, err = run_cli(capsys, "summarize", "--ratio", "0.3", "-w", str(archive.root), "--checkpoint",
                             str(head_path), "--clip-weights", str(tiny_clip_path), "--device", "cpu",
                             "--out", str(tmp_path / "cli"))
    assert code == 0, err
    job = tmp_path / "jobs" / "summarize.toml"
    job.parent.mkdir()
    job.write_text(f"""
[job]
workspace = "../ws"
out = "../job"

[summarize]
ratio = 0.3
checkpoint = "{head_path}"
clip_weights = "{tiny_clip_path}"
device = "cpu"
""", encoding="utf-8")
    result = run_job(job)
    assert [s.status for s in result.steps] == ["done"]

    cli_dir, job_dir = tmp_path / "cli", tmp_path / "job" / "summarize"
    left = pd.read_parquet(cli_dir / "summary.parquet").drop(columns=["run_id"])
    right = pd.read_parquet(job_dir / "summary.parquet").drop(columns=["run_id"])
    pd.testing.assert_frame_equal(left, right)
    assert left["selected"].any()
    cli_run = json.loads((cli_dir / "run.json").read_text())
    job_run = json.loads((job_dir / "run.json").read_text())
    assert cli_run["settings"] == job_run["settings"] and cli_run["videos"] == job_run["videos"]
    settings = job_run["settings"]
    assert settings["preset"] == preset and settings["window_source"] == f"preset {preset}"
    windows = {Path(v["path"]).name: v["windows"] for v in job_run["videos"]}
    assert windows == ({"short_clip.mp4": 1, "long_walk.mp4": 1} if preset == "tacos"
                       else {"short_clip.mp4": 1, "long_walk.mp4": 3})
