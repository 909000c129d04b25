"""Content-addressed feature store: one safetensors file per (video content, extraction settings).

Layout under the store root (``workspace.features_dir``, or any folder, a shared filesystem included)::

    <root>/<aa>/<digest>-<settings key>.safetensors

``digest`` is the hex part of the video's content fingerprint (``"blake2b:<hex>"``), ``aa`` its
first two characters, and ``settings key`` the 16-hex ``FeatureSettings.key()``. Because the name
depends only on the bytes of the video and on the settings, a moved or renamed file finds its
features again, while an edited file (new fingerprint) or a changed setting (new key) can never
be served features computed for something else. ``get`` also re-checks the fingerprint, settings
key and shapes recorded inside the file.

File format: standard safetensors (readable with ``safetensors.numpy.load_file`` or any
safetensors reader, no r2cli needed) holding

- ``layers``      float16 ``[T, k, P, Cv]``: the last k CLIP residual-stream layers, all tokens
  (int8 when the settings' ``dtype`` is ``int8``, with ``layer_scales`` float16 ``[T, k, Cv]``
  after ``timestamps``: see ``r2cli.features.compact``);
- ``embed``       float16 ``[T, D]``: the L2-normalised CLIP image embedding of each clip;
- ``timestamps``  float64 ``[T]``: presentation time (s) of the frame each clip was computed from;

and string metadata: ``format`` (``"r2cli.features"``), ``format_version``, ``fingerprint``,
``settings_key``, ``settings`` (JSON), ``num_clips``, ``fps``, ``duration``, ``checksum``
(``blake2b-128:<hex>`` of every byte after the header, checked by ``r2cli index --verify``),
``r2cli_version`` and extraction details (``extra``, JSON). Nothing in a file depends on when it
was written: the same video under the same settings gives the same bytes (the catalog records when).

Writes are atomic: data goes to a temporary file in the destination folder, which is flushed,
fsync'ed and renamed over the final name (``os.replace``), then the folder is fsync'ed. A killed
writer leaves only a ``.tmp`` file that ``get`` never reads (``remove_stale_temporaries`` cleans
them). ``FeatureWriter`` streams ``layers`` to disk chunk by chunk (the header space is reserved
up front and filled in at commit), so a two-hour video never has all its features in memory.
Reads are memory-mapped (``numpy.memmap`` at the offsets in the header).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli._atomic import pid_alive
from r2cli.errors import FeatureError, UsageError
from r2cli.media.frames import FRAME_RULE_EXACT, GEOMETRIES, GEOMETRY_DISPLAY

from r2cli.features.file_format import (  # shared with the writer (#23)
    FORMAT_NAME,
    FORMAT_VERSION,
    LAYER_SCALES,
    SUFFIX,
    TEMP_SUFFIX,
    StoredFeatureSet,
)
from r2cli.features.names import FEATURE_FPS, STORED_DTYPES  # defined there once (#23)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from r2cli.features.writer import FeatureWriter

CROPS = ("center",)

_SAFETENSORS_DTYPE = {"float16": "F16", "float32": "F32", "float64": "F64", "int8": "I8"}
_NUMPY_DTYPE = {value: key for key, value in _SAFETENSORS_DTYPE.items()}
_FINGERPRINT_RE = re.compile(r"^[a-z0-9]+:([0-9a-f]{16,})$")


# ----------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that decides the numbers in a feature file; ``key()`` names them.

    Two extractions with equal settings on the same content produce the same features, so they
    share one file; change any field and the key (and file) changes.
    """

    clip_model: str  # open_clip architecture of the tower, e.g. "ViT-B-32"
    weights_id: str  # registry tag ("ViT-B-32/openai") or "sha256:<16 hex>" of a local weights file
    fps: float = FEATURE_FPS  # sampled frames (= clips) per second
    image_size: int = 224  # side of the square crop fed to CLIP
    crop: str = "center"  # crop rule: centre crop after scaling the short side to image_size
    k: int = 4  # CLIP layers kept (the last k, oldest first)
    dtype: str = "float16"  # storage dtype of layers: float16, or int8 with scales (embed is always float16)
    frame_rule: str = FRAME_RULE_EXACT  # which frame each clip takes (r2cli.media.frames.FRAME_RULES)
    precision: str = "fp32"  # precision CLIP ran in ("fp32" like the official extractor, opt-in "bf16")
    geometry: str = GEOMETRY_DISPLAY  # how frames are scaled (r2cli.media.frames.GEOMETRIES): display or "official"

    def __post_init__(self) -> None:
        from r2cli.media.frames import check_sampling_args

        if not isinstance(self.clip_model, str) or not self.clip_model:
            raise UsageError(f"clip_model must be a non-empty string, got {self.clip_model!r}")
        if not isinstance(self.weights_id, str) or not self.weights_id:
            raise UsageError(f"weights_id must be a non-empty string, got {self.weights_id!r}")
        check_sampling_args(self.fps, self.image_size, self.frame_rule)
        object.__setattr__(self, "fps", float(self.fps))
        if self.crop not in CROPS:
            raise UsageError(f"crop must be one of {', '.join(CROPS)}, got {self.crop!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise UsageError(f"k must be a positive integer, got {self.k!r}")
        if self.dtype not in STORED_DTYPES:
            raise UsageError(f"feature dtype must be one of {', '.join(STORED_DTYPES)}, got {self.dtype!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise UsageError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.geometry not in GEOMETRIES:
            raise UsageError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {self.geometry!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatureSettings":
        """Rebuild settings from ``to_dict`` output (unknown keys are an error: they would change the key).

        Raises:
            FeatureError: the dict has unknown or missing fields.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise FeatureError(f"feature settings have unknown fields {unknown} (written by a newer r2cli?)")
        try:
            return cls(**data)
        except TypeError as exc:
            raise FeatureError(f"feature settings are incomplete: {exc}") from None

    def canonical_json(self) -> str:
        """Sorted-key JSON with no spaces: the exact text the key is computed from.

        The default geometry ("display") is left out, so feature sets written before geometry was
        a setting keep their key; "official" is written, so the two never share a file.
        """
        data = self.to_dict()
        if data["geometry"] == GEOMETRY_DISPLAY:
            del data["geometry"]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def key(self) -> str:
        """16 hex characters: BLAKE2b-64 of ``canonical_json()`` and the store format version."""
        text = f"{FORMAT_NAME}/{FORMAT_VERSION}:{self.canonical_json()}"
        return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()

    @classmethod
    def for_tower(cls, tower: Any, *, fps: float = FEATURE_FPS, k: int = 4, frame_rule: str = FRAME_RULE_EXACT,
                  geometry: str = GEOMETRY_DISPLAY, dtype: str = "float16") -> "FeatureSettings":
        """Settings for features computed with ``tower`` (a ``r2cli.features.clip.ClipTower``)."""
        return cls(
            clip_model=str(tower.model_name),
            weights_id=str(tower.weights_id),
            fps=fps,
            image_size=int(tower.image_size),
            k=k,
            frame_rule=frame_rule,
            precision=str(getattr(tower, "precision", "fp32")),
            geometry=geometry,
            dtype=dtype,
        )


# ----------------------------------------------------------------------------------------------
# Reading


# Feature files mapped at once per process. Each map holds a file descriptor and one of the kernel's
# per-process mappings (vm.max_map_count, 65,530 by default; descriptors here: 20,000), so a search over
# 100,000 videos cannot map them all: files are mapped when a tensor is first read and the least recently
# read maps are let go past this many (arrays already handed out keep their own map alive) (#19).
MAX_OPEN_MAPS = 1024


class _OpenMaps:
    """The process's whole-file maps of feature files, least recently used first out."""

    def __init__(self, capacity: int) -> None:
        import threading
        from collections import OrderedDict

        self.capacity = capacity
        self._maps: "OrderedDict[Path, tuple[tuple[int, ...], np.ndarray]]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._maps)

    def get(self, path: Path, identity: tuple[int, ...]) -> "np.ndarray":
        """The map of ``path`` as it was when opened (``identity``); a file replaced since is refused."""
        import numpy as np

        with self._lock:
            hit = self._maps.get(path)
            if hit is not None and hit[0] == identity:
                self._maps.move_to_end(path)
                return hit[1]
        try:
            with open(path, "rb") as handle:
                if _identity(os.fstat(handle.fileno())) != identity:
                    raise FeatureError(f"{path}: the feature file was replaced or changed while this command ran "
                                       "(another r2cli index?); run the command again")
                whole = np.memmap(handle, dtype=np.uint8, mode="r")
        except OSError as exc:
            raise FeatureError(f"{path}: cannot read the feature file ({exc.strerror or exc})") from None
        with self._lock:
            self._maps[path] = (identity, whole)
            self._maps.move_to_end(path)
            while len(self._maps) > self.capacity:
                self._maps.popitem(last=False)
        return whole


_OPEN_MAPS = _OpenMaps(MAX_OPEN_MAPS)


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class _Tensor:
    """Where one tensor lies in a feature file: numpy dtype name, shape, absolute byte range."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass
class VideoFeatures:
    """One stored feature set; its arrays are read-only views of the file, mapped on first read.

    ``open_features`` checks the header (names, dtypes, shapes, offsets against the file size); the
    file is mapped only when ``layers``, ``embed`` or ``timestamps`` is read, so planning a search over
    a whole archive maps nothing. Assigning one of them replaces it for this object (benchmarks do).
    """

    path: Path  # the safetensors file
    fingerprint: str  # content fingerprint of the video
    settings: FeatureSettings  # what produced them
    duration: float | None  # seconds, as probed when the features were written
    metadata: dict[str, str] = field(repr=False)  # the raw header metadata
    tensors: dict[str, _Tensor] = field(default_factory=dict, repr=False)
    identity: tuple[int, ...] = field(default=(), repr=False)  # the file's (dev, inode, size, mtime) when opened
    _assigned: dict[str, Any] = field(default_factory=dict, repr=False)

    def _array(self, name: str) -> "np.ndarray":
        import numpy as np

        if name in self._assigned:
            return self._assigned[name]
        tensor = self.tensors[name]
        if tensor.end == tensor.begin:
            return np.zeros(tensor.shape, dtype=tensor.dtype)
        whole = _OPEN_MAPS.get(self.path, self.identity)
        return whole[tensor.begin : tensor.end].view(tensor.dtype).reshape(tensor.shape)

    @property
    def layers(self) -> "np.ndarray":
        """[T, k, P, Cv] float16 (int8 sets: a QuantizedLayers view giving float32 rows)."""
        if "layers" in self._assigned or self.settings.dtype != "int8":
            return self._array("layers")
        from r2cli.features.compact import QuantizedLayers

        return QuantizedLayers(self._array("layers"), self._array(LAYER_SCALES))

    @layers.setter
    def layers(self, value: "np.ndarray") -> None:
        self._assigned["layers"] = value

    @property
    def embed(self) -> "np.ndarray":
        """[T, D] float16 CLIP image embeddings."""
        return self._array("embed")

    @embed.setter
    def embed(self, value: "np.ndarray") -> None:
        self._assigned["embed"] = value

    @property
    def timestamps(self) -> "np.ndarray":
        """[T] float64: pts (s) of the frame behind each clip."""
        return self._array("timestamps")

    @timestamps.setter
    def timestamps(self, value: "np.ndarray") -> None:
        self._assigned["timestamps"] = value

    @property
    def num_clips(self) -> int:
        if "layers" in self._assigned:
            return int(self._assigned["layers"].shape[0])
        return int(self.tensors["layers"].shape[0])

    @property
    def fps(self) -> float:
        return self.settings.fps

    @property
    def nbytes(self) -> int:
        return self.path.stat().st_size

    def clip_bounds(self, index: int) -> tuple[float, float]:
        """Seconds covered by clip ``index``: ``[i/fps, (i+1)/fps)``."""
        return index / self.fps, (index + 1) / self.fps


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """The safetensors header of ``path`` and the byte offset where tensor data starts.

    Raises:
        FeatureError: the file is not a readable safetensors file.
    """
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) != 8:
                raise FeatureError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (length,) = struct.unpack("<Q", prefix)
            if length > 100 * 1024 * 1024:
                raise FeatureError(f"{path}: not a safetensors file (header length {length})")
            raw = handle.read(length)
    except OSError as exc:
        raise FeatureError(f"{path}: cannot read feature file: {exc.strerror or exc}") from None
    if len(raw) != length:
        raise FeatureError(f"{path}: truncated safetensors header")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FeatureError(f"{path}: unreadable safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise FeatureError(f"{path}: safetensors header is not a JSON object")
    return header, 8 + length


def open_features(path: str | os.PathLike) -> VideoFeatures:
    """Open a feature file written by ``FeatureStore`` (checked now, memory-mapped when first read).

    Raises:
        FeatureError: not an r2cli feature file, or its tensors do not fit its header or size.
    """
    import numpy as np

    path = Path(path)
    header, data_start = read_header(path)
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT_NAME:
        raise FeatureError(f"{path}: not an r2cli feature file (metadata format={metadata.get('format')!r})")
    if str(metadata.get("format_version")) != str(FORMAT_VERSION):
        raise FeatureError(
            f"{path}: feature format version {metadata.get('format_version')} is not supported "
            f"(this r2cli reads version {FORMAT_VERSION}); re-run `r2cli index`"
        )
    try:
        settings = FeatureSettings.from_dict(json.loads(metadata["settings"]))
    except (KeyError, ValueError, UsageError) as exc:
        raise FeatureError(f"{path}: bad settings in the header ({exc})") from None
    try:
        identity = _identity(path.stat())
    except OSError as exc:
        raise FeatureError(f"{path}: cannot read the feature file ({exc.strerror or exc})") from None
    size = identity[2]
    tensors: dict[str, _Tensor] = {}
    names = ("layers", "embed", "timestamps") + ((LAYER_SCALES,) if settings.dtype == "int8" else ())
    for name in names:
        entry = header.get(name)
        if not isinstance(entry, dict):
            raise FeatureError(f"{path}: tensor {name!r} is missing")
        dtype = _NUMPY_DTYPE.get(entry.get("dtype"))
        shape = tuple(int(v) for v in entry.get("shape", []))
        begin, end = (int(v) for v in entry.get("data_offsets", (0, -1)))
        if dtype is None:
            raise FeatureError(f"{path}: tensor {name!r} has unsupported dtype {entry.get('dtype')!r}")
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if end - begin != expected or data_start + end > size:
            raise FeatureError(f"{path}: tensor {name!r} does not fit the file (truncated or corrupt)")
        tensors[name] = _Tensor(np.dtype(dtype).name, shape, data_start + begin, data_start + end)
    layers, embed, timestamps = tensors["layers"], tensors["embed"], tensors["timestamps"]
    if layers.dtype != settings.dtype or embed.dtype != "float16":
        raise FeatureError(f"{path}: layers are {layers.dtype}, the settings say {settings.dtype}")
    if settings.dtype == "int8":
        scales = tensors[LAYER_SCALES].shape
        if len(layers.shape) != 4 or scales != (layers.shape[0], layers.shape[1], layers.shape[3]):
            raise FeatureError(f"{path}: int8 layers {list(layers.shape)} and their scales {list(scales)} do not fit "
                               "together")
    if len(layers.shape) != 4 or len(embed.shape) != 2 or len(timestamps.shape) != 1:
        raise FeatureError(f"{path}: tensors have the wrong rank")
    if not layers.shape[0] == embed.shape[0] == timestamps.shape[0] or layers.shape[1] != settings.k:
        raise FeatureError(f"{path}: tensor shapes disagree ({layers.shape}, {embed.shape}, {timestamps.shape})")
    duration = metadata.get("duration")
    return VideoFeatures(
        path=path,
        fingerprint=str(metadata.get("fingerprint", "")),
        settings=settings,
        duration=float(duration) if duration not in (None, "", "None") else None,
        metadata=dict(metadata),
        tensors=tensors,
        identity=identity,
    )


# ----------------------------------------------------------------------------------------------
# The store


class FeatureStore:
    """Feature files under ``root`` (any folder; a shared filesystem works: no global state here)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r})"

    def relpath(self, fingerprint: str, settings: FeatureSettings) -> str:
        """``<aa>/<digest>-<key>.safetensors`` (relative to ``root``)."""
        digest = _fingerprint_token(fingerprint)
        return f"{digest[:2]}/{digest}-{settings.key()}{SUFFIX}"

    def path(self, fingerprint: str, settings: FeatureSettings) -> Path:
        return self.root / self.relpath(fingerprint, settings)

    def exists(self, fingerprint: str, settings: FeatureSettings) -> bool:
        return self.path(fingerprint, settings).is_file()

    def get(self, fingerprint: str, settings: FeatureSettings) -> VideoFeatures | None:
        """The stored features of this content under these settings, memory-mapped; None if absent.

        Raises:
            FeatureError: a file is there but it is corrupt or belongs to another fingerprint/settings.
        """
        path = self.path(fingerprint, settings)
        if not path.is_file():
            return None
        features = open_features(path)
        if features.fingerprint != fingerprint:
            raise FeatureError(f"{path}: holds features of {features.fingerprint}, not {fingerprint}")
        if features.settings != settings:
            raise FeatureError(f"{path}: holds features for other settings ({features.settings.canonical_json()})")
        return features

    def open_relpath(self, relpath: str) -> VideoFeatures:
        """Open a file by the relative path a catalog ``FeatureSet`` row records.

        Raises:
            FeatureError: the file is missing or unreadable.
        """
        path = self.root / relpath
        if not path.is_file():
            raise FeatureError(f"feature file {path} is missing; run `r2cli index` to extract it again")
        return open_features(path)

    def writer(
        self,
        fingerprint: str,
        settings: FeatureSettings,
        *,
        duration: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> "FeatureWriter":
        """A streaming, atomic writer for one feature set (use as a context manager, then ``commit``)."""
        from r2cli.features.writer import FeatureWriter

        return FeatureWriter(self, fingerprint, settings, duration=duration, extra=extra or {})

    def put(
        self,
        fingerprint: str,
        settings: FeatureSettings,
        layers: Any,
        embed: Any,
        timestamps: Any,
        *,
        duration: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> StoredFeatureSet:
        """Write a whole feature set atomically (arrays or tensors; converted to the stored dtypes).

        Raises:
            FeatureError: shapes disagree with each other or with the settings, or the write fails.
        """
        with self.writer(fingerprint, settings, duration=duration, extra=extra) as writer:
            writer.append(layers, embed, timestamps)
            return writer.commit()

    def remove_stale_temporaries(self, *, older_than: float = 24 * 3600.0) -> int:
        """Delete temporary files left by killed writers; returns how many were removed.

        A temporary file of this host whose writer process is gone is removed at once; other
        temporaries only when older than ``older_than`` seconds (their writer may run elsewhere).
        """
        if not self.root.is_dir():
            return 0
        host = socket.gethostname()
        now = time.time()
        removed = 0
        for temp in self.root.glob(f"*/.*{TEMP_SUFFIX}"):
            owner = _temp_owner(temp.name)
            try:
                stale = now - temp.stat().st_mtime > older_than
                if owner is not None and owner[0] == host and not pid_alive(owner[1]):
                    stale = True
                if stale:
                    temp.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _fingerprint_token(fingerprint: str) -> str:
    """The hex digest of ``"algo:<hex>"`` fingerprints; other strings are hashed to a safe name."""
    if not isinstance(fingerprint, str) or not fingerprint:
        raise UsageError(f"fingerprint must be a non-empty string, got {fingerprint!r}")
    match = _FINGERPRINT_RE.match(fingerprint)
    if match:
        return match.group(1)
    return hashlib.blake2b(fingerprint.encode("utf-8"), digest_size=32).hexdigest()


def _temp_owner(name: str) -> tuple[str, int] | None:
    parts = name[: -len(TEMP_SUFFIX)].split(".")
    try:
        return parts[-3], int(parts[-2])
    except (IndexError, ValueError):
        return None

