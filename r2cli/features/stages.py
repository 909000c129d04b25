"""The stages of feature extraction, as plain functions over plain data.

``r2cli index`` computes features in five stages; each one is a module-level function whose
inputs and outputs are plain dataclasses and numpy arrays, so any engine can run them: the local
threaded pipeline (``r2cli.features.pipeline``), the sequential driver at the end of this module
(what the tests compare the pipeline with), or a distributed engine.

1. **list work** (``list_work``): the catalog's readable contents that lack features for the
   settings, as ``WorkItem`` records (plus the rows whose features exist and only need marking).
2. **decode** (``decode_video``): one video -> ``FrameChunk`` s (``[n, S, S, 3]`` uint8 frames with
   the pts of each) then one ``DecodeDone`` (the geometry and counts of the decode).
3. **embed** (``embed_frames``): frames -> ``Embedded`` (the last k CLIP layers ``[n, k, P, Cv]`` and
   the image embedding ``[n, D]``, fp16). Every forward has the shape ``[batch_size, S, S, 3]`` (a
   short batch is padded with black frames), so a frame's features never depend on its companions.
4. **write** (``open_writer`` / ``write_chunk`` / ``commit_features``, or ``write_features`` at once):
   the feature store's atomic file.
5. **record** (``record_success`` / ``record_failure``): the outcome on the catalog rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from r2cli.errors import FeatureError, MediaError, R2Error, UsageError
from r2cli.features.file_format import StoredFeatureSet
from r2cli.features.store import FeatureSettings, FeatureStore
from r2cli.features.writer import FeatureWriter
from r2cli.media.frames import DEFAULT_CHUNK_FRAMES, FrameChunk, FrameSampler, expected_clip_count

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from r2cli.catalog.db import Catalog
    from r2cli.features.clip import ClipTower


# ----------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class WorkItem:
    """One content (fingerprint) to extract, with the catalog rows that share it."""

    fingerprint: str
    path: str  # the file read (the first row's path)
    size: int | None  # bytes at the scan (a changed file is refused)
    mtime: float | None  # st_mtime at the scan
    duration: float  # seconds (probed)
    video_ids: tuple[int, ...]  # catalog rows of this content

    def expected_clips(self, fps: float) -> int:
        """Clips the frame rule should give (for progress only)."""
        return expected_clip_count(self.duration, fps)


@dataclass
class WorkList:
    """What ``list_work`` found."""

    todo: list[WorkItem]  # contents to extract, in path order
    done: int  # contents whose features exist (for these settings)
    mark_ok: list[int]  # rows of done contents whose features_status is not "ok" yet (to repair)
    adopt: list[tuple[WorkItem, StoredFeatureSet]]  # complete files the catalog does not know yet
    rejected: list[tuple[WorkItem, str]]  # recorded sets whose file failed verification, and why


@dataclass(frozen=True)
class DecodeDone:
    """The end of one video's frames: how they were made."""

    details: dict[str, Any]  # decoded_frames, end_padding, scaled_size, crop_offset, rotation, sample_aspect_ratio


@dataclass(frozen=True)
class Embedded:
    """CLIP features of consecutive frames."""

    layers: "np.ndarray"  # [n, k, P, Cv] float16
    embed: "np.ndarray"  # [n, D] float16


@dataclass(frozen=True)
class VideoFailure:
    """A video whose features could not be extracted (also recorded on its catalog rows)."""

    path: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# 1. list work


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def list_work(
    catalog: "Catalog",
    store: FeatureStore,
    settings: FeatureSettings,
    *,
    paths: Sequence[str | os.PathLike] | None = None,
    video_ids: Sequence[int] | None = None,
    verify: bool = False,
) -> WorkList:
    """The contents under ``paths`` (files or folders; None: all) that need features.

    A content counts as done when its feature set is recorded and its file is there; with
    ``verify`` the file must also pass ``r2cli.features.verify.check_file`` (checksum and shapes),
    else it is extracted again. A complete file the catalog does not record (a run killed after
    the rename) is adopted instead of extracted again.
    """
    from r2cli.catalog.features import feature_sets, readable_videos

    key = settings.key()
    roots = [os.path.abspath(os.fspath(p)) for p in paths] if paths else None
    if roots is not None:
        roots = sorted(set(roots) | {os.path.realpath(r) for r in roots})
    rows = readable_videos(catalog, video_ids=video_ids)
    recorded = feature_sets(catalog, key)
    items: dict[str, WorkItem] = {}
    done: set[str] = set()
    mark_ok: list[int] = []
    verdicts: dict[str, str | None] = {}
    for row in rows:
        if roots is not None and not any(_under(row.path, r) for r in roots):
            continue
        fingerprint = row.fingerprint
        feature_set = recorded.get(fingerprint)
        if feature_set is not None and fingerprint not in verdicts:
            verdicts[fingerprint] = _recorded_problem(store, feature_set, verify)
        if feature_set is not None and verdicts[fingerprint] is None:
            done.add(fingerprint)
            if row.features_status != "ok":
                mark_ok.append(row.id)
            continue
        item = items.get(fingerprint)
        ids = (*item.video_ids, row.id) if item is not None else (row.id,)
        first = item or row
        items[fingerprint] = WorkItem(
            fingerprint=fingerprint, path=first.path, size=first.size, mtime=first.mtime,
            duration=float(first.duration or 0.0), video_ids=ids,
        )
    todo: list[WorkItem] = []
    adopt: list[tuple[WorkItem, StoredFeatureSet]] = []
    rejected: list[tuple[WorkItem, str]] = []
    for item in items.values():
        problem = verdicts.get(item.fingerprint)
        if problem is not None:  # recorded, but the file is missing or damaged: extract again
            if problem != "missing":
                rejected.append((item, problem))
            todo.append(item)
            continue
        stored = adoptable(store, item, settings)
        if stored is not None:
            adopt.append((item, stored))
        else:
            todo.append(item)
    return WorkList(todo=todo, done=len(done), mark_ok=mark_ok, adopt=adopt, rejected=rejected)


def _recorded_problem(store: FeatureStore, feature_set: Any, verify: bool) -> str | None:
    """None when a recorded set's file is usable; else "missing" or what is wrong with it."""
    path = store.root / feature_set.relpath
    if not path.is_file():
        return "missing"
    if not verify:  # the cheap check (one stat): a truncated or replaced file is extracted again
        size = path.stat().st_size
        return None if size == feature_set.bytes else f"size is {size} bytes, {feature_set.bytes} were written"
    from r2cli.features.verify import check_file

    return check_file(path, feature_set)


def adoptable(store: FeatureStore, item: WorkItem, settings: FeatureSettings) -> StoredFeatureSet | None:
    """A complete, intact feature file of ``item`` that the catalog does not record yet, or None."""
    from r2cli.features.verify import check_file, stored_set_of

    path = store.path(item.fingerprint, settings)
    if not path.is_file():
        return None
    if check_file(path, None) is not None:  # damaged: extract again (the new file replaces it)
        return None
    try:
        features = store.get(item.fingerprint, settings)
    except FeatureError:
        return None
    return stored_set_of(store, features, settings) if features is not None else None


# ----------------------------------------------------------------------------------------------
# 2. decode


def file_changed(item: WorkItem) -> str | None:
    """Why the file no longer matches the scan that fingerprinted it (None when it still does)."""
    try:
        st = os.stat(item.path)
    except OSError as exc:
        return f"cannot read it any more ({exc.strerror or exc}); run `r2cli index` again"
    if item.size is not None and st.st_size != item.size:
        return "file changed since it was scanned (size differs); run `r2cli index` again"
    if item.mtime is not None and abs(st.st_mtime - item.mtime) > 1e-6:
        return "file changed since it was scanned (modification time differs); run `r2cli index` again"
    return None


def decode_video(
    path: str | os.PathLike,
    settings: FeatureSettings,
    *,
    threads: int | None = None,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    check: Callable[[], str | None] | None = None,
) -> Iterator[FrameChunk | DecodeDone]:
    """The sampled frames of one video in chunks, then one ``DecodeDone``.

    Raises:
        MediaError: ``check()`` reports a problem, ffmpeg fails, or the video yields no clip.
        MissingDependencyError: ffmpeg/ffprobe are missing.
    """
    name = os.fspath(path)
    problem = check() if check is not None else None
    if problem:
        raise MediaError(f"{name}: {problem}")
    sampler = FrameSampler(
        name, fps=settings.fps, size=settings.image_size, frame_rule=settings.frame_rule,
        geometry_rule=settings.geometry, threads=threads, chunk_frames=chunk_frames,
    )
    with sampler:
        yield from sampler
    geometry = sampler.geometry()
    yield DecodeDone(details={
        "decoded_frames": sampler.stats.decoded_frames,
        "end_padding": sampler.stats.end_padding,
        "scaled_size": [geometry.scaled_width, geometry.scaled_height],
        "crop_offset": [geometry.crop_x, geometry.crop_y],
        "rotation": geometry.rotation,
        "sample_aspect_ratio": str(geometry.sample_aspect_ratio),
    })


# ----------------------------------------------------------------------------------------------
# 3. embed


def check_tower(settings: FeatureSettings, tower: "ClipTower") -> None:
    """Refuse settings that were not made for ``tower`` (model, weights, image size, precision).

    Raises:
        UsageError: they differ.
    """
    expected = FeatureSettings.for_tower(tower, fps=settings.fps, k=settings.k, frame_rule=settings.frame_rule,
                                         geometry=settings.geometry, dtype=settings.dtype)
    if expected != settings:
        raise UsageError(
            f"feature settings do not match the CLIP tower: settings {settings.canonical_json()}, "
            f"tower gives {expected.canonical_json()}"
        )


def embed_frames(frames: "np.ndarray", tower: "ClipTower", *, k: int, batch_size: int,
                 count: int | None = None) -> Embedded:
    """CLIP features of ``frames[:count]`` (``[n, S, S, 3]`` uint8, n <= batch_size).

    The forward always sees ``[batch_size, S, S, 3]``: when ``frames`` is shorter it is padded
    with black frames (when it already has ``batch_size`` rows, rows from ``count`` on are
    ignored). BLAS kernels are chosen by shape, so equal shapes make a frame's features
    independent of the other frames of its batch.
    """
    import numpy as np
    import torch

    count = len(frames) if count is None else count
    if count > batch_size:
        raise UsageError(f"embed_frames got {count} frames for a batch of {batch_size}")
    if len(frames) != batch_size:
        padded = np.zeros((batch_size, *frames.shape[1:]), dtype=np.uint8)
        padded[:count] = frames[:count]
        frames = padded
    pixels = torch.from_numpy(frames)  # [B, S, S, 3] uint8
    if tower.device != "cpu":
        pixels = pixels.to(tower.device, non_blocking=False)
    pixels = pixels.permute(0, 3, 1, 2)  # [B, 3, S, S]
    # fp16 straight out of each forward (the same rounding as fp32 then fp16, without the fp32 copy)
    layers, embed = tower.video_features(pixels, k, batch_size=batch_size, output_dtype=torch.float16)
    return Embedded(layers=layers[:count].numpy(), embed=embed[:count].numpy())  # [n, k, P, Cv], [n, D]


# ----------------------------------------------------------------------------------------------
# 4. write


def open_writer(store: FeatureStore, item: WorkItem, settings: FeatureSettings,
                extra: dict[str, Any] | None = None) -> FeatureWriter:
    """A streaming writer for ``item``'s features (its temporary file is opened at once).

    Raises:
        FeatureError: the store cannot be written (the message names the folder and why).
    """
    writer = store.writer(item.fingerprint, settings, duration=item.duration, extra=dict(extra or {}))
    writer.__enter__()
    return writer


def write_chunk(writer: FeatureWriter, embedded: Embedded, timestamps: "np.ndarray") -> None:
    """Append consecutive clips to an open writer."""
    writer.append(embedded.layers, embedded.embed, timestamps)


def commit_features(writer: FeatureWriter, item: WorkItem, details: dict[str, Any]) -> StoredFeatureSet:
    """Publish the file under its final name, unless the video changed meanwhile (then nothing is published).

    Raises:
        FeatureError: no clips were written or the file cannot be written; MediaError: the video changed.
    """
    try:
        if writer.num_clips == 0:
            raise FeatureError(f"{item.path}: no clips were extracted")
        problem = file_changed(item)
        if problem:
            raise MediaError(f"{item.path}: {problem}")
        writer.extra = {**writer.extra, **details}
        return writer.commit()
    finally:
        writer.abort()  # no-op after a commit


def write_features(store: FeatureStore, item: WorkItem, settings: FeatureSettings,
                   parts: Iterable[tuple[Embedded, "np.ndarray"]], details: dict[str, Any],
                   extra: dict[str, Any] | None = None) -> StoredFeatureSet:
    """Write all of ``item``'s features at once: ``parts`` are ``(Embedded, timestamps)`` in clip order."""
    writer = open_writer(store, item, settings, extra)
    try:
        for embedded, stamps in parts:
            write_chunk(writer, embedded, stamps)
        return commit_features(writer, item, details)
    finally:
        writer.abort()


# ----------------------------------------------------------------------------------------------
# 5. record


def record_success(catalog: "Catalog", item: WorkItem, stored: StoredFeatureSet) -> None:
    """Record the feature set and mark the content's rows ``ok``."""
    from r2cli.catalog.features import record_feature_set

    record_feature_set(catalog, stored, item.video_ids)


def failure_message(item: WorkItem, error: BaseException) -> str:
    """The error as recorded on the row: without the leading path, a type name for non-r2cli errors."""
    message = str(error) if isinstance(error, R2Error) else f"{type(error).__name__}: {error}"
    prefix = f"{item.path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def record_failure(catalog: "Catalog", item: WorkItem, error: BaseException) -> VideoFailure:
    """Mark the content's rows ``features_status = error`` with why; returns the failure."""
    from r2cli.catalog.features import record_feature_failure

    short = failure_message(item, error)
    record_feature_failure(catalog, item.fingerprint, item.video_ids, short)
    return VideoFailure(path=item.path, error=short)


# ----------------------------------------------------------------------------------------------
# The stages in sequence (no threads): the reference the threaded pipeline is tested against


def extract_item(item: WorkItem, settings: FeatureSettings, tower: "ClipTower", store: FeatureStore, *,
                 batch_size: int, extra: dict[str, Any] | None = None, threads: int | None = None,
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> StoredFeatureSet:
    """Decode, embed and write one video, one stage after the other, on this thread.

    Raises:
        MediaError, FeatureError: the video cannot be decoded or its features cannot be written.
    """
    import numpy as np

    frames: list = []
    stamps: list = []
    details: dict[str, Any] = {}
    for part in decode_video(item.path, settings, threads=threads, chunk_frames=chunk_frames,
                             check=lambda: file_changed(item)):
        if isinstance(part, DecodeDone):
            details = part.details
        else:
            frames.append(part.frames)
            stamps.append(part.timestamps)
    pixels = np.concatenate(frames)
    times = np.concatenate(stamps)
    parts = [
        (embed_frames(pixels[i : i + batch_size], tower, k=settings.k, batch_size=batch_size), times[i : i + batch_size])
        for i in range(0, len(pixels), batch_size)
    ]
    return write_features(store, item, settings, parts, details, extra)
