"""The one place where r2cli deletes, replaces or moves files and folders.

Users' files are sacred: no r2cli command deletes or overwrites a file it did not write, whatever
its flags. Every destructive step therefore asks this module, which knows what r2cli wrote:

* a report folder holds ``r2cli-report.json`` and only the names a report writes
  (``*.html``, ``thumbs/``, ``plots/``); ``--force`` may replace such a folder, nothing else;
* a staging folder is named ``.<name>.part-<pid>-<hex>`` (or ``.<name>.old-<pid>-<hex>`` while an
  old report is set aside) and holds ``STAGING_MARKER``; one whose writer is dead is stale and
  removed by the next run into the same parent folder;
* a media file r2cli wrote carries the container comment ``r2cli output`` (the media layer checks
  it and passes the answer in as ``owned``);
* a text output (a timeline, captions, chapters) is recorded, with its size and mtime, in the
  ``WRITTEN_LEDGER`` file of its folder when r2cli writes it (``record_written``/``is_recorded``).

Anything else is refused with ``NotOwnedError``, one line naming the path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

from r2cli._atomic import pid_alive
from r2cli.errors import UsageError

WRITTEN_LEDGER = ".r2cli-written"  # JSON lines: name, size, mtime_ns of each text output r2cli wrote
STAGING_MARKER = ".r2cli-staging"  # file inside every staging folder r2cli creates
REPORT_MARKER = "r2cli-report.json"  # file in every finished report folder
_REPORT_FOLDERS = frozenset({"thumbs", "plots"})  # sub-folders a report writes
_STAGING_RE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>part|old)-(?P<pid>\d+)-[0-9a-f]{8}$")


class NotOwnedError(UsageError):
    """r2cli was asked to delete or replace something it did not write; it never does."""


# -- staging folders ----------------------------------------------------------------------------

def staging_folder(target: Path, kind: str = "part") -> Path:
    """Create and return a new, marked staging folder next to ``target``.

    Raises:
        OSError: the folder cannot be created.
    """
    folder = target.parent / f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    (folder / STAGING_MARKER).write_text("written by r2cli while building; removed when done\n", encoding="utf-8")
    return folder


def is_staging_folder(path: Path) -> bool:
    """Whether ``path`` is a staging folder r2cli created (its name and its marker)."""
    return (_STAGING_RE.match(path.name) is not None and path.is_dir() and not path.is_symlink()
            and (path / STAGING_MARKER).is_file())


def remove_staging(path: Path) -> None:
    """Remove a staging folder r2cli created; anything else is left alone (never raises)."""
    if is_staging_folder(path):
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_staging(target: Path) -> list[Path]:
    """Remove the staging folders for ``target`` whose writer process is dead; returns them.

    Only folders named for ``target`` (``.<name>.part-<pid>-…``, ``.<name>.old-<pid>-…``) that hold
    ``STAGING_MARKER`` (or are empty) and whose pid is not alive are removed: a report being built
    by a live process, and any folder of the user's, are kept.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = _STAGING_RE.match(entry.name)
        if match is None or match.group("name") != target.name or pid_alive(int(match.group("pid"))):
            continue
        path = Path(entry.path)
        if is_staging_folder(path):
            shutil.rmtree(path, ignore_errors=True)
        elif entry.is_dir(follow_symlinks=False):
            try:  # killed between mkdir and its marker: empty, so removing it destroys nothing
                os.rmdir(path)
            except OSError:
                continue
        if not os.path.lexists(path):
            removed.append(path)
    return removed


# -- report folders -----------------------------------------------------------------------------

def foreign_entries(folder: Path) -> list[str]:
    """The names directly in ``folder`` that a report does not write (empty for an r2cli report)."""
    foreign = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        name = entry.name
        if entry.is_symlink():
            foreign.append(name)
        elif entry.is_dir():
            if name not in _REPORT_FOLDERS:
                foreign.append(name)
        elif not (name == REPORT_MARKER or name == STAGING_MARKER or name.endswith(".html")):
            foreign.append(name)
    return foreign


def check_report_target(target: Path, flag: str = "--out") -> None:
    """Refuse a report target that is not empty and not r2cli's own report, whatever the flags.

    Raises:
        UsageError: ``target`` is a file.
        NotOwnedError: ``target`` is a folder holding anything r2cli's report did not write.
    """
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UsageError(f"{flag} {target} is a file; the report needs a folder")
    if not target.exists() or not any(target.iterdir()):
        return
    if not (target / REPORT_MARKER).is_file():
        raise NotOwnedError(f"{flag} {target} is a folder that r2cli did not write (no {REPORT_MARKER}); "
                            "r2cli never replaces it, not even with --force: choose a new or empty folder")
    foreign = foreign_entries(target)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise NotOwnedError(f"{flag} {target} holds files the report did not write ({shown}); "
                            "r2cli never deletes them, not even with --force: move them away or choose another folder")


def replace_report_folder(staging: Path, target: Path, flag: str = "--out") -> None:
    """Move the finished ``staging`` folder to ``target``, replacing only r2cli's own report there.

    The old report is first renamed to a marked ``.old-`` staging name, so a kill between the two
    renames leaves nothing the next run cannot recognise and remove.

    Raises:
        NotOwnedError / UsageError: ``target`` is not empty and not an r2cli report (checked again
            here: the folder may have changed while the report was built).
        OSError: a rename failed.
    """
    if not is_staging_folder(staging):
        raise NotOwnedError(f"{staging} is not an r2cli staging folder; refusing to move it")
    (staging / STAGING_MARKER).unlink()
    try:
        check_report_target(target, flag)
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            # marked before the rename: a kill right after it leaves a folder the next run removes
            (target / STAGING_MARKER).write_text("an old r2cli report set aside; removed when done\n",
                                                 encoding="utf-8")
            os.replace(target, old)
        os.replace(staging, target)
    except BaseException:
        if staging.is_dir():
            (staging / STAGING_MARKER).write_text("written by r2cli while building\n", encoding="utf-8")
        raise
    if old is not None:
        remove_staging(old)


# -- files --------------------------------------------------------------------------------------

def check_replaceable_file(path: Path, flag: str, *, owned: bool) -> None:
    """Refuse to replace ``path`` unless it is absent or r2cli's own output (``owned``).

    Raises:
        NotOwnedError: ``path`` exists and is a folder, a link or a file r2cli did not write.
    """
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_file():
        raise NotOwnedError(f"{flag} {path} exists and is not a regular file; r2cli never replaces it")
    if not owned:
        raise NotOwnedError(f"{flag} {path} exists and was not written by r2cli; r2cli never replaces a file "
                            "it did not write, not even with --force (move it away or choose another name)")


def replace_file(tmp: Path, final: Path, flag: str, *, owned: bool) -> None:
    """Move r2cli's finished ``tmp`` file over ``final``, which must be absent or r2cli's own.

    Raises:
        NotOwnedError: see ``check_replaceable_file``.
        OSError: the rename failed.
    """
    check_replaceable_file(final, flag, owned=owned)
    os.replace(tmp, final)


def remove_partial(path: Path) -> None:
    """Remove a partial file or work folder r2cli itself is writing (the caller made ``path``)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def record_written(path: Path) -> None:
    """Record that r2cli has just written ``path`` (its name, size and mtime) in its folder's ledger."""
    try:
        st = path.stat()
        line = json.dumps({"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}, ensure_ascii=True)
        with open(path.parent / WRITTEN_LEDGER, "a", encoding="utf-8") as ledger:
            ledger.write(line + "\n")
    except OSError:
        pass  # unrecorded: a later --force refuses to replace it, which loses nothing


def is_recorded(path: Path) -> bool:
    """Whether ``path`` is, unchanged since, a file r2cli recorded with ``record_written``."""
    try:
        st = path.stat()
        lines = (path.parent / WRITTEN_LEDGER).read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (isinstance(entry, dict) and entry.get("name") == path.name and entry.get("size") == st.st_size
                and entry.get("mtime_ns") == st.st_mtime_ns):
            return True
    return False
