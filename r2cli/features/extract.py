"""Feature extraction: video → sampled frames → CLIP per-layer tokens → the feature store.

Two entry points:

- ``extract_video(path, settings, tower)``: a pure function from one video and its settings to its
  feature arrays (no catalog, no store, no global state): what a distributed engine (Ray Data)
  would map over videos.
- ``extract_features(workspace, ...)``: the feature half of ``r2cli index``. It loads the CLIP
  tower once, finds the catalog's readable videos that lack features for the current settings,
  and runs one pipeline over all of them: a background thread drives ffmpeg (one process per
  video, frames streamed in bounded chunks through a bounded queue) while the main thread batches
  frames *across* videos through CLIP, so decoding and the model overlap and short videos still
  fill batches. Each video's features are written atomically to the store and recorded in the
  catalog as soon as its last frame is through; a failure is recorded on the video's row and the
  run goes on. A re-run skips what is finished; a video whose extraction was interrupted has no
  feature file (only a temporary one, never read) and is simply extracted again.

Both paths share the batching code, and a frame's features do not depend on which other frames
share its batch: every CLIP forward has the same batch shape (the last batch of a run is padded)
and rows do not interact, so a video gets the same features whether it is extracted alone or
together with others (checked by the tests on CPU).
"""

from __future__ import annotations

import abc
import os
import queue
import resource
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from r2cli.errors import CatalogError, FeatureError, MediaError, R2Error, UsageError
from r2cli.features.store import FeatureSettings, FeatureStore, StoredFeatureSet
from r2cli.media.frames import DEFAULT_CHUNK_FRAMES, FRAME_RULE_EXACT, FrameSampler, expected_clip_count
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from r2cli.catalog.db import Catalog
    from r2cli.features.clip import ClipTower
    from r2cli.paths import Workspace

STAGE = "features"
_QUEUE_POLL_SECONDS = 0.2


# ----------------------------------------------------------------------------------------------
# Results


@dataclass
class ExtractedVideo:
    """Features of one video, in memory (``extract_video``)."""

    layers: "np.ndarray"  # [T, k, P, Cv] float16
    embed: "np.ndarray"  # [T, D] float16
    timestamps: "np.ndarray"  # [T] float64, pts (s) of the frame behind each clip
    settings: FeatureSettings
    details: dict[str, Any]  # geometry, decoded frames, end padding

    @property
    def num_clips(self) -> int:
        return int(self.layers.shape[0])


@dataclass(frozen=True)
class VideoFailure:
    """A video whose features could not be extracted (also recorded on its catalog row)."""

    path: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class ExtractReport:
    """What one ``extract_features`` run did."""

    settings: dict[str, Any]  # FeatureSettings.to_dict() of this run
    settings_key: str
    device: str  # where CLIP ran
    batch_size: int
    decode_threads: int
    store: str  # feature store root
    videos_total: int = 0  # readable catalog videos considered (distinct contents)
    videos_skipped: int = 0  # already had features for these settings
    videos_extracted: int = 0  # features written in this run
    videos_failed: int = 0
    failures: list[VideoFailure] = field(default_factory=list)
    clips: int = 0  # clips (frames) extracted in this run
    video_seconds: float = 0.0  # duration of the videos extracted in this run
    bytes_written: int = 0  # size of the feature files written in this run
    wall_seconds: float = 0.0  # the whole call, CLIP loading included
    pipeline_seconds: float = 0.0  # decoding + CLIP, without loading the model
    decode_cpu_seconds: float = 0.0  # CPU time of the ffmpeg/ffprobe processes
    model_cpu_seconds: float = 0.0  # CPU time of this process during the pipeline (CLIP, batching, writing)

    @property
    def video_hours(self) -> float:
        return self.video_seconds / 3600.0

    @property
    def frames_per_second(self) -> float:
        return self.clips / self.pipeline_seconds if self.pipeline_seconds > 0 else 0.0

    @property
    def speed(self) -> float:
        """Video-hours indexed per wall-clock hour of the pipeline."""
        return self.video_seconds / self.pipeline_seconds if self.pipeline_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = [f.to_dict() for f in self.failures]
        data["video_hours"] = round(self.video_hours, 6)
        data["frames_per_second"] = round(self.frames_per_second, 3)
        data["speed"] = round(self.speed, 3)
        for key in ("wall_seconds", "pipeline_seconds", "decode_cpu_seconds", "model_cpu_seconds", "video_seconds"):
            data[key] = round(data[key], 3)
        return data


# ----------------------------------------------------------------------------------------------
# The shared pipeline


@dataclass
class _Job:
    """One video to decode."""

    key: Any  # caller's identity for the video (a fingerprint, an index)
    path: str
    expected_clips: int = 0  # for progress only
    check: Callable[[], str | None] | None = None  # returns an error message if the file changed


class _Sink(abc.ABC):
    """Receives one video's features in order."""

    @abc.abstractmethod
    def append(self, layers: "np.ndarray", embed: "np.ndarray", timestamps: "np.ndarray") -> None:
        """The next clips' features, in clip order."""

    @abc.abstractmethod
    def finish(self, details: dict[str, Any]) -> None:
        """All clips are in; publish them."""

    @abc.abstractmethod
    def fail(self, error: Exception) -> None:
        """Extraction failed; drop whatever was received and record why."""

    @abc.abstractmethod
    def abort(self) -> None:
        """The run stops (interrupt, fatal error): drop whatever was received, record nothing."""


class _MemorySink(_Sink):
    def __init__(self) -> None:
        self.layers: list = []
        self.embed: list = []
        self.timestamps: list = []
        self.details: dict[str, Any] | None = None
        self.error: Exception | None = None

    def append(self, layers, embed, timestamps) -> None:
        self.layers.append(layers)
        self.embed.append(embed)
        self.timestamps.append(timestamps)

    def finish(self, details) -> None:
        self.details = details

    def fail(self, error) -> None:
        self.error = error
        self.layers, self.embed, self.timestamps = [], [], []

    def abort(self) -> None:
        self.fail(FeatureError("extraction was interrupted"))


@dataclass
class _Open:
    """A video inside the pipeline."""

    job: _Job
    sink: _Sink
    received: int = 0  # frames taken from the decoder
    processed: int = 0  # frames through CLIP and handed to the sink
    decoded: bool = False  # the decoder has sent everything
    details: dict[str, Any] = field(default_factory=dict)
    failed: bool = False


@dataclass
class _PipelineStats:
    clips: int = 0
    decode_cpu: float = 0.0
    model_cpu: float = 0.0
    seconds: float = 0.0


def _check_tower(settings: FeatureSettings, tower: "ClipTower") -> None:
    expected = FeatureSettings.for_tower(tower, fps=settings.fps, k=settings.k, frame_rule=settings.frame_rule)
    if expected != settings:
        raise UsageError(
            f"feature settings do not match the CLIP tower: settings {settings.canonical_json()}, "
            f"tower gives {expected.canonical_json()}"
        )


def _run_pipeline(
    jobs: Sequence[_Job],
    settings: FeatureSettings,
    tower: "ClipTower",
    make_sink: Callable[[_Job], _Sink],
    *,
    batch_size: int,
    decode_threads: int | None,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    on_batch: Callable[[int], None] | None = None,
    model_threads: int | None = None,
) -> _PipelineStats:
    """Decode ``jobs`` in a background thread and run CLIP on cross-video batches on this thread."""
    import numpy as np
    import torch

    size = settings.image_size
    stop = threading.Event()
    # On the CPU, decoding and CLIP share the cores: give CLIP half of them (ffmpeg's threads sleep
    # when idle, OpenMP's spin), measured in benchmarks/RESULTS-index.md. Restored at the end.
    threads_before = torch.get_num_threads()
    if tower.device == "cpu":
        from r2cli.media.frames import default_decode_threads

        torch.set_num_threads(model_threads or max(1, default_decode_threads() // 2))
    # Bounded: at most this many chunks (each <= chunk_frames frames) wait between decoder and model.
    items: queue.Queue = queue.Queue(maxsize=max(2, 2 * -(-batch_size // chunk_frames)))
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=_QUEUE_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def decode_all() -> None:
        try:
            for job in jobs:
                if stop.is_set():
                    return
                try:
                    problem = job.check() if job.check is not None else None
                    if problem:
                        raise MediaError(f"{job.path}: {problem}")
                    sampler = FrameSampler(
                        job.path,
                        fps=settings.fps,
                        size=size,
                        frame_rule=settings.frame_rule,
                        threads=decode_threads,
                        chunk_frames=chunk_frames,
                    )
                    with sampler:
                        for chunk in sampler:
                            if not put(("frames", job, chunk)):
                                return
                    geometry = sampler.geometry()
                    details = {
                        "decoded_frames": sampler.stats.decoded_frames,
                        "end_padding": sampler.stats.end_padding,
                        "scaled_size": [geometry.scaled_width, geometry.scaled_height],
                        "crop_offset": [geometry.crop_x, geometry.crop_y],
                        "rotation": geometry.rotation,
                        "sample_aspect_ratio": str(geometry.sample_aspect_ratio),
                    }
                    if not put(("done", job, details)):
                        return
                except Exception as exc:  # recorded per video; the run goes on
                    if not put(("error", job, exc)):
                        return
        finally:
            put(("end", None, None))

    decoder = threading.Thread(target=decode_all, name="r2cli-decode", daemon=True)
    decoder.start()

    videos: dict[int, _Open] = {}  # id(job) -> state
    pending: deque = deque()  # (state, frames [n,S,S,3], timestamps [n]) waiting for a batch
    pending_frames = 0
    stats = _PipelineStats()
    batch = np.empty((batch_size, size, size, 3), dtype=np.uint8)  # [B, S, S, 3] staging buffer
    device = tower.device

    def close_if_complete(state: _Open) -> None:
        if state.decoded and not state.failed and state.processed == state.received:
            videos.pop(id(state.job), None)
            try:
                state.sink.finish(state.details)
            except CatalogError:
                raise
            except Exception as exc:  # this video fails; the run goes on
                state.sink.fail(exc)

    def fail(state: _Open, error: Exception) -> None:
        nonlocal pending, pending_frames
        state.failed = True
        videos.pop(id(state.job), None)
        kept = deque(item for item in pending if item[0] is not state)
        pending_frames = sum(len(item[1]) for item in kept)
        pending = kept
        state.sink.fail(error)

    def run_batch(limit: int) -> None:
        nonlocal pending_frames
        taken: list[tuple[_Open, int, Any]] = []  # (state, count, timestamps)
        filled = 0
        while pending and filled < limit:
            state, frames, stamps = pending[0]
            take = min(len(frames), limit - filled)
            batch[filled : filled + take] = frames[:take]
            taken.append((state, take, stamps[:take]))
            if take == len(frames):
                pending.popleft()
            else:
                pending[0] = (state, frames[take:], stamps[take:])
            filled += take
        pending_frames -= filled
        # Every forward has the same shape (a short last batch is padded with black frames): BLAS
        # kernels are chosen by shape, so a frame's features then never depend on its companions.
        batch[filled:] = 0
        pixels = torch.from_numpy(batch)  # [B, S, S, 3] uint8
        if device != "cpu":
            pixels = pixels.to(device, non_blocking=False)
        pixels = pixels.permute(0, 3, 1, 2)  # [B, 3, S, S]
        # fp16 straight out of each forward (the same rounding as fp32 then fp16, without the fp32 copy)
        layers, embed = tower.video_features(
            pixels, settings.k, batch_size=batch_size, output_dtype=torch.float16
        )  # [B, k, P, Cv], [B, D] float16
        layers16 = layers[:filled].numpy()  # [n, k, P, Cv]
        embed16 = embed[:filled].numpy()  # [n, D]
        offset = 0
        for state, count, stamps in taken:
            if not state.failed:
                try:
                    state.sink.append(layers16[offset : offset + count], embed16[offset : offset + count], stamps)
                    state.processed += count
                except CatalogError:
                    raise
                except Exception as exc:  # e.g. the store's disk is full: this video fails
                    fail(state, exc)
            offset += count
        stats.clips += filled
        if on_batch is not None:
            on_batch(filled)
        for state, _count, _stamps in taken:
            if not state.failed:
                close_if_complete(state)

    try:
        while True:
            kind, job, payload = items.get()
            if kind == "end":
                break
            state = videos.get(id(job))
            if state is None:
                state = _Open(job=job, sink=make_sink(job))
                videos[id(job)] = state
            if kind == "frames":
                if state.failed:
                    continue
                pending.append((state, payload.frames, payload.timestamps))
                pending_frames += len(payload.frames)
                state.received += len(payload.frames)
                while pending_frames >= batch_size:
                    run_batch(batch_size)
            elif kind == "done":
                state.decoded = True
                state.details = payload
                close_if_complete(state)
            elif kind == "error":
                fail(state, payload)
        while pending_frames > 0:
            run_batch(min(batch_size, pending_frames))
        for state in list(videos.values()):  # decoded but never completed (cannot happen unless a sink raised)
            close_if_complete(state)
    finally:
        torch.set_num_threads(threads_before)
        stop.set()
        decoder.join(timeout=30)
        for state in list(videos.values()):
            if not state.failed:
                state.sink.abort()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    stats.decode_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    stats.model_cpu = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
    stats.seconds = time.monotonic() - started
    return stats


# ----------------------------------------------------------------------------------------------
# One video, in memory


def extract_video(
    path: str | os.PathLike,
    settings: FeatureSettings,
    tower: "ClipTower",
    *,
    batch_size: int | None = None,
    decode_threads: int | None = None,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
) -> ExtractedVideo:
    """Features of one video under ``settings``, computed with ``tower`` (no catalog, no store).

    Holds all of the video's features in memory (about 555 MB per hour of ViT-B/32 features
    at 0.5 fps, fp16); ``extract_features`` streams them to the store instead.

    Raises:
        UsageError: the settings were not made for this tower (model, weights, image size, precision).
        MediaError: ffmpeg cannot decode the file; ``VideoTooShortError`` when it yields no clip.
        MissingDependencyError: ffmpeg/ffprobe are missing.
    """
    import numpy as np

    _check_tower(settings, tower)
    sink = _MemorySink()
    job = _Job(key=0, path=os.fspath(path))
    _run_pipeline(
        [job],
        settings,
        tower,
        lambda _job: sink,
        batch_size=_batch_size(batch_size, tower),
        decode_threads=decode_threads,
        chunk_frames=chunk_frames,
    )
    if sink.error is not None:
        raise sink.error
    if sink.details is None:
        raise FeatureError(f"{job.path}: extraction did not finish")
    return ExtractedVideo(
        layers=np.concatenate(sink.layers),
        embed=np.concatenate(sink.embed),
        timestamps=np.concatenate(sink.timestamps),
        settings=settings,
        details=sink.details,
    )


def _batch_size(batch_size: int | None, tower: "ClipTower") -> int:
    size = tower.batch_size if batch_size is None else batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {size!r}")
    return size


# ----------------------------------------------------------------------------------------------
# The catalog-driven run


@dataclass
class _Target:
    """One content (fingerprint) to extract, with the catalog rows that share it."""

    fingerprint: str
    path: str
    size: int | None
    mtime: float | None
    duration: float
    video_ids: list[int]


class _StoreSink(_Sink):
    """Streams one video's features into the store and records the outcome in the catalog."""

    def __init__(self, run: "_Run", target: _Target) -> None:
        self.run = run
        self.target = target
        self.writer = None

    def append(self, layers, embed, timestamps) -> None:
        if self.writer is None:
            self.writer = self.run.store.writer(
                self.target.fingerprint, self.run.settings, duration=self.target.duration, extra=self.run.extra
            )
            self.writer.__enter__()
        self.writer.append(layers, embed, timestamps)

    def finish(self, details) -> None:
        if self.writer is None:
            raise FeatureError(f"{self.target.path}: no clips were extracted")
        problem = _file_changed(self.target)
        if problem:
            raise MediaError(f"{self.target.path}: {problem}")
        self.writer.extra = {**self.run.extra, **details}
        stored = self.writer.commit()
        self.writer = None
        self.run.record_success(self.target, stored)

    def fail(self, error) -> None:
        self.abort()
        self.run.record_failure(self.target, error)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def _file_changed(target: _Target) -> str | None:
    """Why the file no longer matches the scan that fingerprinted it (None when it still does)."""
    try:
        st = os.stat(target.path)
    except OSError as exc:
        return f"cannot read it any more ({exc.strerror or exc}); run `r2cli index` again"
    if target.size is not None and st.st_size != target.size:
        return "file changed since it was scanned (size differs); run `r2cli index` again"
    if target.mtime is not None and abs(st.st_mtime - target.mtime) > 1e-6:
        return "file changed since it was scanned (modification time differs); run `r2cli index` again"
    return None


class _Run:
    """State of one ``extract_features`` call: catalog, store, settings, report."""

    def __init__(self, catalog: "Catalog", store: FeatureStore, settings: FeatureSettings, report: ExtractReport,
                 extra: dict[str, Any]) -> None:
        self.catalog = catalog
        self.store = store
        self.settings = settings
        self.report = report
        self.extra = extra

    def record_success(self, target: _Target, stored: StoredFeatureSet) -> None:
        self._record_feature_set(target, stored)
        self.report.videos_extracted += 1
        self.report.clips += stored.num_clips
        self.report.video_seconds += target.duration
        self.report.bytes_written += stored.bytes

    def _record_feature_set(self, target: _Target, stored: StoredFeatureSet) -> None:
        from sqlalchemy import select

        from r2cli.catalog.schema import FeatureSet, Video, utcnow

        with self.catalog.session(immediate=True) as session:
            row = session.scalars(
                select(FeatureSet).where(
                    FeatureSet.fingerprint == stored.fingerprint, FeatureSet.settings_key == stored.settings_key
                )
            ).first()
            if row is None:
                row = FeatureSet(fingerprint=stored.fingerprint, settings_key=stored.settings_key)
                session.add(row)
            row.settings = stored.settings
            row.relpath = stored.relpath
            row.num_clips = stored.num_clips
            row.shape = stored.shape
            row.dtype = stored.dtype
            row.bytes = stored.bytes
            row.created_at = utcnow()
            for video in session.scalars(select(Video).where(Video.id.in_(target.video_ids))):
                if video.fingerprint == target.fingerprint:
                    video.features_status, video.features_error = "ok", None

    def record_failure(self, target: _Target, error: Exception) -> None:
        from sqlalchemy import select

        from r2cli.catalog.schema import Video

        message = str(error) if isinstance(error, R2Error) else f"{type(error).__name__}: {error}"
        prefix = f"{target.path}: "
        short = message[len(prefix):] if message.startswith(prefix) else message
        with self.catalog.session(immediate=True) as session:
            for video in session.scalars(select(Video).where(Video.id.in_(target.video_ids))):
                if video.fingerprint == target.fingerprint:
                    video.features_status, video.features_error = "error", short
        self.report.videos_failed += 1
        self.report.failures.append(VideoFailure(path=target.path, error=short))


def _select_targets(
    catalog: "Catalog",
    store: FeatureStore,
    settings: FeatureSettings,
    *,
    paths: Sequence[str | os.PathLike] | None,
    video_ids: Sequence[int] | None,
) -> tuple[list[_Target], int, list[int]]:
    """Contents needing features, the count already done, and ids of rows to mark done."""
    from sqlalchemy import select

    from r2cli.catalog.schema import FeatureSet, Video

    key = settings.key()
    roots = [os.path.abspath(os.fspath(p)) for p in paths] if paths else None
    realroots = [os.path.realpath(r) for r in roots] if roots else None
    with catalog.session() as session:
        query = select(Video).where(Video.status == "ok", Video.fingerprint.is_not(None)).order_by(Video.path)
        if video_ids:
            query = query.where(Video.id.in_(list(video_ids)))
        rows = session.scalars(query).all()
        done = {
            fs.fingerprint: fs
            for fs in session.scalars(select(FeatureSet).where(FeatureSet.settings_key == key))
        }
    by_fingerprint: dict[str, _Target] = {}
    mark_ok: list[int] = []
    skipped: set[str] = set()
    for row in rows:
        if roots is not None and not any(_under(row.path, r) for r in (*roots, *realroots)):
            continue
        fingerprint = row.fingerprint
        feature_set = done.get(fingerprint)
        if feature_set is not None and (store.root / feature_set.relpath).is_file():
            skipped.add(fingerprint)
            if row.features_status != "ok":
                mark_ok.append(row.id)
            continue
        target = by_fingerprint.get(fingerprint)
        if target is None:
            by_fingerprint[fingerprint] = _Target(
                fingerprint=fingerprint,
                path=row.path,
                size=row.size,
                mtime=row.mtime,
                duration=float(row.duration or 0.0),
                video_ids=[row.id],
            )
        else:
            target.video_ids.append(row.id)
    return list(by_fingerprint.values()), len(skipped), mark_ok


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _adopt_existing_file(run: _Run, target: _Target) -> bool:
    """A complete feature file without its catalog row (killed after the rename): record it."""
    try:
        features = run.store.get(target.fingerprint, run.settings)
    except FeatureError:  # unreadable: extract again (the new file replaces it atomically)
        return False
    if features is None:
        return False
    stored = StoredFeatureSet(
        fingerprint=target.fingerprint,
        settings_key=run.settings.key(),
        settings=run.settings.to_dict(),
        relpath=run.store.relpath(target.fingerprint, run.settings),
        num_clips=features.num_clips,
        shape={
            "layers": list(features.layers.shape),
            "embed": list(features.embed.shape),
            "timestamps": list(features.timestamps.shape),
        },
        dtype=run.settings.dtype,
        bytes=features.nbytes,
    )
    run._record_feature_set(target, stored)
    return True


def extract_features(
    workspace: "Workspace",
    *,
    clip_weights: str | os.PathLike | None = None,
    tower: "ClipTower | None" = None,
    fps: float = 0.5,
    k: int = 4,
    frame_rule: str = FRAME_RULE_EXACT,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int | None = None,
    decode_threads: int | None = None,
    paths: Sequence[str | os.PathLike] | None = None,
    video_ids: Sequence[int] | None = None,
    lock_timeout: float = 0.0,
    reporter: Reporter = NULL_REPORTER,
) -> ExtractReport:
    """Extract and store features for every readable catalog video that lacks them.

    Args:
        workspace: where the catalog and the feature store (``workspace.features_dir``) are.
        clip_weights: CLIP weights (``load_clip``): None → ``$R2CLI_CLIP_WEIGHTS``, else OpenAI
            ViT-B/32 from the weights cache; a registry tag; or a local OpenAI-format file.
        tower: an already loaded ``ClipTower`` (then ``clip_weights``, ``device``, ``precision`` are unused).
        fps: sampled frames (clips) per second; 0.5 like the official features (1 for Charades-STA).
        k: CLIP layers kept (the last k).
        frame_rule: ``"ffmpeg-fps-near"`` (exact, default) or opt-in ``"ffmpeg-fps-near-noref"``.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        precision: CLIP precision, ``"fp32"`` (default, as the official extractor) or ``"bf16"``.
        batch_size: frames per CLIP forward (default: the tower's, 16 on CPU, 256 on CUDA).
        decode_threads: ffmpeg decoder threads (default: the cores this process may use, ≤ 16).
        paths: only videos at or under these paths.
        video_ids: only these catalog rows.
        lock_timeout: seconds to wait for another process writing the catalog.
        reporter: progress, stage ``"features"`` in frames (fields: videos, fps).

    Raises:
        MissingWeightsError: the CLIP weights are not available (offline, nothing cached).
        UsageError: a bad setting (fps, k, batch size, device, frame rule).
        CatalogBusyError: another process is writing to the catalog.
        CatalogError: the catalog cannot be opened or written.
        MissingDependencyError: ffmpeg/ffprobe are missing.
    """
    from r2cli.catalog.db import Catalog
    from r2cli.features.clip import load_clip
    from r2cli.media.ffmpeg import describe_tools
    from r2cli.media.frames import check_sampling_args, default_decode_threads

    started = time.monotonic()
    check_sampling_args(fps, 1, frame_rule)
    if batch_size is not None:
        _batch_size(batch_size, tower) if tower is not None else _positive("--batch-size", batch_size)
    if decode_threads is not None:
        _positive("decode threads", decode_threads)
    if tower is None:
        # Extraction never runs the text tower: leave its weights (a third of ViT-B/32) unread.
        tower = load_clip(
            clip_weights, device=device, precision=precision, batch_size=batch_size, lazy_text=True, reporter=reporter
        )
    settings = FeatureSettings.for_tower(tower, fps=fps, k=k, frame_rule=frame_rule)
    store = FeatureStore(workspace.features_dir)
    threads = decode_threads or default_decode_threads()
    report = ExtractReport(
        settings=settings.to_dict(),
        settings_key=settings.key(),
        device=str(tower.device),
        batch_size=_batch_size(batch_size, tower),
        decode_threads=threads,
        store=str(store.root),
    )
    tools = describe_tools()
    extra = {"ffmpeg": getattr(tools.get("ffmpeg"), "version", None)}
    with Catalog.open(workspace) as catalog:
        with catalog.writer_lock(timeout=lock_timeout, purpose="r2cli index (features)"):
            targets, skipped, mark_ok = _select_targets(catalog, store, settings, paths=paths, video_ids=video_ids)
            run = _Run(catalog, store, settings, report, extra)
            if mark_ok:
                _mark_ok(catalog, mark_ok)
            store.remove_stale_temporaries()
            todo = [target for target in targets if not _adopt_existing_file(run, target)]
            report.videos_total = len(targets) + skipped
            report.videos_skipped = skipped + (len(targets) - len(todo))
            stats = _extract_targets(run, todo, tower, report.batch_size, threads, reporter)
            report.decode_cpu_seconds = stats.decode_cpu
            report.model_cpu_seconds = stats.model_cpu
            report.pipeline_seconds = stats.seconds
    report.wall_seconds = time.monotonic() - started
    return report


def _positive(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{what} must be a positive integer, got {value!r}")


def _mark_ok(catalog: "Catalog", ids: list[int]) -> None:
    from sqlalchemy import select

    from r2cli.catalog.schema import Video

    with catalog.session(immediate=True) as session:
        for video in session.scalars(select(Video).where(Video.id.in_(ids))):
            video.features_status, video.features_error = "ok", None


def _extract_targets(
    run: _Run, targets: list[_Target], tower: "ClipTower", batch_size: int, threads: int, reporter: Reporter
) -> _PipelineStats:
    if not targets:
        return _PipelineStats()
    fps = run.settings.fps
    jobs = [
        _Job(
            key=target.fingerprint,
            path=target.path,
            expected_clips=expected_clip_count(target.duration, fps),
            check=(lambda t=target: _file_changed(t)),
        )
        for target in targets
    ]
    by_job = {id(job): target for job, target in zip(jobs, targets)}
    total_frames = sum(job.expected_clips for job in jobs)
    reporter.begin(STAGE, total=total_frames, unit="frames")
    progress = {"frames": 0, "started": time.monotonic()}

    def on_batch(count: int) -> None:
        progress["frames"] += count
        elapsed = max(time.monotonic() - progress["started"], 1e-9)
        rate = progress["frames"] / elapsed
        remaining = max(total_frames - progress["frames"], 0)
        finished = run.report.videos_extracted + run.report.videos_failed
        reporter.advance(
            STAGE,
            count,
            videos=f"{finished}/{len(jobs)}",
            fps=f"{rate:.1f}",
            eta=f"{remaining / rate:.0f}s" if rate > 0 else "?",
        )

    try:
        return _run_pipeline(
            jobs,
            run.settings,
            tower,
            lambda job: _StoreSink(run, by_job[id(job)]),
            batch_size=batch_size,
            decode_threads=threads,
            on_batch=on_batch,
        )
    finally:
        reporter.end(STAGE)


# ----------------------------------------------------------------------------------------------
# `r2cli index`: the catalog scan, then features


@dataclass
class IndexReport:
    """``index_archive``: the catalog scan and, unless switched off, the feature extraction."""

    scan: Any  # r2cli.catalog.scan.ScanReport
    features: ExtractReport | None  # None with features=False or a dry run

    def to_dict(self) -> dict[str, Any]:
        """The scan report's fields plus ``"features"`` (the ``ExtractReport`` dict, or null)."""
        data = self.scan.to_dict()
        data["features"] = self.features.to_dict() if self.features is not None else None
        return data


def index_archive(
    paths: Sequence[str | os.PathLike],
    workspace: "Workspace",
    *,
    extensions: Iterable[str] | None = None,
    ignore: Sequence[str] = (),
    dry_run: bool = False,
    lock_timeout: float = 0.0,
    features: bool = True,
    clip_weights: str | os.PathLike | None = None,
    fps: float = 0.5,
    device: str = "auto",
    batch_size: int | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> IndexReport:
    """Scan ``paths`` into the catalog, then extract features for the videos under them.

    The scan is committed before features are extracted, so when extraction cannot start (no
    CLIP weights offline) the catalog is still up to date and the error says how to get weights.

    Raises:
        UsageError, CatalogBusyError, CatalogError, MissingDependencyError: as ``scan_archive``.
        MissingWeightsError: features are on and the CLIP weights are not available.
        UsageError: a bad fps, batch size or device.
    """
    from r2cli.catalog.scan import scan_archive
    from r2cli.errors import MissingWeightsError
    from r2cli.media.frames import check_sampling_args

    if features:  # refuse bad feature flags before spending time on the scan
        check_sampling_args(fps, 1, FRAME_RULE_EXACT)
        if batch_size is not None:
            _positive("--batch-size", batch_size)
    scan = scan_archive(
        paths, workspace, extensions=extensions, ignore=ignore, dry_run=dry_run, reporter=reporter,
        lock_timeout=lock_timeout,
    )
    if not features or dry_run:
        return IndexReport(scan=scan, features=None)
    try:
        extracted = extract_features(
            workspace,
            clip_weights=clip_weights,
            fps=fps,
            device=device,
            batch_size=batch_size,
            paths=scan.roots,
            lock_timeout=lock_timeout,
            reporter=reporter,
        )
    except MissingWeightsError:
        reporter.warn(
            f"catalog updated ({scan.seen} paths: {scan.new} new, {scan.updated} updated, {scan.moved} moved, "
            f"{scan.errors} errors); features were not extracted (use --no-features to index without them)"
        )
        raise
    return IndexReport(scan=scan, features=extracted)
