"""The streaming, atomic writer of one feature file (see ``r2cli.features.store`` for the format)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli._atomic import fsync_dir
from r2cli.errors import FeatureError
from r2cli.features.store import (
    CHECKSUM_ALGO,
    CHECKSUM_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    FeatureSettings,
    FeatureStore,
    StoredFeatureSet,
    _temp_name,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

_HEADER_ALIGN = 64
_COPY_BLOCK = 1 << 20  # bytes per read when the embed/timestamps temporaries are copied in


class FeatureWriter:
    """Streams one feature set into a temporary file and publishes it atomically on ``commit``.

    ``layers`` chunks go straight to disk after a reserved header area; ``embed`` and
    ``timestamps`` (about 1/300 of ``layers``) go to two anonymous temporary files next to it and
    are copied after ``layers`` at commit. So the writer holds no data between ``append`` calls
    and its memory does not grow with the video (kept in memory, thousands of small per-chunk
    arrays pinned heap holes between the model's large transient buffers, and the process grew
    with video length). Leaving the ``with`` block without ``commit`` (an error, an interrupt)
    deletes the temporary files.
    """

    def __init__(
        self,
        store: FeatureStore,
        fingerprint: str,
        settings: FeatureSettings,
        *,
        duration: float | None,
        extra: dict[str, Any],
    ) -> None:
        self.store = store
        self.fingerprint = fingerprint
        self.settings = settings
        self.duration = duration
        self.extra = extra
        self.final_path = store.path(fingerprint, settings)
        self._relpath = store.relpath(fingerprint, settings)
        self._temp: Path | None = None
        self._handle = None
        self._reserved = 0
        self._layer_shape: tuple[int, int, int] | None = None  # (k, P, Cv)
        self._embed_dim: int | None = None
        self._embeds = None  # anonymous temporary file: embed rows, fp16, in clip order
        self._stamps = None  # anonymous temporary file: timestamps, float64, in clip order
        self._count = 0
        self._layer_bytes = 0
        self._digest = hashlib.blake2b(digest_size=CHECKSUM_BYTES)  # of the tensor data, in file order
        self.committed: StoredFeatureSet | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> "FeatureWriter":
        self._open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()

    def _open(self) -> None:
        if self._handle is not None:
            return
        folder = self.final_path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._temp = folder / _temp_name(self.final_path)
            self._handle = open(self._temp, "w+b")
            # Unnamed (deleted on close, even when the process is killed): nothing to clean up.
            self._embeds = tempfile.TemporaryFile(dir=folder)
            self._stamps = tempfile.TemporaryFile(dir=folder)
        except OSError as exc:
            self._close_sidecars()
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            if self._temp is not None:
                self._temp.unlink(missing_ok=True)
                self._temp = None
            raise FeatureError(f"cannot write features under {folder}: {exc.strerror or exc}") from None
        # Reserve room for the header; it is written last, when the clip count is known.
        probe = self._header(count=10**12, embed_dim=10**6, layer_shape=(10**3, 10**6, 10**6))
        self._reserved = _round_up(len(probe) + 512, _HEADER_ALIGN) - 8
        try:
            self._handle.write(b"\0" * (8 + self._reserved))
        except OSError as exc:
            self.abort()
            raise FeatureError(f"cannot write features under {folder}: {exc.strerror or exc}") from None

    def abort(self) -> None:
        """Drop the temporary file unless the set was committed (safe to call twice)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            _close_quietly(handle)  # the data is dropped: a failing flush (disk full) changes nothing
        self._close_sidecars()
        if self._temp is not None and self.committed is None:
            try:
                self._temp.unlink()
            except FileNotFoundError:
                pass
        self._temp = None

    def _close_sidecars(self) -> None:
        for name in ("_embeds", "_stamps"):
            sidecar = getattr(self, name)
            setattr(self, name, None)
            if sidecar is not None:
                _close_quietly(sidecar)

    # -- data --------------------------------------------------------------------------------------

    def append(self, layers: Any, embed: Any, timestamps: Any) -> None:
        """Add consecutive clips: ``layers [n, k, P, Cv]``, ``embed [n, D]``, ``timestamps [n]``.

        Values that are NaN or infinite after the conversion to the stored dtype (an fp16 overflow)
        are an extraction failure: a file of them would pass every later check but find nothing.

        Raises:
            FeatureError: shapes disagree with each other, with earlier chunks or with ``settings.k``;
                a value is not finite.
        """
        import numpy as np

        self._open()
        layers = np.ascontiguousarray(_as_numpy(layers), dtype=np.float16)  # [n, k, P, Cv]
        embed = np.ascontiguousarray(_as_numpy(embed), dtype=np.float16)  # [n, D]
        timestamps = np.ascontiguousarray(_as_numpy(timestamps), dtype=np.float64)  # [n]
        if layers.ndim != 4 or embed.ndim != 2 or timestamps.ndim != 1:
            raise FeatureError(
                f"features must be layers [n, k, P, Cv], embed [n, D], timestamps [n]; got shapes "
                f"{list(layers.shape)}, {list(embed.shape)}, {list(timestamps.shape)}"
            )
        count = layers.shape[0]
        if embed.shape[0] != count or timestamps.shape[0] != count:
            raise FeatureError(
                f"features disagree on the clip count: layers {layers.shape[0]}, embed {embed.shape[0]}, "
                f"timestamps {timestamps.shape[0]}"
            )
        if layers.shape[1] != self.settings.k:
            raise FeatureError(f"layers carry {layers.shape[1]} CLIP layers, the settings say k={self.settings.k}")
        if self._layer_shape is None:
            self._layer_shape = tuple(int(v) for v in layers.shape[1:])  # type: ignore[assignment]
            self._embed_dim = int(embed.shape[1])
        elif tuple(layers.shape[1:]) != self._layer_shape or embed.shape[1] != self._embed_dim:
            raise FeatureError(
                f"feature chunk shapes changed mid-video: {list(layers.shape[1:])} vs {list(self._layer_shape)}"
            )
        for name, values in (("layer features", layers), ("CLIP embeddings", embed), ("timestamps", timestamps)):
            bad = count_non_finite(values)
            if bad:
                raise FeatureError(
                    f"CLIP produced non-finite values ({bad} NaN or inf in the {name}"
                    + (", fp16 overflow?)" if values.dtype == np.float16 else ")")
                    + "; nothing was stored for this video"
                )
        try:
            self._digest.update(memoryview(layers).cast("B"))
            self._handle.write(memoryview(layers).cast("B"))
            self._embeds.write(memoryview(embed).cast("B"))
            self._stamps.write(memoryview(timestamps).cast("B"))
        except OSError as exc:
            raise FeatureError(f"cannot write features to {self.final_path.parent}: {exc.strerror or exc}") from None
        self._layer_bytes += layers.nbytes
        self._count += count

    @property
    def num_clips(self) -> int:
        return self._count

    def _header(self, *, count: int, embed_dim: int, layer_shape: tuple[int, int, int],
                checksum: str = CHECKSUM_ALGO + ":" + "0" * (2 * CHECKSUM_BYTES)) -> bytes:
        layer_bytes = count * layer_shape[0] * layer_shape[1] * layer_shape[2] * 2
        embed_bytes = count * embed_dim * 2
        stamp_bytes = count * 8
        metadata = {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "fingerprint": self.fingerprint,
            "settings_key": self.settings.key(),
            "settings": self.settings.canonical_json(),
            "num_clips": str(count),
            "fps": repr(self.settings.fps),
            "duration": "" if self.duration is None else repr(float(self.duration)),
            "checksum": checksum,
            "r2cli_version": _r2cli_version(),
            "extra": json.dumps(self.extra, sort_keys=True, default=str),
        }
        header = {
            "__metadata__": metadata,
            "layers": {"dtype": "F16", "shape": [count, *layer_shape], "data_offsets": [0, layer_bytes]},
            "embed": {
                "dtype": "F16",
                "shape": [count, embed_dim],
                "data_offsets": [layer_bytes, layer_bytes + embed_bytes],
            },
            "timestamps": {
                "dtype": "F64",
                "shape": [count],
                "data_offsets": [layer_bytes + embed_bytes, layer_bytes + embed_bytes + stamp_bytes],
            },
        }
        return json.dumps(header, separators=(",", ":")).encode("utf-8")

    def commit(self) -> StoredFeatureSet:
        """Finish the file and publish it under its final name (atomic). Returns what was stored.

        Raises:
            FeatureError: nothing was appended, or the file cannot be written.
        """
        if self.committed is not None:
            return self.committed
        if self._handle is None:
            raise FeatureError("feature writer is closed")
        if self._count == 0 or self._layer_shape is None or self._embed_dim is None:
            raise FeatureError(f"no clips to store for {self.fingerprint}")
        handle = self._handle
        try:
            for sidecar in (self._embeds, self._stamps):  # embed then timestamps, as the header says
                sidecar.flush()
                sidecar.seek(0)
                while block := sidecar.read(_COPY_BLOCK):
                    self._digest.update(block)
                    handle.write(block)
            self._close_sidecars()
            header = self._header(count=self._count, embed_dim=self._embed_dim, layer_shape=self._layer_shape,
                                  checksum=f"{CHECKSUM_ALGO}:{self._digest.hexdigest()}")
            if len(header) > self._reserved:
                raise FeatureError(f"feature header ({len(header)} bytes) outgrew its reserved {self._reserved} bytes")
            if handle.tell() != 8 + self._reserved + self._layer_bytes + self._count * (self._embed_dim * 2 + 8):
                raise OSError(f"wrote {handle.tell()} bytes, the header describes another size")
            handle.seek(0)
            # Pad the JSON with spaces (allowed by the safetensors format) to the reserved length.
            handle.write(struct.pack("<Q", self._reserved) + header + b" " * (self._reserved - len(header)))
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            self._handle = None
            size = self._temp.stat().st_size
            os.replace(self._temp, self.final_path)
            fsync_dir(self.final_path.parent)
        except OSError as exc:
            self.abort()
            raise FeatureError(f"cannot write {self.final_path}: {exc.strerror or exc}") from None
        k, tokens, width = self._layer_shape
        self.committed = StoredFeatureSet(
            fingerprint=self.fingerprint,
            settings_key=self.settings.key(),
            settings=self.settings.to_dict(),
            relpath=self._relpath,
            num_clips=self._count,
            shape={
                "layers": [self._count, k, tokens, width],
                "embed": [self._count, self._embed_dim],
                "timestamps": [self._count],
            },
            dtype=self.settings.dtype,
            bytes=size,
        )
        self._temp = None
        return self.committed


_FINITE_BLOCK = 1 << 22  # elements checked at a time: bounds the temporary boolean array


def count_non_finite(values: "np.ndarray") -> int:
    """How many elements of ``values`` are NaN or infinite (0 for integer arrays)."""
    import numpy as np

    if not np.issubdtype(values.dtype, np.floating):
        return 0
    flat = np.ascontiguousarray(values).reshape(-1)
    bad = 0
    for start in range(0, flat.size, _FINITE_BLOCK):
        block = flat[start : start + _FINITE_BLOCK]
        if block.dtype == np.float16:
            # NaN and inf are the values whose 5 exponent bits are all set; testing the bits is
            # about twice as fast as np.isfinite on fp16 (benchmarks/finite_check.py)
            exponent = block.view(np.uint16) & 0x7C00
            bad += int(np.count_nonzero(exponent == 0x7C00))
        elif not np.isfinite(block).all():
            bad += int(block.size - np.count_nonzero(np.isfinite(block)))
    return bad


def _close_quietly(handle: Any) -> None:
    """Close a file whose content is being thrown away; a flush that fails (disk full) is ignored."""
    try:
        handle.close()
    except OSError:
        try:
            os.close(handle.fileno())
        except (OSError, ValueError):
            pass


def _as_numpy(value: Any) -> "np.ndarray":
    import numpy as np

    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def _r2cli_version() -> str:
    from r2cli import __version__

    return str(__version__)
