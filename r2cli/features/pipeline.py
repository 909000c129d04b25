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
    chunks: queue.Queue = queue.Queue(maxsize=max(2, 2 * -(-batch_size // chunk_frames)))
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                chunks.put(entry, timeout=_QUEUE_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def decode_all() -> None:
        try:
            for index, item in enumerate(items):
                if stop.is_set():
                    return
                check = (lambda item=item: file_changed(item)) if check_files else None
                try:
                    for part in decode_video(item.path, settings, threads=decode_threads, chunk_frames=chunk_frames,
                                             check=check):
                        entry = ("done", index, part.details) if isinstance(part, DecodeDone) else \
                            ("frames", index, part)
                        if not put(entry):
                            return
                except Exception as exc:  # recorded per video; the run goes on
                    if not put(("error", index, exc)):
                        return
        finally:
            put(("end", None, None))

    decoder = threading.Thread(target=decode_all, name="r2cli-decode", daemon=True)
    decoder.start()

    videos: dict[int, _Open] = {}  # index in items -> state
    pending: deque = deque()  # (state, frames [n,S,S,3], timestamps [n]) waiting for a batch
    pending_frames = 0
    stats = PipelineStats()
    batch = np.empty((batch_size, size, size, 3), dtype=np.uint8)  # [B, S, S, 3] staging buffer

    def close_if_complete(state: _Open) -> None:
        if state.closed or not state.decoded or state.processed != state.received:
            return
        state.closed = True
        try:
            state.sink.finish(state.details)
        except CatalogError:
            raise
        except Exception as exc:  # this video fails; the run goes on
            state.sink.fail(exc)

    def fail(state: _Open, error: Exception) -> None:
        nonlocal pending, pending_frames
        if state.closed:
            return
        state.closed = True
        kept = deque(entry for entry in pending if entry[0] is not state)
        pending_frames = sum(len(entry[1]) for entry in kept)
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
        batch[filled:] = 0  # the padding of a short batch (embed_frames' rule, without a copy)
        embedded = embed_frames(batch, tower, k=settings.k, batch_size=batch_size, count=filled)
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
                    fail(state, exc)
            offset += count
        stats.clips += filled
        if on_batch is not None:
            on_batch(filled)
        # One batch may hold several chunks of one video: each video is closed once (close_if_complete).
        for state, _count, _stamps in taken:
            close_if_complete(state)

    try:
        while True:
            kind, index, payload = chunks.get()
            if kind == "end":
                break
            state = videos.get(index)
            if state is None:
                state = _Open(item=items[index], sink=make_sink(items[index]))
                videos[index] = state
            if kind == "frames":
                if state.closed:
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
        for state in videos.values():  # decoded but never completed (cannot happen unless a sink raised)
            close_if_complete(state)
    finally:
        torch.set_num_threads(threads_before)
        stop.set()
        decoder.join(timeout=30)
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
