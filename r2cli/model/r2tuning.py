"""The R2-Tuning head: R2 block, conv pyramid, query pooling, heads, points and decoding.

Two ways to run the same weights:

* the product path (default, ``official_padding=False``): every (video, query) pair of a padded batch
  gives what it would give alone. TEF and positional encoding use the pair's own length, padded query
  rows are excluded from the spatial-pooling max, and positions beyond a sample's length are zeroed
  before every head convolution; per-sample pyramid lengths are ``T_i // stride``.
* the official path (``official_padding=True``): the padded-batch behaviour of the official code
  (TEF/PE over the padded length, padded query rows inside the max, unmasked convolutions), used to
  reproduce official training losses. With a batch of one, both paths are the same computation.

The query-independent part (video map of all tokens of all k layers with TEF, ``v_map`` of them and
the CLS tokens) is computed once per video by :meth:`R2Tuning.encode_video`; :meth:`R2Tuning.ground`
then serves any number of queries per video through a pair -> video index.

Inference (autograd off) takes a grouped path with the same arithmetic: the video side is written in
place from one input buffer (CPU), and the pairs of each video are pooled together against its shared
tokens and keys instead of a per-pair gathered copy. With autograd on (training) the per-pair
reference path runs; tests check that both give the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from r2cli.errors import InputError
from r2cli.model._layers import (
    DecoderLayer,
    Transpose,
    cosine,
    endpoint_features,
    masked_conv1d,
    positional_encoding,
)
from r2cli.model.config import ModelConfig


@dataclass
class VideoSide:
    """Query-independent features of a batch of videos (computed once, reused by every query)."""

    tokens: torch.Tensor  # [k, V, T, P, D] video_map output of every token, layer 0 = oldest kept CLIP layer
    keys: torch.Tensor | None  # [k, V, T, P, D] v_map(tokens), the pooling keys (None: inference, see ground)
    mask: torch.Tensor  # [V, T] bool, true on real clips
    lengths: torch.Tensor  # [V] long, number of real clips of each video
    official_padding: bool  # TEF was computed over the padded length (official batch behaviour)

    @property
    def cls(self) -> torch.Tensor:
        """[k, V, T, D] mapped CLS token of every clip and layer."""
        return self.tokens[:, :, :, 0]

    @property
    def num_videos(self) -> int:
        return self.tokens.size(1)

    @property
    def num_clips(self) -> int:
        return self.tokens.size(2)


@dataclass
class GroundingOutput:
    """Batched head outputs for N (video, query) pairs; padded positions hold garbage unless masked."""

    video_emb: torch.Tensor  # [N, T, D] final clip states after the pyramid's in-place ReLU
    adapter_video_emb: torch.Tensor  # [N, T, D] final clip states before that ReLU
    query_tokens: torch.Tensor  # [N, L, D] query_map output of the oldest kept layer (last recurrent step)
    query_emb: torch.Tensor  # [N, 1, D] attention-pooled query
    levels: list[torch.Tensor]  # pyramid levels [N, T_s, D] of the strides that fit the padded length
    level_strides: list[int]  # stride of each level
    points: torch.Tensor  # [M, 4] rows (position in clips, reg_lo, reg_hi, stride), levels concatenated
    out_class: torch.Tensor  # [N, M, 1] class logits
    coord_raw: torch.Tensor | None  # [N, M, 2] raw regression output (None without a coord head)
    out_coord: torch.Tensor | None  # [N, M, 2] exp(raw) * coef[level], distances in units of the stride
    video_mask: torch.Tensor  # [N, T] bool
    query_mask: torch.Tensor  # [N, L] bool
    lengths: torch.Tensor  # [N] long clips per pair
    official_padding: bool  # which path produced this output
    coll_v: list[torch.Tensor] = field(default_factory=list)  # k x [N, T, D] mapped CLS, execution order (newest first)
    coll_q: list[torch.Tensor] = field(default_factory=list)  # k x [N, L, D] query_map outputs, execution order
    tem_inputs: list[torch.Tensor] = field(default_factory=list)  # k x [N, T, D] decoder inputs (if requested)
    tem_outputs: list[torch.Tensor] = field(default_factory=list)  # k x [N, T, D] decoder outputs (if requested)

    def level_lengths(self) -> list[torch.Tensor]:
        """Per-level valid lengths [N] of each pair: ``T_i // stride`` (0 where the level does not fit)."""
        return [self.lengths // s for s in self.level_strides]

    def level_masks(self) -> list[torch.Tensor]:
        """Per-level validity [N, T_s] in the product sense (position < T_i // stride)."""
        out = []
        for level, length in zip(self.levels, self.level_lengths()):
            out.append(torch.arange(level.size(1), device=level.device)[None, :] < length[:, None])
        return out


@dataclass
class PairPrediction:
    """Decoded prediction of one (video, query) pair."""

    saliency: torch.Tensor  # [T_i] per-clip score (class scores merged over levels, times the cosine if enabled)
    boundary: torch.Tensor | None  # [<=max_num_moment, 3] rows (start s, end s, score), sorted by score, unclamped
    class_logits: torch.Tensor  # [M_i] class logits of the pair's valid points
    points: torch.Tensor  # [M_i, 4] the pair's valid points


def _map(in_width: int, dims: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(in_width), nn.Dropout(dropout), nn.Linear(in_width, dims), nn.ReLU(inplace=True),
        nn.LayerNorm(dims), nn.Dropout(dropout), nn.Linear(dims, dims),
    )


class R2Block(nn.Module):
    """Reversed recurrence over the last k CLIP layers with query-modulated spatial pooling."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        k, d = config.k, config.dims
        # own parameters first so the state-dict order matches the official one
        if k > 1:
            self.gate = nn.Parameter(torch.zeros(k - 1))
        self.scale = nn.Parameter(torch.zeros(k))
        self.video_map = _map(config.video_in_width, d, config.dropout)
        self.query_map = _map(config.query_width, d, config.dropout)
        self.v_map = nn.Linear(d, d)
        self.q_map = nn.Linear(d, d)
        self.tem = DecoderLayer(d, config.heads, config.ffn_ratio, config.droppath)
        self.config = config


class ConvPyramid(nn.Module):
    """One branch per stride: stride 1 is the (in-place) ReLU, stride 2^p is p x [conv k2 s2, LN, ReLU]."""

    def __init__(self, dims: int, strides: tuple[int, ...]) -> None:
        super().__init__()
        self.strides = strides
        self.blocks = nn.ModuleList()
        for stride in strides:
            repeats = int(math.log2(stride))
            if repeats == 0:
                self.blocks.append(nn.ReLU(inplace=True))
                continue
            layers: list[nn.Module] = []
            for _ in range(repeats):
                layers += [Transpose(), nn.Conv1d(dims, dims, 2, stride=2), Transpose(), nn.LayerNorm(dims),
                           nn.ReLU(inplace=True)]
            self.blocks.append(nn.Sequential(*layers))


class AdaPooling(nn.Module):
    """Attention pooling of query tokens with a key mask."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.att = nn.Linear(dims, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x [B, L, D], mask [B, L] -> [B, 1, D]
        logits = self.att(x) + torch.where(mask.unsqueeze(2) > 0, 0.0, float("-inf"))  # [B, L, 1]
        weights = logits.softmax(dim=1)
        return torch.matmul(x.transpose(1, 2), weights).squeeze(2).unsqueeze(1)


class ConvHead(nn.Module):
    """Conv k -> ReLU -> conv k over time; ``module.1`` and ``module.3`` hold the weights."""

    def __init__(self, dims: int, out_dims: int, kernel: int) -> None:
        super().__init__()
        self.module = nn.Sequential(
            Transpose(), nn.Conv1d(dims, dims, kernel, padding=kernel // 2), nn.ReLU(inplace=True),
            nn.Conv1d(dims, out_dims, kernel, padding=kernel // 2), Transpose(),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        # x [B, T, D] -> [B, T, out]; with lengths, zero padded positions before each conv
        hidden = torch.relu(masked_conv1d(self.module[1], x, lengths))
        return masked_conv1d(self.module[3], hidden, lengths)


class SaliencyScale(nn.Module):
    """Holds the saliency loss's fixed logit scale as the persistent buffer official checkpoints carry."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor([math.log(1 / temperature)]))


class LossState(nn.Module):
    """Container whose only state is ``_loss_sal.scale`` (``loss._loss_sal.scale`` in checkpoints)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.loss.sal_weight is not None:
            self._loss_sal = SaliencyScale(config.loss.sal_temperature)


def make_points(level_sizes: list[int], strides: list[int], all_strides: tuple[int, ...],
                device: torch.device) -> torch.Tensor:
    """Points (position, reg_lo, reg_hi, stride) of the present levels, generated for any length.

    Regression ranges follow the configured strides: (0, s1), (s1, s2), ..., (s_last, inf).
    """
    ranges: dict[int, tuple[float, float]] = {}
    last = 0.0
    for index, stride in enumerate(all_strides):
        upper = float(all_strides[index + 1]) if index + 1 < len(all_strides) else float("inf")
        ranges[stride] = (last, upper)
        last = upper
    rows = []
    for size, stride in zip(level_sizes, strides):
        position = torch.arange(0, size * stride, stride, device=device, dtype=torch.float32)[:, None]
        lo, hi = ranges[stride]
        rows.append(torch.cat((position, position.new_full((size, 1), lo), position.new_full((size, 1), hi),
                               position.new_full((size, 1), float(stride))), dim=1))
    return torch.cat(rows)



@dataclass
class _R2Steps:
    """What the R2 block's recurrent steps leave: the final state and, per step, the layers' class
    tokens and query maps (and the temporal block's inputs/outputs when recorded)."""

    state: "torch.Tensor | None" = None  # [N, T, D]
    coll_v: list = field(default_factory=list)
    coll_q: list = field(default_factory=list)
    tem_inputs: list = field(default_factory=list)
    tem_outputs: list = field(default_factory=list)


class R2Tuning(nn.Module):
    """R2-Tuning head over cached CLIP features; state-dict keys equal the official ones."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.coef = nn.Parameter(torch.ones(len(config.strides)))
        self.adapter = R2Block(config)
        self.pyramid = ConvPyramid(config.dims, config.strides)
        self.pooling = AdaPooling(config.dims)
        self.class_head = ConvHead(config.dims, 1, config.head_kernel)
        self.coord_head = ConvHead(config.dims, 2, config.head_kernel) if config.coord_head else None
        self.loss = LossState(config)

    # ------------------------------------------------------------------ video side
    def encode_video(self, video: torch.Tensor, video_mask: torch.Tensor | None = None, *,
                     official_padding: bool = False) -> VideoSide:
        """Compute everything that does not depend on the query, once per video.

        Args:
            video: [V, T, k', P, Cv] CLIP layer features (fp16 or fp32; the last k layers are used,
                oldest first). Padded clips may hold anything (they are zeroed).
            video_mask: [V, T] (bool or 0/1), true on real clips; None: all clips are real.
            official_padding: compute TEF over the padded length, as the official batch code does.

        Returns:
            VideoSide with [k, V, T, P, D] mapped tokens, and keys when autograd is on (training).

        Raises:
            InputError: on wrong shapes or widths, or a video with no real clip.
        """
        cfg = self.config
        if video.dim() != 5:
            raise InputError(f"video features must be [videos, clips, layers, tokens, width], got {tuple(video.shape)}")
        v, t, layers, p, c = video.shape
        if layers < cfg.k or p != cfg.num_tokens or c != cfg.video_width:
            raise InputError(f"video features {tuple(video.shape)} do not fit the head: need >= {cfg.k} layers, "
                             f"{cfg.num_tokens} tokens and width {cfg.video_width}")
        device = self.coef.device
        dtype = self.coef.dtype
        mask = _mask(video_mask, (v, t), device)
        lengths = mask.sum(1)
        if bool((lengths == 0).any()):
            raise InputError("every video needs at least one real clip (a video mask row is all false)")
        tef_lengths = torch.full_like(lengths, t) if official_padding else lengths
        tef = endpoint_features(tef_lengths, t, device) if cfg.use_tef else None  # [V, T, 2]
        if device.type == "cpu" and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"):
            return self._encode_inference(video, mask, tef, official_padding)
        keep = mask[:, :, None, None]
        tokens, keys = [], []
        need_keys = torch.is_grad_enabled()  # the grouped inference pooling folds v_map into the query side
        for layer in range(layers - cfg.k, layers):
            x = video[:, :, layer].to(device=device, dtype=dtype)  # [V, T, P, Cv]
            x = torch.where(keep, x, torch.zeros((), dtype=dtype, device=device))
            if tef is not None:
                x = torch.cat((x, tef[:, :, None, :].expand(v, t, p, 2).to(dtype)), dim=-1)  # [V, T, P, Cv+2]
            mapped = self.adapter.video_map(x)  # [V, T, P, D]
            tokens.append(mapped)
            if need_keys:
                keys.append(self.adapter.v_map(mapped))
        return VideoSide(tokens=torch.stack(tokens), keys=torch.stack(keys) if keys else None, mask=mask,
                         lengths=lengths, official_padding=official_padding)

    def _encode_inference(self, video: torch.Tensor, mask: torch.Tensor, tef: torch.Tensor | None,
                          official_padding: bool) -> VideoSide:
        """Inference-only video side: the vectorised path's arithmetic with fewer passes over memory.

        One input buffer [V, T, P, Cv(+2)] serves every layer: its TEF columns are written once, each
        layer's features are converted straight into it (the conversion is the copy) and padded clips
        are zeroed in place; the mapped tokens are written into their final [k, V, T, P, D] tensor, and
        no keys are computed (a fifth of the arithmetic: ``ground`` folds v_map into the query side).
        The vectorised path materialises a converted copy, a masked copy and a concatenated copy of
        every layer, then stacks the outputs (two more full copies). On a loaded CPU every
        operation also pays a thread synchronisation, so fewer and larger operations win.
        """
        cfg = self.config
        v, t, layers, p, c = video.shape
        device, dtype = self.coef.device, self.coef.dtype
        adapter = self.adapter
        ln1, lin1, ln2, lin2 = adapter.video_map[0], adapter.video_map[2], adapter.video_map[4], adapter.video_map[6]
        width = c + (2 if tef is not None else 0)
        rows = v * t * p
        buffer = torch.empty(v, t, p, width, dtype=dtype, device=device)
        if tef is not None:
            buffer[..., c:] = tef[:, :, None, :].to(dtype)
        padded = None if bool(mask.all()) else ~mask
        tokens = torch.empty(cfg.k, v, t, p, cfg.dims, dtype=dtype, device=device)
        for li, layer in enumerate(range(layers - cfg.k, layers)):
            buffer[..., :c].copy_(video[:, :, layer])
            if padded is not None:  # padded clips may hold anything (NaN in the official cache convention)
                buffer[..., :c].masked_fill_(padded[:, :, None, None], 0)
            hidden = nn.functional.layer_norm(buffer.view(rows, width), ln1.normalized_shape, ln1.weight, ln1.bias,
                                              ln1.eps)
            hidden = torch.relu_(nn.functional.linear(hidden, lin1.weight, lin1.bias))
            hidden = nn.functional.layer_norm(hidden, ln2.normalized_shape, ln2.weight, ln2.bias, ln2.eps)
            torch.addmm(lin2.bias, hidden, lin2.weight.t(), out=tokens[li].view(rows, cfg.dims))
        # no keys: the grouped pooling folds v_map into the query side (see _pool_grouped)
        return VideoSide(tokens=tokens, keys=None, mask=mask, lengths=mask.sum(1), official_padding=official_padding)

    # ------------------------------------------------------------------ pairs
    def ground(self, side: VideoSide, query: torch.Tensor, query_mask: torch.Tensor | None = None,
               pair_video: torch.Tensor | None = None, *, official_padding: bool | None = None,
               record: bool = False) -> GroundingOutput:
        """Run the query-dependent part for N (video, query) pairs.

        Args:
            side: output of :meth:`encode_video` for V videos.
            query: [N, L, k', Cq] CLIP text layer features of the real tokens (SOT..EOT), padded rows anywhere.
            query_mask: [N, L] true on real tokens; None: all real.
            pair_video: [N] long index into the videos of ``side``; None: pair n uses video n.
            official_padding: reproduce the official padded-batch behaviour; default: ``side.official_padding``.
            record: keep the decoder inputs/outputs of every recurrent step (for parity checks).

        Returns:
            GroundingOutput for the N pairs.

        Raises:
            InputError: on wrong shapes, an index out of range, or a query with no real token.
        """
        official = side.official_padding if official_padding is None else official_padding
        pair_video, qmask = self._check_pairs(side, query, query_mask, pair_video)
        grouped = not torch.is_grad_enabled()  # inference: the pairs of one window share its tokens and keys
        if grouped and query.shape[0] > 1 and bool((pair_video[1:] < pair_video[:-1]).any()):
            order = torch.argsort(pair_video, stable=True)  # group the pairs of each window, then restore the order
            out = self.ground(side, query[order], qmask[order], pair_video[order], official_padding=official,
                              record=record)
            return _take_pairs(out, torch.argsort(order))
        device, dtype = self.coef.device, self.coef.dtype
        vmask = side.mask[pair_video]  # [N, T]
        lengths = side.lengths[pair_video]  # [N]
        query = torch.where(qmask[:, :, None, None], query.to(device=device, dtype=dtype),
                            torch.zeros((), dtype=dtype, device=device))
        steps = self._r2_block(side, query, qmask, pair_video, vmask, lengths, official=official, grouped=grouped,
                               record=record)
        adapter_video_emb, query_tokens = steps.state, steps.coll_q[-1]
        t = side.num_clips
        cfg = self.config

        # the official stride-1 branch is an in-place ReLU: every later consumer sees relu(h)
        video_emb = torch.relu(adapter_video_emb) if 1 in cfg.strides else adapter_video_emb
        levels, level_strides = [], []
        for stride, block in zip(cfg.strides, self.pyramid.blocks):
            if t < stride:
                continue
            level_strides.append(stride)
            levels.append(video_emb if stride == 1 else block(video_emb))
        classes, raws, coords, query_emb = self._heads(levels, level_strides, None if official else lengths,
                                                       query_tokens, qmask)
        points = make_points([lv.size(1) for lv in levels], level_strides, cfg.strides, device)
        return GroundingOutput(
            video_emb=video_emb, adapter_video_emb=adapter_video_emb, query_tokens=query_tokens, query_emb=query_emb,
            levels=levels, level_strides=level_strides, points=points, out_class=torch.cat(classes, dim=1),
            coord_raw=torch.cat(raws, dim=1) if raws else None, out_coord=torch.cat(coords, dim=1) if coords else None,
            video_mask=vmask, query_mask=qmask, lengths=lengths, official_padding=official,
            coll_v=steps.coll_v, coll_q=steps.coll_q, tem_inputs=steps.tem_inputs, tem_outputs=steps.tem_outputs,
        )

    def _check_pairs(self, side: VideoSide, query: torch.Tensor, query_mask: torch.Tensor | None,
                     pair_video: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The video of each pair ([N] long) and the query mask ([N, L] bool), checked against ``side``.

        Raises:
            InputError: on wrong shapes, an index out of range, or a query with no real token.
        """
        cfg = self.config
        if query.dim() != 4:
            raise InputError(f"query features must be [queries, tokens, layers, width], got {tuple(query.shape)}")
        n, l, layers, c = query.shape
        if layers < cfg.k or c != cfg.query_width:
            raise InputError(f"query features {tuple(query.shape)} do not fit the head: need >= {cfg.k} layers "
                             f"and width {cfg.query_width}")
        device = self.coef.device
        if pair_video is None:
            if n != side.num_videos:
                raise InputError(f"{n} queries but {side.num_videos} videos: pass pair_video to pair them")
            pair_video = torch.arange(n, device=device)
        pair_video = pair_video.to(device=device, dtype=torch.long)
        if pair_video.shape != (n,) or (n and (int(pair_video.min()) < 0 or int(pair_video.max()) >= side.num_videos)):
            raise InputError(f"pair_video must be [{n}] indices in [0, {side.num_videos}), got {pair_video.tolist()}")
        qmask = _mask(query_mask, (n, l), device)
        if bool((qmask.sum(1) == 0).any()):
            raise InputError("every query needs at least one real token (a query mask row is all false)")
        return pair_video, qmask

    def _r2_block(self, side: VideoSide, query: torch.Tensor, qmask: torch.Tensor, pair_video: torch.Tensor,
                  vmask: torch.Tensor, lengths: torch.Tensor, *, official: bool, grouped: bool,
                  record: bool) -> "_R2Steps":
        """The R2 block over the last k layers, deepest first: query-guided pooling of each layer's
        tokens, the gate with the previous step, and the temporal refinement; its final state is the
        adapter's video embedding [N, T, D]."""
        cfg = self.config
        n, l, layers, _ = query.shape
        t = side.num_clips
        device, dtype = self.coef.device, self.coef.dtype
        adapter = self.adapter
        pe_lengths = torch.full_like(lengths, t) if official else lengths
        unique_lengths, pe_index = torch.unique(pe_lengths, return_inverse=True)  # one encoding per length
        pe = positional_encoding(unique_lengths, t, cfg.dims, device).to(dtype)[pe_index]  # [N, T, D]
        pool_bias = None if official else torch.where(qmask, 0.0, float("-inf")).to(dtype)[:, None, :, None]
        plan = _pool_plan(pair_video, side, official, l, cfg.dims) if grouped else None
        steps = _R2Steps()
        state: torch.Tensor | None = None
        for i in range(cfg.k - 1, -1, -1):
            layer = layers - cfg.k + i
            y = adapter.query_map(query[:, :, layer])  # [N, L, D]
            steps.coll_q.append(y)
            yq = adapter.q_map(y)  # [N, L, D]
            if plan is not None:
                cls = side.tokens[i][pair_video, :, 0]  # [N, T, D]
                # yq . v_map(x) = (yq W_v) . x + yq . b_v, and the last term is constant over the
                # softmax's tokens: the keys are never needed, only the query side through W_v
                pooled = _pool_grouped(plan, side.tokens[i], y, torch.matmul(yq, adapter.v_map.weight), pool_bias, t)
            else:
                x = side.tokens[i][pair_video]  # [N, T, P, D]
                layer_keys = side.keys[i] if side.keys is not None else adapter.v_map(side.tokens[i])
                keys = layer_keys[pair_video]  # [N, T, P, D]
                cls = x[:, :, 0]
                att = torch.einsum("nld,ntpd->ntlp", yq, keys) / cfg.dims**0.5  # [N, T, L, P]
                att = att.softmax(-1)
                pooled = torch.matmul(att, x) + y[:, None]  # [N, T, L, D]
                if pool_bias is not None:
                    pooled = pooled + pool_bias  # padded query rows never win the max
                pooled = pooled.amax(dim=2)  # [N, T, D]
            steps.coll_v.append(cls)
            z = cls + pooled * adapter.scale[i].tanh()
            if i < cfg.k - 1:
                gate = adapter.gate[i].sigmoid()
                z = gate * z + (1 - gate) * state
            if record:
                steps.tem_inputs.append(z)
            state = adapter.tem(z, y, pe, vmask, qmask)
            if record:
                steps.tem_outputs.append(state)
        steps.state = state
        return steps

    def _heads(self, levels: list[torch.Tensor], level_strides: list[int], conv_lengths: torch.Tensor | None,
               query_tokens: torch.Tensor, qmask: torch.Tensor) -> tuple[list, list, list, torch.Tensor]:
        """The class and coordinate heads on every pyramid level, and the pooled query embedding."""
        cfg = self.config
        device = self.coef.device
        classes, raws, coords = [], [], []
        # Official AMP rule: the heads and the query pooling run in float32 with autocast off, on
        # float32 inputs, whatever precision the R2 block and the pyramid ran in (a no-op in fp32).
        with torch.autocast(device_type=device.type, enabled=False):
            for level, stride in zip(levels, level_strides):
                level_len = None if conv_lengths is None else conv_lengths // stride
                level = level.float()  # [N, T_s, D]
                classes.append(self.class_head(level, level_len))
                if self.coord_head is not None:
                    raw = self.coord_head(level, level_len)
                    raws.append(raw)
                    coords.append(raw.exp() * self.coef[cfg.strides.index(stride)])
            query_emb = self.pooling(query_tokens.float(), qmask)
        return classes, raws, coords, query_emb

    def forward(self, video: torch.Tensor, query: torch.Tensor, video_mask: torch.Tensor | None = None,
                query_mask: torch.Tensor | None = None, pair_video: torch.Tensor | None = None, *,
                official_padding: bool = False, record: bool = False) -> GroundingOutput:
        """encode_video + ground in one call (training and single-shot use). Shapes as in those methods."""
        side = self.encode_video(video, video_mask, official_padding=official_padding)
        return self.ground(side, query, query_mask, pair_video, official_padding=official_padding, record=record)

    # ------------------------------------------------------------------ decoding
    def saliency_levels(self, out: GroundingOutput) -> torch.Tensor:
        """[levels, N, T] sigmoid class scores of each level stretched to each pair's own length.

        Every score is repeated ``T_i // T_s`` times and the tail is padded with the last score
        (the official rule; the factor can exceed the stride). Levels that do not fit a pair
        (``T_i < stride``) and clips beyond ``T_i`` hold -inf.
        """
        n, t = out.video_mask.shape
        device = out.out_class.device
        scores = out.out_class[:, :, 0].sigmoid()  # [N, M]
        clip = torch.arange(t, device=device)[None, :]  # [1, T]
        stacked = []
        offset = 0
        for level, stride in zip(out.levels, out.level_strides):
            size = level.size(1)
            level_len = out.lengths // stride  # [N]
            repeat = out.lengths // level_len.clamp(min=1)  # [N]
            index = torch.minimum(clip // repeat[:, None], (level_len - 1).clamp(min=0)[:, None])  # [N, T]
            stretched = scores[:, offset:offset + size].gather(1, index.clamp(max=size - 1))
            valid = (level_len[:, None] > 0) & out.video_mask
            stacked.append(torch.where(valid, stretched, torch.full_like(stretched, float("-inf"))))
            offset += size
        return torch.stack(stacked)

    def clip_query_cosine(self, out: GroundingOutput) -> torch.Tensor:
        """[N, T] cosine between each clip state (after the ReLU) and the pooled query."""
        return cosine(out.video_emb, out.query_emb)

    def saliency(self, out: GroundingOutput) -> torch.Tensor:
        """[N, T] per-clip saliency of every pair over its own length (padded clips are 0).

        The maximum over levels of :meth:`saliency_levels`; with ``merge_cls_sal`` it is multiplied by
        the clip/query cosine (so it can be negative).
        """
        merged = self.saliency_levels(out).amax(dim=0)
        if self.config.merge_cls_sal:
            merged = merged * self.clip_query_cosine(out)
        return torch.where(out.video_mask, merged, torch.zeros_like(merged))

    def boundaries(self, out: GroundingOutput, fps: torch.Tensor | list[float] | float) -> list[torch.Tensor]:
        """Decode each pair's top windows: list of [<=max_num_moment, 3] (start s, end s, score), unclamped.

        A point at position p with stride s and distances (d0, d1) gives ``((p - s*d0)/fps, (p + s*d1)/fps)``
        with score sigmoid(logit); only the pair's valid points (position index < T_i // s) take part.
        Rows are sorted by score with a stable sort and cut to ``max_num_moment``.

        Raises:
            InputError: when the model has no coord head.
        """
        if out.out_coord is None:
            raise InputError("this model has no coord head (TVSum/YouTube presets predict saliency only)")
        n = out.out_class.size(0)
        fps_t = _fps_tensor(fps, n, out.out_class.device)
        points = out.points
        position, stride = points[:, 0], points[:, 3]
        start = (-out.out_coord[:, :, 0] * stride + position) / fps_t[:, None]  # [N, M]
        end = (out.out_coord[:, :, 1] * stride + position) / fps_t[:, None]
        score = out.out_class[:, :, 0].sigmoid()
        valid = self._valid_points(out)  # [N, M]
        key = torch.where(valid, score, torch.full_like(score, float("-inf")))  # invalid points sort last
        keep = min(self.config.max_num_moment, key.size(1))
        order = torch.sort(key, dim=1, descending=True, stable=True).indices[:, :keep]  # [N, K]
        rows = torch.stack((start, end, score), dim=-1).gather(1, order[:, :, None].expand(-1, -1, 3))  # [N, K, 3]
        counts = valid.sum(1).clamp(max=keep).tolist()
        return [rows[i, : counts[i]] for i in range(n)]

    def _valid_points(self, out: GroundingOutput) -> torch.Tensor:
        masks = [m for m in out.level_masks()]
        return torch.cat(masks, dim=1)

    def predict(self, out: GroundingOutput, fps: torch.Tensor | list[float] | float) -> list[PairPrediction]:
        """Per-pair saliency [T_i], boundaries (if a coord head exists), logits and points of valid points."""
        saliency = self.saliency(out)
        bounds = self.boundaries(out, fps) if out.out_coord is not None else [None] * saliency.size(0)
        valid = self._valid_points(out)
        results = []
        for i in range(saliency.size(0)):
            length = int(out.lengths[i])
            results.append(PairPrediction(saliency=saliency[i, :length], boundary=bounds[i],
                                          class_logits=out.out_class[i, valid[i], 0], points=out.points[valid[i]]))
        return results

    def num_parameters(self) -> int:
        """Number of learnable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


_POOL_BUDGET = {"cpu": 16 << 20, "other": 256 << 20}  # elements of one pooling step's [G, T', q*L, D] product


@dataclass
class _PoolGroup:
    """G windows with q pairs each, pooled together over clips [0, clips)."""

    windows: slice | torch.Tensor  # into the video side
    pairs: slice | torch.Tensor  # into the (window-sorted) pairs
    size: int  # G
    queries: int  # q
    clips: int  # clips computed (the longest window of the group; the padded length on the official path)
    clip_tile: int  # clips per step (memory budget)


def _pool_plan(pair_video: torch.Tensor, side: VideoSide, official: bool, tokens: int, dims: int) -> list[_PoolGroup]:
    """Group window-sorted pairs: runs of one window, then windows with the same number of pairs.

    Windows are batched up to a memory budget; a window whose product alone exceeds it is cut into
    clip tiles. Windows shorter than the padded length are computed over their group's longest window
    (padded clips of the product path never reach a valid output).
    """
    videos = pair_video.tolist()
    lengths = side.lengths.tolist()
    runs: list[tuple[int, int, int]] = []  # (window, first pair, pairs)
    for index, w in enumerate(videos):
        if runs and runs[-1][0] == w:
            runs[-1] = (w, runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((w, index, 1))
    by_count: dict[int, list[tuple[int, int]]] = {}
    for w, first, count in runs:
        by_count.setdefault(count, []).append((w, first))
    budget = _POOL_BUDGET["cpu" if pair_video.device.type == "cpu" else "other"]
    t = side.num_clips
    device = pair_video.device
    plan = []
    for q, members in by_count.items():
        per_clip = q * tokens * dims
        per_group = max(1, budget // (per_clip * t))
        clip_tile = max(1, min(t, budget // per_clip))
        for g0 in range(0, len(members), per_group):
            chunk = members[g0:g0 + per_group]
            ws = [w for w, _ in chunk]
            firsts = [f for _, f in chunk]
            if all(b - a == 1 for a, b in zip(ws, ws[1:])):
                windows: slice | torch.Tensor = slice(ws[0], ws[-1] + 1)
            else:
                windows = torch.tensor(ws, device=device)
            if all(b - a == q for a, b in zip(firsts, firsts[1:])):
                pairs: slice | torch.Tensor = slice(firsts[0], firsts[-1] + q)
            else:
                pairs = torch.tensor([f + j for f in firsts for j in range(q)], device=device)
            clips = t if official else max(lengths[w] for w in ws)
            plan.append(_PoolGroup(windows, pairs, len(chunk), q, clips, clip_tile))
    return plan


def _pool_grouped(plan: list[_PoolGroup], tokens: torch.Tensor, y: torch.Tensor, yqv: torch.Tensor,
                  pool_bias: torch.Tensor | None, t: int) -> torch.Tensor:
    """Query-modulated spatial pooling with each window's tokens broadcast to its pairs.

    tokens [V, T, P, D] of one layer, y [N, L, D] query tokens, yqv [N, L, D] their q_map times the
    v_map weight, pool_bias [N, 1, L, 1] (-inf on padded query rows) -> [N, T, D]: per clip, the max
    over query rows of (softmax over the P tokens of yqv . token / sqrt(D)) @ tokens + y. Equal to the
    reference path's softmax of q_map(y) . v_map(token) / sqrt(D), whose bias term is constant over
    the tokens; computed as [q*L, D] x [D, T*P] products per window, without a per-pair copy.
    """
    n, l, d = y.shape
    p = tokens.size(2)
    full = all(group.clips == t for group in plan)
    out = (torch.empty if full else torch.zeros)(n, t, d, dtype=y.dtype, device=y.device)
    for group in plan:
        g, q = group.size, group.queries
        win_tokens = tokens[group.windows]  # [G, T, P, D] (a view for a slice)
        pair_y = y[group.pairs].view(g, 1, q, l, d)
        pair_yq = yqv[group.pairs].view(g, q * l, d)
        bias = None if pool_bias is None else pool_bias[group.pairs].view(g, 1, q, l, 1)
        for c0 in range(0, group.clips, group.clip_tile):
            c1 = min(group.clips, c0 + group.clip_tile)
            tt = c1 - c0
            k_tile = win_tokens[:, c0:c1].reshape(g, tt * p, d)
            logits = torch.matmul(pair_yq, k_tile.transpose(1, 2)).view(g, q * l, tt, p)  # [G, qL, T', P]
            att = (logits / d**0.5).softmax(-1)
            pooled = torch.matmul(att.transpose(1, 2), win_tokens[:, c0:c1])  # [G, T', qL, D]
            pooled = pooled.view(g, tt, q, l, d).add_(pair_y)
            if bias is not None:
                pooled.add_(bias)  # padded query rows never win the max
            out[group.pairs, c0:c1] = pooled.amax(dim=3).transpose(1, 2).reshape(g * q, tt, d)
    return out


def _take_pairs(out: GroundingOutput, index: torch.Tensor) -> GroundingOutput:
    """The pairs ``index`` of a grounding output, in that order (every per-pair tensor is indexed)."""
    def take(x):
        return None if x is None else x[index]

    return GroundingOutput(
        video_emb=take(out.video_emb), adapter_video_emb=take(out.adapter_video_emb),
        query_tokens=take(out.query_tokens), query_emb=take(out.query_emb), levels=[take(x) for x in out.levels],
        level_strides=out.level_strides, points=out.points, out_class=take(out.out_class),
        coord_raw=take(out.coord_raw),
        out_coord=take(out.out_coord), video_mask=take(out.video_mask), query_mask=take(out.query_mask),
        lengths=take(out.lengths), official_padding=out.official_padding, coll_v=[take(x) for x in out.coll_v],
        coll_q=[take(x) for x in out.coll_q], tem_inputs=[take(x) for x in out.tem_inputs],
        tem_outputs=[take(x) for x in out.tem_outputs],
    )


def _mask(mask: torch.Tensor | None, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if tuple(mask.shape) != shape:
        raise InputError(f"mask shape {tuple(mask.shape)} does not fit the features (expected {shape})")
    return mask.to(device=device) > 0


def _fps_tensor(fps, n: int, device: torch.device) -> torch.Tensor:
    if isinstance(fps, (int, float)):
        values = torch.full((n,), float(fps))
    else:
        values = torch.as_tensor(fps, dtype=torch.float32).reshape(-1)
    if values.numel() != n or not bool((values > 0).all()):
        raise InputError(f"fps must be one positive value or {n} positive values, got {fps!r}")
    return values.to(device=device, dtype=torch.float32)


def build_model(config: ModelConfig | None = None) -> R2Tuning:
    """Build an R2-Tuning head with the official initialisation (default: the QVHighlights architecture).

    Raises:
        UsageError: when the config breaks a rule.
    """
    return R2Tuning(config or ModelConfig())


def masks_from_padding(video: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Official convention: a clip/token is real iff element 0 of its flattened feature is finite.

    ``video`` [B, T, ...], ``query`` [B, L, ...] -> (video_mask [B, T] bool, query_mask [B, L] bool).
    """
    return (video.reshape(video.size(0), video.size(1), -1)[:, :, 0].isfinite(),
            query.reshape(query.size(0), query.size(1), -1)[:, :, 0].isfinite())
