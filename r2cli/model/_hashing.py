"""SHA-256 checks of weights files (private plumbing of ``r2cli.model.registry``).

Kept by hand because neither library does it: huggingface_hub compares only the server's ETag (and
not at all for a file put in place by hand), and open_clip checks only files whose URL carries the
digest, reading the whole file into memory to do it. r2cli checks every file, cached or local, against
the registry's full digest or 8-hex prefix, streaming it in 1 MiB blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

from r2cli.errors import InputError, MissingWeightsError

CHUNK_BYTES = 1 << 20
_HEX = re.compile(r"^[0-9a-f]{8,64}$")


class WeightsChecksumError(MissingWeightsError):
    """A weights file's SHA-256 does not match the registry (corrupt or wrong file)."""


def check_digest(digest: str, where: str) -> None:
    """Refuse a manifest digest that is not 8 to 64 lower-case hex digits.

    Raises:
        InputError: naming ``where`` (the manifest file and entry).
    """
    if not _HEX.match(digest):
        raise InputError(f"{where}: sha256 must be 8 to 64 lower-case hex digits, got {digest!r}")


def sidecar(path: Path) -> Path:
    """The ``<file>.sha256`` note that remembers a verified file's digest, size and mtime."""
    return path.with_name(path.name + ".sha256")


_hash_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Full SHA-256 (hex) of a file; memoised per (path, size, mtime) within the process.

    Raises:
        MissingWeightsError: the file cannot be read.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise MissingWeightsError(f"cannot read {path} ({exc.strerror})") from exc
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_memo:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
                digest.update(block)
        _hash_memo[key] = digest.hexdigest()
    return _hash_memo[key]


def digest_matches(actual: str, expected: str) -> bool:
    """Does a full digest start with the expected digest or prefix?"""
    return bool(expected) and actual.startswith(expected.lower())


def remember(path: Path, digest: str) -> None:
    """Write the ``.sha256`` note for a verified file (best effort: a read-only cache still works)."""
    stat = path.stat()
    with contextlib.suppress(OSError):
        sidecar(path).write_text(f"{digest} {stat.st_size} {stat.st_mtime_ns}\n", encoding="utf-8")


def verify_file(path: str | os.PathLike, sha256: str, *, what: str = "") -> str:
    """Check a file's SHA-256 against a full digest or a prefix; return the full digest.

    A verified file gets a ``<file>.sha256`` note (digest, size, mtime) so that later runs skip
    re-hashing it until the file changes.

    Raises:
        WeightsChecksumError: the digest does not match (the message says to delete or replace the file).
    """
    path = Path(path)
    stat = path.stat()
    with contextlib.suppress(OSError, ValueError):
        digest, size, mtime = sidecar(path).read_text(encoding="utf-8").split()
        if int(size) == stat.st_size and int(mtime) == stat.st_mtime_ns and digest_matches(digest, sha256):
            return digest
    actual = file_sha256(path)
    if not digest_matches(actual, sha256):
        raise WeightsChecksumError(
            f"{what or path.name}: {path} has sha256 {actual[:16]}..., expected {sha256[:16]}...; "
            "the file is corrupt or not the published one: delete it and download it again"
        )
    remember(path, actual)
    return actual
