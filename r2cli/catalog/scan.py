"""The catalog half of ``r2cli index``: walk folders, fingerprint and probe videos, keep the catalog true.

Rules (one row per path in ``videos``):
- **unchanged**: same size and mtime as the catalog row: nothing is read or probed again.
- **updated**: the path is known but size or mtime changed: fingerprinted again, probed again when
  the content changed (an unchanged content with a new mtime only refreshes size/mtime).
- **moved**: an unknown path whose content fingerprint matches a row whose file is gone: that row
  takes the new path (its probe results and features stay valid). Two live copies of one
  content are two rows.
- **missing**: a row under a scanned folder whose file no longer exists is marked ``missing``
  (kept, with its metadata and error), never deleted. A caller that saw paths go (``gone``: a
  folder watch) has the rows at or under them swept the same way, without walking anything.
- **held**: paths the caller says are still being written (``hold``: a folder watch waiting for a
  copy to finish) are left alone: neither read, nor fingerprinted, nor marked missing.
- **errors**: every path that ends the run in ``error`` state: unreadable, empty, truncated or
  non-video files, directories named like videos, symlink loops, special files. The error is
  recorded on the path's row and listed in the report; the run goes on. An unchanged file that
  failed before is not probed again (a file that could not even be read is retried every run).

Each file is committed in its own transaction, so a run killed at any point (even ``kill -9``)
leaves a consistent catalog and the next run carries on without duplicates. One writing process
at a time holds the catalog's writer lock; another one waits ``lock_timeout`` seconds and then
raises ``CatalogBusyError``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from r2cli.catalog.walk import DEFAULT_EXTENSIONS, _Entry, normalize_extensions, walk
from r2cli.errors import InputError, MediaError, UsageError
from r2cli.progress import NULL_REPORTER, Reporter

__all__ = ["DEFAULT_EXTENSIONS", "FileError", "PathChange", "ScanFailedError", "ScanReport", "normalize_extensions",
           "scan_archive", "walk"]

if TYPE_CHECKING:
    from r2cli.catalog.db import Catalog
    from r2cli.paths import Workspace

WALK_STAGE = "walk"
INDEX_STAGE = "index"
_MTIME_TOLERANCE = 1e-6


@dataclass(frozen=True)
class FileError:
    """One path that ended the run in error state."""

    path: str
    error: str  # starts with the path's problem, e.g. "file is empty (0 bytes)"
    known: bool = False  # True: unchanged since an earlier run that recorded this error

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PathChange:
    """What a scan did to one path that was not unchanged (a line of a folder watch's log)."""

    path: str
    outcome: str  # "new" | "updated" | "moved" | "errors" | "ignored" | "missing"
    previous: str | None = None  # "moved": the path the row had before
    error: str | None = None  # "errors" and "ignored": why

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ScanReport:
    """What one scan did. Each path seen lands in exactly one of new/updated/unchanged/moved/errors."""

    roots: list[str]  # the scanned folders/files, absolute
    catalog: str  # where the catalog is (file path or URL without password)
    dry_run: bool = False
    new: int = 0  # paths added to the catalog with a good probe
    updated: int = 0  # known paths whose file changed
    unchanged: int = 0  # known paths with the same size and mtime (not read again)
    moved: int = 0  # rows that followed their content to a new path
    missing: int = 0  # rows under the scanned folders whose file is gone
    errors: int = 0  # paths in error state at the end of the run
    probed: int = 0  # ffprobe calls made
    ignored: int = 0  # paths skipped by an ignore glob or as r2cli's own output folders
    held: int = 0  # paths left alone because the caller said they are still being written
    file_errors: list[FileError] = field(default_factory=list)
    ignored_paths: list[FileError] = field(default_factory=list)  # skipped folders and why (not ignore globs)
    outside_roots: list[str] = field(default_factory=list)  # files found through symlinks leading outside roots
    changes: list[PathChange] = field(default_factory=list)  # every path not unchanged, in scan order
    elapsed: float = 0.0  # seconds

    @property
    def seen(self) -> int:
        """Paths found by the walk (every category but ``missing``)."""
        return self.new + self.updated + self.unchanged + self.moved + self.errors

    def to_dict(self) -> dict:
        data = asdict(self)
        # kept out of the JSON document (its keys are pinned by tests/catalog): in the text output only
        del data["ignored_paths"], data["outside_roots"], data["changes"], data["held"]
        data["seen"] = self.seen
        data["elapsed"] = round(self.elapsed, 3)
        return data


class ScanFailedError(InputError):
    """Raised after a strict scan in which some paths failed; the work done is committed."""

    def __init__(self, report: ScanReport) -> None:
        self.report = report
        first = report.file_errors[0] if report.file_errors else None
        detail = f"; first: {first.path}: {first.error}" if first else ""
        super().__init__(f"{report.errors} of {report.seen} paths failed (--strict){detail}")


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _same_file_state(row, st: os.stat_result) -> bool:
    return (
        row.size == st.st_size
        and row.mtime is not None
        and abs(row.mtime - st.st_mtime) <= _MTIME_TOLERANCE
    )


def _apply_probe(row, info) -> None:
    for name in (
        "duration", "fps", "max_fps", "frame_count", "width", "height", "display_width", "display_height",
        "rotation", "sample_aspect_ratio", "codec", "pixel_format", "has_audio", "audio_codec", "container",
        "title",
    ):  # fmt: skip
        setattr(row, name, getattr(info, name))


def _clear_probe(row) -> None:
    for name in (
        "duration", "fps", "max_fps", "frame_count", "width", "height", "display_width", "display_height",
        "rotation", "sample_aspect_ratio", "codec", "pixel_format", "has_audio", "audio_codec", "container",
        "title",
    ):  # fmt: skip
        setattr(row, name, None)


def scan_archive(
    paths: Sequence[str | os.PathLike],
    workspace: "Workspace",
    *,
    extensions: Iterable[str] | None = None,
    ignore: Sequence[str] = (),
    dry_run: bool = False,
    strict: bool = False,
    reporter: Reporter = NULL_REPORTER,
    lock_timeout: float = 0.0,
    hold: Iterable[str | os.PathLike] = (),
    gone: Iterable[str | os.PathLike] = (),
) -> ScanReport:
    """Bring the catalog up to date with the videos under ``paths``.

    Args:
        paths: folders (walked recursively) and/or single files.
        workspace: where the catalog is (``workspace.catalog_url``).
        extensions: file extensions to consider (default ``DEFAULT_EXTENSIONS``); case-insensitive.
        ignore: glob patterns matched against each name and each path relative to its root
            folder (``"*.part"``, ``"proxies"``, ``"raw/*"``); matching folders are not entered.
        dry_run: walk, stat and fingerprint new files to tell new from moved, but neither probe
            nor write anything (the workspace is not even created). Probe errors show only in a real run.
        strict: raise ``ScanFailedError`` at the end when any path failed (all work is kept).
        reporter: progress events (stages ``walk`` and ``index``).
        lock_timeout: seconds to wait for another writer before ``CatalogBusyError``.
        hold: files still being written (a folder watch's unsettled files): skipped by the walk,
            not fingerprinted, not marked missing; counted in ``held``.
        gone: paths (files or folders) the caller saw disappear: the rows at or under them whose
            file no longer exists are marked missing, as for a scanned folder, without walking
            them. ``paths`` may then be empty.

    Raises:
        UsageError: no paths (and nothing gone), a path that does not exist, bad extensions, negative lock_timeout.
        CatalogBusyError: another process is writing to the catalog.
        CatalogError: the catalog cannot be opened or written.
        MissingDependencyError: ffprobe is not installed (only when there is something to probe).
        ScanFailedError: ``strict`` and some paths failed.
    """
    from r2cli.catalog.db import Catalog, catalog_exists, describe_url

    started = time.monotonic()
    gone_paths = sorted({os.path.abspath(os.fspath(p)) for p in gone})
    if not paths and not gone_paths:
        raise UsageError("index needs at least one folder or file, e.g. `r2cli index ./archive`")
    roots: list[str] = []
    for raw in paths:
        text = os.fspath(raw)
        if not os.path.lexists(text):
            raise UsageError(f"{text}: no such file or folder")
        roots.append(os.path.abspath(text))
    exts = normalize_extensions(extensions)
    patterns = [p for p in ignore if p]
    if lock_timeout < 0:
        raise UsageError(f"--wait must be >= 0 seconds, got {lock_timeout:g}")

    report = ScanReport(roots=roots, catalog=describe_url(workspace.catalog_url), dry_run=dry_run)
    # Rows are keyed by real paths; the "missing" sweep must also match rows under resolved roots.
    sweep_roots = sorted(set(roots) | {os.path.realpath(r) for r in roots} | set(gone_paths))
    held = {os.path.realpath(os.fspath(p)) for p in hold}

    entries = _walk_entries(roots, exts, patterns, skip=str(workspace.root), held=held, sweep_roots=sweep_roots,
                            report=report, reporter=reporter)

    if dry_run:
        catalog = Catalog.open(workspace, create=False, migrate=False) if catalog_exists(workspace) else None
        try:
            _dry_run(catalog, entries, sweep_roots, report, reporter)
        finally:
            if catalog is not None:
                catalog.close()
    else:
        with Catalog.open(workspace) as catalog:
            with catalog.writer_lock(timeout=lock_timeout, purpose="r2cli index " + " ".join(roots)):
                _Indexer(catalog, report, reporter).run(entries, sweep_roots)
    report.elapsed = time.monotonic() - started
    if strict and report.errors:
        raise ScanFailedError(report)
    return report


def _walk_entries(roots: list[str], exts: frozenset[str], patterns: list[str], *, skip: str, held: set[str],
                  sweep_roots: list[str], report: ScanReport, reporter: Reporter) -> list[_Entry]:
    """The walk's entries to index; ignored names, names that are not UTF-8 and held files are counted on
    ``report`` instead, and files reached outside the roots (a symlink's target) are named there."""

    def count_ignored(path: str, reason: str | None = None) -> None:
        report.ignored += 1
        if reason is not None:
            report.ignored_paths.append(FileError(path=path, error=reason))

    reporter.begin(WALK_STAGE, None, unit="paths")
    entries: list[_Entry] = []
    for entry in walk(roots, exts, patterns, skip=(skip,), on_ignored=count_ignored):
        if not _utf8(entry.path):
            # the catalog stores paths as UTF-8 text; such a name cannot be a row, so say why instead
            count_ignored(os.fsencode(entry.path).decode("utf-8", "backslashreplace"),
                          "the file name is not valid UTF-8, so the catalog cannot store it; rename the file "
                          "(e.g. `convmv -f latin1 -t utf-8 --notest FILE`)")
            reporter.advance(WALK_STAGE, 1)
            continue
        if entry.path in held:
            report.held += 1
            reporter.advance(WALK_STAGE, 1)
            continue
        entries.append(entry)
        if entry.error is None and not _under(entry.path, sweep_roots):
            report.outside_roots.append(entry.path)  # a symlink's target: its features are due too
        reporter.advance(WALK_STAGE, 1)
    reporter.end(WALK_STAGE)
    return entries


class _Indexer:
    """Applies the rules of the module docstring, one committed transaction per path."""

    def __init__(self, catalog: "Catalog", report: ScanReport, reporter: Reporter) -> None:
        self.catalog = catalog
        self.report = report
        self.reporter = reporter
        self.ffprobe: str | None = None
        self._untouched: list[int] = []  # unchanged rows whose last_seen is still to be written
        self._moved_from: dict[str, str] = {}  # new path -> the path its row had (for the report's changes)

    def run(self, entries: list[_Entry], sweep_roots: list[str]) -> None:
        self.reporter.begin(INDEX_STAGE, len(entries), unit="files")
        seen: set[str] = set()
        links: dict[str, str | None] = {}
        for entry in entries:
            seen.add(entry.path)
            links[entry.path] = entry.link
            outcome = self._one(entry)
            setattr(self.report, outcome, getattr(self.report, outcome) + 1)
            if outcome != "unchanged":
                self._record_change(entry.path, outcome)
            r = self.report
            self.reporter.advance(
                INDEX_STAGE, 1, new=r.new, updated=r.updated, moved=r.moved, unchanged=r.unchanged, errors=r.errors
            )
        self._flush_touches()
        self.reporter.end(INDEX_STAGE)
        self._record_links(links)
        self._sweep_missing(seen, sweep_roots)

    def _record_links(self, links: dict[str, str | None]) -> None:
        """Write ``found_via`` of the rows found through a symlink, and clear it for rows found directly."""
        from sqlalchemy import select, update

        from r2cli.catalog.schema import Video

        with self.catalog.session(immediate=True) as session:
            found = select(Video.path, Video.found_via).where(Video.found_via.is_not(None))
            linked = dict(session.execute(found).all())
            for path, link in links.items():
                if link is None and path not in linked:
                    continue  # found at its own path, as before: nothing to write
                if linked.get(path) != link:
                    session.execute(update(Video).where(Video.path == path).values(found_via=link))

    def _record_change(self, path: str, outcome: str) -> None:
        previous = error = None
        if outcome == "moved":
            previous = self._moved_from.pop(path, None)
        elif outcome == "errors":
            error = next((e.error for e in reversed(self.report.file_errors) if e.path == path), None)
        elif outcome == "ignored":
            error = next((e.error for e in reversed(self.report.ignored_paths) if e.path == path), None)
        self.report.changes.append(PathChange(path, outcome, previous=previous, error=error))

    # -- one path ------------------------------------------------------------------------
    def _one(self, entry: _Entry) -> str:
        from sqlalchemy import select

        from r2cli.catalog.schema import Video

        with self.catalog.session() as session:
            row = session.scalars(select(Video).where(Video.path == entry.path)).one_or_none()
            snapshot = row.to_record() if row is not None else None

        if entry.error is not None:
            return self._record_error(entry, snapshot, entry.error, fingerprint=None, known=False)

        st = entry.stat
        assert st is not None
        if (
            snapshot is not None
            and snapshot.status != "missing"
            and _same_file_state(snapshot, st)
            and snapshot.fingerprint is not None
        ):
            self._touch(snapshot.id)
            if snapshot.status == "error":
                self.report.file_errors.append(FileError(entry.path, snapshot.error or "failed earlier", known=True))
                return "errors"
            return "unchanged"

        try:
            fingerprint = _fingerprint(entry.path)
        except OSError as exc:
            return self._record_error(entry, snapshot, f"cannot read it: {exc.strerror or exc}", None, False)

        if snapshot is not None:
            if snapshot.fingerprint == fingerprint and snapshot.status == "ok":
                self._refresh_state(snapshot.id, st)  # touched, same content
                return "unchanged"
            return self._probe_and_store(entry, snapshot, fingerprint, "updated")

        moved_from = self._moved_candidate(fingerprint, entry.path)
        if moved_from is not None:
            return self._move(moved_from, entry)
        return self._probe_and_store(entry, None, fingerprint, "new")

    def _moved_candidate(self, fingerprint: str, path: str):
        from sqlalchemy import select

        from r2cli.catalog.schema import Video

        with self.catalog.session() as session:
            candidates = session.scalars(
                select(Video).where(Video.fingerprint == fingerprint, Video.path != path).order_by(Video.id)
            ).all()
            for candidate in candidates:
                if not os.path.lexists(candidate.path):
                    return candidate.to_record()
        return None

    def _touch(self, row_id: int) -> None:
        # last_seen of unchanged rows is written in batches: one commit per unchanged file would
        # dominate a re-run of a large archive, and a lost batch (crash) only leaves last_seen older.
        self._untouched.append(row_id)
        if len(self._untouched) >= 500:
            self._flush_touches()

    def _flush_touches(self) -> None:
        from sqlalchemy import update

        from r2cli.catalog.schema import Video, utcnow

        if not self._untouched:
            return
        with self.catalog.session(immediate=True) as session:
            session.execute(update(Video).where(Video.id.in_(self._untouched)).values(last_seen=utcnow()))
        self._untouched.clear()

    def _refresh_state(self, row_id: int, st: os.stat_result) -> None:
        from sqlalchemy import update

        from r2cli.catalog.schema import Video, utcnow

        with self.catalog.session(immediate=True) as session:
            session.execute(
                update(Video).where(Video.id == row_id).values(size=st.st_size, mtime=st.st_mtime, last_seen=utcnow())
            )

    def _move(self, source, entry: _Entry) -> str:
        from r2cli.catalog.schema import Video, utcnow

        st = entry.stat
        assert st is not None
        with self.catalog.session(immediate=True) as session:
            row = session.get(Video, source.id)
            assert row is not None
            self._moved_from[entry.path] = row.path
            row.path = entry.path
            row.size = st.st_size
            row.mtime = st.st_mtime
            row.last_seen = utcnow()
            row.status = "error" if row.error else "ok"
            status, error = row.status, row.error
        if status == "error":
            self.report.file_errors.append(FileError(entry.path, error or "failed earlier", known=True))
            return "errors"
        return "moved"

    def _probe_and_store(self, entry: _Entry, snapshot, fingerprint: str, outcome: str) -> str:
        from r2cli.media.ffmpeg import find_ffprobe
        from r2cli.media.probe import probe

        if self.ffprobe is None:
            self.ffprobe = find_ffprobe()  # MissingDependencyError stops the run: nothing can be probed
        self.report.probed += 1
        try:
            info = probe(entry.path, ffprobe=self.ffprobe)
        except MediaError as exc:
            message = str(exc)
            prefix = f"{entry.path}: "
            return self._record_error(
                entry, snapshot, message[len(prefix):] if message.startswith(prefix) else message, fingerprint, False
            )
        from r2cli.catalog.schema import Video, utcnow
        from r2cli.paths import OUTPUT_COMMENT

        if info.comment == OUTPUT_COMMENT and snapshot is None:  # a cut or reel r2cli wrote: not archive material
            self.report.ignored_paths.append(FileError(entry.path, f"r2cli output (comment={OUTPUT_COMMENT!r}); not indexed"))
            return "ignored"
        st = entry.stat
        assert st is not None
        now = utcnow()
        with self.catalog.session(immediate=True) as session:
            row = session.get(Video, snapshot.id) if snapshot is not None else None
            if row is None:
                row = Video(path=entry.path, first_seen=now, features_status="none")
                session.add(row)
            if row.fingerprint != fingerprint:
                row.features_status, row.features_error = "none", None
            row.size, row.mtime, row.fingerprint = st.st_size, st.st_mtime, fingerprint
            _apply_probe(row, info)
            row.status, row.error = "ok", None
            row.last_seen = row.probed_at = now
        return outcome

    def _record_error(self, entry: _Entry, snapshot, message: str, fingerprint: str | None, known: bool) -> str:
        from r2cli.catalog.schema import Video, utcnow

        now = utcnow()
        st = entry.stat
        with self.catalog.session(immediate=True) as session:
            row = session.get(Video, snapshot.id) if snapshot is not None else None
            if row is None:
                row = Video(path=entry.path, first_seen=now, features_status="none")
                session.add(row)
            if fingerprint is None or row.fingerprint != fingerprint:
                row.features_status, row.features_error = "none", None
            row.size = st.st_size if st is not None else None
            row.mtime = st.st_mtime if st is not None else None
            row.fingerprint = fingerprint
            _clear_probe(row)
            row.status, row.error = "error", message
            row.last_seen = now
            if fingerprint is not None:
                row.probed_at = now
        self.report.file_errors.append(FileError(entry.path, message, known=known))
        return "errors"

    # -- the end -------------------------------------------------------------------------
    def _sweep_missing(self, seen: set[str], sweep_roots: list[str]) -> None:
        from sqlalchemy import select

        from r2cli.catalog.schema import Video

        near = _under_clause(Video.path, sweep_roots)  # a watch's batch of a few files reads a few rows
        with self.catalog.session(immediate=True) as session:
            live = select(Video).where(Video.status != "missing")
            for row in session.scalars(live if near is None else live.where(near)):
                if row.path in seen or not _under(row.path, sweep_roots) or os.path.lexists(row.path):
                    continue
                row.status = "missing"
                self.report.changes.append(PathChange(row.path, "missing"))
            # rows found through a symlink under these folders: the link is gone or leads elsewhere now
            via = _under_clause(Video.found_via, sweep_roots)
            linked = select(Video).where(Video.status != "missing", Video.found_via.is_not(None))
            for row in session.scalars(linked if via is None else linked.where(via)):
                if row.path in seen or not _under(row.found_via, sweep_roots):
                    continue
                if os.path.lexists(row.found_via) and os.path.realpath(row.found_via) == row.path:
                    continue
                row.status = "missing"
                self.report.changes.append(PathChange(row.path, "missing"))
            session.flush()
            gone = select(Video.path, Video.found_via).where(Video.status == "missing")
            if near is not None and via is not None:
                from sqlalchemy import or_

                gone = gone.where(or_(near, via))
            self.report.missing = sum(
                1 for path, found_via in session.execute(gone)
                if _under(path, sweep_roots) or (found_via is not None and _under(found_via, sweep_roots))
            )


_SQL_ROOTS = 100  # above this many roots the sweep reads every row (one OR term per root would get too deep)


def _under_clause(column, roots: Sequence[str]):
    """SQL keeping the rows at or under ``roots`` (a superset: LIKE may ignore case; ``_under`` decides), or None."""
    from sqlalchemy import or_

    if not roots or len(roots) > _SQL_ROOTS:
        return None
    terms = []
    for root in roots:
        terms += [column == root, column.startswith(root.rstrip(os.sep) + os.sep, autoescape=True)]
    return or_(*terms)


def _fingerprint(path: str) -> str:
    from r2cli.catalog.fingerprint import fingerprint_file

    return fingerprint_file(path)


def _dry_run(catalog: "Catalog | None", entries: list[_Entry], sweep_roots: list[str], report: ScanReport,
             reporter: Reporter) -> None:
    """Classify like a real run without probing or writing."""
    from sqlalchemy import select

    from r2cli.catalog.schema import Video

    rows = []
    if catalog is not None:
        with catalog.session() as session:
            rows = [row.to_record() for row in session.scalars(select(Video))]
    by_path = {row.path: row for row in rows}
    by_fingerprint: dict[str, list] = {}
    for row in rows:
        if row.fingerprint:
            by_fingerprint.setdefault(row.fingerprint, []).append(row)
    claimed: set[int] = set()
    seen: set[str] = set()
    reporter.begin(INDEX_STAGE, len(entries), unit="files")
    for entry in entries:
        seen.add(entry.path)
        outcome = _dry_outcome(entry, by_path, by_fingerprint, claimed, report)
        setattr(report, outcome, getattr(report, outcome) + 1)
        reporter.advance(INDEX_STAGE, 1)
    reporter.end(INDEX_STAGE)
    report.missing = sum(
        1
        for row in rows
        if _under(row.path, sweep_roots)
        and (row.status == "missing" or (row.path not in seen and not os.path.lexists(row.path)))
        and row.id not in claimed
    )


def _dry_outcome(entry: _Entry, by_path: dict, by_fingerprint: dict, claimed: set[int], report: ScanReport) -> str:
    if entry.error is not None:
        report.file_errors.append(FileError(entry.path, entry.error))
        return "errors"
    st = entry.stat
    assert st is not None
    row = by_path.get(entry.path)
    if row is not None and row.status != "missing" and _same_file_state(row, st) and row.fingerprint:
        if row.status == "error":
            report.file_errors.append(FileError(entry.path, row.error or "failed earlier", known=True))
            return "errors"
        return "unchanged"
    if row is not None:
        return "updated"
    try:
        fingerprint = _fingerprint(entry.path)
    except OSError as exc:
        report.file_errors.append(FileError(entry.path, f"cannot read it: {exc.strerror or exc}"))
        return "errors"
    for candidate in by_fingerprint.get(fingerprint, []):
        if candidate.id not in claimed and not os.path.lexists(candidate.path):
            claimed.add(candidate.id)
            return "moved"
    return "new"


def _utf8(path: str) -> bool:
    """Whether a path (as the OS gave it: undecodable bytes become surrogates) is valid UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
