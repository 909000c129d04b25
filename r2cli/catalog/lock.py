"""The catalog's writer lock: one writing r2cli process per catalog at a time.

A lock file (next to a SQLite catalog, else ``catalog.lock`` in the workspace) is locked with
``fcntl.flock``. The kernel drops the lock when its holder dies, even by ``kill -9``, so a
stale lock never blocks anybody; the file only carries the holder's pid, host, purpose and start
time so that a refused process can say who is writing. Readers never take the lock: SQLite in
WAL mode lets them read while one process writes.

The lock is re-entrant inside one process (``index`` scanning then extracting features).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from r2cli._atomic import pid_alive
from r2cli.errors import CatalogBusyError, CatalogError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_POLL_SECONDS = 0.1
_held: dict[str, tuple[int, int]] = {}  # lock path -> (fd, depth) for this process
_guard = threading.Lock()


def read_holder(path: str | os.PathLike) -> dict | None:
    """What the lock file says about its last holder (pid, host, purpose, started), if anything."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _busy_message(path: str, catalog: str, waited: float) -> str:
    holder = read_holder(path) or {}
    who = f"pid {holder.get('pid', '?')}"
    if holder.get("host") and holder.get("host") != socket.gethostname():
        who += f" on {holder['host']}"
    what = holder.get("purpose") or "an r2cli command"
    since = f", started {holder['started']}" if holder.get("started") else ""
    waited_text = f" after waiting {waited:g} s" if waited > 0 else ""
    return (
        f"catalog {catalog} is busy{waited_text}: {who} ({what}{since}) is writing to it "
        f"(lock file {path}); let it finish, or pass --wait SECONDS to queue behind it"
    )


@contextmanager
def writer_lock(
    path: str | os.PathLike, *, catalog: str, timeout: float = 0.0, purpose: str = ""
) -> Iterator[dict]:
    """Hold the writer lock at ``path`` for the ``with`` block; yields the holder record written.

    Args:
        path: the lock file (created if needed; never deleted, so no two processes lock different inodes).
        catalog: how to name the catalog in messages.
        timeout: seconds to wait for another holder to finish; 0 refuses at once.
        purpose: what this process does, shown to a process that is refused (e.g. "r2cli index").

    Raises:
        UsageError: ``timeout`` is negative.
        CatalogBusyError: another live process holds the lock after ``timeout`` seconds; the
            message names its pid.
        CatalogError: the lock file cannot be created (read-only folder).
    """
    from r2cli.errors import UsageError

    if timeout < 0:
        raise UsageError(f"--wait must be >= 0 seconds, got {timeout:g}")
    key = os.path.abspath(os.fspath(path))
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "purpose": purpose,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with _guard:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield read_holder(key) or holder
        finally:
            with _guard:
                fd, depth = _held[key]
                _held[key] = (fd, depth - 1)
        return

    try:
        Path(key).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CatalogError(f"cannot create the catalog lock file {key}: {exc.strerror or exc}") from None
    try:
        _acquire(fd, key, catalog, timeout)
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
        with _guard:
            _held[key] = (fd, 1)
        yield holder
    finally:
        with _guard:
            _held.pop(key, None)
        try:
            os.ftruncate(fd, 0)
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _acquire(fd: int, path: str, catalog: str, timeout: float) -> None:
    start = time.monotonic()
    while True:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
        else:  # pragma: no cover - no flock: trust the pid in the file, take it over when that pid is gone
            holder = read_holder(path)
            pid = holder.get("pid") if holder else None
            if not isinstance(pid, int) or pid == os.getpid() or not pid_alive(pid):
                return
        waited = time.monotonic() - start
        if waited >= timeout:
            raise CatalogBusyError(_busy_message(path, catalog, round(waited, 1) if timeout else 0))
        time.sleep(min(_POLL_SECONDS, max(0.0, timeout - waited)))
