"""Feature extraction: video -> sampled frames -> CLIP per-layer tokens -> the feature store.

The work is done by the stage functions of ``r2cli.features.stages`` (list work, decode, embed,
write, record), run here by the local threaded engine of ``r2cli.features.pipeline``. Entry points:

- ``extract_video(path, settings, tower)``: one video's feature arrays in memory (no catalog, no
  store, no global state).
- ``extract_features(workspace, ...)``: the feature half of ``r2cli index``. It loads the CLIP
  tower once, lists the catalog's readable videos that lack features for the settings, and runs
  one pipeline over all of them. Each video's features are written atomically to the store and
  recorded in the catalog as soon as its last frame is through; a failure is recorded on the
  video's rows and the run goes on. A re-run skips what is finished (and repairs rows whose
  mark disagrees with the store); a video whose extraction was interrupted has no feature file
  (only a temporary one, never read, removed by the next run) and is simply extracted again.

A frame's features do not depend on which other frames share its batch: every CLIP forward has
the same batch shape (a short batch is padded) and rows do not interact, so a video gets the same
features whether it is extracted alone, together with others, or by the stages in sequence
(``r2cli.features.stages.extract_item``); the tests check this byte for byte.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from r2cli.errors import FeatureError, UsageError
from r2cli.features.pipeline import MemorySink, PipelineStats, Sink, run_pipeline
from r2cli.features.stages import (
    VideoFailure,
    WorkItem,
    check_tower,
    commit_features,
    list_work,
    open_writer,
    record_failure,
    record_success,
    write_chunk,
)
from r2cli.features.file_format import StoredFeatureSet
from r2cli.features.store import FEATURE_FPS, FeatureSettings, FeatureStore
from r2cli.media.frames import DEFAULT_CHUNK_FRAMES, FRAME_RULE_EXACT, GEOMETRY_DISPLAY
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    import numpy as np

    from r2cli.catalog.db import Catalog
    from r2cli.features.clip import ClipTower
    from r2cli.paths import Workspace

STAGE = "features"
__all__ = ["ExtractReport", "ExtractedVideo", "VideoFailure", "extract_features", "extract_video"]


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
    videos_verified: int = 0  # feature files checked against their checksum (--verify)
    videos_repaired: int = 0  # of those, files that failed the check and were extracted again
    temporaries_removed: int = 0  # stale temporary files of killed or failed runs, deleted
    failures: list[VideoFailure] = field(default_factory=list)
    repaired: list[VideoFailure] = field(default_factory=list)  # (path, what was wrong with its file)
    clips: int = 0  # clips (frames) extracted in this run
    video_seconds: float = 0.0  # duration of the videos extracted in this run
    bytes_written: int = 0  # size of the feature files written in this run
    wall_seconds: float = 0.0  # the whole call, CLIP loading included
    pipeline_seconds: float = 0.0  # decoding + CLIP, without loading the model
    decode_cpu_seconds: float = 0.0  # CPU time of the ffmpeg/ffprobe processes
    model_cpu_seconds: float = 0.0  # CPU time of this process during the pipeline (CLIP, batching, writing)
    ray_log: str | None = None  # where Ray's own logs and notices went (--ray), not the terminal

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
        data["repaired"] = [f.to_dict() for f in self.repaired]
        data["video_hours"] = round(self.video_hours, 6)
        data["frames_per_second"] = round(self.frames_per_second, 3)
        data["speed"] = round(self.speed, 3)
        for key in ("wall_seconds", "pipeline_seconds", "decode_cpu_seconds", "model_cpu_seconds", "video_seconds"):
            data[key] = round(data[key], 3)
        return data


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

    check_tower(settings, tower)
    sink = MemorySink()
    name = os.fspath(path)
    item = WorkItem(fingerprint="", path=name, size=None, mtime=None, duration=0.0, video_ids=())
    run_pipeline(
        [item],
        settings,
        tower,
        lambda _item: sink,
        batch_size=_batch_size(batch_size, tower),
        decode_threads=decode_threads,
        chunk_frames=chunk_frames,
        check_files=False,
    )
    if sink.error is not None:
        if isinstance(sink.error, FeatureError) and not str(sink.error).startswith(name):
            raise FeatureError(f"{name}: {sink.error}")
        raise sink.error
    if sink.details is None:
        raise FeatureError(f"{name}: extraction did not finish")
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


class StoreSink(Sink):
    """Streams one video's features into the store (**write**) and records the outcome (**record**)."""

    def __init__(self, run: "_Run", item: WorkItem) -> None:
        self.run = run
        self.item = item
        self.writer = None

    def append(self, embedded, timestamps) -> None:
        if self.writer is None:
            self.writer = open_writer(self.run.store, self.item, self.run.settings, self.run.extra)
        write_chunk(self.writer, embedded, timestamps)

    def finish(self, details) -> None:
        if self.writer is None:
            raise FeatureError(f"{self.item.path}: no clips were extracted")
        writer, self.writer = self.writer, None
        stored = commit_features(writer, self.item, details)
        self.run.record_success(self.item, stored)

    def fail(self, error) -> None:
        self.abort()
        self.run.record_failure(self.item, error)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


class _Run:
    """State of one ``extract_features`` call: catalog, store, settings, report."""

    def __init__(self, catalog: "Catalog", store: FeatureStore, settings: FeatureSettings, report: ExtractReport,
                 extra: dict[str, Any]) -> None:
        self.catalog = catalog
        self.store = store
        self.settings = settings
        self.report = report
        self.extra = extra

    def record_success(self, item: WorkItem, stored: StoredFeatureSet) -> None:
        record_success(self.catalog, item, stored)
        self.report.videos_extracted += 1
        self.report.clips += stored.num_clips
        self.report.video_seconds += item.duration
        self.report.bytes_written += stored.bytes

    def record_failure(self, item: WorkItem, error: Exception) -> None:
        self.report.failures.append(record_failure(self.catalog, item, error))
        self.report.videos_failed += 1


def extract_features(
    workspace: "Workspace",
    *,
    clip_weights: str | os.PathLike | None = None,
    tower: "ClipTower | None" = None,
    fps: float = FEATURE_FPS,
    k: int = 4,
    frame_rule: str = FRAME_RULE_EXACT,
    geometry: str = GEOMETRY_DISPLAY,
    device: str = "auto",
    precision: str = "fp32",
    feature_dtype: str = "float16",
    batch_size: int | None = None,
    decode_threads: int | None = None,
    paths: Sequence[str | os.PathLike] | None = None,
    video_ids: Sequence[int] | None = None,
    verify: bool = False,
    lock_timeout: float = 0.0,
    runner: "Callable[..., PipelineStats] | None" = None,
    reporter: Reporter = NULL_REPORTER,
) -> ExtractReport:
    """Extract and store features for every readable catalog video that lacks them.

    Args:
        workspace: where the catalog and the feature store (``workspace.features_dir``) are.
        clip_weights: CLIP weights (``load_clip``): None -> ``$R2CLI_CLIP_WEIGHTS``, else OpenAI
            ViT-B/32 from the weights cache; a registry tag; or a local OpenAI-format file.
        tower: an already loaded ``ClipTower`` (then ``clip_weights``, ``device``, ``precision`` are unused).
        fps: sampled frames (clips) per second (``FEATURE_FPS`` unless told; 1 for Charades-STA).
        k: CLIP layers kept (the last k).
        frame_rule: ``"ffmpeg-fps-near"`` (exact, default) or opt-in ``"ffmpeg-fps-near-noref"``.
        geometry: ``"display"`` (default) or ``"official"`` (``r2cli.media.frames.GEOMETRIES``).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        precision: CLIP precision, ``"fp32"`` (default, as the official extractor) or ``"bf16"``.
        feature_dtype: how layer tokens are stored: ``"float16"`` (default) or ``"int8"`` with
            per-(clip, layer, channel) scales (``r2cli.features.compact``; a separate feature set).
        batch_size: frames per CLIP forward (default: the tower's, 16 on CPU, 256 on CUDA).
        decode_threads: ffmpeg decoder threads (default: the cores this process may use, <= 16).
        paths: only videos at or under these paths (or catalogued as these files).
        video_ids: only these catalog rows.
        verify: check every recorded feature file against its checksum and shapes, and extract
            the failing ones again (without it, a file of the wrong size is still caught).
        lock_timeout: seconds to wait for another process writing the catalog.
        runner: runs decode and CLIP for the videos to extract somewhere else, as
            ``runner(run, items, batch_size=, threads=, reporter=) -> PipelineStats`` under the
            catalog's writer lock; None (default): this process's pipeline. ``r2cli.app.index``
            passes Ray's (``ray_runner``), since the use case decides local or Ray (#23).
        reporter: progress, stage ``"features"`` in frames (fields: videos, fps).

    Raises:
        MissingWeightsError: the CLIP weights are not available (offline, nothing cached).
        UsageError: a bad setting (fps, k, batch size, device, frame rule, geometry).
        CatalogBusyError: another process is writing to the catalog.
        CatalogError: the catalog cannot be opened or written.
        MissingDependencyError: ffmpeg/ffprobe are missing.
    """
    from r2cli.catalog.db import Catalog
    from r2cli.features.clip import load_clip
    from r2cli.media.ffmpeg import describe_tools
    from r2cli.media.frames import default_decode_threads

    started = time.monotonic()
    _check_args(fps=fps, frame_rule=frame_rule, batch_size=batch_size, decode_threads=decode_threads, tower=tower)
    if tower is None and not verify and device in ("auto", "cpu") and precision == "fp32":
        # an unchanged archive: answer from the catalog without importing torch and loading CLIP,
        # which took all of a re-index's seconds (#22.14)
        done = _already_done(workspace, clip_weights, fps=fps, k=k, frame_rule=frame_rule, geometry=geometry,
                             precision=precision, paths=paths, video_ids=video_ids)
        if done is not None:
            return _nothing_to_do(workspace, *done, device=device, batch_size=batch_size,
                                  decode_threads=decode_threads, started=started)
    if tower is None:
        # Extraction never runs the text tower: leave its weights (a third of ViT-B/32) unread.
        tower = load_clip(
            clip_weights, device=device, precision=precision, batch_size=batch_size, lazy_text=True, reporter=reporter
        )
    settings = FeatureSettings.for_tower(tower, fps=fps, k=k, frame_rule=frame_rule, geometry=geometry,
                                         dtype=feature_dtype)
    store = FeatureStore(workspace.features_dir)
    threads = decode_threads or default_decode_threads()
    report = ExtractReport(settings=settings.to_dict(), settings_key=settings.key(), device=str(tower.device),
                           batch_size=_batch_size(batch_size, tower), decode_threads=threads, store=str(store.root))
    extra = {"ffmpeg": getattr(describe_tools().get("ffmpeg"), "version", None)}
    with Catalog.open(workspace) as catalog:
        with catalog.writer_lock(timeout=lock_timeout, purpose="r2cli index (features)"):
            run = _Run(catalog, store, settings, report, extra)
            todo = _settle_catalog(run, paths=paths, video_ids=video_ids, verify=verify)
            if runner is None:
                stats = _extract_items(run, todo, tower, report.batch_size, threads, reporter)
            elif todo:
                stats = runner(run, todo, batch_size=report.batch_size, threads=threads, reporter=reporter)
            else:
                stats = PipelineStats()
            report.decode_cpu_seconds = stats.decode_cpu
            report.model_cpu_seconds = stats.model_cpu
            report.pipeline_seconds = stats.seconds
    report.wall_seconds = time.monotonic() - started
    return report


def _check_args(*, fps: float, frame_rule: str, batch_size: int | None, decode_threads: int | None,
                tower: "ClipTower | None") -> None:
    """Raises UsageError for a bad fps, frame rule, batch size or thread count, before anything loads."""
    from r2cli.media.frames import check_sampling_args

    check_sampling_args(fps, 1, frame_rule)
    if batch_size is not None:
        _batch_size(batch_size, tower) if tower is not None else _positive("--batch-size", batch_size)
    if decode_threads is not None:
        _positive("decode threads", decode_threads)


def _nothing_to_do(workspace: "Workspace", settings: FeatureSettings, count: int, *, device: str,
                   batch_size: int | None, decode_threads: int | None, started: float) -> ExtractReport:
    """The report of a run whose ``count`` videos all have their features already."""
    return ExtractReport(settings=settings.to_dict(), settings_key=settings.key(), device=device,
                         batch_size=batch_size or 0, decode_threads=decode_threads or 0,
                         store=str(workspace.features_dir), videos_total=count, videos_skipped=count,
                         wall_seconds=time.monotonic() - started)


def _settle_catalog(run: "_Run", *, paths: Sequence[str | os.PathLike] | None, video_ids: Sequence[int] | None,
                    verify: bool) -> list[WorkItem]:
    """Under the writer lock: remove dead writers' temporaries, mark verified sets, adopt complete files
    the catalog does not know, count what is done on the report; the videos left to extract."""
    from r2cli.catalog.features import mark_features_ok

    catalog, store, report = run.catalog, run.store, run.report
    report.temporaries_removed = store.remove_stale_temporaries()
    work = list_work(catalog, store, run.settings, paths=paths, video_ids=video_ids, verify=verify)
    if work.mark_ok:
        mark_features_ok(catalog, work.mark_ok)
    for item, stored in work.adopt:  # complete files of a run killed after the rename
        record_success(catalog, item, stored)
    report.repaired = [VideoFailure(path=item.path, error=problem) for item, problem in work.rejected]
    report.videos_repaired = len(work.rejected)
    report.videos_verified = (work.done + len(work.rejected)) if verify else 0
    report.videos_total = len(work.todo) + len(work.adopt) + work.done
    report.videos_skipped = work.done + len(work.adopt)
    return work.todo


def _already_done(workspace: "Workspace", clip_weights, *, fps: float, k: int, frame_rule: str, geometry: str,
                  precision: str, paths, video_ids) -> "tuple[FeatureSettings, int] | None":
    """(settings, videos) when every video in scope already has intact-sized features under the one
    recorded feature set these options give, found without loading the model; else None (then the
    normal path decides). Only the settings a model would add (its name, image size) are taken from
    the catalog, matched by the weights' id, which names the weights file exactly.

    Raises:
        MissingWeightsError: the CLIP weights are not available (as ``load_clip`` would).
    """
    from r2cli.catalog.db import Catalog
    from r2cli.catalog.features import recorded_settings, settings_keys_matching
    from r2cli.errors import CatalogError
    from r2cli.model import registry

    weights_id = registry.resolve_clip(clip_weights).weights_id
    wanted = {"weights_id": weights_id, "fps": fps, "k": k, "frame_rule": frame_rule, "geometry": geometry,
              "precision": precision}
    try:
        with Catalog.open(workspace, create=False) as catalog:
            keys = settings_keys_matching(catalog, wanted)
            if len(keys) != 1:
                return None
            key = next(iter(keys))
            settings = FeatureSettings.from_dict(recorded_settings(catalog, key))
            if settings.key() != key:  # recorded by another store format: let the normal path decide
                return None
            store = FeatureStore(workspace.features_dir)
            work = list_work(catalog, store, settings, paths=paths, video_ids=video_ids, verify=False)
    except (CatalogError, FeatureError):
        return None
    if work.todo or work.adopt or work.rejected or work.mark_ok or not work.done:
        return None
    return settings, work.done


def _positive(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{what} must be a positive integer, got {value!r}")


def _extract_items(
    run: _Run, items: list[WorkItem], tower: "ClipTower", batch_size: int, threads: int, reporter: Reporter
) -> PipelineStats:
    if not items:
        return PipelineStats()
    fps = run.settings.fps
    total_frames = sum(item.expected_clips(fps) for item in items)
    reporter.begin(STAGE, total=total_frames, unit="frames")
    progress = {"frames": 0, "started": time.monotonic()}

    def fields() -> dict[str, str]:
        elapsed = max(time.monotonic() - progress["started"], 1e-9)
        rate = progress["frames"] / elapsed
        remaining = max(total_frames - progress["frames"], 0)
        finished = run.report.videos_extracted + run.report.videos_failed
        return {"videos": f"{finished}/{len(items)}", "fps": f"{rate:.1f}",
                "eta": f"{remaining / rate:.0f}s" if rate > 0 else "?"}

    def on_batch(count: int) -> None:
        progress["frames"] += count
        reporter.advance(STAGE, count, **fields())

    try:
        stats = run_pipeline(
            items,
            run.settings,
            tower,
            lambda item: StoreSink(run, item),
            batch_size=batch_size,
            decode_threads=threads,
            on_batch=on_batch,
        )
        # the last videos finish after the last batch (and failed ones never reach one): end the
        # progress line at videos=N/N rather than where the last batch left it
        reporter.advance(STAGE, 0, **fields())
        return stats
    finally:
        reporter.end(STAGE)
