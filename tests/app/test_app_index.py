"""The index use case: IndexOptions owns defaults and rules; --strict, symlinks, r2cli's own outputs (#10, #14)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fixtures import make_video

from r2cli.app.index import IndexOptions, run_index
from r2cli.catalog.queries import list_videos
from r2cli.cli.main import main
from r2cli.errors import InputError, UsageError
from r2cli.features.store import FEATURE_FPS, FeatureSettings
from r2cli.paths import OUTPUT_MARKER, resolve_workspace


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out = capsys.readouterr()
    code = caught.value.code
    return (0 if code is None else int(code)), out.out, out.err


def test_the_fps_default_is_written_once():
    assert IndexOptions.default("fps") == FEATURE_FPS == FeatureSettings.__dataclass_fields__["fps"].default
    assert IndexOptions.help("fps").endswith("Default: 0.5.")


def test_rules_name_the_flag_and_the_job_key(tmp_path):
    with pytest.raises(UsageError, match=r"--geometry must be one of display, official, got 'coded'"):
        IndexOptions.from_flags(paths=[tmp_path], geometry="coded")
    with pytest.raises(UsageError, match=r"--batch-size must be >= 1, got 0"):
        IndexOptions.from_flags(paths=[tmp_path], batch_size=0)
    with pytest.raises(UsageError, match=r"--verify needs --features"):
        IndexOptions.from_flags(paths=[tmp_path], verify=True, features=False)
    with pytest.raises(InputError, match=r"job.toml: \[index\].fps must be in \(0, 1000\], got -1"):
        IndexOptions.from_table({"paths": ["a"], "fps": -1}, where="job.toml: [index]", base=tmp_path)
    with pytest.raises(InputError, match=r"job.toml: \[index\] has unknown key 'dry_run'"):
        IndexOptions.from_table({"paths": ["a"], "dry_run": True}, where="job.toml: [index]", base=tmp_path)
    options = IndexOptions.from_table({"paths": ["videos"]}, where="job.toml: [index]", base=tmp_path)
    assert options.paths == (tmp_path / "videos",) and options.fps == FEATURE_FPS and options.device == "auto"


def test_cli_help_shows_the_options_defaults(capsys):
    code, out, _ = run(capsys, "index", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "Default: 0.5." in text and "--geometry" in text and "--verify" in text


@pytest.fixture(scope="module")
def odd_archive(ffmpeg, tmp_path_factory):
    """A good video, a 1-frame clip (no clip at 0.5 fps), and a symlink to a video outside the folder."""
    base = tmp_path_factory.mktemp("odd")
    archive = base / "archive"
    make_video(archive / "good.mp4", seconds=6, width=64, height=48)
    make_video(archive / "one_frame.mp4", seconds=0.04, width=64, height=48)
    make_video(base / "elsewhere" / "target.mp4", seconds=4, width=64, height=48)
    os.symlink(base / "elsewhere" / "target.mp4", archive / "linked.mp4")
    return archive


def test_strict_fails_when_features_fail(odd_archive, tmp_path, tiny_clip_path, capsys):
    ws = str(tmp_path / "ws")
    args = ["index", str(odd_archive), "--workspace", ws, "--clip-weights", str(tiny_clip_path), "--device", "cpu"]
    code, out, err = run(capsys, *args)
    assert code == 0, err  # without --strict a failed video is recorded and the run succeeds
    code, out, err = run(capsys, *args, "--strict")
    assert code == 1
    assert "error: features of 1 of 3 videos failed (--strict); first: " in err and "one_frame.mp4" in err


def test_a_symlinked_video_outside_the_folder_gets_features(odd_archive, tmp_path, tiny_clip_path):
    workspace = resolve_workspace(tmp_path / "ws")
    options = IndexOptions.from_flags(paths=[odd_archive], clip_weights=str(tiny_clip_path), device="cpu")
    result = run_index(workspace, options)
    assert result.scan.new == 3 and result.features is not None
    report = result.features
    assert (report.videos_extracted, report.videos_skipped, report.videos_failed) == (2, 0, 1)
    videos = {Path(v.path).name: v for v in list_videos(workspace)}
    assert videos["target.mp4"].features_status == "ok"  # catalogued by its real path, outside the folder
    assert videos["one_frame.mp4"].features_status == "error"
    again = run_index(workspace, options).features
    assert (again.videos_extracted, again.videos_skipped, again.videos_failed) == (0, 2, 1)


def test_r2cli_output_folders_are_not_indexed(ffmpeg, tmp_path, capsys):
    archive = tmp_path / "archive"
    make_video(archive / "a.mp4", seconds=2, width=64, height=48)
    make_video(archive / "cuts" / "clip-001.mp4", seconds=2, width=64, height=48)
    (archive / "cuts" / OUTPUT_MARKER).write_text("")
    ws = str(tmp_path / "ws")
    code, out, err = run(capsys, "index", str(archive), "--workspace", ws, "--no-features", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["new"], report["ignored"]) == (1, 1)
    code, out, _ = run(capsys, "index", str(archive), "--workspace", ws, "--no-features")
    assert f"ignored {archive / 'cuts'}: r2cli output folder (holds .r2cli-output); not indexed" in " ".join(out.split())
    assert [Path(v.path).name for v in list_videos(resolve_workspace(ws))] == ["a.mp4"]


def test_job_step_with_strict_reports_an_error_step(ffmpeg, tmp_path):
    from r2cli.app.index import job_step
    from r2cli.app.steps import JobContext

    archive = tmp_path / "archive"
    make_video(archive / "a.mp4", seconds=2, width=64, height=48)
    (archive / "broken.mp4").write_bytes(b"not a video")
    context = JobContext(job_file=tmp_path / "job.toml", base=tmp_path, out_dir=tmp_path / "out", force=False)
    workspace = resolve_workspace(tmp_path / "ws")
    table = {"paths": ["archive"], "features": False}
    step = job_step(workspace, table, context)
    assert (step.status, step.counts["new"], step.counts["errors"]) == ("done", 1, 1)
    step = job_step(workspace, {**table, "strict": True}, context)
    assert step.status == "error" and "1 of 2 paths failed (--strict); first: " in step.detail
