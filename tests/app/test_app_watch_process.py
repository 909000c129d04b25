"""Real `r2cli index --watch` processes: files appearing, copied slowly, renamed, deleted, a burst,
kill -9 and restart, SIGTERM/Ctrl-C, and the writer lock while idle (#20.1)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from fixtures import make_video

from r2cli.paths import resolve_workspace

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Watch:
    """``python -m r2cli.cli.main index DIR --watch --json ...`` with its event lines read as they come."""

    def __init__(self, folder: Path, workspace: Path, *args: str, preexec=None) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   R2CLI_NO_PROGRESS="1")
        self.stderr = open(workspace.parent / f"watch-{time.monotonic_ns()}.err", "w+")
        command = [sys.executable, "-m", "r2cli.cli.main", "index", str(folder), "--watch", "--json",
                   "--workspace", str(workspace), *args]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                        preexec_fn=preexec)
        self.events: list[dict] = []
        self._lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(json.loads(line))
        self._lines.put(None)

    def wait_for(self, kind: str, name: str | None = None, timeout: float = 30.0) -> dict:
        """The next event of ``kind`` (whose path ends with ``name``), reading all events before it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind} event{' for ' + name if name else ''} in {timeout} s; "
                                     f"events: {self.events}; stderr: {self.error_text()}") from None
            if event is None:
                raise AssertionError(f"the watch ended (code {self.process.wait()}) before a {kind} event; "
                                     f"events: {self.events}; stderr: {self.error_text()}")
            self.events.append(event)
            if event["event"] == kind and (name is None or (event["path"] or "").endswith(name)):
                return event

    def wait_count(self, kinds: tuple[str, ...], count: int, timeout: float = 60.0) -> list[dict]:
        """Read events until ``count`` of them are of ``kinds``; those events."""
        deadline = time.monotonic() + timeout
        while len(found := [e for e in self.events if e["event"] in kinds]) < count:
            try:
                event = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{len(found)} of {count} {'/'.join(kinds)} events in {timeout} s; "
                                     f"stderr: {self.error_text()}") from None
            if event is None:
                raise AssertionError(f"the watch ended (code {self.process.wait()}); stderr: {self.error_text()}")
            self.events.append(event)
        return found

    def error_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def of(self, kind: str, name: str | None = None) -> list[dict]:
        return [e for e in self.events if e["event"] == kind and (name is None or (e["path"] or "").endswith(name))]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


@pytest.fixture
def watches():
    started: list[Watch] = []

    def start(*args, **kwargs) -> Watch:
        started.append(Watch(*args, **kwargs))
        return started[-1]

    yield start
    for watch in started:
        watch.close()


@pytest.fixture(scope="module")
def clip(ffmpeg, tmp_path_factory) -> Path:
    """A 4 s 64x48 H.264 clip (tests/fixtures.py make_video: lavfi colour scenes with a moving box)."""
    return make_video(tmp_path_factory.mktemp("watch-media") / "clip.mp4", seconds=4, width=64, height=48)


def distinct_copy(source: Path, target: Path, tag: str) -> Path:
    """A copy with a top-level MP4 ``free`` box appended: the same video, another content fingerprint."""
    payload = f"r2cli-watch-{tag}".encode()
    shutil.copyfile(source, target)
    with open(target, "ab") as handle:
        handle.write(struct.pack(">I", 8 + len(payload)) + b"free" + payload)
    return target


def rows(workspace: Path, sql: str, params: tuple = ()) -> list[tuple]:
    db = resolve_workspace(workspace).catalog_url[len("sqlite:///"):]
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def seconds_of(event: dict) -> float:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


def test_appear_rename_delete_with_features(clip, tmp_path, tiny_clip_path, watches):
    """A copied file is indexed once with its features; renamed, it keeps them (nothing extracted
    again); deleted, its row becomes missing."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    workspace = tmp_path / "ws"
    watch = watches(incoming, workspace, "--settle", "0.5", "--clip-weights", str(tiny_clip_path),
                    "--device", "cpu")
    assert watch.wait_for("watching")["mode"] == "inotify"
    watch.wait_for("scan")

    shutil.copyfile(clip, incoming / "first.mp4")
    watch.wait_for("new", "first.mp4")
    features = watch.wait_for("features")
    assert (features["extracted"], features["failed"]) == (1, 0)
    store_files = sorted(p.relative_to(workspace) for p in (workspace / "features").rglob("*") if p.is_file())

    os.rename(incoming / "first.mp4", incoming / "renamed.mp4")
    moved = watch.wait_for("moved", "renamed.mp4")
    assert moved["previous"].endswith("first.mp4")
    features = watch.wait_for("features")
    assert (features["extracted"], features["skipped"]) == (0, 1)  # the fingerprint found the features
    assert sorted(p.relative_to(workspace) for p in (workspace / "features").rglob("*") if p.is_file()) == store_files
    assert rows(workspace, "SELECT path, status, features_status FROM videos") == [
        (str(incoming / "renamed.mp4"), "ok", "ok")]

    os.remove(incoming / "renamed.mp4")
    watch.wait_for("missing", "renamed.mp4")
    assert rows(workspace, "SELECT status FROM videos") == [("missing",)]
    assert len(watch.of("new")) == 1 and not watch.of("error") and not watch.of("failed")


@pytest.mark.parametrize("mode", ["inotify", "poll"])
def test_a_file_copied_slowly_is_read_only_once_complete(clip, tmp_path, watches, mode):
    """The copy takes 2.5 s, five times the settle time, in chunks 0.25 s apart: the half-written
    file (an MP4 without its index yet) is never fingerprinted or probed."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    workspace = tmp_path / "ws"
    watch = watches(incoming, workspace, "--settle", "0.5", "--no-features", "--watch-mode", mode,
                    "--poll-interval", "0.2")
    assert watch.wait_for("watching")["mode"] == mode
    watch.wait_for("scan")
    data = clip.read_bytes()
    chunks = 10
    with open(incoming / "slow.mp4", "wb") as target:
        for i in range(chunks):
            target.write(data[i * len(data) // chunks:(i + 1) * len(data) // chunks])
            target.flush()
            time.sleep(0.25)
    finished = time.time()
    new = watch.wait_for("new", "slow.mp4")
    assert seconds_of(new) >= finished
    assert watch.of("pending", "slow.mp4")
    assert not watch.of("error") and not watch.of("updated")
    assert rows(workspace, "SELECT size, status FROM videos") == [(len(data), "ok")]


def test_a_burst_of_200_files(clip, tmp_path, watches):
    """200 files land within a second: each is pending once and indexed once, none is lost.

    20 are real clips; 180 are empty files named .mp4, recorded as errors without an ffprobe run
    (200 ffprobe processes alone take half a minute on a loaded 2-core test machine)."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    workspace = tmp_path / "ws"
    watch = watches(incoming, workspace, "--settle", "0.5", "--no-features")
    watch.wait_for("scan")
    data = clip.read_bytes()
    started = time.monotonic()
    for i in range(200):
        (incoming / f"batch {i // 50}").mkdir(exist_ok=True)
        (incoming / f"batch {i // 50}" / f"clip_{i:03d}.mp4").write_bytes(data if i % 10 == 0 else b"")
    outcomes = {event["path"]: event["event"] for event in watch.wait_count(("new", "error"), 200)}
    assert len(outcomes) == 200  # each path once
    took = time.monotonic() - started
    assert sorted(outcomes.values()).count("new") == 20
    assert rows(workspace, "SELECT status, count(*) FROM videos GROUP BY status ORDER BY status") == [
        ("error", 180), ("ok", 20)]
    assert len(watch.of("pending")) == 200 and len({e["path"] for e in watch.of("pending")}) == 200
    print(f"200 files indexed {took:.1f} s after the first was written")


def test_kill_9_then_restart_finds_what_was_pending(clip, tmp_path, watches):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.copyfile(clip, incoming / "before.mp4")
    workspace = tmp_path / "ws"
    watch = watches(incoming, workspace, "--settle", "0.5", "--no-features")
    watch.wait_for("new", "before.mp4")
    watch.wait_for("scan")
    watch.process.send_signal(signal.SIGSTOP)  # frozen: it can neither see nor index what comes now
    distinct_copy(clip, incoming / "pending.mp4", "pending")  # not a rename of before.mp4: other content
    os.remove(incoming / "before.mp4")
    watch.process.send_signal(signal.SIGKILL)
    watch.process.wait(timeout=10)
    assert rows(workspace, "SELECT path, status FROM videos") == [(str(incoming / "before.mp4"), "ok")]

    again = watches(incoming, workspace, "--settle", "0.5", "--no-features")
    scan = again.wait_for("scan")
    assert (scan["new"], scan["missing"]) == (1, 1)
    assert again.of("new", "pending.mp4") and again.of("missing", "before.mp4")
    assert sorted(rows(workspace, "SELECT path, status FROM videos")) == [
        (str(incoming / "before.mp4"), "missing"), (str(incoming / "pending.mp4"), "ok")]


def test_a_file_still_growing_at_start_is_held_by_the_start_scan(clip, tmp_path, watches):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    workspace = tmp_path / "ws"
    data = clip.read_bytes()
    growing = open(incoming / "growing.mp4", "wb")
    try:
        growing.write(data[:1000])
        growing.flush()
        watch = watches(incoming, workspace, "--settle", "1", "--no-features")
        watch.wait_for("watching")
        for i in range(1000, len(data), max(1, len(data) // 12)):  # about 3 s of writing
            growing.write(data[i:i + max(1, len(data) // 12)])
            growing.flush()
            time.sleep(0.25)
    finally:
        growing.close()
    scan = watch.wait_for("scan")
    assert scan["held"] == 1 and scan["new"] == 0 and scan["errors"] == 0
    watch.wait_for("new", "growing.mp4")
    assert rows(workspace, "SELECT size, status FROM videos") == [(len(data), "ok")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_watch_within_seconds(clip, tmp_path, watches, sig):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    # a test run in the background inherits SIGINT ignored; the child gets the default back, as from a terminal
    watch = watches(incoming, tmp_path / "ws", "--settle", "0.5", "--no-features",
                    preexec=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    watch.wait_for("scan")
    sent = time.monotonic()
    watch.process.send_signal(sig)
    code = watch.process.wait(timeout=10)
    took = time.monotonic() - sent
    assert code == 0 and took < 3.0, (code, took, watch.error_text())
    assert watch.wait_for("stopped")["reason"] == "interrupted"
    assert watch.error_text() == ""


def test_sigterm_in_the_middle_of_a_batch_stops_at_once_and_the_next_start_resumes(clip, tmp_path, watches):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for i in range(30):
        distinct_copy(clip, incoming / f"clip_{i:02d}.mp4", str(i))
    workspace = tmp_path / "ws"
    watch = watches(incoming, workspace, "--settle", "0.3", "--no-features")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the start scan commits file by file
        try:
            if rows(workspace, "SELECT count(*) FROM videos")[0][0] >= 2:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.02)
    sent = time.monotonic()
    watch.process.send_signal(signal.SIGTERM)
    code = watch.process.wait(timeout=10)
    assert code == 0 and time.monotonic() - sent < 3.0, watch.error_text()
    assert watch.wait_for("stopped")["reason"] == "interrupted" and not watch.of("scan")
    done = rows(workspace, "SELECT count(*) FROM videos")[0][0]
    assert 2 <= done < 30, "the start scan finished before it could be stopped"

    again = watches(incoming, workspace, "--settle", "0.3", "--no-features")
    scan = again.wait_for("scan")
    assert (scan["new"], scan["unchanged"], scan["errors"]) == (30 - done, done, 0)


def test_an_idle_watch_holds_no_lock_and_waits_for_a_busy_catalog(clip, tmp_path, watches):
    from r2cli.catalog import Catalog

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    workspace = tmp_path / "ws"
    watch = watches(incoming, workspace, "--settle", "0.5", "--no-features")
    watch.wait_for("scan")
    ws = resolve_workspace(workspace)
    with Catalog.open(ws) as catalog:
        with catalog.writer_lock(timeout=0, purpose="the test"):  # CatalogBusyError if the watch held it
            shutil.copyfile(clip, incoming / "queued.mp4")
            busy = watch.wait_for("busy")
            assert "the test" in busy["message"] and busy["retry_in"] > 0
    watch.wait_for("new", "queued.mp4")
    assert rows(workspace, "SELECT status FROM videos") == [("ok",)]
