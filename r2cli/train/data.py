"""Training data: items, feature sources, labels, deterministic order and the official collate.

An *item* is one training pair: a (video, query) record of a grounding file, or one video of
TVSum / YouTube Highlights (whose query is the video title). Features come from a
*feature source*:

* :class:`OfficialFeatureDir` reads the authors' released layout,
  ``DIR/clip_b32_vid_k4/<vid>.npy`` (fp16 ``[T, 4, 50, 768]``) and ``DIR/clip_b32_txt_k4/<qid>.npy``
  (fp16 ``[L, 4, 512]``), with the TACoS ``<vid>-cam-002`` rule and TVSum/YouTube queries named after
  the video;
* :class:`MappedFeatures` serves features already opened from the r2cli feature store (see
  ``r2cli.train.sources``).

Labels follow spec section 5 through ``r2cli.data.labels``; the positive clip is re-drawn on every
read from a seed the sampler hands over, so data order and draws depend only on (seed, epoch).
:func:`collate` pads with +inf exactly like the official collate, derives the masks from element 0
of every row and then zeroes every non-finite value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from r2cli.errors import FeatureError, InputError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

VIDEO_FOLDER = "clip_b32_vid_k4"
QUERY_FOLDER = "clip_b32_txt_k4"
HIGHLIGHT_DATASETS = ("tvsum", "youtube")


@dataclass(frozen=True)
class TrainItem:
    """One training or validation pair."""

    key: str  # unique id: the qid (grounding) or the video id (TVSum/YouTube)
    kind: str  # "grounding", "tvsum" or "youtube"
    vid: str | None  # video id of the annotation (feature-file stem in the official layout)
    query: str  # the sentence (grounding) or the title (TVSum/YouTube)
    duration: float | None  # seconds (None until resolved through the catalog)
    annotation: Any = field(repr=False, compare=False, default=None)  # MomentAnnotation / TVSumVideo / YouTubeVideo
    video_path: str | None = None  # a file path the user gave (resolved through the catalog)


def items_from_moments(records: list, *, min_duration: float | None = None) -> list[TrainItem]:
    """Items of moment-retrieval annotations; records shorter than ``min_duration`` s are dropped (official filter)."""
    out = []
    for record in records:
        if min_duration is not None and record.duration is not None and record.duration < min_duration:
            continue
        out.append(TrainItem(key=str(record.qid), kind="grounding", vid=record.vid, query=record.query,
                             duration=record.duration, annotation=record, video_path=record.video_path))
    return out


def items_from_highlights(kind: str, videos: dict, domain: str | None, split: str) -> list[TrainItem]:
    """Items of one TVSum / YouTube Highlights domain split (official order).

    Raises:
        UsageError: unknown kind, or no domain given.
        InputError: the split has no video in the annotation file.
    """
    from r2cli.data.highlights import split_videos

    if kind not in HIGHLIGHT_DATASETS:
        raise UsageError(f"highlight dataset must be one of {HIGHLIGHT_DATASETS}, got {kind!r}")
    if not domain:
        raise UsageError(f"a {kind} preset must name its domain")
    ids = split_videos(kind, videos, domain, split)
    if not ids:
        raise InputError(f"no {split} video of {kind} domain {domain} is in the annotation file")
    return [TrainItem(key=vid, kind=kind, vid=vid, query=videos[vid].title, duration=None, annotation=videos[vid])
            for vid in ids]


# ----------------------------------------------------------------------------------------------
# Feature sources


class FeatureSource(Protocol):
    """Where an item's CLIP features come from."""

    def video(self, item: TrainItem) -> "np.ndarray":
        """``[T, k, P, Cv]`` layers of the item's video (fp16, possibly memory-mapped)."""

    def query(self, item: TrainItem) -> "np.ndarray":
        """``[L, k, Cq]`` layers of the item's query tokens (SOT..EOT)."""

    def fps(self, item: TrainItem) -> float:
        """Clips per second of the item's video features."""


def _as_layers(array: "np.ndarray", path: Path, dims: int, shape_hint: tuple[int, ...] | None) -> "np.ndarray":
    """Reshape flattened official arrays ``[T, k*P*Cv]`` / ``[L, k*Cq]`` to layered ones."""
    if array.ndim == dims:
        return array
    if array.ndim == 2 and shape_hint is not None and array.shape[1] == _product(shape_hint):
        return array.reshape(array.shape[0], *shape_hint)
    want = "[T, k, P, Cv]" if dims == 4 else "[L, k, Cq]"
    raise FeatureError(f"{path}: expected a {want} array, got shape {list(array.shape)}")


def _product(values: tuple[int, ...]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


class OfficialFeatureDir:
    """The authors' released feature layout (spec section 1.3 and 5.0)."""

    def __init__(self, root: str | Path, dataset: str, *, fps: float | None, video_shape: tuple[int, int, int] = (4, 50, 768),
                 query_shape: tuple[int, int] = (4, 512)) -> None:
        """
        Args:
            root: the folder holding ``clip_b32_vid_k4/`` and ``clip_b32_txt_k4/``.
            dataset: preset dataset family ("tacos" applies the ``-cam-002`` rule; "tvsum"/"youtube"
                name query files after the video).
            fps: clips per second of the features (None: per video, YouTube Highlights).
            video_shape / query_shape: (k, P, Cv) and (k, Cq) used to unflatten 2-D arrays.

        Raises:
            InputError: a folder is missing.
        """
        self.root = Path(root).expanduser()
        self.dataset = dataset
        self.default_fps = fps
        self.video_shape = video_shape
        self.query_shape = query_shape
        for folder in (VIDEO_FOLDER, QUERY_FOLDER):
            if not (self.root / folder).is_dir():
                raise InputError(f"--features-dir {self.root}: folder {folder}/ is missing (official layout: "
                                 f"{VIDEO_FOLDER}/<vid>.npy and {QUERY_FOLDER}/<qid>.npy)")

    def video_path(self, item: TrainItem) -> Path:
        vid = item.vid
        if vid is None:
            raise InputError(f"{_where(item)}: the official feature layout needs field 'vid'")
        if self.dataset == "tacos":
            from r2cli.data.grounding import tacos_feature_id

            vid = tacos_feature_id(vid)
        return self.root / VIDEO_FOLDER / f"{vid}.npy"

    def query_path(self, item: TrainItem) -> Path:
        name = item.vid if item.kind in HIGHLIGHT_DATASETS else item.key
        return self.root / QUERY_FOLDER / f"{name}.npy"

    def _load(self, path: Path, item: TrainItem) -> "np.ndarray":
        import numpy as np

        if not path.is_file():
            raise FeatureError(f"{_where(item)}: feature file {path} is missing")
        try:
            return np.load(path, mmap_mode="r")
        except (ValueError, OSError) as exc:
            raise FeatureError(f"{path}: not a readable .npy file ({exc})") from None

    def video(self, item: TrainItem) -> "np.ndarray":
        path = self.video_path(item)
        return _as_layers(self._load(path, item), path, 4, self.video_shape)

    def query(self, item: TrainItem) -> "np.ndarray":
        path = self.query_path(item)
        return _as_layers(self._load(path, item), path, 3, self.query_shape)

    def fps(self, item: TrainItem) -> float:
        if item.kind == "youtube":
            return float(item.annotation.feature_fps)
        if self.default_fps is None:
            raise UsageError("the preset's data.fps is null; only YouTube Highlights has per-video rates")
        return float(self.default_fps)


class MappedFeatures:
    """Features already at hand: video layers by item key (or vid) and query layers by item key."""

    def __init__(self, videos: dict[str, Any], queries: dict[str, Any], fps: float | dict[str, float]) -> None:
        self.videos = videos  # item key -> [T, k, P, Cv] array
        self.queries = queries  # item key -> [L, k, Cq] array
        self._fps = fps

    def video(self, item: TrainItem) -> "np.ndarray":
        try:
            return self.videos[item.key]
        except KeyError:
            raise FeatureError(f"{_where(item)}: no video features") from None

    def query(self, item: TrainItem) -> "np.ndarray":
        try:
            return self.queries[item.key]
        except KeyError:
            raise FeatureError(f"{_where(item)}: no query features") from None

    def fps(self, item: TrainItem) -> float:
        return float(self._fps[item.key] if isinstance(self._fps, dict) else self._fps)


def _where(item: TrainItem) -> str:
    source = getattr(item.annotation, "source", "") or ""
    return source or f"item {item.key}"


# ----------------------------------------------------------------------------------------------
# Samples and labels


@dataclass
class Sample:
    """One loaded item (numpy arrays)."""

    key: str
    video: "np.ndarray"  # [T, k, P, Cv] float16
    query: "np.ndarray"  # [L, k, Cq] float16
    saliency: "np.ndarray"  # [T] float32
    pos_clip: int  # a positive clip drawn for this read
    boundary: "np.ndarray | None"  # [G, 2] float32 seconds (None for TVSum/YouTube)
    fps: float


class PairDataset:
    """Items + a feature source -> samples with official labels. Index with ``(position, draw_seed)``."""

    def __init__(self, items: list[TrainItem], source: FeatureSource, *, max_saliency: float = 12.0, k: int | None = None) -> None:
        if not items:
            raise InputError("the dataset holds no item")
        self.items = items
        self.source = source
        self.max_saliency = max_saliency
        self.k = k  # keep only the last k layers (None: all)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: "int | tuple[int, int]") -> Sample:
        position, draw_seed = index if isinstance(index, tuple) else (index, 0)
        return self.load(int(position), random.Random(draw_seed))

    def load(self, position: int, rng: random.Random) -> Sample:
        """Read item ``position`` and draw its positive clip with ``rng``.

        Raises:
            FeatureError: features are missing or do not fit.
            InputError: the labels break a rule of the official loader (lengths, no positive clip).
        """
        import numpy as np

        from r2cli.data import labels

        item = self.items[position]
        video = self.source.video(item)
        query = self.source.query(item)
        if self.k is not None:
            if video.shape[1] < self.k or query.shape[1] < self.k:
                raise FeatureError(f"{_where(item)}: features hold {video.shape[1]} video / {query.shape[1]} text "
                                   f"layers, the head needs {self.k}")
            video, query = video[:, -self.k:], query[:, -self.k:]
        fps = self.source.fps(item)
        num_clips = int(video.shape[0])
        if num_clips < 1 or query.shape[0] < 1:
            raise FeatureError(f"{_where(item)}: empty features (video {list(video.shape)}, query {list(query.shape)})")
        boundary = None
        try:
            if item.kind == "grounding":
                record = item.annotation
                boundary = labels.bind_boundary(record.windows, num_clips, fps)
                if record.clip_ids is not None and record.duration is not None and abs(fps - 0.5) < 1e-9:
                    saliency = labels.saliency_from_clip_scores(record.clip_ids, record.saliency_scores, record.duration,
                                                                fps, num_clips, int(self.max_saliency))
                else:
                    saliency = labels.saliency_from_windows(boundary, fps, num_clips)
                pos = labels.sample_positive_clip(saliency, "nonzero", rng)
            elif item.kind == "tvsum":
                saliency = labels.tvsum_saliency(item.annotation.scores, num_clips)
                video = video[: saliency.shape[0]]  # truncate both to min(T, n)
                pos = labels.sample_positive_clip(saliency, "above_median", rng)
            else:
                saliency = labels.youtube_saliency(item.annotation.match, num_clips)
                pos = labels.sample_positive_clip(saliency, "above_half", rng)
        except InputError as exc:
            raise InputError(f"{_where(item)}: {exc}") from None
        return Sample(key=item.key, video=np.array(video, dtype=np.float16), query=np.array(query, dtype=np.float16),
                      saliency=np.asarray(saliency, dtype=np.float32), pos_clip=int(pos), boundary=boundary, fps=fps)


# ----------------------------------------------------------------------------------------------
# Order


def epoch_order(num_items: int, *, repeat: int, seed: int, epoch: int, shuffle: bool = True) -> list[tuple[int, int]]:
    """``(item position, draw seed)`` for every read of one epoch.

    With ``repeat`` > 1 the epoch is ``repeat`` passes over the items shuffled together (the
    official ``RepeatDataset`` under a shuffling sampler). The order and every draw seed depend only
    on (seed, epoch), so a resumed run reads exactly what a straight run reads.
    """
    import numpy as np

    total = num_items * repeat
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    order = rng.permutation(total) if shuffle else np.arange(total)
    draws = rng.integers(0, 2**62, size=total)
    return [(int(i) % num_items, int(d)) for i, d in zip(order, draws)]


def batches(order: list[tuple[int, int]], batch_size: int) -> list[list[tuple[int, int]]]:
    """Consecutive chunks of ``batch_size`` reads; the last short one is kept (``drop_last=False``)."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


# ----------------------------------------------------------------------------------------------
# Collate


@dataclass
class Batch:
    """A collated batch (torch tensors on the CPU)."""

    keys: list[str]
    video: "torch.Tensor"  # [B, T, k, P, Cv] float16, padding zeroed
    query: "torch.Tensor"  # [B, L, k, Cq] float16, padding zeroed
    video_mask: "torch.Tensor"  # [B, T] bool
    query_mask: "torch.Tensor"  # [B, L] bool
    saliency: "torch.Tensor"  # [B, T] float32, 0 on padding
    pos_clip: "torch.Tensor"  # [B, 1] int64
    boundary: "torch.Tensor"  # [B, G, 2] float32 seconds, +inf rows on padding ([B, 1, 2] all +inf without windows)
    fps: list[float]

    def to(self, device: str, non_blocking: bool = False) -> "Batch":
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(self.keys, move(self.video), move(self.query), move(self.video_mask), move(self.query_mask),
                     move(self.saliency), move(self.pos_clip), move(self.boundary), list(self.fps))

    def pin_memory(self) -> "Batch":
        return Batch(self.keys, self.video.pin_memory(), self.query.pin_memory(), self.video_mask.pin_memory(),
                     self.query_mask.pin_memory(), self.saliency.pin_memory(), self.pos_clip.pin_memory(),
                     self.boundary.pin_memory(), list(self.fps))


def pad_inf(arrays: list["np.ndarray"], dtype: "torch.dtype") -> "torch.Tensor":
    """Stack arrays of different first lengths into ``[B, max_len, ...]`` padded with +inf."""
    import torch

    longest = max(a.shape[0] for a in arrays)
    out = torch.full((len(arrays), longest, *arrays[0].shape[1:]), float("inf"), dtype=dtype)
    for row, array in enumerate(arrays):
        out[row, : array.shape[0]] = torch.as_tensor(array).to(dtype)
    return out


def collate(samples: list[Sample]) -> Batch:
    """The official collate: +inf padding, masks from element 0 of each row, then non-finite values -> 0.

    Raises:
        InputError: samples with different layer shapes.
    """
    import torch

    if not samples:
        raise InputError("cannot collate an empty batch")
    shapes = {tuple(s.video.shape[1:]) for s in samples}
    qshapes = {tuple(s.query.shape[1:]) for s in samples}
    if len(shapes) != 1 or len(qshapes) != 1:
        raise InputError(f"samples disagree on feature shapes: video {sorted(shapes)}, query {sorted(qshapes)}")
    video = pad_inf([s.video for s in samples], torch.float16)  # [B, T, k, P, Cv]
    query = pad_inf([s.query for s in samples], torch.float16)  # [B, L, k, Cq]
    batch, clips = video.shape[:2]
    video_mask = video.reshape(batch, clips, -1)[:, :, 0].isfinite()  # [B, T]
    query_mask = query.reshape(batch, query.shape[1], -1)[:, :, 0].isfinite()  # [B, L]
    torch.nan_to_num_(video, nan=0.0, posinf=0.0, neginf=0.0)
    torch.nan_to_num_(query, nan=0.0, posinf=0.0, neginf=0.0)
    saliency = torch.zeros(batch, clips, dtype=torch.float32)  # [B, T], padded with 0
    for row, sample in enumerate(samples):
        saliency[row, : sample.saliency.shape[0]] = torch.as_tensor(sample.saliency)
    pos_clip = torch.tensor([[s.pos_clip] for s in samples], dtype=torch.long)  # [B, 1]
    if any(s.boundary is not None for s in samples):
        import numpy as np

        windows = [s.boundary if s.boundary is not None else np.full((1, 2), np.inf, np.float32) for s in samples]
        boundary = pad_inf(windows, torch.float32)  # [B, G, 2]
    else:
        boundary = torch.full((batch, 1, 2), float("inf"))
    return Batch(keys=[s.key for s in samples], video=video, query=query, video_mask=video_mask,
                 query_mask=query_mask, saliency=saliency, pos_clip=pos_clip, boundary=boundary,
                 fps=[float(s.fps) for s in samples])
