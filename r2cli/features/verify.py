"""Checking stored feature files against what was recorded when they were written.

A feature file carries a checksum of its tensor data (``checksum`` in the header metadata) and the
catalog records its size and shapes. ``check_file`` reads a file back and names what is wrong:
zero bytes, a damaged header, a truncated or overlong file, shapes or a size other than the
catalog's, data whose checksum differs (flipped bytes), or NaN/inf values stored with a valid
checksum. ``r2cli index --verify`` checks every
recorded file this way and extracts the failing ones again.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

from r2cli.errors import FeatureError
from r2cli.features.file_format import CHECKSUM_ALGO, CHECKSUM_BYTES, StoredFeatureSet
from r2cli.features.store import (
    FeatureSettings,
    FeatureStore,
    VideoFeatures,
    open_features,
    read_header,
)

if TYPE_CHECKING:  # pragma: no cover
    pass

_READ_BLOCK = 1 << 20


def check_file(path: str | os.PathLike, recorded: Any | None) -> str | None:
    """What is wrong with the feature file at ``path`` (None when it is intact).

    ``recorded`` (a ``FeatureSetRecord``, or None when the catalog has no row for the file)
    gives the size and shapes the file must have.
    """
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    if size == 0:
        return "file is empty (0 bytes)"
    if recorded is not None and size != recorded.bytes:
        return f"size is {size} bytes, {recorded.bytes} were written (truncated or overwritten)"
    try:
        header, data_start = read_header(path)
        features = open_features(path)
    except FeatureError as exc:
        return f"damaged header: {_short(str(exc), path)}"
    end = max(int(entry["data_offsets"][1]) for name, entry in header.items() if name != "__metadata__")
    if data_start + end != size:
        return f"size is {size} bytes, its header describes {data_start + end}"
    if recorded is not None:
        shape = {
            "layers": list(features.layers.shape),
            "embed": list(features.embed.shape),
            "timestamps": list(features.timestamps.shape),
        }
        if shape != recorded.shape:
            return f"shapes {shape} differ from the recorded {recorded.shape}"
    expected = features.metadata.get("checksum")
    if expected is None:
        return None  # written before files carried a checksum: the checks above are all there is
    algo, _, digest = expected.partition(":")
    if algo != CHECKSUM_ALGO:
        return f"unknown checksum {algo!r}"
    actual = _data_digest(path, data_start)
    if actual != digest:
        return "data does not match its checksum (damaged bytes)"
    return _non_finite_problem(features)


def _non_finite_problem(features: VideoFeatures) -> str | None:
    """NaN or inf in a file whose checksum holds: it was written so (by a version without the
    write-time check, or by another tool), and search would skip every window it touches."""
    from r2cli.features.writer import count_non_finite

    for name, values in (("layers", features.layers), ("embed", features.embed), ("timestamps", features.timestamps)):
        bad = sum(count_non_finite(values[start : start + 64]) for start in range(0, len(values), 64))
        if bad:
            return (f"holds {bad} non-finite values (NaN or inf) in {name}, though it matches its checksum "
                    "(written so, e.g. an fp16 overflow of CLIP)")
    return None


def _data_digest(path: str | os.PathLike, offset: int) -> str:
    digest = hashlib.blake2b(digest_size=CHECKSUM_BYTES)
    with open(path, "rb") as handle:
        handle.seek(offset)
        while block := handle.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _short(message: str, path: str | os.PathLike) -> str:
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def stored_set_of(store: FeatureStore, features: VideoFeatures, settings: FeatureSettings) -> StoredFeatureSet:
    """The catalog record of an existing, intact feature file (to adopt a file the catalog lacks)."""
    return StoredFeatureSet(
        fingerprint=features.fingerprint,
        settings_key=settings.key(),
        settings=settings.to_dict(),
        relpath=store.relpath(features.fingerprint, settings),
        num_clips=features.num_clips,
        shape={
            "layers": list(features.layers.shape),
            "embed": list(features.embed.shape),
            "timestamps": list(features.timestamps.shape),
        },
        dtype=settings.dtype,
        bytes=features.nbytes,
    )
