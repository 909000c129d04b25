"""`index --ray local`: Ray's own output (token-auth notice, deprecation warnings, actor notices from
the C++ core worker, Ray Data's INFO lines) goes to a log file in the workspace; the terminal shows
r2cli's progress only, and its last progress line counts every video done (#22.13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install 'r2cli[ray]')")

REPO = Path(__file__).resolve().parents[2]


def test_index_ray_local_keeps_rays_output_off_the_terminal(ffmpeg, tiny_clip_path, tmp_path):
    from fixtures import make_video

    archive = tmp_path / "archive"
    make_video(archive / "one.mp4", seconds=4, width=64, height=48, fps=10, colors=("red", "blue"))
    make_video(archive / "two.mp4", seconds=4, width=64, height=48, fps=10, colors=("green",))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "80",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("RAY_AUTH_MODE", None)  # Ray's default: it prints its token-auth notice
    env.pop("R2CLI_NO_PROGRESS", None)
    result = subprocess.run(
        [sys.executable, "-m", "r2cli.cli.main", "index", str(archive), "--ray", "local", "--workspace",
         str(tmp_path / "ws"), "--clip-weights", str(tiny_clip_path), "--device", "cpu", "--batch-size", "4"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    # r2cli's own stage lines only (piped: one plain line per finished stage)
    assert [line.split(":", 1)[0] for line in lines] == ["walk", "index", "features"], result.stderr
    assert lines[-1].startswith("features: ") and "(videos=2/2)" in lines[-1], lines[-1]
    assert "features: 2 extracted" in result.stdout
    logs = sorted((tmp_path / "ws" / "logs").glob("index-ray-*.log"))
    assert len(logs) == 1 and f"Ray's own logs: {logs[0]}" in result.stdout
    text = logs[0].read_text(encoding="utf-8", errors="replace")
    assert "Started a local Ray instance" in text and "ray.data" in text
