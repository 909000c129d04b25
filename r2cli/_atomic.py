"""Crash-safe file writes shared by every part of r2cli that writes results.

A file is written under a temporary name in the target's own folder, flushed to disk, renamed over
the target (``os.replace`` is atomic on POSIX and Windows), and the folder entry is flushed too. A
reader therefore sees the old file or the new one, never half of one; a crash or an error leaves at
most a hidden ``.NAME.tmp-*`` file that is removed on the error path.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    """A hidden, unique temporary name next to ``path`` (same folder, so the rename stays atomic)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    ``durable`` flushes the file and the folder to disk before returning (skip it for caches).

    Raises:
        OSError: the folder cannot be created or the file cannot be written or renamed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        yield tmp
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, target)
        if durable:
            fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str, *, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically and return the path."""
    with atomic_output(path, durable=durable) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, data: Any, *, durable: bool = True, **dumps_options: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically and return the path."""
    options = {"indent": 2, "ensure_ascii": False, **dumps_options}
    return write_text_atomic(path, json.dumps(data, **options) + "\n", durable=durable)


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (it may belong to another user); a zombie, which
    has exited and only waits for its parent to reap it, counts as dead."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):  # no /proc (macOS) or a race with its exit: trust kill's answer
        return True
    except OSError:
        return False
    return True
