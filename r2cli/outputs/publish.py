"""Run folders written all-or-nothing, by one process at a time.

``RunFolder`` is the output folder of one search / summarize run:

- it is locked (``fcntl.flock`` on ``.r2cli-run.lock`` inside it) for the whole run, so a second
  run writing to the same folder is refused, or waits with ``wait`` seconds, instead of silently
  replacing the first one's files; the kernel drops the lock when its holder dies, even by
  ``kill -9``;
- every output is written under a hidden staging name (``stage``) and only ``publish`` gives the
  files their final names: the old ``run.json`` is removed first (the folder then reads as
  unfinished), the staged files are renamed over their targets, and ``run.json`` is written last.
  A failure (a full disk, a read-only folder, an interrupted process) therefore never leaves a
  partial file under a final name, and a folder with ``run.json`` always holds the complete set
  of files it lists. Staging files of a dead process are removed when the folder is next opened.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from r2cli._atomic import fsync_dir, pid_alive, write_json_atomic
from r2cli.errors import InputError, UsageError
from r2cli.times import now_local

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".r2cli-run.lock"
MANIFEST_NAME = "run.json"
_STAGING = re.compile(r"^\.(?P<name>.+)\.staging-(?P<pid>\d+)-[0-9a-f]{8}$")
_POLL_SECONDS = 0.1


class FolderBusyError(InputError):
    """Another live process is writing to the same output folder."""


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


class RunFolder:
    """The output folder of one run (see the module docstring). Use it as a context manager.

    Args:
        folder: the run folder (created with its parents).
        flag: how messages name the folder (``--out``).
        wait: seconds to wait for another run writing to the same folder; 0 refuses at once.
        purpose: what this process does, shown to a process that is refused.

    Raises (on entering):
        InputError: the folder cannot be created or locked (names ``flag`` and the reason).
        FolderBusyError: another live process writes to the folder after ``wait`` seconds.
    """

    def __init__(self, folder: str | os.PathLike, *, flag: str = "--out", wait: float = 0.0,
                 purpose: str = "r2cli") -> None:
        if wait is None or wait < 0:
            raise UsageError(f"--wait must be >= 0 seconds, got {wait}")
        self.folder = Path(folder)
        self.flag = flag
        self.wait = float(wait)
        self.purpose = purpose
        self._fd: int | None = None
        self._staged: dict[str, Path] = {}  # final name -> staging path
        self._targets: dict[str, Path] = {}  # name -> final path outside the folder

    # -- lock --------------------------------------------------------------------------------------

    def __enter__(self) -> "RunFolder":
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{self.flag} {folder}: is a file, expected a folder for the run's outputs")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"{self.flag} {folder}: cannot write the folder ({_why(exc)})") from None
        try:
            self._acquire()
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                      "started": now_local()}
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
        except OSError as exc:  # a full disk: even the lock file's one line does not fit
            os.close(self._fd)
            self._fd = None
            raise InputError(f"{self.flag} {folder}: cannot write the folder ({_why(exc)})") from None
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise
        self._remove_stale_staging()
        return self

    def _acquire(self) -> None:
        started = time.monotonic()
        while True:
            if fcntl is None:  # pragma: no cover
                return
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            waited = time.monotonic() - started
            if waited >= self.wait:
                raise FolderBusyError(self._busy_message(waited))
            time.sleep(min(_POLL_SECONDS, max(0.0, self.wait - waited)))

    def _busy_message(self, waited: float) -> str:
        try:
            holder = json.loads((self.folder / LOCK_NAME).read_text("utf-8") or "{}")
        except (OSError, ValueError):
            holder = {}
        who = f"pid {holder.get('pid', '?')}"
        if holder.get("host") and holder["host"] != socket.gethostname():
            who += f" on {holder['host']}"
        what = holder.get("purpose") or "another r2cli run"
        since = f", started {holder['started']}" if holder.get("started") else ""
        waited_text = f" after waiting {waited:.1f} s" if self.wait > 0 else ""
        return (f"{self.flag} {self.folder} is in use{waited_text}: {who} ({what}{since}) is writing its outputs "
                "there; choose another --out, let it finish, or pass --wait SECONDS to queue behind it")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.discard()
        if self._fd is not None:
            try:
                if fcntl is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def _remove_stale_staging(self) -> None:
        for entry in self.folder.iterdir():
            match = _STAGING.match(entry.name)
            if match and (int(match.group("pid")) == os.getpid() or not pid_alive(int(match.group("pid")))):
                with contextlib.suppress(OSError):
                    entry.unlink()

    # -- staging and publishing ----------------------------------------------------------------------

    def stage(self, name: str, target: str | os.PathLike | None = None) -> Path:
        """A hidden path to write the output ``name`` to; ``publish`` renames it to its final name.

        The final name is ``folder/name``, or ``target`` for a file outside the folder (a reel);
        the staging file lies next to its final name (same file system, so the rename is atomic)
        and keeps its suffix (ffmpeg chooses the container by it).

        Raises:
            InputError: ``target``'s folder cannot be written.
        """
        if name in self._staged:
            return self._staged[name]
        tag = f"staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        if target is None:
            path = self.folder / f".{name}.{tag}"
        else:
            final = Path(target)
            if not os.access(final.parent, os.W_OK):
                raise InputError(f"cannot write {final}: the folder {final.parent} is not writable")
            path = final.with_name(f".{final.stem}.{tag}{final.suffix}")
            self._targets[name] = final
        self._staged[name] = path
        return path

    def staged(self, name: str) -> Path | None:
        """The staging path of ``name``, None when it was not staged."""
        return self._staged.get(name)

    def discard(self) -> None:
        """Remove every staged file that was not published."""
        for path in self._staged.values():
            with contextlib.suppress(OSError):
                path.unlink()
        self._staged.clear()

    def publish(self, manifest: dict[str, Any]) -> dict[str, Path]:
        """Give every staged file its final name, then write ``run.json`` (``manifest``) last.

        Returns name -> final path, with ``"run.json"``.

        Raises:
            NotOwnedError: a final name in the folder holds a file r2cli did not write (the folder
                is no r2cli run folder and the file is not recorded); nothing is published.
            InputError: a file cannot be flushed, renamed or written (a full disk, a read-only
                folder); nothing more is published, and ``run.json`` is not written.
        """
        from r2cli import ownership

        out: dict[str, Path] = {}
        manifest_path = self.folder / MANIFEST_NAME
        earlier_run = manifest_path.is_file()  # an r2cli run folder: its outputs are r2cli's
        for name in self._staged:
            if name in self._targets:
                continue  # a reel elsewhere: the media layer checked it (its container comment)
            target = self.folder / name
            ownership.check_replaceable_file(target, self.flag,
                                             owned=earlier_run or ownership.is_recorded(target))
        try:
            for name, path in self._staged.items():
                if not path.exists():
                    raise FileNotFoundError(2, f"{name} was staged but not written", str(path))
                _fsync(path)
            with contextlib.suppress(FileNotFoundError):
                manifest_path.unlink()  # from here on the folder reads as unfinished
            fsync_dir(self.folder)
            for name, path in list(self._staged.items()):
                target = self._targets.get(name, self.folder / name)
                os.replace(path, target)
                if name not in self._targets:
                    ownership.record_written(target)  # a kill before run.json still leaves it r2cli's
                out[name] = target
                del self._staged[name]
            fsync_dir(self.folder)
            write_json_atomic(manifest_path, manifest, sort_keys=True, default=str)
        except OSError as exc:
            raise InputError(f"cannot write the outputs in {self.folder}: {_why(exc)}; "
                             "nothing of this run was published") from None
        out[MANIFEST_NAME] = manifest_path
        return out


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
