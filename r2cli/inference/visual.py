"""Search by picture: a still or a stretch of video against the archive's stored CLIP clip embeddings.

The stages, without option parsing (the use case is ``r2cli.app.search_visual``):

1. ``image_embedding``: the query's frames (``r2cli.media.frames.still_frame`` / ``range_frames``, the
   index's decode, scale and crop) through the index's CLIP image tower; a clip query's per-frame
   embeddings are L2-normalised, averaged and normalised again (one embedding per query).
2. ``exact_clip_similarities``: the cosine between each query embedding and every stored clip
   embedding of every video (exact, a matrix product per video). This is the one place the coarse
   scoring happens; an approximate index can replace it behind the same signature.
3. ``runs_to_moments``: a clip matches when its similarity is at least ``best - margin``, where
   ``best`` is the query's best clip similarity over the whole archive; a moment is a run of
   consecutive matching clips at least ``min_run`` clips long, from its first clip's start to its last
   clip's end (clamped to the video), scored by the run's best similarity.

R2-Tuning's fine stage is not run: it grounds sentences. The per-clip similarity is the saliency of an
image query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

QUERY_KINDS = ("text", "image", "clip")


def image_embedding(tower: Any, frames: "np.ndarray") -> "np.ndarray":
    """One L2-normalised CLIP image embedding ``[D]`` float32 for the frames ``[n, S, S, 3]`` uint8.

    Each frame goes through ``ClipTower.video_features`` (the index's call: same normalisation, same
    precision); the normalised per-frame embeddings are averaged and normalised again.

    Raises:
        InputError: the frames do not fit the tower's image size.
    """
    import numpy as np
    import torch

    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous()  # [n, 3, S, S]
    _, embed = tower.video_features(pixels, k=1)  # [n, D], each row normalised
    mean = embed.float().mean(dim=0)  # [D]
    return (mean / mean.norm().clamp_min(1e-12)).numpy().astype(np.float32)


def exact_clip_similarities(query_embeddings: "np.ndarray", clip_embeddings: Sequence[Any]) -> list["np.ndarray"]:
    """Cosine of every stored clip against every query: per video ``[T, Q]`` float32.

    ``query_embeddings`` is ``[Q, D]`` (normalised); ``clip_embeddings`` one ``[T, D]`` array per video
    (the feature store's memory-mapped ``embed``, normalised by the index). Clips whose stored
    embedding is not finite (a damaged file) get ``-inf``, so they never match.

    This is the coarse stage of image and clip queries, exact; an approximate index can stand in here.
    """
    import numpy as np

    queries = np.asarray(query_embeddings, dtype=np.float32)  # [Q, D]
    out = []
    for embed in clip_embeddings:
        clips = np.asarray(embed, dtype=np.float32)  # [T, D]
        sims = clips @ queries.T  # [T, Q]
        sims[~np.isfinite(sims)] = -np.inf
        out.append(sims)
    return out


@dataclass(frozen=True)
class MatchRule:
    """When a clip matches an image query and how long a moment must be."""

    margin: float  # a clip matches when its similarity >= best - margin (best: over the whole archive)
    min_run: int  # consecutive matching clips a moment needs


def runs_to_moments(similarity: "np.ndarray", *, threshold: float, min_run: int, fps: float,
                    duration: float) -> "np.ndarray":
    """Moments ``[n, 3]`` (start s, end s, score) of one video for one query, best first.

    A moment is a run of consecutive clips whose ``similarity`` (``[T]``) is ``>= threshold``, at least
    ``min_run`` clips long; it spans ``[first/fps, min((last+1)/fps, duration)]`` and scores the run's
    best similarity. Ties keep time order.
    """
    import numpy as np

    hits = np.concatenate([[False], np.asarray(similarity) >= threshold, [False]])
    edges = np.flatnonzero(np.diff(hits.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]  # clip runs [start, end)
    rows = []
    for a, b in zip(starts, ends):
        if b - a < min_run:
            continue
        end = min(b / fps, duration) if duration > a / fps else b / fps
        rows.append((a / fps, end, float(np.max(similarity[a:b]))))
    if not rows:
        return np.zeros((0, 3), dtype=np.float64)
    table = np.asarray(rows, dtype=np.float64)
    return table[np.argsort(-table[:, 2], kind="stable")]
