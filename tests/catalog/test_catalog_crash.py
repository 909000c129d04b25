"""Real `r2cli index` processes: killed with SIGKILL mid-run, and two at once on one catalog."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from catalogkit import cli_command, cli_env, distinct_copy, run_cli, sqlite_rows

from r2cli.catalog.scan import scan_archive
from r2cli.paths import resolve_workspace

FILES = 40


@pytest.fixture(scope="module")
def forty_clips(base_clip, tmp_path_factory):
    root = tmp_path_factory.mktemp("forty")
    for i in range(FILES):
        distinct_copy(base_clip, root / f"batch {i // 10}" / f"clip_{i:02d}.mp4", i)
    return root


def _count(db) -> int:
    try:
        return sqlite_rows(db, "SELECT count(*) FROM videos")[0][0]
    except Exception:  # not created yet, or mid-migration
        return 0


def _check_catalog(db) -> None:
    assert sqlite_rows(db, "PRAGMA integrity_check") == [("ok",)]
    paths = [p for (p,) in sqlite_rows(db, "SELECT path FROM videos")]
    fingerprints = [f for (f,) in sqlite_rows(db, "SELECT fingerprint FROM videos")]
    assert len(paths) == FILES and len(set(paths)) == FILES and len(set(fingerprints)) == FILES
    assert sqlite_rows(db, "SELECT DISTINCT status FROM videos") == [("ok",)]


def test_kill_9_mid_run_then_resume(forty_clips, tmp_path):
    workspace = tmp_path / "ws"
    db = workspace / "catalog.sqlite"
    process = subprocess.Popen(cli_command("index", str(forty_clips), "--workspace", str(workspace), "--no-features"),
                               env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _count(db) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, "the index run finished before it could be killed"
    done = _count(db)
    assert 3 <= done < FILES
    assert sqlite_rows(db, "PRAGMA integrity_check") == [("ok",)]

    report = scan_archive([forty_clips], resolve_workspace(workspace))
    assert report.errors == 0 and report.unchanged == done and report.new == FILES - done
    _check_catalog(db)


def test_two_index_runs_at_once(forty_clips, tmp_path):
    """While a writer holds the catalog, a plain `index` refuses at once (exit 6, naming the holder) and
    `index --wait` queues; two queued runs then race for the catalog and neither corrupts it."""
    from r2cli.catalog import Catalog

    workspace = tmp_path / "ws"
    command = ["index", str(forty_clips), "--workspace", str(workspace), "--no-features"]
    waiting = []
    try:
        with Catalog.open(resolve_workspace(workspace)) as catalog, catalog.writer_lock(purpose="test holder"):
            refused = run_cli(*command)
            for _ in range(2):
                waiting.append(subprocess.Popen(cli_command(*command, "--wait", "120", "--json"), env=cli_env(),
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            time.sleep(1.0)
            assert all(p.poll() is None for p in waiting), "a --wait run did not wait for the holder"
        outputs = [p.communicate(timeout=180) for p in waiting]
    finally:
        for process in waiting:
            if process.poll() is None:
                process.kill()
    assert refused.returncode == 6, refused.stderr
    assert "is busy" in refused.stderr and "pid" in refused.stderr and "--wait" in refused.stderr
    assert [p.returncode for p in waiting] == [0, 0], [err for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    assert sum(r["new"] for r in reports) == FILES and all(r["errors"] == 0 for r in reports)
    assert sum(r["unchanged"] for r in reports) == FILES
    _check_catalog(workspace / "catalog.sqlite")
