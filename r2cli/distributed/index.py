"""Feature extraction on Ray: the stages of ``r2cli.features.stages``, spread over a cluster.

The driver (the ``r2cli index`` process) keeps what only it can do: the catalog scan, the list of
work (``list_work``), the catalog writer lock and every catalog write. The cluster does the rest:

1. **decode** (Ray Data tasks, CPU): each video is cut into segments of ``segment_seconds``; every
   segment is decoded by its own task (``FrameSampler`` with ``start_clip``/``end_clip``: ffmpeg
   seeks before the segment and the frame rule is replayed on the whole video's timeline, so each
   clip gets exactly the frame and timestamp of a whole-video decode). A 10-hour file is sixty
   10-minute tasks, not one worker for hours.
2. **embed** (Ray Data actor pool, one actor per GPU, or CPU actors): CLIP on batches of frames
   from any videos. Every forward has the local pipeline's shape (``embed_frames`` pads to the
   batch size), so a frame's features do not depend on its companions. Each actor writes its
   clips' layer tokens (99.7% of the bytes) once, straight into the video's temporary feature file
   at their final place (``place_layers``: data offset + clip x row size), and the clips' small
   arrays (CLIP embeddings, timestamps, an int8 set's scales) as a part file into a staging folder.
3. **assemble** (Ray tasks): when every clip of a video has arrived, one task opens the temporary
   file with ``FeatureWriter(placed=...)``, reads the layers back for the checksum and the
   finiteness check, appends the small arrays after them, writes the header and renames the file
   into place; the driver records the result in the catalog. So every feature byte is written once
   (``benchmarks/ray_bytes.py``: 1,112 MB written per fp16 video-hour before, with full part files
   copied into the store's writer; 557 MB now, for a 555 MB file).

Part files and placed layers are written under names and at offsets made of their clip range, so
a task that Ray runs again after its worker died rewrites the same bytes at the same place; the
driver counts clips as sets, so nothing is counted twice. A driver that dies leaves the catalog as it was after the last recorded video: a
rerun lists the remaining work again (staging folders of unfinished videos are cleared first).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.errors import FeatureError, MediaError, R2Error
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.features.stages import WorkItem
    from r2cli.features.file_format import StoredFeatureSet
    from r2cli.features.store import FeatureSettings, FeatureStore

SEGMENT_SECONDS = 600.0  # videos longer than this are decoded in parallel segments of this length
STAGING_DIR = ".staging"  # under the store root: part files of videos being assembled
_FIRST_MARGIN_S = 10.0  # seconds ffmpeg seeks before a segment; grown when a seek lands inside it


@dataclass(frozen=True)
class Segment:
    """Clips ``start_clip`` .. ``end_clip - 1`` of one video (``end_clip`` None: to the end)."""

    item: int  # index of the video in the work list
    number: int  # 0-based segment number within the video
    start_clip: int
    end_clip: int | None
    tick_origin: int | None  # the video's first fps tick (segments after the first need it)


def plan_segments(items: Sequence["WorkItem"], fps: float, segment_seconds: float = SEGMENT_SECONDS,
                  origin_of: Any = None) -> list[Segment]:
    """Cut each video into segments of ``segment_seconds`` (by its catalogued duration).

    ``origin_of(item)`` gives a video's first fps tick (``r2cli.media.frames.first_tick``); it is
    only called for videos with more than one segment. The last segment of a video runs to its
    end, so a duration that is off by a little changes only where the last cut falls.
    """
    per_segment = max(1, int(round(segment_seconds * fps)))
    segments: list[Segment] = []
    for index, item in enumerate(items):
        clips = item.expected_clips(fps)
        count = max(1, math.ceil(clips / per_segment))
        if count == 1:
            segments.append(Segment(index, 0, 0, None, None))
            continue
        origin = origin_of(item) if origin_of is not None else None
        for number in range(count):
            start = number * per_segment
            end = None if number == count - 1 else start + per_segment
            segments.append(Segment(index, number, start, end, origin))
    return segments


def staging_folder(store: "FeatureStore", item: "WorkItem", settings: "FeatureSettings") -> Path:
    """Where the part files of one video wait to be assembled."""
    token = item.fingerprint.split(":", 1)[-1][:32]
    return store.root / STAGING_DIR / f"{token}-{settings.key()}"


# ----------------------------------------------------------------------------------------------
# Work done on the cluster (module-level functions and classes, so Ray can ship them)


def decode_segment_batches(batch: dict, *, settings: dict, threads: int, chunk_frames: int):
    """Ray Data UDF: one segment row in, batches of frame rows out, then one marker row.

    Frame rows: ``item, segment, clip, timestamp, frame``. The marker row (``marker`` true) says
    how many clips the segment had and how they were made (or why it failed).
    """
    import numpy as np

    from r2cli.features.store import FeatureSettings
    from r2cli.media.frames import FrameSampler, SeekGapError

    spec = FeatureSettings.from_dict(settings)
    size = spec.image_size
    for row in range(len(batch["item"])):
        item, number = int(batch["item"][row]), int(batch["segment"][row])
        start, end = int(batch["start_clip"][row]), int(batch["end_clip"][row])
        origin = int(batch["tick_origin"][row])
        path = str(batch["path"][row])
        margin = _FIRST_MARGIN_S
        emitted = 0
        error = ""
        details: dict[str, Any] = {}
        while True:
            sampler = FrameSampler(
                path, fps=spec.fps, size=size, frame_rule=spec.frame_rule, geometry_rule=spec.geometry,
                threads=threads, chunk_frames=chunk_frames, start_clip=start, end_clip=None if end < 0 else end,
                tick_origin=None if origin < 0 else origin, seek_margin_s=margin,
            )
            try:
                with sampler:
                    for chunk in sampler:
                        n = len(chunk.frames)
                        yield {
                            "item": np.full(n, item, dtype=np.int64),
                            "segment": np.full(n, number, dtype=np.int64),
                            "clip": np.arange(chunk.start, chunk.start + n, dtype=np.int64),
                            "timestamp": np.asarray(chunk.timestamps, dtype=np.float64),
                            "frame": chunk.frames,
                            "marker": np.zeros(n, dtype=bool),
                            "info": np.array([""] * n, dtype=object),
                        }
                        emitted += n
                geometry = sampler.geometry()
                details = {
                    "decoded_frames": sampler.stats.decoded_frames,
                    "end_padding": sampler.stats.end_padding,
                    "scaled_size": [geometry.scaled_width, geometry.scaled_height],
                    "crop_offset": [geometry.crop_x, geometry.crop_y],
                    "rotation": geometry.rotation,
                    "sample_aspect_ratio": str(geometry.sample_aspect_ratio),
                }
                break
            except SeekGapError:
                if emitted:  # cannot happen: the gap is found before the first clip is handed out
                    raise
                margin = math.inf if margin > 600 else margin * 4
            except R2Error as exc:
                error = str(exc)
                break
        info = json.dumps({"clips": emitted, "details": details, "error": error})
        yield {
            "item": np.array([item], dtype=np.int64),
            "segment": np.array([number], dtype=np.int64),
            "clip": np.array([-1], dtype=np.int64),
            "timestamp": np.array([0.0]),
            "frame": np.zeros((1, size, size, 3), dtype=np.uint8),
            "marker": np.array([True]),
            "info": np.array([info], dtype=object),
        }


@dataclass(frozen=True)
class Target:
    """Where the clips of one video go: the staging folder of its small part files, and the
    temporary feature file (with the offset of its tensor data) its layers are placed in."""

    staging: str
    placed: str
    data_offset: int


def store_clips(target: Target, first: int, last: int, layers, embed, timestamps, dtype: str) -> None:
    """Write clips ``first..last`` of one video: layers placed in its feature file, the rest as a part.

    ``layers`` are ``[n, k, P, Cv]`` (fp16 from CLIP); an int8 set quantizes them here (a non-finite
    value leaves a NaN scale, which the assembly refuses, so the video fails and the run goes on).
    """
    import numpy as np

    from r2cli.features.writer import place_layers

    if dtype == "int8":
        from r2cli.features.compact import quantize_layers

        stored, scales = quantize_layers(layers, check=False)
        small = {"scales": scales}
    else:
        stored, small = np.ascontiguousarray(layers, dtype=np.float16), {}
    place_layers(target.placed, target.data_offset, first, stored)
    write_part(Path(target.staging), first, last, embed=np.asarray(embed, dtype=np.float16),
               timestamps=np.asarray(timestamps, dtype=np.float64),
               layer_shape=np.asarray(stored.shape[1:], dtype=np.int64), **small)


class ClipEmbedder:
    """Ray Data actor: CLIP on batches of frames; writes each batch's clips once (``store_clips``)."""

    def __init__(self, *, clip_weights: str | None, device: str, precision: str, batch_size: int,
                 settings: dict, targets: dict[int, Target], threads: int | None = None) -> None:
        import torch

        from r2cli.features.clip import load_clip
        from r2cli.features.stages import check_tower
        from r2cli.features.store import FeatureSettings

        if threads:
            torch.set_num_threads(threads)
        self.settings = FeatureSettings.from_dict(settings)
        self.tower = load_clip(clip_weights, device=device, precision=precision, batch_size=batch_size,
                               lazy_text=True)
        check_tower(self.settings, self.tower)
        self.batch_size = batch_size
        self.targets = {int(k): v for k, v in targets.items()}

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from r2cli.features.stages import embed_frames

        marker = np.asarray(batch["marker"], dtype=bool)
        rows: dict[str, list] = {"item": [], "segment": [], "first": [], "last": [], "marker": [], "info": []}
        for i in np.flatnonzero(marker):
            rows["item"].append(int(batch["item"][i]))
            rows["segment"].append(int(batch["segment"][i]))
            rows["first"].append(-1)
            rows["last"].append(-1)
            rows["marker"].append(True)
            rows["info"].append(str(batch["info"][i]))
        frames = np.flatnonzero(~marker)
        if len(frames):
            embedded = embed_frames(np.ascontiguousarray(batch["frame"][frames]), self.tower, k=self.settings.k,
                                    batch_size=self.batch_size)
            items = batch["item"][frames]
            clips = batch["clip"][frames]
            stamps = batch["timestamp"][frames]
            # contiguous runs of one video's clips become one part file each
            order = np.lexsort((clips, items))
            start = 0
            while start < len(order):
                end = start + 1
                while (end < len(order) and items[order[end]] == items[order[start]]
                       and clips[order[end]] == clips[order[end - 1]] + 1):
                    end += 1
                run = order[start:end]
                item = int(items[run[0]])
                first, last = int(clips[run[0]]), int(clips[run[-1]])
                store_clips(self.targets[item], first, last, embedded.layers[run], embedded.embed[run], stamps[run],
                            self.settings.dtype)
                rows["item"].append(item)
                rows["segment"].append(int(batch["segment"][frames][run[0]]))
                rows["first"].append(first)
                rows["last"].append(last)
                rows["marker"].append(False)
                rows["info"].append("")
                start = end
        return {
            "item": np.asarray(rows["item"], dtype=np.int64),
            "segment": np.asarray(rows["segment"], dtype=np.int64),
            "first": np.asarray(rows["first"], dtype=np.int64),
            "last": np.asarray(rows["last"], dtype=np.int64),
            "marker": np.asarray(rows["marker"], dtype=bool),
            "info": np.asarray(rows["info"], dtype=object),
        }


def write_part(folder: Path, first: int, last: int, **arrays) -> Path:
    """Atomically write arrays of clips ``first..last`` of one video as an uncompressed ``.npz``."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"part-{first:09d}-{last:09d}.npz"
    temp = folder / f".{final.name}.{os.getpid()}.tmp"
    with open(temp, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, final)
    return final


def read_parts(folder: Path, clips: int):
    """The part files of one video in clip order, checked to cover clips 0 .. clips - 1 once."""
    parts = []
    for path in sorted(folder.glob("part-*.npz")):
        _, first, last = path.stem.split("-")
        parts.append((int(first), int(last), path))
    parts.sort()
    expected = 0
    for first, last, path in parts:
        if first != expected:
            raise FeatureError(f"{folder}: clips {expected}..{first - 1} are missing from the staged parts")
        expected = last + 1
    if expected != clips:
        raise FeatureError(f"{folder}: the staged parts hold {expected} clips, the decode gave {clips}")
    return [path for _, _, path in parts]


def plan_target(store: "FeatureStore", item: "WorkItem", settings: "FeatureSettings", extra: dict) -> Target:
    """The staging folder and the temporary feature file of one video (made by the driver)."""
    from r2cli.features.writer import FeatureWriter

    probe = FeatureWriter(store, item.fingerprint, settings, duration=item.duration, extra=dict(extra))
    return Target(staging=str(staging_folder(store, item, settings)), placed=str(probe.placed_path()),
                  data_offset=probe.data_offset())


def assemble(store: "FeatureStore", item: "WorkItem", settings: "FeatureSettings", target: Target, clips: int,
             details: dict, extra: dict) -> "StoredFeatureSet":
    """Ray task: finish a video's feature file from its placed layers and its parts, in clip order.

    The layers are read back (checksum, finiteness), never copied; only the small arrays are written.
    """
    import numpy as np

    from r2cli.features.stages import commit_features
    from r2cli.features.writer import FeatureWriter

    paths = read_parts(Path(target.staging), clips)
    writer = FeatureWriter(store, item.fingerprint, settings, duration=item.duration, extra=dict(extra),
                           placed=Path(target.placed))
    try:
        if writer.data_offset() != target.data_offset:
            raise FeatureError(f"{item.path}: the feature file's layout changed since its clips were placed")
        writer.__enter__()
        for path in paths:
            with np.load(path) as part:
                writer.set_layer_shape(tuple(int(v) for v in part["layer_shape"]))
                writer.append_placed(len(part["timestamps"]), part["embed"], part["timestamps"],
                                     part["scales"] if "scales" in part.files else None)
        stored = commit_features(writer, item, details)
    finally:
        writer.abort()  # deletes the placed file unless it was committed
        shutil.rmtree(target.staging, ignore_errors=True)  # a failed video is extracted again by a rerun
    return stored


def discard_target(target: Target) -> None:
    """Remove what a video that will not be assembled left (its parts and its placed layers)."""
    shutil.rmtree(target.staging, ignore_errors=True)
    Path(target.placed).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# The driver


@dataclass
class _Video:
    item: "WorkItem"
    segments: int
    clips: set[int] = field(default_factory=set)
    markers: dict[int, dict] = field(default_factory=dict)  # segment number -> its marker info
    submitted: bool = False


@dataclass
class RayStats:
    """What the cluster run did (the counterpart of the local pipeline's ``PipelineStats``)."""

    seconds: float = 0.0
    segments: int = 0
    actors: int = 0
    decode_cpu: float = 0.0  # not measured on the cluster (kept for the report's fields)
    model_cpu: float = 0.0


def _merge_details(markers: dict[int, dict]) -> dict:
    ordered = [markers[n]["details"] for n in sorted(markers)]
    merged = dict(ordered[-1])
    merged["decoded_frames"] = sum(d.get("decoded_frames", 0) for d in ordered)
    merged["end_padding"] = sum(d.get("end_padding", 0) for d in ordered)
    return merged


def extract_on_ray(
    run: Any,
    items: list["WorkItem"],
    *,
    clip_weights: str | os.PathLike | None,
    device: str,
    precision: str,
    batch_size: int,
    decode_threads: int,
    segment_seconds: float = SEGMENT_SECONDS,
    chunk_frames: int = 16,
    actors: int | None = None,
    reporter: Reporter = NULL_REPORTER,
    stage: str = "features",
) -> RayStats:
    """Extract ``items`` on the connected Ray cluster; ``run`` records each video (``_Run``).

    Must run inside ``r2cli.distributed.session.ray_session``. Failures of a video (its decode,
    its assembly) are recorded on its rows and the others go on, as in the local pipeline.
    """
    import ray

    from r2cli.distributed.placement import cluster_nodes, plan_index_placement

    started = time.monotonic()
    stats = RayStats()
    if not items:
        return stats
    settings = run.settings
    segments, videos, targets = _plan_videos(run, items, segment_seconds)
    stats.segments = len(segments)

    # CPUs per actor and per task from the nodes' sizes, so decode tasks always run beside the
    # actors (r2cli.distributed.placement); an impossible request fails here, before any work
    placement = plan_index_placement(cluster_nodes(ray), actors=actors,
                                     use_gpus=device in ("auto", "cuda") or device.startswith("cuda"))
    stats.actors = placement.actors
    dataset = _index_dataset(ray, segments, items, settings, placement, targets, clip_weights=clip_weights,
                             precision=precision, batch_size=batch_size, decode_threads=decode_threads,
                             chunk_frames=chunk_frames)
    assembly = _Assembly(ray, run, items, targets, placement.task_cpus)
    total = sum(item.expected_clips(settings.fps) for i, item in enumerate(items) if i in videos)
    reporter.begin(stage, total=total, unit="frames")
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for i in range(len(batch["item"])):
                index = int(batch["item"][i])
                video = videos[index]
                if batch["marker"][i]:
                    video.markers[int(batch["segment"][i])] = json.loads(str(batch["info"][i]))
                else:
                    new = set(range(int(batch["first"][i]), int(batch["last"][i]) + 1)) - video.clips
                    video.clips |= new
                    reporter.advance(stage, len(new), videos=f"{run.report.videos_extracted}/{len(items)}")
                if not video.submitted and len(video.markers) >= video.segments:
                    assembly.submit_if_complete(index, video)
            assembly.settle(block=False)
        assembly.settle(block=True)
        # the last progress line counts every video assembled, not those done when the last frame arrived
        reporter.advance(stage, 0, videos=f"{run.report.videos_extracted}/{len(items)}")
        for index, video in videos.items():
            if not video.submitted:
                discard_target(targets[index])
                run.record_failure(video.item, FeatureError(
                    f"{video.item.path}: the cluster returned {len(video.clips)} clips and "
                    f"{len(video.markers)} of {video.segments} segments"))
    finally:
        reporter.end(stage)
    stats.seconds = time.monotonic() - started
    return stats


def _plan_videos(run: Any, items: list["WorkItem"],
                 segment_seconds: float) -> tuple[list[Segment], dict[int, _Video], dict[int, Any]]:
    """The segments of every item, the videos that have some (a video whose plan fails is recorded as
    failed) and where each one's file is placed (leftovers of a run that died removed first)."""
    from r2cli.media.frames import first_tick

    settings, store = run.settings, run.store
    origins: dict[str, int] = {}

    def origin_of(item):
        return origins.setdefault(item.fingerprint, first_tick(item.path, settings.fps))

    segments: list[Segment] = []
    failed_items: dict[int, str] = {}
    for index, item in enumerate(items):
        try:
            for part in plan_segments([item], settings.fps, segment_seconds, origin_of):
                segments.append(Segment(index, part.number, part.start_clip, part.end_clip, part.tick_origin))
        except MediaError as exc:
            failed_items[index] = str(exc)
    videos = {i: _Video(items[i], sum(1 for s in segments if s.item == i))
              for i in range(len(items)) if i not in failed_items}
    targets = {i: plan_target(store, items[i], settings, run.extra) for i in videos}
    for target in targets.values():  # leftovers of a run that died (placed files: remove_stale_temporaries)
        shutil.rmtree(target.staging, ignore_errors=True)
    for index, message in failed_items.items():
        run.record_failure(items[index], MediaError(message))
    return segments, videos, targets


def _index_dataset(ray: Any, segments: list[Segment], items: list["WorkItem"], settings: Any, placement: Any,
                   targets: dict[int, Any], *, clip_weights: str | os.PathLike | None, precision: str,
                   batch_size: int, decode_threads: int, chunk_frames: int) -> Any:
    """The Ray dataset of the index: one decode task per segment, then the pool of CLIP actors (each
    writes its clips into the placed files and yields their ranges and the segments' markers)."""
    if placement.actor_gpus:
        actor_args = {"num_gpus": 1, "num_cpus": placement.actor_cpus}
        actor_device, threads = "cuda", None
    else:
        actor_args, actor_device, threads = {"num_cpus": placement.actor_cpus}, "cpu", 1
    rows = [{"item": s.item, "segment": s.number, "start_clip": s.start_clip,
             "end_clip": -1 if s.end_clip is None else s.end_clip,
             "tick_origin": -1 if s.tick_origin is None else s.tick_origin, "path": items[s.item].path}
            for s in segments]
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
    dataset = dataset.map_batches(
        decode_segment_batches, batch_size=1, num_cpus=placement.task_cpus, max_retries=3,
        fn_kwargs={"settings": settings.to_dict(), "threads": decode_threads, "chunk_frames": chunk_frames},
    )
    return dataset.map_batches(
        ClipEmbedder, batch_size=batch_size, concurrency=placement.actors, max_restarts=3, max_task_retries=3,
        fn_constructor_kwargs={"clip_weights": None if clip_weights is None else os.fspath(clip_weights),
                               "device": actor_device, "precision": precision, "batch_size": batch_size,
                               "settings": settings.to_dict(), "targets": targets, "threads": threads},
        **actor_args,
    )


class _Assembly:
    """The assembly tasks: one per video whose segments are all in, each recorded on the run when done."""

    def __init__(self, ray: Any, run: Any, items: list["WorkItem"], targets: dict[int, Any], task_cpus: float) -> None:
        self.ray = ray
        self.run = run
        self.items = items
        self.targets = targets
        self.remote_assemble = ray.remote(num_cpus=task_cpus, max_retries=3)(assemble)
        self.pending: dict[Any, int] = {}

    def submit_if_complete(self, index: int, video: _Video) -> None:
        """Every segment of ``video`` has its marker: fail it if a segment failed, else assemble it once
        all its clips are in."""
        run = self.run
        errors = [m["error"] for m in video.markers.values() if m["error"]]
        if errors:
            video.submitted = True
            discard_target(self.targets[index])
            run.record_failure(video.item, MediaError(errors[0]))
            return
        clips = sum(m["clips"] for m in video.markers.values())
        if len(video.clips) == clips:
            video.submitted = True
            ref = self.remote_assemble.remote(run.store, video.item, run.settings, self.targets[index], clips,
                                              _merge_details(video.markers), run.extra)
            self.pending[ref] = index

    def _finish(self, ref) -> None:
        index = self.pending.pop(ref)
        try:
            stored = self.ray.get(ref)
        except Exception as exc:  # the task's own error, re-raised by Ray
            cause = getattr(exc, "cause", None) or exc
            self.run.record_failure(self.items[index], cause if isinstance(cause, Exception) else exc)
            return
        self.run.record_success(self.items[index], stored)

    def settle(self, block: bool) -> None:
        """Record the tasks that are done (all of them, waiting, when ``block``)."""
        while self.pending:
            ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=None if block else 0)
            if not ready:
                return
            self._finish(ready[0])
