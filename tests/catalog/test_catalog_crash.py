"""Real `r2cli index` processes: killed with SIGKILL mid-run, and two at once on one catalog (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from catalogkit import catalog_rows, cli_command, cli_env, distinct_copy, is_sqlite, run_cli, workspace_args

from r2cli.catalog.scan import scan_archive

FILES = 40


@pytest.fixture(scope="module")
def forty_clips(base_clip, tmp_path_factory):
    root = tmp_path_factory.mktemp("forty")
    for i in range(FILES):
        distinct_copy(base_clip, root / f"batch {i // 10}" / f"clip_{i:02d}.mp4", i)
    return root


def _count(workspace) -> int:
    try:
        return catalog_rows(workspace, "SELECT count(*) FROM videos")[0][0]
    except Exception:  # not created yet, or mid-migration
        return 0


def _check_integrity(workspace) -> None:
    if is_sqlite(workspace):
        assert catalog_rows(workspace, "PRAGMA integrity_check") == [("ok",)]
    else:  # PostgreSQL: the unique constraint and the primary key still hold, nothing is left locked
        assert catalog_rows(workspace, "SELECT count(*) - count(DISTINCT path) FROM videos") == [(0,)]
        assert catalog_rows(workspace, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]


def _check_catalog(workspace) -> None:
    _check_integrity(workspace)
    paths = [p for (p,) in catalog_rows(workspace, "SELECT path FROM videos")]
    fingerprints = [f for (f,) in catalog_rows(workspace, "SELECT fingerprint FROM videos")]
    assert len(paths) == FILES and len(set(paths)) == FILES and len(set(fingerprints)) == FILES
    assert catalog_rows(workspace, "SELECT DISTINCT status FROM videos") == [("ok",)]


def test_kill_9_mid_run_then_resume(forty_clips, workspace):
    """The rerun starts right after the kill, without --wait: the dead run's lock (a PostgreSQL
    session on the server) must already be gone or go within seconds."""
    process = subprocess.Popen(cli_command("index", str(forty_clips), *workspace_args(workspace), "--no-features"),
                               env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _count(workspace) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, "the index run finished before it could be killed"
    done = _count(workspace)
    assert 3 <= done < FILES
    if is_sqlite(workspace):
        _check_integrity(workspace)

    report = scan_archive([forty_clips], workspace)
    assert report.errors == 0 and report.unchanged == done and report.new == FILES - done
    _check_catalog(workspace)


def test_two_index_runs_at_once(forty_clips, workspace):
    """While a writer holds the catalog, a plain `index` refuses at once (exit 6, naming the holder) and
    `index --wait` queues; two queued runs then race for the catalog and neither corrupts it."""
    from r2cli.catalog import Catalog

    command = ["index", str(forty_clips), *workspace_args(workspace), "--no-features"]
    waiting = []
    try:
        with Catalog.open(workspace) as catalog, catalog.writer_lock(purpose="test holder"):
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
    _check_catalog(workspace)
