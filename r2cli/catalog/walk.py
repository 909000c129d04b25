"""Finding candidate videos under folders: the walk of ``r2cli index`` (no catalog, no probing).

Directory symlinks are followed once, symlink loops and special files are reported as entries with
an error, folders holding ``r2cli.paths.OUTPUT_MARKER`` (r2cli's own cuts and reels) are skipped.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat as stat_module
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from r2cli.errors import UsageError

DEFAULT_EXTENSIONS: tuple[str, ...] = (
    "3gp", "avi", "flv", "m2ts", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "mts", "mxf", "ogv", "ts",
    "webm", "wmv",
)  # fmt: skip
_OUTPUT_REASON = "r2cli output folder (holds .r2cli-output); not indexed"


@dataclass(frozen=True)
class _Entry:
    path: str  # absolute; symlinks resolved for files
    stat: os.stat_result | None  # for files
    error: str | None = None  # for paths that cannot be videos
    link: str | None = None  # the walked path when it differs from ``path`` (found through a symlink)


def normalize_extensions(extensions: Iterable[str] | None) -> frozenset[str]:
    """Lower-case extensions without dots; ``None`` means ``DEFAULT_EXTENSIONS``.

    Accepts "mp4", ".MP4" and comma-separated lists ("mp4,mkv").

    Raises:
        UsageError: an empty list or an extension with a path separator or wildcard.
    """
    if extensions is None:
        return frozenset(DEFAULT_EXTENSIONS)
    found: set[str] = set()
    for item in extensions:
        for part in str(item).split(","):
            ext = part.strip().lstrip(".").lower()
            if not ext:
                continue
            if any(ch in ext for ch in "/\\*?[]"):
                raise UsageError(f"--ext takes plain extensions like 'mp4' or '.mkv', got {part.strip()!r}")
            found.add(ext)
    if not found:
        raise UsageError("--ext needs at least one extension, e.g. --ext mp4 --ext mkv")
    return frozenset(found)


def _has_extension(name: str, extensions: frozenset[str]) -> bool:
    _, dot, ext = name.rpartition(".")
    return bool(dot) and ext.lower() in extensions


def _ignored(name: str, relative: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in patterns)


def _kind(mode: int) -> str:
    for test, word in (
        (stat_module.S_ISFIFO, "a named pipe"),
        (stat_module.S_ISSOCK, "a socket"),
        (stat_module.S_ISCHR, "a character device"),
        (stat_module.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return word
    return "not a regular file"


def walk(
    roots: Sequence[str],
    extensions: frozenset[str],
    ignore: Sequence[str] = (),
    *,
    skip: Sequence[str] = (),
    on_ignored=None,
) -> Iterator[_Entry]:
    """Yield every candidate video under ``roots`` (sorted, recursive, following symlinks once).

    Directory symlinks are followed, but a folder already on the current path (a symlink loop)
    is reported, and a folder reached twice through different links is walked once. A folder
    holding ``OUTPUT_MARKER`` (r2cli's own cuts and reels) is not entered: ``on_ignored(path,
    reason)`` is told (``on_ignored(path)`` for ignore globs).
    """
    walker = _Walker(extensions, ignore, skip, on_ignored)
    for root in roots:
        yield from walker.root(root)


class _Walker:
    """One walk's state: the folders visited (by device and inode) and the files seen (by real path)."""

    def __init__(self, extensions: frozenset[str], ignore: Sequence[str], skip: Sequence[str], on_ignored) -> None:
        self.extensions = extensions
        self.ignore = ignore
        self.skip = skip
        self.on_ignored = on_ignored
        self.visited_dirs: set[tuple[int, int]] = set()
        self.seen_files: set[str] = set()

    @staticmethod
    def output_folder(path: str) -> bool:
        from r2cli.paths import OUTPUT_MARKER

        return os.path.isfile(os.path.join(path, OUTPUT_MARKER))

    def file_entry(self, path: str, st: os.stat_result) -> _Entry | None:
        real = os.path.realpath(path)
        if real in self.seen_files:
            return None
        self.seen_files.add(real)
        return _Entry(real, st, link=path if path != real else None)

    def root(self, root: str) -> Iterator[_Entry]:
        root_abs = os.path.abspath(root)
        try:
            root_stat = os.stat(root_abs)
        except OSError as exc:
            yield _Entry(root_abs, None, f"cannot read it: {exc.strerror or exc}")
            return
        if not stat_module.S_ISDIR(root_stat.st_mode):
            if stat_module.S_ISREG(root_stat.st_mode):
                entry = self.file_entry(root_abs, root_stat)
                if entry:
                    yield entry
            else:
                yield _Entry(root_abs, None, f"is {_kind(root_stat.st_mode)}, not a video file")
            return
        # (folder, the (dev, inode) of every folder above it): the ancestry detects loops
        stack: list[tuple[str, frozenset[tuple[int, int]]]] = []
        key = (root_stat.st_dev, root_stat.st_ino)
        if key in self.visited_dirs:
            return
        if self.output_folder(root_abs):
            if self.on_ignored:
                self.on_ignored(root_abs, _OUTPUT_REASON)
            return
        self.visited_dirs.add(key)
        stack.append((root_abs, frozenset({key})))
        while stack:
            folder, ancestors = stack.pop()
            try:
                with os.scandir(folder) as iterator:
                    children = sorted(iterator, key=lambda e: e.name)
            except OSError as exc:
                yield _Entry(folder, None, f"cannot list this folder: {exc.strerror or exc}")
                continue
            subfolders: list[tuple[str, frozenset[tuple[int, int]]]] = []
            for child in children:
                yield from self.child(child, root_abs, ancestors, subfolders)
            stack.extend(reversed(subfolders))  # depth-first, in name order

    def child(self, child: os.DirEntry, root_abs: str, ancestors: frozenset[tuple[int, int]],
              subfolders: list[tuple[str, frozenset[tuple[int, int]]]]) -> Iterator[_Entry]:
        """The entries of one folder entry; a folder to enter is added to ``subfolders``."""
        path = child.path
        if path in self.skip:
            return
        relative = os.path.relpath(path, root_abs).replace(os.sep, "/")
        if self.ignore and _ignored(child.name, relative, self.ignore):
            if self.on_ignored:
                self.on_ignored(path)
            return
        named_like_video = _has_extension(child.name, self.extensions)
        try:
            st = os.stat(path)  # follows symlinks
        except OSError as exc:
            if not child.is_symlink():
                if named_like_video:
                    yield _Entry(path, None, f"cannot read it: {exc.strerror or exc}")
                return
            target = _readlink(path)
            if exc.errno == errno.ELOOP:
                yield _Entry(path, None, f"symlink loop: {path} -> {target} never reaches a file")
            elif named_like_video:
                yield _Entry(path, None, f"broken symlink: {path} -> {target} does not exist")
            return
        if stat_module.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                yield _Entry(
                    path, None,
                    f"symlink loop: {path} -> {_readlink(path)} leads back to a folder above it; not followed",
                )
                return
            if self.output_folder(path):
                if self.on_ignored:
                    self.on_ignored(path, _OUTPUT_REASON)
                return
            if named_like_video:
                yield _Entry(path, None, "is a directory, not a video file (its contents are scanned)")
            if key in self.visited_dirs:
                return
            self.visited_dirs.add(key)
            subfolders.append((path, ancestors | {key}))
        elif named_like_video:
            if stat_module.S_ISREG(st.st_mode):
                entry = self.file_entry(path, st)
                if entry:
                    yield entry
            else:
                yield _Entry(path, None, f"is {_kind(st.st_mode)}, not a video file")


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
