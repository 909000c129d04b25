"""Shot boundaries from per-clip CLIP embeddings.

Two methods, both on cosine similarity of L2-normalised clip embeddings:

* ``kts`` — kernel temporal segmentation (Potapov et al., ECCV 2014), the change-point
  method of the TVSum/SumMe summarization protocol. For every number of change points
  m ≤ max_change_points a dynamic programme finds the segmentation that minimises the
  within-segment kernel scatter; m is then chosen by minimising
  ``scatter(m) / T + penalty * m / (2T) * (log(T / m) + 1)`` (the protocol's BIC-like rule
  with the kernel's largest value, 1 for the cosine kernel).
* ``threshold`` — a cut wherever the cosine distance between consecutive clips exceeds a
  threshold (default: median + 3 × MAD of all consecutive distances, at least 0.05),
  keeping shots at least ``min_shot_clips`` long. Linear time; for quick looks and for
  embeddings too noisy for KTS.
"""

from __future__ import annotations

import math

from r2cli.errors import UsageError

KTS_WINDOW_CLIPS = 1000
"""KTS works on at most this many clips at once (a [W, W] kernel); longer videos are
segmented window by window and window edges become shot boundaries."""


def _normalised(embeddings):
    import numpy as np

    x = np.asarray(embeddings, dtype=np.float64)  # [T, D]
    if x.ndim != 2:
        raise UsageError(f"embeddings must be a [clips, dims] matrix, got shape {tuple(x.shape)}")
    if not np.all(np.isfinite(x)):
        raise UsageError("embeddings contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # [T, 1]
    return x / np.maximum(norms, 1e-12)


def _segment_costs(kernel):
    """scatter[i, j] = within-segment scatter of clips i..j-1 for 0 <= i < j <= T (inf elsewhere)."""
    import numpy as np

    t = kernel.shape[0]
    diag = np.concatenate([[0.0], np.cumsum(np.diag(kernel))])  # [T+1]
    integral = np.zeros((t + 1, t + 1))  # [T+1, T+1], integral[a, b] = sum kernel[:a, :b]
    integral[1:, 1:] = kernel.cumsum(0).cumsum(1)
    i = np.arange(t + 1)[:, None]  # [T+1, 1]
    j = np.arange(t + 1)[None, :]  # [1, T+1]
    block = integral[j, j] - integral[i, j] - integral[j, i] + integral[i, i]  # sum kernel[i:j, i:j]
    with np.errstate(divide="ignore", invalid="ignore"):
        scatter = (diag[j] - diag[i]) - block / (j - i)
    scatter[j <= i] = np.inf
    return np.maximum(scatter, 0.0)  # rounding can give -1e-16


def _kts_window(x, max_change_points: int, penalty: float) -> list[int]:
    """Change points (clip indices where a new shot starts) of one window of normalised embeddings."""
    import numpy as np

    t = x.shape[0]
    m_max = min(max_change_points, t - 1)
    if m_max <= 0:
        return []
    kernel = x @ x.T  # [T, T] cosine kernel
    scatter = _segment_costs(kernel)  # [T+1, T+1]
    # best[m][j]: lowest scatter of clips 0..j-1 cut into m+1 segments; back[m][j]: start of the last one.
    best = np.full((m_max + 1, t + 1), np.inf)
    back = np.zeros((m_max + 1, t + 1), dtype=np.int64)
    best[0] = scatter[0]
    for m in range(1, m_max + 1):
        candidates = best[m - 1][:, None] + scatter  # [T+1 (last start), T+1 (end)]
        back[m] = np.argmin(candidates, axis=0)
        best[m] = candidates[back[m], np.arange(t + 1)]
    counts = np.arange(m_max + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        size_term = np.where(counts > 0, counts / (2.0 * t) * (np.log(t / np.maximum(counts, 1)) + 1.0), 0.0)
    objective = best[:, t] / t + penalty * size_term  # [m_max+1]
    m_best = int(np.argmin(objective))
    points, end = [], t
    for m in range(m_best, 0, -1):
        end = int(back[m][end])
        points.append(end)
    return sorted(points)


def kts_change_points(
    embeddings,
    *,
    max_change_points: int | None = None,
    penalty: float = 1.0,
    window: int = KTS_WINDOW_CLIPS,
) -> list[int]:
    """Kernel temporal segmentation of ``embeddings`` [T, D] on the cosine kernel.

    Returns the sorted clip indices where a new shot starts (never 0). ``max_change_points``
    defaults to ``min(T - 1, ceil(T / 2), 100)`` per window; ``penalty`` scales the
    model-size term (larger → fewer shots; 0 → always ``max_change_points``).

    Raises:
        UsageError: embeddings not a finite 2-D matrix, or a negative penalty / limit.
    """
    x = _normalised(embeddings)  # [T, D]
    if penalty < 0:
        raise UsageError(f"penalty must be >= 0, got {penalty}")
    if max_change_points is not None and max_change_points < 0:
        raise UsageError(f"max_change_points must be >= 0, got {max_change_points}")
    if window < 2:
        raise UsageError(f"window must be >= 2 clips, got {window}")
    t = x.shape[0]
    points: list[int] = []
    for offset in range(0, t, window):
        part = x[offset : offset + window]
        limit = max_change_points
        if limit is None:
            limit = min(part.shape[0] - 1, math.ceil(part.shape[0] / 2), 100)
        elif t > window:
            limit = max(1, round(limit * part.shape[0] / t))
        if offset:
            points.append(offset)
        points.extend(offset + p for p in _kts_window(part, limit, penalty))
    return points


def threshold_change_points(embeddings, *, threshold: float | None = None, min_shot_clips: int = 1) -> list[int]:
    """Cut where the cosine distance of consecutive clips exceeds ``threshold``.

    ``threshold`` None → max(0.05, median + 3 × MAD) of the consecutive distances. A cut
    closer than ``min_shot_clips`` to the previous cut is dropped.

    Raises:
        UsageError: bad embeddings, threshold outside [0, 2], min_shot_clips < 1.
    """
    import numpy as np

    x = _normalised(embeddings)  # [T, D]
    if min_shot_clips < 1:
        raise UsageError(f"min_shot_clips must be >= 1, got {min_shot_clips}")
    if x.shape[0] < 2:
        return []
    distance = 1.0 - np.sum(x[1:] * x[:-1], axis=1)  # [T-1], distance[i] between clip i and i+1
    if threshold is None:
        median = float(np.median(distance))
        mad = float(np.median(np.abs(distance - median)))
        threshold = max(0.05, median + 3.0 * 1.4826 * mad)
    elif not 0.0 <= threshold <= 2.0:
        raise UsageError(f"threshold must be in [0, 2] (cosine distance), got {threshold}")
    points: list[int] = []
    last = 0
    for i in np.flatnonzero(distance > threshold):
        start = int(i) + 1
        if start - last >= min_shot_clips and x.shape[0] - start >= min_shot_clips:
            points.append(start)
            last = start
    return points


def detect_shots(
    embeddings,
    *,
    method: str = "kts",
    max_change_points: int | None = None,
    penalty: float = 1.0,
    threshold: float | None = None,
    min_shot_clips: int = 1,
) -> list[tuple[int, int]]:
    """Shots as half-open clip ranges ``[(start, end), ...]`` tiling ``range(T)``.

    Raises:
        UsageError: unknown method or bad parameters.
    """
    import numpy as np

    count = int(np.asarray(embeddings).shape[0]) if np.ndim(embeddings) >= 1 else 0
    if count == 0:
        return []
    if method == "kts":
        points = kts_change_points(embeddings, max_change_points=max_change_points, penalty=penalty)
    elif method == "threshold":
        points = threshold_change_points(embeddings, threshold=threshold, min_shot_clips=min_shot_clips)
    else:
        raise UsageError(f"shot method must be 'kts' or 'threshold', got {method!r}")
    edges = [0, *points, count]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
