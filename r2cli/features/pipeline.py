"""The local engine of feature extraction: the stages of ``r2cli.features.stages`` on two threads.

A background thread runs the **decode** stage video after video (ffmpeg streams frames in bounded
chunks through a bounded queue) while this thread gathers frames *across* videos into batches for
the **embed** stage, so decoding and the model overlap and short videos still fill batches. Each
video's embedded chunks go to its ``Sink`` (in clip order); when its last frame is through, the
sink is finished exactly once (``StoreSink``: **write** then **record**). A failure is given to the
video's sink and the run goes on.
"""

from __future__ import annotations

import abc
import queue
import resource
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from r2cli.errors import CatalogError, FeatureError
from r2cli.features.stages import DecodeDone, Embedded, WorkItem, decode_video, embed_frames, file_changed
from r2cli.media.frames import DEFAULT_CHUNK_FRAMES

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from r2cli.features.clip import ClipTower
    from r2cli.features.store import FeatureSettings

_QUEUE_POLL_SECONDS = 0.2


class Sink(abc.ABC):
    """Receives one video's features in clip order."""

    @abc.abstractmethod
    def append(self, embedded: Embedded, timestamps: "np.ndarray") -> None:
        """The next clips' features."""

    @abc.abstractmethod
    def finish(self, details: dict[str, Any]) -> None:
        """All clips are in; publish them (called at most once)."""

    @abc.abstractmethod
    def fail(self, error: Exception) -> None:
        """Extraction failed; drop whatever was received and record why (called at most once)."""

    @abc.abstractmethod
    def abort(self) -> None:
        """The run stops (interrupt, fatal error): drop whatever was received, record nothing."""


class MemorySink(Sink):
    """Keeps one video's features in memory (``extract_video``)."""

    def __init__(self) -> None:
        self.layers: list = []
        self.embed: list = []
        self.timestamps: list = []
        self.details: dict[str, Any] | None = None
        self.error: Exception | None = None

    def append(self, embedded, timestamps) -> None:
        self.layers.append(embedded.layers)
        self.embed.append(embedded.embed)
        self.timestamps.append(timestamps)

    def finish(self, details) -> None:
        if not self.layers:
            raise FeatureError("no clips were extracted")
        self.details = details

    def fail(self, error) -> None:
        self.error = error
        self.layers, self.embed, self.timestamps = [], [], []

    def abort(self) -> None:
        self.fail(FeatureError("extraction was interrupted"))


@dataclass
class _Open:
    """A video inside the pipeline."""

    item: WorkItem
    sink: Sink
    received: int = 0  # frames taken from the decoder
    processed: int = 0  # frames through CLIP and handed to the sink
    decoded: bool = False  # the decoder has sent everything
    details: dict[str, Any] = field(default_factory=dict)
    closed: bool = False  # finished or failed: the sink was told, nothing more goes to it


@dataclass
class PipelineStats:
    clips: int = 0
    decode_cpu: float = 0.0
    model_cpu: float = 0.0
    seconds: float = 0.0


class _Decoder:
    """The decode stage on a background thread: every item's chunks (then ``done`` or ``error``, and one
    ``end`` after the last) go into a bounded queue, so at most ``maxsize`` chunks wait for the model."""

    def __init__(self, items: Sequence[WorkItem], settings: "FeatureSettings", *, threads: int | None,
                 chunk_frames: int, check_files: bool, maxsize: int) -> None:
        self.items = items
        self.settings = settings
        self.threads = threads
        self.chunk_frames = chunk_frames
        self.check_files = check_files
        self.chunks: queue.Queue = queue.Queue(maxsize=maxsize)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._decode_all, name="r2cli-decode", daemon=True)

    def _put(self, entry) -> bool:
        while not self.stop.is_set():
            try:
                self.chunks.put(entry, timeout=_QUEUE_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _decode_all(self) -> None:
        try:
            for index, item in enumerate(self.items):
                if self.stop.is_set():
                    return
                check = (lambda item=item: file_changed(item)) if self.check_files else None
                try:
                    for part in decode_video(item.path, self.settings, threads=self.threads,
                                             chunk_frames=self.chunk_frames, check=check):
                        entry = ("done", index, part.details) if isinstance(part, DecodeDone) else \
                            ("frames", index, part)
                        if not self._put(entry):
                            return
                except Exception as exc:  # recorded per video; the run goes on
                    if not self._put(("error", index, exc)):
                        return
        finally:
            self._put(("end", None, None))


class _Batcher:
    """The embed stage: chunks of any video wait in ``pending`` until a batch is full; each video's
    embedded clips go to its sink, which is finished once its last frame is through."""

    def __init__(self, tower: "ClipTower", settings: "FeatureSettings", batch_size: int, stats: PipelineStats,
                 on_batch: Callable[[int], None] | None) -> None:
        import numpy as np

        self.tower = tower
        self.k = settings.k
        self.batch_size = batch_size
        self.stats = stats
        self.on_batch = on_batch
        self.pending: deque = deque()  # (state, frames [n,S,S,3], timestamps [n]) waiting for a batch
        self.pending_frames = 0
        size = settings.image_size
        self.batch = np.empty((batch_size, size, size, 3), dtype=np.uint8)  # [B, S, S, 3] staging buffer

    def add(self, state: _Open, frames: Any, timestamps: Any) -> None:
        """Queue a chunk of ``state``'s frames and run every batch that is full."""
        self.pending.append((state, frames, timestamps))
        self.pending_frames += len(frames)
        state.received += len(frames)
        while self.pending_frames >= self.batch_size:
            self.run_batch(self.batch_size)

    def flush(self) -> None:
        """Run what is left, in batches (the last one short)."""
        while self.pending_frames > 0:
            self.run_batch(min(self.batch_size, self.pending_frames))

    def close_if_complete(self, state: _Open) -> None:
        if state.closed or not state.decoded or state.processed != state.received:
            return
        state.closed = True
        try:
            state.sink.finish(state.details)
        except CatalogError:
            raise
        except Exception as exc:  # this video fails; the run goes on
            state.sink.fail(exc)

    def fail(self, state: _Open, error: Exception) -> None:
        if state.closed:
            return
        state.closed = True
        kept = deque(entry for entry in self.pending if entry[0] is not state)
        self.pending_frames = sum(len(entry[1]) for entry in kept)
        self.pending = kept
        state.sink.fail(error)

    def run_batch(self, limit: int) -> None:
        batch = self.batch
        taken: list[tuple[_Open, int, Any]] = []  # (state, count, timestamps)
        filled = 0
        while self.pending and filled < limit:
            state, frames, stamps = self.pending[0]
            take = min(len(frames), limit - filled)
            batch[filled : filled + take] = frames[:take]
            taken.append((state, take, stamps[:take]))
            if take == len(frames):
                self.pending.popleft()
            else:
                self.pending[0] = (state, frames[take:], stamps[take:])
            filled += take
        self.pending_frames -= filled
        batch[filled:] = 0  # the padding of a short batch (embed_frames' rule, without a copy)
        embedded = embed_frames(batch, self.tower, k=self.k, batch_size=self.batch_size, count=filled)
        offset = 0
        for state, count, stamps in taken:
            if not state.closed:
                part = Embedded(layers=embedded.layers[offset : offset + count],
                                embed=embedded.embed[offset : offset + count])
                try:
                    state.sink.append(part, stamps)
                    state.processed += count
                except CatalogError:
                    raise
                except Exception as exc:  # e.g. the store's disk is full: this video fails
                    self.fail(state, exc)
            offset += count
        self.stats.clips += filled
        if self.on_batch is not None:
            self.on_batch(filled)
        # One batch may hold several chunks of one video: each video is closed once (close_if_complete).
        for state, _count, _stamps in taken:
            self.close_if_complete(state)


def run_pipeline(
    items: Sequence[WorkItem],
    settings: "FeatureSettings",
    tower: "ClipTower",
    make_sink: Callable[[WorkItem], Sink],
    *,
    batch_size: int,
    decode_threads: int | None,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    on_batch: Callable[[int], None] | None = None,
    model_threads: int | None = None,
    check_files: bool = True,
) -> PipelineStats:
    """Decode ``items`` in a background thread and embed cross-video batches on this thread."""
    import torch

    # On the CPU, decoding and CLIP share the cores: give CLIP half of them (ffmpeg's threads sleep
    # when idle, OpenMP's spin), measured in benchmarks/RESULTS-index.md. Restored at the end.
    threads_before = torch.get_num_threads()
    if tower.device == "cpu":
        from r2cli.media.frames import default_decode_threads

        torch.set_num_threads(model_threads or max(1, default_decode_threads() // 2))
    # Bounded: at most this many chunks (each <= chunk_frames frames) wait between decoder and model.
    decoder = _Decoder(items, settings, threads=decode_threads, chunk_frames=chunk_frames, check_files=check_files,
                       maxsize=max(2, 2 * -(-batch_size // chunk_frames)))
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    decoder.thread.start()

    videos: dict[int, _Open] = {}  # index in items -> state
    stats = PipelineStats()
    batcher = _Batcher(tower, settings, batch_size, stats, on_batch)
    try:
        while True:
            kind, index, payload = decoder.chunks.get()
            if kind == "end":
                break
            state = videos.get(index)
            if state is None:
                state = _Open(item=items[index], sink=make_sink(items[index]))
                videos[index] = state
            if kind == "frames":
                if state.closed:
                    continue
                batcher.add(state, payload.frames, payload.timestamps)
            elif kind == "done":
                state.decoded = True
                state.details = payload
                batcher.close_if_complete(state)
            elif kind == "error":
                batcher.fail(state, payload)
        batcher.flush()
        for state in videos.values():  # decoded but never completed (cannot happen unless a sink raised)
            batcher.close_if_complete(state)
    finally:
        torch.set_num_threads(threads_before)
        decoder.stop.set()
        decoder.thread.join(timeout=30)
        for state in videos.values():
            if not state.closed:
                state.closed = True
                state.sink.abort()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    stats.decode_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    stats.model_cpu = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
    stats.seconds = time.monotonic() - started
    return stats
