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
from r2cli.features.file_format import (
    CHECKSUM_ALGO,
    CHECKSUM_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    LAYER_SCALES,
    StoredFeatureSet,
    temp_name,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from r2cli.features.store import FeatureSettings, FeatureStore

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
        placed: Path | None = None,
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
        self._scales = None  # anonymous temporary file: int8 sets' layer scales, fp16, in clip order
        self._int8 = settings.dtype == "int8"
        # a temporary file whose layers other processes already wrote at their clips' offsets
        # (``place_layers``, the Ray path): ``append_placed`` reads them back instead of writing
        self._placed = Path(placed) if placed is not None else None
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
            if self._placed is not None:
                self._temp = self._placed
                self._handle = open(self._temp, "r+b")
            else:
                self._temp = folder / temp_name(self.final_path)
                self._handle = open(self._temp, "w+b")
            # Unnamed (deleted on close, even when the process is killed): nothing to clean up.
            self._embeds = tempfile.TemporaryFile(dir=folder)
            self._stamps = tempfile.TemporaryFile(dir=folder)
            if self._int8:
                self._scales = tempfile.TemporaryFile(dir=folder)
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
        self._reserved = self.data_offset() - 8
        try:
            if self._placed is not None:
                self._handle.seek(8 + self._reserved)
                return
            self._handle.write(b"\0" * (8 + self._reserved))
        except OSError as exc:
            self.abort()
            raise FeatureError(f"cannot write features under {folder}: {exc.strerror or exc}") from None

    def data_offset(self) -> int:
        """Where the tensor data starts in the file: 8 + the header space reserved (a function of
        the fingerprint, settings, duration and ``extra`` given to the constructor)."""
        probe = self._header(count=10**12, embed_dim=10**6, layer_shape=(10**3, 10**6, 10**6))
        return _round_up(len(probe) + 512, _HEADER_ALIGN)

    def placed_path(self) -> Path:
        """A new temporary file name, next to the final one, for layers placed by ``place_layers``."""
        return self.final_path.parent / temp_name(self.final_path)

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
        for name in ("_embeds", "_stamps", "_scales"):
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
        if self._placed is not None:
            raise FeatureError("this writer's layers are placed in its file: use append_placed")
        scales = None
        if self._int8:
            from r2cli.features.compact import quantize_layers

            layers, scales = quantize_layers(_as_numpy(layers))  # [n, k, P, Cv] int8, [n, k, Cv] fp16
        layers = np.ascontiguousarray(_as_numpy(layers), dtype=np.int8 if self._int8 else np.float16)  # [n, k, P, Cv]
        embed = np.ascontiguousarray(_as_numpy(embed), dtype=np.float16)  # [n, D]
        timestamps = np.ascontiguousarray(_as_numpy(timestamps), dtype=np.float64)  # [n]
        self._check_shapes(layers.shape, embed.shape, timestamps.shape)
        checked = [("layer features", layers), ("CLIP embeddings", embed), ("timestamps", timestamps)]
        if scales is not None:
            checked.append(("int8 layer scales", scales))
        for name, values in checked:
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
            self._write_small(embed, timestamps, scales)
        except OSError as exc:
            raise FeatureError(f"cannot write features to {self.final_path.parent}: {exc.strerror or exc}") from None
        self._layer_bytes += layers.nbytes
        self._count += layers.shape[0]

    def append_placed(self, count: int, embed: Any, timestamps: Any, scales: Any = None) -> None:
        """The next ``count`` clips, whose layers are already in the file (``place_layers``).

        Their layer bytes are read back (for the checksum) and checked to be finite, since they
        never went through ``append``; ``scales`` are an int8 set's ``[n, k, Cv]`` layer scales.

        Raises:
            FeatureError: shapes disagree, the file is shorter than the clips, or a value is not finite.
        """
        import numpy as np

        from r2cli.features.compact import check_finite

        self._open()
        if self._placed is None:
            raise FeatureError("append_placed needs a writer opened on placed layers")
        embed = np.ascontiguousarray(_as_numpy(embed), dtype=np.float16)  # [n, D]
        timestamps = np.ascontiguousarray(_as_numpy(timestamps), dtype=np.float64)  # [n]
        if self._int8:
            if scales is None:
                raise FeatureError("int8 features need their layer scales")
            scales = np.ascontiguousarray(_as_numpy(scales), dtype=np.float16)  # [n, k, Cv]
        layer_shape = self._layer_shape
        if layer_shape is None:
            raise FeatureError("append_placed needs the layer shape: call set_layer_shape first")
        row = int(np.prod(layer_shape)) * (1 if self._int8 else 2)
        try:
            data = self._handle.read(count * row)
        except OSError as exc:
            raise FeatureError(f"cannot read {self._temp}: {exc.strerror or exc}") from None
        if len(data) != count * row:
            raise FeatureError(f"{self._temp}: holds fewer placed clips than the parts ({self._count + count})")
        layers = np.frombuffer(data, dtype=np.int8 if self._int8 else np.float16).reshape(count, *layer_shape)
        check_finite(scales if self._int8 else layers, f"{self.final_path.name}: layer features")
        check_finite(embed, f"{self.final_path.name}: CLIP embeddings")
        self._check_shapes(layers.shape, embed.shape, timestamps.shape)
        try:
            self._digest.update(data)
            self._handle.seek(self._handle.tell())  # reads then writes on one buffered handle need a seek
            self._write_small(embed, timestamps, scales)
        except OSError as exc:
            raise FeatureError(f"cannot write features to {self.final_path.parent}: {exc.strerror or exc}") from None
        self._layer_bytes += len(data)
        self._count += count

    def set_layer_shape(self, layer_shape: tuple[int, int, int]) -> None:
        """``(k, P, Cv)`` of placed layers (before the first ``append_placed``)."""
        self._layer_shape = tuple(int(v) for v in layer_shape)  # type: ignore[assignment]

    def _write_small(self, embed: Any, timestamps: Any, scales: Any) -> None:
        self._embeds.write(memoryview(embed).cast("B"))
        self._stamps.write(memoryview(timestamps).cast("B"))
        if scales is not None:
            import numpy as np

            self._scales.write(memoryview(np.ascontiguousarray(scales, dtype=np.float16)).cast("B"))

    def _check_shapes(self, layers: tuple, embed: tuple, timestamps: tuple) -> None:
        count = layers[0]
        if len(layers) != 4 or len(embed) != 2 or len(timestamps) != 1:
            raise FeatureError(
                f"features must be layers [n, k, P, Cv], embed [n, D], timestamps [n]; got shapes "
                f"{list(layers)}, {list(embed)}, {list(timestamps)}"
            )
        if embed[0] != count or timestamps[0] != count:
            raise FeatureError(
                f"features disagree on the clip count: layers {layers[0]}, embed {embed[0]}, "
                f"timestamps {timestamps[0]}"
            )
        if layers[1] != self.settings.k:
            raise FeatureError(f"layers carry {layers[1]} CLIP layers, the settings say k={self.settings.k}")
        if self._embed_dim is None:
            self._layer_shape = tuple(int(v) for v in layers[1:])  # type: ignore[assignment]
            self._embed_dim = int(embed[1])
        elif tuple(layers[1:]) != self._layer_shape or embed[1] != self._embed_dim:
            raise FeatureError(
                f"feature chunk shapes changed mid-video: {list(layers[1:])} vs {list(self._layer_shape)}"
            )

    @property
    def num_clips(self) -> int:
        return self._count

    def _header(self, *, count: int, embed_dim: int, layer_shape: tuple[int, int, int],
                checksum: str = CHECKSUM_ALGO + ":" + "0" * (2 * CHECKSUM_BYTES)) -> bytes:
        layer_bytes = count * layer_shape[0] * layer_shape[1] * layer_shape[2] * (1 if self._int8 else 2)
        embed_bytes = count * embed_dim * 2
        stamp_bytes = count * 8
        scale_bytes = count * layer_shape[0] * layer_shape[2] * 2 if self._int8 else 0
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
            "layers": {"dtype": "I8" if self._int8 else "F16", "shape": [count, *layer_shape],
                       "data_offsets": [0, layer_bytes]},
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
        if self._int8:  # after timestamps, so fp16 files keep their layout byte for byte
            end = layer_bytes + embed_bytes + stamp_bytes
            header[LAYER_SCALES] = {"dtype": "F16", "shape": [count, layer_shape[0], layer_shape[2]],
                                    "data_offsets": [end, end + scale_bytes]}
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
            # embed, timestamps (then an int8 set's scales), as the header says
            for sidecar in (self._embeds, self._stamps, self._scales):
                if sidecar is None:
                    continue
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
            scale_bytes = self._count * self._layer_shape[0] * self._layer_shape[2] * 2 if self._int8 else 0
            if handle.tell() != (8 + self._reserved + self._layer_bytes + self._count * (self._embed_dim * 2 + 8)
                                 + scale_bytes):
                raise OSError(f"wrote {handle.tell()} bytes, the header describes another size")
            handle.truncate()  # placed layers: nothing may follow the data (a longer file from a retried task)
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


def place_layers(path: str | os.PathLike, data_offset: int, first_clip: int, layers: Any) -> int:
    """Write clips ``first_clip ..`` of ``layers`` (``[n, k, P, Cv]``, already in the stored dtype)
    at their place in a feature file being assembled (the Ray path: each actor writes its clips'
    layers once, straight into the file ``FeatureWriter(placed=path).append_placed`` finishes).

    Writing the same clips again writes the same bytes at the same place (a retried task). Returns
    the bytes written.

    Raises:
        FeatureError: the file cannot be written.
    """
    import numpy as np

    data = np.ascontiguousarray(layers)
    row = data[0].nbytes if len(data) else 0
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            view = memoryview(data).cast("B")
            offset = data_offset + first_clip * row
            written = 0
            while written < len(view):
                written += os.pwrite(descriptor, view[written:], offset + written)
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise FeatureError(f"cannot write {path}: {exc.strerror or exc}") from None
    return written
