"""Evaluation post-processing of predicted windows: clamp to the duration, round to the unit, NMS.

Follows the official ``Grounding.evaluate`` rules (spec section 2.9):

1. a row is chosen for rounding when its *unclamped* end is < duration;
2. start and end of every row are clamped to [0, duration];
3. chosen rows only are rounded to ``round(x / unit) * unit`` (round half to even);
4. greedy NMS: the best remaining row is swapped into place i, later rows are suppressed
   ("normal": score set to 0 when IoU >= threshold, rows are kept), decayed ("linear": x (1 - IoU))
   or decayed ("gaussian": x exp(-IoU^2 / sigma)); finally rows are sorted by score, descending.

The final sort is stable here; the official one is not, so rows with equal scores (typically the
zeroed ones) may come in another order than the official code's.
"""

from __future__ import annotations

import torch

from r2cli.errors import InputError
from r2cli.model.config import NMS_TYPES, NmsConfig


def temporal_iou(window: torch.Tensor, others: torch.Tensor, *, zero_length_nan: bool = True) -> torch.Tensor:
    """IoU of one window [2] against windows [M, 2]; 0/0 (two zero-length windows) gives NaN officially."""
    inter = (torch.minimum(window[1], others[:, 1]) - torch.maximum(window[0], others[:, 0])).clamp(min=0)
    union = (window[1] - window[0]) + (others[:, 1] - others[:, 0]) - inter
    iou = inter / union
    if not zero_length_nan:
        iou = torch.nan_to_num(iou, nan=0.0)
    return iou


def clamp_and_round(boundary: torch.Tensor, duration: float, unit: float | None) -> torch.Tensor:
    """Steps 1-3 on a copy of ``boundary`` [N, 3] (start, end, score)."""
    out = boundary.clone()
    keep_round = out[:, 1] < duration  # decided before clamping
    out[:, :2] = out[:, :2].clamp(min=0, max=duration)
    if unit is not None and unit > 0:
        out[keep_round, :2] = torch.round(out[keep_round, :2] / unit) * unit
    return out


def nms(boundary: torch.Tensor, config: NmsConfig | None, *, zero_length_nan: bool = True) -> torch.Tensor:
    """Greedy temporal NMS on a copy of ``boundary`` [N, 3]; returns rows sorted by score (stable)."""
    out = boundary.clone()
    if config is not None:
        if config.type not in NMS_TYPES:
            raise InputError(f"nms type must be one of {NMS_TYPES}, got {config.type!r}")
        n = out.size(0)
        for i in range(n):
            best = i + int(out[i:, 2].argmax())
            if best != i:
                out[[i, best]] = out[[best, i]]
            if i + 1 >= n:
                continue
            iou = temporal_iou(out[i, :2], out[i + 1:, :2], zero_length_nan=zero_length_nan)
            scores = out[i + 1:, 2]
            if config.type == "normal":
                scores[iou >= config.threshold] = 0
            elif config.type == "linear":
                scores *= 1 - iou
            else:
                scores *= torch.exp(-iou.pow(2) / config.sigma)
            out[i + 1:, 2] = scores
    order = torch.sort(out[:, 2], descending=True, stable=True).indices
    return out[order]


def postprocess_boundary(boundary: torch.Tensor, duration: float, unit: float | None,
                         nms_config: NmsConfig | None, *, zero_length_nan: bool = True) -> torch.Tensor:
    """Clamp, round and NMS one pair's windows [N, 3] (seconds, score) as the official evaluation does.

    Args:
        boundary: [N, 3] rows (start, end, score) as decoded by the model (unclamped).
        duration: the video's duration in seconds.
        unit: rounding unit in seconds, or None.
        nms_config: NMS settings, or None for no NMS (rows are still sorted by score).
        zero_length_nan: keep the official NaN IoU between two zero-length windows (False: IoU 0).

    Returns:
        [N, 3] float tensor (a new tensor; the input is left unchanged).

    Raises:
        InputError: when ``boundary`` is not [N, 3] or ``duration`` is not positive.
    """
    if boundary.dim() != 2 or boundary.size(1) != 3:
        raise InputError(f"boundary must be [N, 3] (start, end, score), got {tuple(boundary.shape)}")
    if not duration > 0:
        raise InputError(f"duration must be > 0, got {duration}")
    return nms(clamp_and_round(boundary, duration, unit), nms_config, zero_length_nan=zero_length_nan)
