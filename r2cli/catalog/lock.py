"""The catalog's writer lock: one writing r2cli process per catalog at a time.

A lock file (next to a SQLite catalog, else ``catalog.lock`` in the workspace) is locked with
``fcntl.flock``. The kernel drops the lock when its holder dies, even by ``kill -9``, so a
stale lock never blocks anybody; the file only carries the holder's pid, host, purpose and start
time so that a refused process can say who is writing. Readers never take the lock: SQLite in
WAL mode lets them read while one process writes.

On PostgreSQL (``pg_writer_lock``) the lock is a session-level advisory lock on the server, so
it spans machines. A dedicated connection holds it; the server drops it when that connection
ends, including when its process is killed (the kernel closes the socket; TCP keepalives catch a
machine that vanished). The holder's pid, host and purpose travel in the connection's
``application_name``, which every session can read in ``pg_stat_activity``.

The lock is re-entrant inside one process (``index`` scanning then extracting features).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from r2cli._atomic import pid_alive
from r2cli.errors import CatalogBusyError, CatalogError
from r2cli.times import iso_local, now_local

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

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
    return _describe_busy(read_holder(path) or {}, catalog, waited, f"lock file {path}")


def _describe_busy(holder: dict, catalog: str, waited: float, where: str) -> str:
    who = f"pid {holder.get('pid', '?')}"
    if holder.get("host") and holder.get("host") != socket.gethostname():
        who += f" on {holder['host']}"
    what = holder.get("purpose") or "an r2cli command"
    since = f", started {holder['started']}" if holder.get("started") else ""
    waited_text = f" after waiting {waited:g} s" if waited > 0 else ""
    return (
        f"catalog {catalog} is busy{waited_text}: {who} ({what}{since}) is writing to it "
        f"({where}); let it finish, or pass --wait SECONDS to queue behind it"
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
        "started": now_local(),
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


# -- PostgreSQL ----------------------------------------------------------------------------------

PG_WRITER_KEY_SQL = "SELECT hashtextextended('r2cli catalog writer:' || current_schema(), 0)"
_PG_DEAD_HOLDER_GRACE = 10.0  # s to let the server notice that a holder on this host died
_PG_KEEPALIVE = {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"}
_PG_LABEL = re.compile(r"^r2cli pid (\d+) on (\S*?):? (.*)$", re.S)
_PG_HOLDER_SQL = """
SELECT l.pid, a.application_name, a.backend_start
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid)
"""


def _pg_label(holder: dict) -> str:
    """What the lock connection calls itself in ``pg_stat_activity`` (at most 63 bytes are kept)."""
    label = f"r2cli pid {holder['pid']} on {holder['host']}: {holder['purpose'] or 'an r2cli command'}"
    return label.encode("utf-8")[:63].decode("utf-8", "ignore")


def _pg_holder(conn, key: int) -> dict:
    """Who holds advisory lock ``key`` (pid, host, purpose, started, backend), as far as the server says."""
    from sqlalchemy import text

    row = conn.execute(text(_PG_HOLDER_SQL), {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}).first()
    if row is None:
        return {}
    holder: dict = {"backend": row[0]}
    match = _PG_LABEL.match(row[1] or "")
    if match:
        holder.update(pid=int(match.group(1)), host=match.group(2), purpose=match.group(3))
    if row[2] is not None:
        holder["started"] = iso_local(row[2])  # timestamptz: aware
    return holder


def _holder_died(holder: dict) -> bool:
    """True when the holder ran on this host and its process is gone (its session is about to end)."""
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid)


@contextmanager
def pg_writer_lock(engine: "Engine", *, catalog: str, timeout: float = 0.0, purpose: str = "") -> Iterator[dict]:
    """Hold the PostgreSQL catalog's writer lock (a session-level advisory lock) for the ``with`` block.

    Same contract as ``writer_lock``: refuses at once with ``timeout=0``, else polls for ``timeout``
    seconds; re-entrant inside one process. The key is derived from the catalog's schema, so every
    client of one database and schema contends for the same lock. When the holder ran on this host
    and its process is gone, the wait is stretched by up to ``_PG_DEAD_HOLDER_GRACE`` s for the
    server to drop its session.

    Raises:
        UsageError: ``timeout`` is negative.
        CatalogBusyError: another session holds the lock after ``timeout`` seconds; the message
            names the holder's pid, host and purpose.
        CatalogError: the server cannot be reached.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from r2cli.errors import UsageError

    if timeout < 0:
        raise UsageError(f"--wait must be >= 0 seconds, got {timeout:g}")
    reentry = "pg:" + engine.url.render_as_string(hide_password=True)
    with _guard:
        if reentry in _held:
            fd, depth = _held[reentry]
            _held[reentry] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield dict(_pg_holders.get(reentry, {}))
        finally:
            with _guard:
                fd, depth = _held[reentry]
                _held[reentry] = (fd, depth - 1)
        return

    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "purpose": purpose,
        "started": now_local(),
    }
    try:
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot reach catalog {catalog}: {' '.join(str(exc).split())}") from None
    try:
        key = int(conn.execute(text(PG_WRITER_KEY_SQL)).scalar_one())
        settings = {"application_name": _pg_label(holder), **_PG_KEEPALIVE}
        for name, value in settings.items():
            conn.execute(text("SELECT set_config(:name, :value, false)"), {"name": name, "value": value})
        start = time.monotonic()
        while not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one():
            other = _pg_holder(conn, key)
            waited = time.monotonic() - start
            limit = timeout + (_PG_DEAD_HOLDER_GRACE if _holder_died(other) else 0.0)
            if waited >= limit:
                where = f"PostgreSQL advisory lock {key}"
                if other.get("backend"):
                    where += f" held by server process {other['backend']}"
                raise CatalogBusyError(_describe_busy(other, catalog, round(waited, 1) if timeout else 0, where))
            time.sleep(min(_POLL_SECONDS, max(0.01, limit - waited)))
    except SQLAlchemyError as exc:
        conn.invalidate()
        conn.close()
        raise CatalogError(f"catalog {catalog}: writer lock: {' '.join(str(exc).split())}") from None
    except BaseException:
        conn.invalidate()
        conn.close()
        raise
    try:
        with _guard:
            _held[reentry] = (-1, 1)
            _pg_holders[reentry] = holder
        yield holder
    finally:
        with _guard:
            _held.pop(reentry, None)
            _pg_holders.pop(reentry, None)
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        except SQLAlchemyError:
            pass  # the session is going away below, which releases the lock anyway
        finally:
            conn.invalidate()  # close the session: nothing of it (the lock, its name) goes back to the pool
            conn.close()


_pg_holders: dict[str, dict] = {}
