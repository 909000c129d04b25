"""`r2cli index` and a job's [index] step give the same catalog and byte-identical feature files
(APP_CONTRACT item 4); the index summary at 80 columns, exactly (item 5)."""

from __future__ import annotations

import textwrap

import pytest
from fixtures import make_video

from r2cli.catalog.queries import list_videos
from r2cli.catalog.scan import FileError, ScanReport
from r2cli.cli.main import main
from r2cli.features.extract import ExtractReport, VideoFailure
from r2cli.app.jobs import run_job
from r2cli.paths import resolve_workspace


def feature_files(workspace) -> dict[str, bytes]:
    root = workspace.features_dir
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.safetensors"))}


def catalog_state(workspace) -> list[tuple]:
    return [(v.path, v.fingerprint, v.status, v.features_status, v.features_error) for v in list_videos(workspace)]


def test_cli_and_job_step_write_the_same_features(ffmpeg, tmp_path, tiny_clip_path, capsys):
    archive = tmp_path / "archive"
    make_video(archive / "a.mp4", seconds=7, width=96, height=64)
    make_video(archive / "b.mp4", seconds=5, width=64, height=96, colors=("green", "yellow"))
    make_video(archive / "short.mp4", seconds=0.3, width=64, height=48)
    cli_ws = resolve_workspace(tmp_path / "cli-ws")
    with pytest.raises(SystemExit) as caught:
        main(["index", str(archive), "--workspace", str(cli_ws.root), "--clip-weights", str(tiny_clip_path),
              "--device", "cpu", "--batch-size", "3", "--fps", "1"])
    assert caught.value.code in (0, None), capsys.readouterr().err

    job = tmp_path / "jobs" / "index.toml"
    job.parent.mkdir()
    job.write_text(textwrap.dedent(f"""
        [job]
        name = "index-only"
        workspace = "../job-ws"

        [index]
        paths = ["../archive"]
        clip_weights = "{tiny_clip_path}"
        device = "cpu"
        batch_size = 3
        fps = 1.0
    """))
    result = run_job(job)
    assert [step.status for step in result.steps] == ["done"]
    job_ws = resolve_workspace(tmp_path / "job-ws")

    cli_files, job_files = feature_files(cli_ws), feature_files(job_ws)
    assert len(cli_files) == 2 and cli_files == job_files  # names (content + settings key) and bytes
    assert catalog_state(cli_ws) == catalog_state(job_ws)
    assert [s for *_, s, _ in catalog_state(cli_ws)] == ["ok", "ok", "error"]  # 0.3 s: no clip at 1 fps


def _scan_report() -> ScanReport:
    return ScanReport(
        roots=["/archive"], catalog="/ws/catalog.sqlite", new=2, updated=1, moved=0, unchanged=4, errors=1,
        missing=0, ignored=1, probed=3, elapsed=1.25,
        file_errors=[FileError(path="/archive/broken.mp4", error="ffprobe cannot read it: moov atom not found")],
        ignored_paths=[FileError(path="/archive/cuts", error="r2cli output folder (holds .r2cli-output); not indexed")],
    )


def _feature_report() -> ExtractReport:
    return ExtractReport(
        settings={}, settings_key="0123456789abcdef", device="cpu", batch_size=16, decode_threads=2,
        store="/ws/features", videos_total=6, videos_skipped=4, videos_extracted=1, videos_failed=1,
        failures=[VideoFailure(path="/archive/one_frame.mp4", error="too short for one clip at 0.5 fps")],
        clips=75, video_seconds=150.0, bytes_written=1_200_000, wall_seconds=12.0, pipeline_seconds=10.0,
    )


EXPECTED_80 = """\
        index        
┏━━━━━━━━━━━┳━━━━━━━┓
┃ result    ┃ paths ┃
┡━━━━━━━━━━━╇━━━━━━━┩
│ new       │     2 │
│ updated   │     1 │
│ moved     │     0 │
│ unchanged │     4 │
│ errors    │     1 │
│ missing   │     0 │
│ ignored   │     1 │
└───────────┴───────┘
8 paths in 1.2 s, 3 probed; catalog: /ws/catalog.sqlite
ignored /archive/cuts: r2cli output folder (holds .r2cli-output); not indexed
                  errors (recorded in the catalog)                   
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ path                ┃ error                                       ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ /archive/broken.mp4 │ ffprobe cannot read it: moov atom not found │
└─────────────────────┴─────────────────────────────────────────────┘
features: 1 extracted, 4 already done, 1 failed; 75 clips, 0.042 video-hours
  in 12.0 s: 15.0 video-hours per hour, 7.5 frames/s on cpu
  1.2 MB written to /ws/features
           feature errors (recorded in the catalog)           
┏━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ path                   ┃ error                             ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ /archive/one_frame.mp4 │ too short for one clip at 0.5 fps │
└────────────────────────┴───────────────────────────────────┘
"""


def test_index_summary_at_80_columns(monkeypatch, capsys):
    from r2cli.cli.commands.index import render_feature_report, render_scan_report

    monkeypatch.setenv("COLUMNS", "80")
    render_scan_report(_scan_report())
    render_feature_report(_feature_report())
    out = capsys.readouterr().out
    assert out == EXPECTED_80
