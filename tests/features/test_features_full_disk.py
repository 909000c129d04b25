"""A full disk under the workspace: the failing video is recorded, the rest goes on, nothing half-written stays (#14)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from fixtures import make_video

from r2cli.catalog.queries import list_videos
from r2cli.catalog.scan import scan_archive
from r2cli.features.extract import extract_features
from r2cli.paths import resolve_workspace


@pytest.fixture()
def small_disk(tmp_path):
    """A 2 MiB tmpfs (root only); skipped where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)  # lazy: a failed test may hold files open


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_full_disk_fails_one_video_and_leaves_no_partial_file(ffmpeg, tmp_path, small_disk, tiny_tower_small_batch):
    archive = tmp_path / "archive"
    make_video(archive / "a_small.mp4", seconds=8, width=64, height=48, fps=2)
    make_video(archive / "b_large.mp4", seconds=300, width=64, height=48, fps=1)  # 150 clips x 2.5 KB
    workspace = resolve_workspace(small_disk / "ws")
    scan_archive([archive], workspace)
    # a temporary file left by a writer that died earlier (this host, a pid that is gone)
    stale_dir = workspace.features_dir / "00"
    stale_dir.mkdir(parents=True)
    stale = stale_dir / f".00ab-0123.safetensors.{socket.gethostname()}.{_dead_pid()}.deadbeef.tmp"
    stale.write_bytes(b"\0" * 1000)
    free = os.statvfs(small_disk)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(0, free.f_bavail * free.f_frsize - 200 * 1024))  # leave ~200 KB

    report = extract_features(workspace, tower=tiny_tower_small_batch)  # no exception: recorded per video
    assert report.temporaries_removed == 1 and not stale.exists()
    assert (report.videos_extracted, report.videos_failed) == (1, 1)
    (failure,) = report.failures
    assert Path(failure.path).name == "b_large.mp4" and "No space left on device" in failure.error
    assert "\n" not in failure.error and "Traceback" not in failure.error
    files = sorted(p.name for p in workspace.features_dir.rglob("*") if p.is_file())
    assert len(files) == 1 and files[0].endswith(".safetensors")  # a_small's file; no .tmp, no partial file
    videos = {Path(v.path).name: v for v in list_videos(workspace)}
    assert videos["a_small.mp4"].features_status == "ok" and videos["b_large.mp4"].features_status == "error"

    filler.unlink()  # room again: the rerun extracts what failed
    again = extract_features(workspace, tower=tiny_tower_small_batch)
    assert (again.videos_extracted, again.videos_skipped, again.videos_failed) == (1, 1, 0)
