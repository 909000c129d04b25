"""Training losses of R2-Tuning with their target assignment.

``compute_losses(model, output, targets)`` returns every term the official ``BundleLoss`` returns
(focal or dynamic-BCE classification, L1 regression, sampled-NCE saliency, video- and layer-level
InfoNCE calibration), weighted by the model's LossConfig, plus the targets for inspection.

With ``output.official_padding`` the padded-batch quirks of the official code are kept (pyramid masks
max-pooled over the padded length, L1 weighted by the class target alone). Otherwise every point and
clip beyond a pair's own length is excluded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from r2cli.errors import InputError
from r2cli.model.r2tuning import GroundingOutput, R2Tuning


@dataclass
class GroundingTargets:
    """Training labels of N pairs (the official dataset fields)."""

    boundary: torch.Tensor  # [N, G, 2] ground-truth windows in seconds; padded rows are +inf
    saliency: torch.Tensor  # [N, T] per-clip saliency in [0, 1], 0 on padded clips
    pos_clip: torch.Tensor  # [N] (or [N, 1]) long index of a positive clip of each pair
    fps: torch.Tensor | list[float]  # [N] clips per second of each pair


@dataclass
class LossOutput:
    """Weighted loss terms, their sum and the assigned targets."""

    losses: dict[str, torch.Tensor]  # loss_cls, loss_reg, loss_sal, loss_video_cal, loss_layer_cal (enabled ones)
    total: torch.Tensor  # sum of every term
    cls_tgt: torch.Tensor  # [N, M] classification target per point (or the saliency for dynamic BCE)
    reg_tgt: torch.Tensor | None  # [N, M, 2] regression target per point, divided by the stride
    point_mask: torch.Tensor  # [N, M] points that count in the classification loss
    level_masks: list[torch.Tensor] = field(default_factory=list)  # per-level point masks [N, T_s]
    coll_q_pooled: list[torch.Tensor] = field(default_factory=list)  # k x [N, 1, D] pooled query per step


def assign_targets(points: torch.Tensor, boundary: torch.Tensor, fps: torch.Tensor,
                   sample_radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre-sampling target assignment over points (position, lo, hi, stride).

    A window [a, e] (clip units) matches a point p when p lies within +-radius*stride of the window
    centre and inside the window, and max(p - a, e - p) lies in [lo, hi]. A point is positive when a
    window matches; its regression target comes from the shortest matching window (first on ties),
    else from window 0 (masked by the loss). Returns cls_tgt [N, M] and reg_tgt [N, M, 2] / stride.
    """
    clips = boundary * fps[:, None, None]  # [N, G, 2] clip units; inf rows stay inf
    position, lo, hi, stride = (points[:, j][None, :, None] for j in range(4))  # [1, M, 1]
    start, end = clips[:, None, :, 0], clips[:, None, :, 1]  # [N, 1, G]
    lengths = (end - start).expand(-1, points.size(0), -1).clone()  # [N, M, G]
    dist_start = position - start
    dist_end = end - position
    if sample_radius > 0:
        centre = (start + end) / 2
        inner_start = position - torch.maximum(centre - stride * sample_radius, start)
        inner_end = torch.minimum(centre + stride * sample_radius, end) - position
        candidate = torch.minimum(inner_start, inner_end) >= 0
    else:
        candidate = torch.minimum(dist_start, dist_end) >= 0
    reach = torch.maximum(dist_start, dist_end)
    in_range = (reach >= lo) & (reach <= hi)
    lengths.masked_fill_(~(candidate & in_range), float("inf"))
    min_len, min_index = lengths.min(dim=2)  # [N, M]
    cls_tgt = (min_len < float("inf")).to(points.dtype)
    regression = torch.stack((dist_start, dist_end), dim=-1)  # [N, M, G, 2]
    reg_tgt = regression.gather(2, min_index[:, :, None, None].expand(-1, -1, 1, 2))[:, :, 0]
    return cls_tgt, reg_tgt / points[None, :, 3:4]


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float, alpha: float) -> torch.Tensor:
    """Element-wise sigmoid focal loss (alpha < 0: no alpha weighting)."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss


def sampled_nce_loss(video_emb: torch.Tensor, query_emb: torch.Tensor, video_mask: torch.Tensor,
                     saliency: torch.Tensor, pos_clip: torch.Tensor, log_scale: torch.Tensor,
                     directions: tuple[str, ...], max_scale: float = 100.0) -> torch.Tensor:
    """Sampled InfoNCE on clip/query cosines; clips more salient than the sampled positive are excluded."""
    batch = torch.arange(video_emb.size(0), device=video_emb.device)
    pos_score = saliency[batch, pos_clip].unsqueeze(-1)  # [N, 1]
    keep = (saliency <= pos_score) & video_mask  # [N, T]
    scale = log_scale.exp().clamp(max=max_scale)
    sim = F.cosine_similarity(video_emb, query_emb, dim=-1) * scale  # [N, T]
    sim = sim + torch.where(keep, 0.0, float("-inf"))
    loss = sim.new_zeros(())
    if "row" in directions:
        row = F.log_softmax(sim, dim=1)[batch, pos_clip]
        loss = loss - row.sum() / row.size(0)
    if "col" in directions:
        col = F.log_softmax(sim.t(), dim=1)[pos_clip, batch]
        loss = loss - col.sum() / col.size(0)
    return loss


def infonce_loss(a: torch.Tensor, b: torch.Tensor, temperature: float, max_scale: float = 100.0) -> torch.Tensor:
    """Symmetric InfoNCE over the second-to-last dimension; leading dimensions are independent groups."""
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    scale = a.new_tensor([math.log(1 / temperature)]).exp().clamp(max=max_scale)
    n = a.size(-2)
    target = torch.arange(n, device=a.device)
    a_sim = torch.matmul(a, b.transpose(-1, -2)) * scale  # [..., n, n]
    b_sim = a_sim.transpose(-1, -2).contiguous()
    a_sim = a_sim.reshape(-1, n)
    b_sim = b_sim.reshape(-1, n)
    a_loss = F.cross_entropy(a_sim, target.repeat(a_sim.size(0) // n))
    b_loss = F.cross_entropy(b_sim, target.repeat(b_sim.size(0) // n))
    return (a_loss + b_loss) / 2


def compute_losses(model: R2Tuning, output: GroundingOutput, targets: GroundingTargets) -> LossOutput:
    """Every enabled loss term of ``model.config.loss`` for a batch of pairs.

    Raises:
        InputError: when the targets do not fit the output (shapes, a positive clip outside the video).
    """
    cfg = model.config.loss
    n, t = output.video_mask.shape
    device = output.out_class.device
    fps = torch.as_tensor(targets.fps, dtype=torch.float32, device=device).reshape(-1)
    pos_clip = targets.pos_clip.to(device).reshape(-1).long()
    saliency = targets.saliency.to(device=device, dtype=output.video_emb.dtype)
    if fps.numel() != n or pos_clip.numel() != n or tuple(saliency.shape) != (n, t):
        raise InputError(f"targets do not fit {n} pairs of {t} clips: fps {fps.numel()}, pos_clip "
                         f"{pos_clip.numel()}, saliency {tuple(saliency.shape)}")
    if bool((pos_clip < 0).any()) or bool((pos_clip >= output.lengths).any()):
        raise InputError("pos_clip must index a real clip of each pair")

    # per-level point masks: official = max-pooled padded mask, product = position < T_i // stride
    if output.official_padding:
        level_masks = []
        for level, stride in zip(output.levels, output.level_strides):
            if stride == 1:
                level_masks.append(output.video_mask.long())
            else:
                pooled = F.max_pool1d(output.video_mask.float()[:, None], stride, stride=stride)[:, 0].long()
                level_masks.append(pooled)
    else:
        level_masks = [m.long() for m in output.level_masks()]
    point_mask = torch.cat(level_masks, dim=1)  # [N, M]
    logits = output.out_class[:, :, 0]

    losses: dict[str, torch.Tensor] = {}
    reg_tgt = None
    if cfg.reg_weight is not None:
        if output.out_coord is None:
            raise InputError("a regression loss needs a coord head")
        boundary = targets.boundary.to(device=device, dtype=torch.float32)
        cls_tgt, reg_tgt = assign_targets(output.points, boundary, fps, cfg.sample_radius)
        weight = cls_tgt.bool()
        if not output.official_padding:
            weight = weight & point_mask.bool()  # the official code weights L1 by the class target only
        weight = weight.unsqueeze(2).repeat(1, 1, 2)
        l1 = (output.out_coord - reg_tgt).abs()
        l1 = torch.where(weight, l1, torch.zeros_like(l1))  # inf/NaN targets of unmatched points never leak
        losses["loss_reg"] = l1.sum() / weight.sum() * cfg.reg_weight
    else:
        if saliency.size(1) != logits.size(1):
            raise InputError("saliency-target classification needs a single stride-1 level")
        cls_tgt = saliency

    if cfg.cls_weight is not None:
        if cfg.cls_type == "focal":
            elementwise = focal_loss(logits, cls_tgt, cfg.focal_gamma, cfg.focal_alpha)
        else:
            elementwise = F.binary_cross_entropy_with_logits(logits, cls_tgt, reduction="none")
        losses["loss_cls"] = (elementwise * point_mask).sum() / point_mask.sum() * cfg.cls_weight

    if cfg.sal_weight is not None:
        log_scale = model.loss._loss_sal.scale
        losses["loss_sal"] = sampled_nce_loss(output.video_emb, output.query_emb, output.video_mask, saliency,
                                              pos_clip, log_scale, tuple(cfg.sal_directions)) * cfg.sal_weight

    coll_q_pooled: list[torch.Tensor] = []
    if cfg.video_cal_weight is not None or cfg.layer_cal_weight is not None:
        batch = torch.arange(n, device=device)
        video_pos = [v[batch, pos_clip] for v in output.coll_v]  # k x [N, D]
        coll_q_pooled = [model.pooling(q, output.query_mask) for q in output.coll_q]  # k x [N, 1, D]
        query_pos = [q[:, 0] for q in coll_q_pooled]
        if cfg.video_cal_weight is not None:
            losses["loss_video_cal"] = infonce_loss(torch.stack(video_pos), torch.stack(query_pos),
                                                    cfg.cal_temperature) * cfg.video_cal_weight
        if cfg.layer_cal_weight is not None:
            losses["loss_layer_cal"] = infonce_loss(torch.stack(video_pos, dim=1), torch.stack(query_pos, dim=1),
                                                    cfg.cal_temperature) * cfg.layer_cal_weight

    total = sum(losses.values(), torch.zeros((), device=device))
    return LossOutput(losses=losses, total=total, cls_tgt=cls_tgt, reg_tgt=reg_tgt, point_mask=point_mask,
                      level_masks=level_masks, coll_q_pooled=coll_q_pooled)
