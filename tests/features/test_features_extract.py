"""Catalog-driven extraction: records, failures, re-runs, stale-feature impossibility, kill and resume."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures import make_video

from r2cli.catalog.scan import scan_archive
from r2cli.errors import UsageError
from r2cli.features.extract import extract_features, extract_video
from r2cli.features.store import FeatureSettings, FeatureStore, open_features
from r2cli.media.frames import expected_clip_count
from r2cli.paths import resolve_workspace


def rows(workspace):
    from sqlalchemy import select

    from r2cli.catalog.db import Catalog
    from r2cli.catalog.schema import FeatureSet, Video

    with Catalog.open(workspace) as catalog, catalog.session() as session:
        videos = {Path(v.path).name: v.to_record() for v in session.scalars(select(Video))}
        sets = [
            (f.fingerprint, f.settings_key, f.relpath, f.num_clips, f.shape, f.bytes)
            for f in session.scalars(select(FeatureSet))
        ]
    return videos, sets


def build_archive(folder: Path) -> Path:
    make_video(folder / "a.mp4", seconds=7, width=160, height=120)
    make_video(folder / "b.mp4", seconds=5, width=96, height=128, colors=("green", "yellow"))
    make_video(folder / "short.mp4", seconds=0.6)
    (folder / "broken.mp4").write_bytes(b"this is not a video")
    return folder


@pytest.fixture()
def indexed(ffmpeg, tmp_path, tiny_tower_small_batch):
    archive = build_archive(tmp_path / "archive")
    workspace = resolve_workspace(tmp_path / "ws")
    scan_archive([archive], workspace)
    report = extract_features(workspace, tower=tiny_tower_small_batch)
    return archive, workspace, report


def test_index_writes_features_and_records_them(indexed, tiny_tower_small_batch):
    archive, workspace, report = indexed
    assert (report.videos_total, report.videos_extracted, report.videos_failed, report.videos_skipped) == (3, 2, 1, 0)
    assert report.clips == 4 + 3 and report.video_seconds == pytest.approx(12.0, abs=0.1)
    videos, sets = rows(workspace)
    assert videos["a.mp4"].features_status == "ok" and videos["b.mp4"].features_status == "ok"
    assert videos["broken.mp4"].status == "error" and videos["broken.mp4"].features_status == "none"
    short = videos["short.mp4"]
    assert short.features_status == "error"
    assert "too short for one clip at 0.5 fps" in short.features_error
    assert [f.path for f in report.failures] == [str(archive / "short.mp4")]
    settings = FeatureSettings.for_tower(tiny_tower_small_batch)
    store = FeatureStore(workspace.features_dir)
    assert {s[1] for s in sets} == {settings.key()} and len(sets) == 2
    assert report.bytes_written == sum(s[5] for s in sets)
    for name in ("a.mp4", "b.mp4"):
        video = videos[name]
        features = store.get(video.fingerprint, settings)
        assert features.num_clips == expected_clip_count(video.duration, 0.5)
        assert features.layers.shape == (features.num_clips, 4, tiny_tower_small_batch.num_tokens, tiny_tower_small_batch.video_width)
        assert features.embed.shape == (features.num_clips, tiny_tower_small_batch.embed_dim)
        np.testing.assert_allclose(np.linalg.norm(features.embed.astype(np.float32), axis=1), 1.0, atol=2e-3)
        assert np.all(np.diff(features.timestamps) > 0)


def test_rerun_skips_finished_videos(indexed, tiny_tower_small_batch):
    _, workspace, _ = indexed
    again = extract_features(workspace, tower=tiny_tower_small_batch)
    assert (again.videos_extracted, again.videos_skipped, again.videos_failed) == (0, 2, 1)
    assert again.bytes_written == 0


def test_alone_and_batched_features_are_identical(indexed, tiny_tower_small_batch):
    archive, workspace, report = indexed
    assert report.batch_size == 4  # 4 + 3 clips: one batch held frames of both videos
    videos, _ = rows(workspace)
    settings = FeatureSettings.for_tower(tiny_tower_small_batch)
    for name in ("a.mp4", "b.mp4"):
        alone = extract_video(archive / name, settings, tiny_tower_small_batch, batch_size=4)
        stored = FeatureStore(workspace.features_dir).get(videos[name].fingerprint, settings)
        np.testing.assert_array_equal(alone.layers, stored.layers)
        np.testing.assert_array_equal(alone.embed, stored.embed)
        np.testing.assert_array_equal(alone.timestamps, stored.timestamps)


def test_a_modified_file_gets_new_features_never_stale_ones(indexed, tiny_tower_small_batch):
    archive, workspace, _ = indexed
    before, _ = rows(workspace)
    settings = FeatureSettings.for_tower(tiny_tower_small_batch)
    store = FeatureStore(workspace.features_dir)
    old = np.array(store.get(before["a.mp4"].fingerprint, settings).layers)
    make_video(archive / "a.mp4", seconds=7, width=160, height=120, colors=("white", "purple"))
    scan_archive([archive], workspace)
    after, _ = rows(workspace)
    new_fingerprint = after["a.mp4"].fingerprint
    assert new_fingerprint != before["a.mp4"].fingerprint
    assert after["a.mp4"].features_status == "none"
    assert store.get(new_fingerprint, settings) is None  # nothing to serve until it is extracted
    report = extract_features(workspace, tower=tiny_tower_small_batch)
    assert report.videos_extracted == 1
    new = store.get(new_fingerprint, settings)
    assert new is not None and not np.array_equal(np.array(new.layers), old)


def test_a_file_changed_after_the_scan_is_not_extracted(ffmpeg, tmp_path, tiny_tower_small_batch):
    archive = tmp_path / "archive"
    make_video(archive / "a.mp4", seconds=4)
    workspace = resolve_workspace(tmp_path / "ws")
    scan_archive([archive], workspace)
    os.utime(archive / "a.mp4", (time.time() + 100, time.time() + 100))
    report = extract_features(workspace, tower=tiny_tower_small_batch)
    assert report.videos_failed == 1 and report.videos_extracted == 0
    videos, sets = rows(workspace)
    assert "changed since it was scanned" in videos["a.mp4"].features_error and sets == []


def test_a_changed_setting_is_a_different_feature_set(indexed, tiny_tower_small_batch):
    _, workspace, _ = indexed
    report = extract_features(workspace, tower=tiny_tower_small_batch, fps=1.0)
    # 0.6 s is more than half a 1 s clip: the short video has one clip at 1 fps.
    assert report.videos_extracted == 3 and report.clips == 7 + 5 + 1
    _, sets = rows(workspace)
    assert len({s[1] for s in sets}) == 2 and len(sets) == 5


def test_a_moved_file_keeps_its_features(indexed, tiny_tower_small_batch):
    archive, workspace, _ = indexed
    (archive / "moved").mkdir()
    shutil.move(archive / "a.mp4", archive / "moved" / "renamed.mp4")
    scan_archive([archive], workspace)
    report = extract_features(workspace, tower=tiny_tower_small_batch)
    assert report.videos_extracted == 0 and report.videos_skipped == 2
    videos, _ = rows(workspace)
    assert videos["renamed.mp4"].features_status == "ok"


def test_decoder_failure_is_recorded_and_the_run_goes_on(ffmpeg, tmp_path, tiny_tower_small_batch, monkeypatch):
    archive = tmp_path / "archive"
    make_video(archive / "a.mp4", seconds=4)
    workspace = resolve_workspace(tmp_path / "ws")
    scan_archive([archive], workspace)
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho 'a.mp4: Invalid data found when processing input' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("R2CLI_FFMPEG", str(fake))
    report = extract_features(workspace, tower=tiny_tower_small_batch)
    assert report.videos_failed == 1
    videos, sets = rows(workspace)
    assert videos["a.mp4"].features_status == "error" and sets == []
    assert "Invalid data found when processing input" in videos["a.mp4"].features_error
    monkeypatch.delenv("R2CLI_FFMPEG")
    assert extract_features(workspace, tower=tiny_tower_small_batch).videos_extracted == 1  # retried and fixed


def test_bad_arguments_are_refused(tmp_path, tiny_tower_small_batch):
    workspace = resolve_workspace(tmp_path / "ws")
    with pytest.raises(UsageError, match="--fps must be a number"):
        extract_features(workspace, tower=tiny_tower_small_batch, fps=0)
    with pytest.raises(UsageError, match="--batch-size must be a positive integer"):
        extract_features(workspace, tower=tiny_tower_small_batch, batch_size=0)
    other = FeatureSettings(clip_model="ViT-B-32", weights_id="ViT-B-32/openai")
    with pytest.raises(UsageError, match="do not match the CLIP tower"):
        extract_video(tmp_path / "x.mp4", other, tiny_tower_small_batch)


_KILL_SCRIPT = """
import sys, time
from r2cli.features.clip import load_clip
from r2cli.features.extract import extract_features
from r2cli.paths import resolve_workspace

tower = load_clip(sys.argv[2], device="cpu", batch_size=1)
forward = tower.video_features

def slow_forward(*args, **kwargs):  # slow the model down so the parent can kill us mid-video
    time.sleep(0.05)
    return forward(*args, **kwargs)

tower.video_features = slow_forward
extract_features(resolve_workspace(sys.argv[1]), tower=tower, batch_size=1)
"""


def test_killed_extraction_leaves_no_usable_half_file_and_resumes(ffmpeg, tmp_path, tiny_clip_path, tiny_tower_small_batch):
    archive = tmp_path / "archive"
    make_video(archive / "a_short.mp4", seconds=4, width=64, height=48)
    make_video(archive / "b_long.mp4", seconds=120, width=64, height=48, fps=5)
    workspace = resolve_workspace(tmp_path / "ws")
    scan_archive([archive], workspace)
    script = tmp_path / "extract.py"
    script.write_text(_KILL_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, str(script), str(workspace.root), str(tiny_clip_path)], env=env)
    features = workspace.features_dir
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if list(features.rglob("*.safetensors")) and list(features.rglob(".*.tmp")):
                break
            assert child.poll() is None, "extraction finished before it could be killed"
            time.sleep(0.01)
        else:
            pytest.fail("no temporary feature file appeared within 60 s")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert len(list(features.rglob(".*.tmp"))) == 1  # the half-written file is only a temporary
    finished = list(features.rglob("*.safetensors"))
    assert len(finished) == 1 and open_features(finished[0]).num_clips == 2  # the short video, complete
    videos, sets = rows(workspace)
    assert videos["a_short.mp4"].features_status == "ok" and videos["b_long.mp4"].features_status == "none"
    assert len(sets) == 1

    report = extract_features(workspace, tower=tiny_tower_small_batch)
    assert (report.videos_extracted, report.videos_skipped) == (1, 1)
    assert not list(features.rglob(".*.tmp"))  # the dead writer's temporary was cleaned up
    videos, sets = rows(workspace)
    assert videos["b_long.mp4"].features_status == "ok" and len(sets) == 2
    settings = FeatureSettings.for_tower(tiny_tower_small_batch)
    assert FeatureStore(features).get(videos["b_long.mp4"].fingerprint, settings).num_clips == 60
