"""Evaluation post-processing of predicted windows: clamp to the duration, round to the unit, NMS.

Follows the official ``Grounding.evaluate`` rules (spec section 2.9):

1. a row is chosen for rounding when its *unclamped* end is < duration;
2. start and end of every row are clamped to [0, duration];
3. chosen rows only are rounded to ``round(x / unit) * unit`` (round half to even);
4. greedy NMS: the best remaining row is swapped into place i, later rows are suppressed
   ("normal": score set to 0 when IoU >= threshold, rows are kept), decayed ("linear": x (1 - IoU))
   or decayed ("gaussian": x exp(-IoU^2 / sigma)); finally rows are sorted by score, descending.

These rules are written once, here, in numpy (#23): ``clamp_and_round`` and ``temporal_nms_batched``
serve the official evaluation path (``postprocess_boundary`` and ``nms``, torch tensors in and out:
training validation and the parity tests) and the search path (``r2cli.inference.windows``, many
pairs at once, windows of long videos). Arithmetic runs in the input's float dtype, so float32 rows
give the official float32 numbers bit for bit (the parity tests check "normal"; "linear" matched the
former torch copy bit for bit on random rows); only "gaussian" may differ in the last bit, where
numpy's float32 ``exp`` rounds otherwise than torch's (no preset uses it).

The final sort is stable here; the official one is not, so rows with equal scores (typically the
zeroed ones) may come in another order than the official code's. NaN scores sort first, as torch
sorts them.

numpy and torch are imported inside the functions, so this module is cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from r2cli.errors import InputError, UsageError
from r2cli.model.config import NMS_SIGMA, NMS_THRESHOLD, NMS_TYPES, NmsConfig

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch


def _float_copy(rows) -> "np.ndarray":
    """``rows`` as a new ``[n, 3]`` array of its own float dtype (float64 for anything else)."""
    import numpy as np

    array = np.asarray(rows)
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64
    return np.array(array, dtype=dtype, copy=True)


def clamp_and_round(rows, upper: float, unit: float | None, lower: float = 0.0) -> "np.ndarray":
    """Steps 1-3: clamp ``[start, end, score]`` rows to ``[lower, upper]`` and round them to ``unit`` seconds.

    Rows whose raw end reached ``upper`` are clamped but not rounded (the mask is taken before
    clamping); rounding is half-to-even and relative to ``lower``, so a window's rows round exactly
    as they would in a video of their own (``lower = 0, upper = duration``: the official rules).
    Returns a new ``[n, 3]`` array in the input's float dtype (float64 for integers).
    """
    import numpy as np

    out = _float_copy(rows).reshape(-1, 3)
    keep_round = out[:, 1] < upper  # decided before clamping
    out[:, 0:2] = np.clip(out[:, 0:2], lower, upper)
    if unit is not None and unit > 0 and out.size:
        local = out[keep_round, 0:2] - lower
        out[keep_round, 0:2] = np.round(local / unit) * unit + lower  # numpy rounds half to even, like torch
    return out


def _sorted_by_score(out: "np.ndarray", valid: "np.ndarray", limit: int) -> "np.ndarray":
    """Row order ``[N, limit]`` by score, descending, stable; NaN first (as torch sorts), padding last."""
    import numpy as np

    scores = out[:, :, 2]
    nan = np.isnan(scores)
    rank = np.where(valid, np.where(nan, 0, 1), 2)  # [N, R] NaN, then numbers, then padding
    key = np.where(valid & ~nan, -scores, 0.0)
    order = np.lexsort((key, rank), axis=-1)  # last key is primary; lexsort is stable
    return order[:, :limit]


def temporal_nms_batched(
    rows,
    counts,
    kind: str | None,
    threshold: float = NMS_THRESHOLD,
    sigma: float = NMS_SIGMA,
    keep: int | None = None,
    *,
    zero_length_nan: bool = False,
) -> tuple["np.ndarray", "np.ndarray"]:
    """Greedy temporal NMS of many pairs at once; rows ``[N, R, 3]``, the first ``counts[i]`` rows of pair i real.

    As the official evaluation: repeatedly move the best remaining row forward and decay the rows
    after it by their IoU with it. ``normal`` sets a score to 0 at IoU >= ``threshold`` (rows are
    kept); ``linear`` multiplies it by (1 - IoU); ``gaussian`` by exp(-IoU^2 / sigma). Then rows are
    sorted by score, descending, stable. Two zero-length windows have IoU 0/0: NaN as in the official
    code with ``zero_length_nan`` (a NaN never suppresses under ``normal`` and turns a ``linear``
    score into NaN), else 0. Scores only decrease after a row is picked, so the first ``keep`` picks
    are the final top ``keep``: with ``keep`` the loop stops there and the rest is cut.
    Returns (rows ``[N, R', 3]`` in the input's float dtype, counts ``[N]``) with ``R' = min(R, keep)``.

    Raises:
        UsageError: unknown ``kind``.
    """
    import numpy as np

    if kind is not None and kind not in NMS_TYPES:
        raise UsageError(f"NMS type must be one of {NMS_TYPES}, got {kind!r}")
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    out = _float_copy(rows).reshape(len(counts), -1, 3)
    n, width = out.shape[0], out.shape[1]
    valid = np.arange(width)[None, :] < counts[:, None]  # [N, R]
    limit = width if keep is None else min(width, keep)
    if kind is not None and width:
        batch = np.arange(n)
        for i in range(limit):
            scores = np.where(valid[:, i:], out[:, i:, 2], -np.inf)  # [N, R-i]
            best = i + np.argmax(scores, axis=1)  # [N] (the first NaN, like torch.argmax)
            picked = out[batch, best].copy()  # [N, 3]
            out[batch, best] = out[:, i]
            out[:, i] = picked
            rest = out[:, i + 1:]  # [N, R-i-1] view
            inter = np.clip(
                np.minimum(picked[:, None, 1], rest[:, :, 1]) - np.maximum(picked[:, None, 0], rest[:, :, 0]), 0.0, None
            )
            union = (picked[:, None, 1] - picked[:, None, 0]) + (rest[:, :, 1] - rest[:, :, 0]) - inter
            if zero_length_nan:
                with np.errstate(divide="ignore", invalid="ignore"):
                    iou = inter / union
            else:
                iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
            if kind == "normal":
                decayed = np.where(iou >= threshold, 0.0, rest[:, :, 2])
            elif kind == "linear":
                decayed = rest[:, :, 2] * (1.0 - iou)
            else:
                decayed = rest[:, :, 2] * np.exp(-(iou**2) / sigma)
            active = valid[:, i + 1:] & (i < counts)[:, None]
            rest[:, :, 2] = np.where(active, decayed, rest[:, :, 2])
    order = _sorted_by_score(out, valid, limit)
    return np.take_along_axis(out, order[:, :, None], axis=1), np.minimum(counts, limit)


def temporal_nms(rows, kind: str | None, threshold: float = NMS_THRESHOLD, sigma: float = NMS_SIGMA,
                 keep: int | None = None, *, zero_length_nan: bool = False) -> "np.ndarray":
    """``temporal_nms_batched`` of one pair's ``[n, 3]`` rows; returns a new ``[n', 3]`` array.

    Raises:
        UsageError: unknown ``kind``.
    """
    import numpy as np

    array = _float_copy(rows).reshape(1, -1, 3)
    out, counts = temporal_nms_batched(array, np.array([array.shape[1]]), kind, threshold, sigma, keep,
                                       zero_length_nan=zero_length_nan)
    return out[0, : counts[0]]


def nms(boundary: "torch.Tensor", config: NmsConfig | None, *, zero_length_nan: bool = True) -> "torch.Tensor":
    """Greedy temporal NMS on a copy of ``boundary`` [N, 3]; returns rows sorted by score (stable).

    Raises:
        InputError: an unknown NMS type in ``config``.
    """
    import torch

    if config is not None and config.type not in NMS_TYPES:
        raise InputError(f"nms type must be one of {NMS_TYPES}, got {config.type!r}")
    rows = boundary.detach().cpu().numpy()
    if config is None:
        out = temporal_nms(rows, None)
    else:
        out = temporal_nms(rows, config.type, config.threshold, config.sigma, zero_length_nan=zero_length_nan)
    return torch.from_numpy(out).to(boundary.device)


def postprocess_boundary(boundary: "torch.Tensor", duration: float, unit: float | None,
                         nms_config: NmsConfig | None, *, zero_length_nan: bool = True) -> "torch.Tensor":
    """Clamp, round and NMS one pair's windows [N, 3] (seconds, score) as the official evaluation does.

    Args:
        boundary: [N, 3] rows (start, end, score) as decoded by the model (unclamped).
        duration: the video's duration in seconds.
        unit: rounding unit in seconds, or None.
        nms_config: NMS settings, or None for no NMS (rows are still sorted by score).
        zero_length_nan: keep the official NaN IoU between two zero-length windows (False: IoU 0).

    Returns:
        [N, 3] tensor of the input's dtype and device (a new tensor; the input is left unchanged).

    Raises:
        InputError: when ``boundary`` is not [N, 3] or ``duration`` is not positive.
    """
    import torch

    if boundary.dim() != 2 or boundary.size(1) != 3:
        raise InputError(f"boundary must be [N, 3] (start, end, score), got {tuple(boundary.shape)}")
    if not duration > 0:
        raise InputError(f"duration must be > 0, got {duration}")
    rows = clamp_and_round(boundary.detach().cpu().numpy(), duration, unit)
    return nms(torch.from_numpy(rows), nms_config, zero_length_nan=zero_length_nan).to(boundary.device)
