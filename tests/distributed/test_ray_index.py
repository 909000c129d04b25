"""`index` on Ray gives the feature files of the single-process run, byte for byte."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _feature_files(workspace: Path) -> dict[str, bytes]:
    root = workspace / "features"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.safetensors"))}


def _index(workspace: Path, folder: Path, weights: Path, **extra):
    from r2cli.app.index import IndexOptions, run_index
    from r2cli.paths import resolve_workspace

    options = IndexOptions.from_flags(paths=[folder], clip_weights=str(weights), device="cpu", batch_size=4, **extra)
    return run_index(resolve_workspace(workspace), options)


@pytest.fixture(scope="module")
def archive(ffmpeg, tmp_path_factory):
    """The sample media plus a 70 s clip (several segments at 20 s per segment)."""
    import shutil
    import subprocess

    folder = tmp_path_factory.mktemp("ray-archive")
    for clip in sorted((REPO / "sample_media").glob("*.mp4")):
        shutil.copy(clip, folder / clip.name)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=128x96:rate=15:duration=70", "-c:v", "libx264", "-preset", "ultrafast",
                    "-g", "60", "-pix_fmt", "yuv420p", str(folder / "long.mp4")], check=True)
    return folder


@pytest.fixture(scope="module")
def local_features(archive, tiny_clip_path, tmp_path_factory):
    workspace = tmp_path_factory.mktemp("local-ws")
    result = _index(workspace, archive, tiny_clip_path)
    assert result.features.videos_extracted == 6 and result.features.videos_failed == 0
    return _feature_files(workspace)


def test_index_on_a_two_node_cluster_is_byte_identical(ray_cluster, archive, tiny_clip_path, local_features,
                                                       tmp_path, monkeypatch):
    monkeypatch.setattr("r2cli.distributed.index.SEGMENT_SECONDS", 20.0)
    result = _index(tmp_path / "ws", archive, tiny_clip_path, ray=ray_cluster.address)
    assert result.features.videos_extracted == 6 and result.features.videos_failed == 0
    assert _feature_files(tmp_path / "ws") == local_features
    assert not list((tmp_path / "ws" / "features" / ".staging").glob("*/part-*")), "staged parts left behind"
    again = _index(tmp_path / "ws", archive, tiny_clip_path, ray=ray_cluster.address)
    assert (again.features.videos_extracted, again.features.videos_skipped) == (0, 6)


def test_a_killed_worker_is_retried_and_the_features_are_unchanged(ray_cluster, archive, tiny_clip_path,
                                                                    local_features, tmp_path, monkeypatch):
    import psutil

    monkeypatch.setattr("r2cli.distributed.index.SEGMENT_SECONDS", 20.0)
    killed: list[int] = []
    done = threading.Event()

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 240
        while not done.is_set() and time.monotonic() < deadline and not killed:
            for proc in psutil.process_iter(["pid", "cmdline"]):
                title = " ".join(proc.info["cmdline"] or [])
                if title.startswith("ray::") and ("MapBatches" in title or "ClipEmbedder" in title):
                    try:
                        os.kill(proc.info["pid"], signal.SIGKILL)
                        killed.append(proc.info["pid"])
                    except ProcessLookupError:
                        continue
                    break
            time.sleep(0.2)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    try:
        result = _index(tmp_path / "ws", archive, tiny_clip_path, ray=ray_cluster.address)
    finally:
        done.set()
        killer.join(timeout=10)
    assert killed, "no Ray worker was found busy with the pipeline to kill"
    assert result.features.videos_failed == 0
    assert _feature_files(tmp_path / "ws") == local_features


def test_cli_index_ray_local_matches_the_single_process_run(archive, tiny_clip_path, local_features, tmp_path,
                                                             ray_cluster):
    """`r2cli index DIR --ray local` starts its own instance (the cluster of the other tests is left alone)."""
    import subprocess
    import sys

    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "r2cli.cli.main", "index", str(archive), "--ray", "local", "--workspace",
         str(tmp_path / "ws"), "--clip-weights", str(tiny_clip_path), "--device", "cpu", "--batch-size", "4"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "features: 6 extracted" in result.stdout
    assert _feature_files(tmp_path / "ws") == local_features


def test_unreachable_cluster_is_one_error_line(archive, tiny_clip_path, tmp_path):
    import subprocess
    import sys

    from tests.distributed.raykit import free_port

    result = subprocess.run(
        [sys.executable, "-m", "r2cli.cli.main", "index", str(archive), "--ray", f"127.0.0.2:{free_port()}",
         "--workspace", str(tmp_path / "ws"), "--clip-weights", str(tiny_clip_path), "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 7, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "cannot reach the Ray cluster at 127.0.0.2:" in lines[0]
    assert "Traceback" not in result.stderr


def test_two_actors_on_one_cpu_nodes_do_not_stall_and_int8_matches_local(ray_cluster, archive, tiny_clip_path,
                                                                          tmp_path, monkeypatch):
    """The loopback cluster has two 1-CPU nodes: two CLIP actors used to take half a CPU on each and
    leave no whole CPU to the decode tasks, and the run waited forever (#19.4)."""
    import r2cli.distributed.index as ray_index

    real = ray_index.extract_on_ray
    seen = {}

    def two_actors(*args, **kwargs):
        stats = real(*args, **{**kwargs, "actors": 2})
        seen["actors"] = stats.actors
        return stats

    monkeypatch.setattr(ray_index, "extract_on_ray", two_actors)
    monkeypatch.setattr(ray_index, "SEGMENT_SECONDS", 20.0)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault(
        "run", _index(tmp_path / "ray", archive, tiny_clip_path, ray=ray_cluster.address, feature_dtype="int8")),
        daemon=True)
    worker.start()
    worker.join(timeout=600)
    assert not worker.is_alive(), "index with actors=2 on 1-CPU nodes stalled"
    assert seen["actors"] == 2
    assert result["run"].features.videos_extracted == 6 and result["run"].features.videos_failed == 0
    local = _index(tmp_path / "local", archive, tiny_clip_path, feature_dtype="int8")
    assert local.features.videos_extracted == 6
    ray_files = _feature_files(tmp_path / "ray")
    assert ray_files == _feature_files(tmp_path / "local") and len(ray_files) == 6
