"""Content fingerprints: a moved or renamed file keeps its fingerprint, an edited one does not."""

from __future__ import annotations

import hashlib
import os

CHUNK_BYTES = 1 << 20
PREFIX = "blake2b:"


def fingerprint_file(path: str | os.PathLike, *, chunk_bytes: int = CHUNK_BYTES) -> str:
    """``"blake2b:<128 hex>"``: BLAKE2b (hashlib defaults, 64-byte digest) of the whole content, streamed.

    Raises:
        OSError: the file cannot be opened or read (the caller records it against the file).
    """
    digest = hashlib.blake2b()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return PREFIX + digest.hexdigest()
