"""``r2cli index --watch``: keep the catalog and the features up to date while files arrive.

The watch is ``run_index`` called again and again, never a second indexing path:

1. **Start**: the folders are watched first (so nothing that happens meanwhile is lost), then
   listed twice, ``settle`` seconds apart; one ``run_index`` over the whole folders follows, with
   the files that changed between the two listings *held* (left alone). That scan finds what a
   stopped or killed watch left pending, marks what was deleted meanwhile missing, and extracts
   the features that are due.
2. **Events** (watchdog: inotify on local disks, polling on network file systems) only say which
   paths to look at. A created or changed video file becomes *pending*; it is indexed once its size
   and mtime have stayed the same for ``settle`` seconds (and no write event came meanwhile), so a
   file still being copied is never fingerprinted. A deleted path waits as long (a rename is a
   deletion and a creation) and then has its rows marked missing.
3. **Batches**: the settled files and the settled deletions go to one ``run_index`` call, which
   takes the catalog's writer lock for the batch only: an idle watch holds no lock and no open
   catalog. A renamed file is recognised by its content fingerprint (the catalog's *moved* rule),
   so its probe and features are kept, not made again. A busy catalog or a failed batch is tried
   again later; nothing pending is dropped.

Each thing that happens is a ``WatchEvent`` handed to ``on_event`` (the CLI prints one line per
event, JSON with ``--json``); this module never prints. The watch ends when ``stop`` is set (noticed
within ``_TICK_SECONDS`` between batches) or on ``KeyboardInterrupt`` (Ctrl-C, and SIGTERM as the CLI
maps it), which also interrupts a batch in flight: the files committed so far stay, the next start finds the rest.
"""

from __future__ import annotations

import os
import queue
import stat as stat_module
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from r2cli.app.index import IndexOptions, run_index
from r2cli.errors import CatalogBusyError, MissingDependencyError, R2Error, UsageError
from r2cli.progress import NULL_REPORTER, Reporter
from r2cli.times import iso_local

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.app.index import IndexResult
    from r2cli.paths import Workspace

# File systems whose changes made on another machine never reach this kernel's inotify: polled.
NETWORK_FILE_SYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "afs", "ceph", "glusterfs", "lustre", "gpfs",
    "9p", "davfs", "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse", "fuse.glusterfs", "fuse.cephfs",
    "fuse.davfs", "fuse.smbnetfs", "fuse.juicefs", "beegfs", "ocfs2", "gfs2", "vboxsf", "vmhgfs", "fuse.vmhgfs-fuse",
})  # fmt: skip

_TICK_SECONDS = 0.25  # the longest the loop sleeps: how soon a stop or a settled file is noticed
_RETRY_SECONDS = (2.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0)  # waits after failed batches, in turn


@dataclass(frozen=True)
class WatchEvent:
    """One thing the watch did or saw.

    ``kind`` is one of:
    ``watching`` (a folder is watched; ``mode``), ``scan`` (the full scan at start or after lost
    events is done; its counts), ``pending`` (a file appeared or changed; indexed once it settles),
    ``new``, ``updated``, ``moved`` (``previous``: the old path), ``unchanged``, ``error`` (``error``),
    ``ignored`` and ``missing`` (the catalog's outcome for one path), ``features`` (a batch's
    extraction; its counts), ``features-failed`` (``error``), ``busy`` (the catalog is being written
    by another process; ``retry_in``), ``failed`` (a batch failed; ``error``, ``retry_in``), ``warning``
    (``message``), ``rescan`` (events were lost; ``reason``) and ``stopped`` (``reason``).
    """

    kind: str
    path: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)  # seconds since the epoch

    def to_dict(self) -> dict[str, Any]:
        """``{"time": ISO 8601 local time with offset, "event": kind, "path": path or null, **detail}``."""
        return {"time": iso_local(self.time, timespec="milliseconds"), "event": self.kind, "path": self.path,
                **self.detail}


@dataclass
class WatchSummary:
    """What a watch did, when it has stopped."""

    started: float  # seconds since the epoch
    stopped: float = 0.0
    reason: str = ""  # "stop requested" | "interrupted"
    batches: int = 0  # run_index calls after the start scan
    counts: dict[str, int] = field(default_factory=dict)  # events per kind

    def to_dict(self) -> dict[str, Any]:
        return {"started": self.started, "stopped": self.stopped, "reason": self.reason, "batches": self.batches,
                "counts": dict(self.counts)}


# -- which observer ----------------------------------------------------------------------------


def file_system_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The file system type of the mount that holds ``path`` (Linux), or None when unknown."""
    target = os.path.realpath(path)
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        mount_point = _unescape_mount(fields[4])
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= best[0]):  # the last of equal mounts is on top
            best = (len(mount_point), tail[0])
    return best[1] if best else None


def _unescape_mount(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash in octal (\040)
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 4 <= len(text) and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def choose_mode(path: str, requested: str, *, fs_type: str | None = None) -> str:
    """``"inotify"`` or ``"poll"`` for a folder: ``requested`` unless it is ``"auto"``.

    ``auto`` polls on network file systems (``NETWORK_FILE_SYSTEMS``; changes made by other machines
    never reach inotify) and uses the OS's native events elsewhere. ``fs_type`` overrides the lookup.
    """
    if requested != "auto":
        return requested
    kind = fs_type if fs_type is not None else file_system_type(path)
    return "poll" if kind is not None and kind.lower() in NETWORK_FILE_SYSTEMS else "inotify"


# -- settling ----------------------------------------------------------------------------------


@dataclass
class _Pending:
    state: tuple[int, int]  # (size, mtime in ns) when last looked at
    since: float  # monotonic time of the last change seen (stat or write event)


class SettleTracker:
    """Which files have settled: pure bookkeeping, time passed in, so tests need no clock.

    ``touch`` a path when an event names it; ``poll`` looks at every pending file (one ``stat``
    each) and returns the files whose size and mtime have not changed, nor had a write event, for
    ``settle`` seconds, and the deleted paths that stayed deleted that long.
    """

    def __init__(self, settle: float, stat: Callable[[str], os.stat_result] = os.stat) -> None:
        self.settle = settle
        self._stat = stat
        self.pending: dict[str, _Pending] = {}
        self.gone: dict[str, float] = {}  # path -> monotonic time it was seen gone

    def touch(self, path: str, now: float, *, changed: bool = True) -> bool:
        """Start (or, with ``changed``, restart) the wait of ``path``; True when it was not pending."""
        self.gone.pop(path, None)
        item = self.pending.get(path)
        if item is not None:
            if changed:
                item.since = now
            return False
        state = self._state(path)
        if state is None:
            self.gone[path] = now
            return False
        self.pending[path] = _Pending(state, now)
        return True

    def vanish(self, path: str, now: float) -> None:
        """``path`` (a file or a folder) was deleted or renamed away."""
        prefix = path.rstrip(os.sep) + os.sep
        for known in [p for p in self.pending if p == path or p.startswith(prefix)]:
            del self.pending[known]
        self.gone[path] = now

    def poll(self, now: float) -> tuple[list[str], list[str]]:
        """(settled files, settled deletions), both removed from the tracker; sorted."""
        ready: list[str] = []
        for path, item in list(self.pending.items()):
            state = self._state(path)
            if state is None:
                del self.pending[path]
                self.gone[path] = now
            elif state != item.state:
                item.state, item.since = state, now
            elif now - item.since >= self.settle:
                ready.append(path)
                del self.pending[path]
        gone = [path for path, since in self.gone.items() if now - since >= self.settle]
        for path in gone:
            del self.gone[path]
        return sorted(ready), sorted(gone)

    def _state(self, path: str) -> tuple[int, int] | None:
        try:
            st = self._stat(path)
        except OSError:
            return None
        if not stat_module.S_ISREG(st.st_mode):
            return None
        return st.st_size, st.st_mtime_ns


# -- which paths matter ------------------------------------------------------------------------


class _Filter:
    """Whether an event's path is a video the index would take: extension, ignore globs, r2cli's own folders."""

    def __init__(self, roots: list[str], options: IndexOptions, workspace_root: str) -> None:
        from r2cli.catalog.walk import normalize_extensions

        self.roots = sorted(roots, key=len, reverse=True)  # the deepest root first
        self.extensions = normalize_extensions(options.extensions)
        self.ignore = [p for p in options.ignore if p]
        self.workspace = workspace_root.rstrip(os.sep)

    def root_of(self, path: str) -> str | None:
        for root in self.roots:
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                return root
        return None

    def wants_file(self, path: str) -> bool:
        import fnmatch

        from r2cli.paths import OUTPUT_MARKER

        root = self.root_of(path)
        if root is None or path == self.workspace or path.startswith(self.workspace + os.sep):
            return False
        _, dot, ext = os.path.basename(path).rpartition(".")
        if not dot or ext.lower() not in self.extensions:
            return False
        if path == root:
            return True
        parts = os.path.relpath(path, root).split(os.sep)
        folder = root
        for depth, name in enumerate(parts):
            relative = "/".join(parts[:depth + 1])
            if any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in self.ignore):
                return False
            if depth < len(parts) - 1:
                folder = os.path.join(folder, name)
                if os.path.isfile(os.path.join(folder, OUTPUT_MARKER)):
                    return False
        return not os.path.isfile(os.path.join(root, OUTPUT_MARKER))

    def wants_folder(self, path: str) -> bool:
        in_workspace = path == self.workspace or path.startswith(self.workspace + os.sep)
        return self.root_of(path) is not None and not in_workspace


# -- the watch ---------------------------------------------------------------------------------


def watch_index(
    workspace: "Workspace",
    options: IndexOptions,
    *,
    on_event: Callable[[WatchEvent], None],
    stop: threading.Event | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> WatchSummary:
    """Index ``options.paths``, then keep indexing them as files arrive, change, move and go.

    ``options.watch`` need not be set; ``settle``, ``watch_mode`` and ``poll_interval`` apply.

    Returns when ``stop`` is set (seen between batches, within a quarter second) or on
    ``KeyboardInterrupt``, which also abandons a batch in flight (both end with a ``stopped`` event).

    Raises:
        UsageError: a folder to watch is not a folder or file; ``watch_mode="inotify"`` where the OS
            has no inotify, or inotify cannot watch a folder (its limits).
        MissingDependencyError: the ``watchdog`` package is not installed.
        MissingWeightsError, CatalogError, ...: from the start scan (``run_index``), which must
            succeed once; later batches that fail are logged and tried again.
    """
    watcher = _Watch(workspace, options, on_event, stop or threading.Event(), reporter)
    return watcher.run()


class _Watch:
    def __init__(self, workspace: "Workspace", options: IndexOptions, on_event: Callable[[WatchEvent], None],
                 stop: threading.Event, reporter: Reporter) -> None:
        self.workspace = workspace
        self.options = options
        self.on_event = on_event
        self.stop = stop
        self.reporter = reporter
        self.roots = [os.path.abspath(os.fspath(p)) for p in options.paths or ()]
        self.filter = _Filter(self.roots, options, os.path.abspath(os.fspath(workspace.root)))
        self.tracker = SettleTracker(options.settle)
        self.events: queue.SimpleQueue = queue.SimpleQueue()  # raw watchdog events from the observer threads
        self.summary = WatchSummary(started=time.time())
        self.observers: list[Any] = []
        self.scan_due: float | None = None  # monotonic time of the next full scan, None: none due
        self.snapshot: dict[str, tuple[int, int]] = {}  # the listing that the full scan compares against
        self.retry_at = 0.0
        self.failures = 0

    # -- events out --------------------------------------------------------------------------
    def emit(self, kind: str, path: str | None = None, **detail: Any) -> None:
        self.summary.counts[kind] = self.summary.counts.get(kind, 0) + 1
        self.on_event(WatchEvent(kind, path, detail))

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> WatchSummary:
        reason = "stop requested"
        try:
            self.start_observers()
            self.plan_full_scan(time.monotonic())
            while not self.stop.is_set():
                now = time.monotonic()
                self.drain(now)
                if self.scan_due is not None:
                    if now >= self.scan_due and now >= self.retry_at:
                        self.full_scan(now)
                elif now >= self.retry_at:
                    files, gone = self.tracker.poll(now)
                    if files or gone:
                        self.batch(files, gone)
                self.stop.wait(_TICK_SECONDS)
        except KeyboardInterrupt:
            reason = "interrupted"
        finally:
            self.stop_observers()
        self.summary.stopped = time.time()
        self.summary.reason = reason
        self.emit("stopped", reason=reason)
        return self.summary

    def start_observers(self) -> None:
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers.polling import PollingObserver
        except ImportError:
            raise MissingDependencyError(
                "index --watch needs the watchdog package: pip install 'watchdog>=4'") from None

        events = self.events

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                events.put(event)

        handler = Handler()
        native = None
        poller = None
        for root in self.roots:
            folder, recursive = (root, True) if os.path.isdir(root) else (os.path.dirname(root), False)
            mode = choose_mode(folder, self.options.watch_mode)
            if mode == "inotify":
                try:
                    if native is None:
                        native = _native_observer()
                        native.start()
                        self.observers.append(native)
                    native.schedule(handler, folder, recursive=recursive)
                except OSError as exc:  # inotify limits (max_user_watches, max_user_instances)
                    problem = (f"inotify cannot watch {folder}: {exc.strerror or exc} (raise "
                               "fs.inotify.max_user_watches, or use --watch-mode poll)")
                    if self.options.watch_mode == "inotify":
                        raise UsageError(problem) from None
                    self.emit("warning", folder, message=problem + "; polling it instead")
                    mode = "poll"
            if mode == "poll":
                if poller is None:
                    poller = PollingObserver(timeout=self.options.poll_interval)
                    poller.start()
                    self.observers.append(poller)
                poller.schedule(handler, folder, recursive=recursive)
            self.emit("watching", root, mode=mode, file_system=file_system_type(folder), settle=self.options.settle)

    def stop_observers(self) -> None:
        for observer in self.observers:
            observer.stop()
        for observer in self.observers:
            observer.join(timeout=5)
        self.observers.clear()

    # -- events in ---------------------------------------------------------------------------
    def drain(self, now: float) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self.take(event, now)

    def take(self, event: Any, now: float) -> None:
        kind = event.event_type
        if kind == "events_lost":
            if self.scan_due is None:
                self.emit("rescan", event.src_path, reason="the file system dropped events (too many at once)")
                self.plan_full_scan(now)
            return
        if kind in ("opened", "closed_no_write"):
            return  # reads, ours included
        source = _text(event.src_path)
        if kind == "moved":
            self.gone_path(source, now, folder=event.is_directory)
            self.arrived(_text(event.dest_path), now, folder=event.is_directory)
        elif kind == "deleted":
            self.gone_path(source, now, folder=event.is_directory)
        elif event.is_directory:
            if kind == "created":
                self.arrived(source, now, folder=True)
        else:  # created, modified, closed (after writing), attrib
            self.arrived(source, now, folder=False)

    def arrived(self, path: str, now: float, *, folder: bool) -> None:
        if not folder:
            if self.filter.wants_file(path) and self.tracker.touch(path, now):
                self.emit("pending", path)
            return
        if not self.filter.wants_folder(path):
            return
        for file in self.list_files([path]):  # a folder moved or copied in: its files came with it
            if self.filter.wants_file(file) and self.tracker.touch(file, now, changed=False):
                self.emit("pending", file)

    def gone_path(self, path: str, now: float, *, folder: bool) -> None:
        if (self.filter.wants_folder(path) if folder else self.filter.wants_file(path)):
            self.tracker.vanish(path, now)

    def list_files(self, folders: Iterable[str]) -> dict[str, tuple[int, int]]:
        """Every candidate video under ``folders`` -> (size, mtime in ns), as the index's own walk finds them."""
        from r2cli.catalog.walk import normalize_extensions, walk

        found: dict[str, tuple[int, int]] = {}
        entries = walk(list(folders), normalize_extensions(self.options.extensions),
                       [p for p in self.options.ignore if p], skip=(self.filter.workspace,))
        for entry in entries:
            if entry.stat is not None and entry.error is None:
                found[entry.path] = (entry.stat.st_size, entry.stat.st_mtime_ns)
        return found

    # -- the full scan -----------------------------------------------------------------------
    def plan_full_scan(self, now: float) -> None:
        self.snapshot = self.list_files(self.roots)
        self.scan_due = now + self.options.settle

    def full_scan(self, now: float) -> None:
        listing = self.list_files(self.roots)
        changed = {path for path, state in listing.items() if self.snapshot.get(path) != state}
        for path in sorted(changed):
            if self.tracker.touch(path, now, changed=False):
                self.emit("pending", path)
        hold: set[str] = set()
        for path, item in list(self.tracker.pending.items()):
            if path in changed or now - item.since < self.options.settle:
                hold.add(path)  # still being written: left to a later batch
            else:
                del self.tracker.pending[path]  # settled meanwhile: this scan takes it
        self.tracker.gone.clear()  # the scan's sweep covers every deletion under the folders
        options = self.options.replace(paths=tuple(self.roots))
        result = self.index(options, hold=sorted(hold), gone=[], start=True)
        if result is None:
            self.plan_retry_of_scan()
            return
        self.scan_due = None
        scan = result.scan
        self.emit("scan", None, new=scan.new, updated=scan.updated, moved=scan.moved, unchanged=scan.unchanged,
                  missing=scan.missing, errors=scan.errors, held=scan.held, seconds=round(scan.elapsed, 3))

    def plan_retry_of_scan(self) -> None:
        self.snapshot = self.list_files(self.roots)
        self.scan_due = self.retry_at

    # -- batches -----------------------------------------------------------------------------
    def batch(self, files: list[str], gone: list[str]) -> None:
        self.summary.batches += 1
        options = self.options.replace(paths=tuple(files))
        result = self.index(options, hold=[], gone=gone, start=False)
        if result is None:  # put everything back; it is tried again after the wait
            now = time.monotonic()
            for path in files:
                self.tracker.touch(path, now - self.options.settle, changed=False)
            for path in gone:
                self.tracker.gone.setdefault(path, now - self.options.settle)
            return
        reported = {change.path for change in result.scan.changes}
        for path in files:
            real = os.path.realpath(path)
            if real not in reported and os.path.lexists(path):
                self.emit("unchanged", path)

    def index(self, options: IndexOptions, *, hold: list[str], gone: list[str], start: bool) -> "IndexResult | None":
        """One ``run_index``; its per-path outcomes as events. None when it failed and is to be tried again."""
        try:
            result = run_index(self.workspace, options, reporter=self.reporter, hold=hold, gone=gone)
        except CatalogBusyError as exc:
            self.plan_wait()
            self.emit("busy", None, message=str(exc), retry_in=round(self.retry_at - time.monotonic(), 1))
            return None
        except R2Error as exc:
            if start:
                raise  # a watch that cannot index once (no weights, no catalog) says so and ends
            self.plan_wait()
            self.emit("failed", None, error=str(exc), retry_in=round(self.retry_at - time.monotonic(), 1))
            return None
        self.failures = 0
        self.retry_at = 0.0
        for change in result.scan.changes:
            detail: dict[str, Any] = {}
            if change.previous is not None:
                detail["previous"] = change.previous
            if change.error is not None:
                detail["error"] = change.error
            self.emit("error" if change.outcome == "errors" else change.outcome, change.path, **detail)
        extracted = result.features
        if extracted is not None:
            self.emit("features", None, extracted=extracted.videos_extracted, skipped=extracted.videos_skipped,
                      failed=extracted.videos_failed, clips=extracted.clips, seconds=round(extracted.wall_seconds, 3))
            for failure in extracted.failures:
                self.emit("features-failed", failure.path, error=failure.error)
        return result

    def plan_wait(self) -> None:
        wait = _RETRY_SECONDS[min(self.failures, len(_RETRY_SECONDS) - 1)]
        self.failures += 1
        self.retry_at = time.monotonic() + wait


def _native_observer() -> Any:
    """The OS's native observer (inotify on Linux), or ``UsageError`` where there is none."""
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    if Observer is PollingObserver:
        raise UsageError("this system has no native file events (inotify); use --watch-mode poll")
    return Observer()


def _text(path: str | bytes) -> str:
    return os.fsdecode(path) if isinstance(path, bytes) else path
