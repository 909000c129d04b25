"""Building blocks of the R2-Tuning head: attention, decoder layer, positional and endpoint encodings.

Module and parameter names follow the official checkpoints (``q/k/v/m`` projections, ``mapping.{0,2}``),
so state dicts load without renaming. Imported lazily (torch at module import).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Transpose(nn.Module):
    """Swap the last two dimensions; holds a slot in Sequential containers so parameter indices match."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-1, -2)


class DropPath(nn.Module):
    """Per-sample stochastic depth on a residual branch (identity in eval mode)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        shape = (x.size(0),) + (1,) * (x.dim() - 1)
        draw = torch.floor(keep + torch.rand(shape, dtype=x.dtype, device=x.device))
        return x / keep * draw


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate q/k/v projections and an output map ``m``; keys can be masked."""

    def __init__(self, dims: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dims = dims // heads
        self.q = nn.Linear(dims, dims)
        self.k = nn.Linear(dims, dims)
        self.v = nn.Linear(dims, dims)
        self.m = nn.Linear(dims, dims)

    def reset_parameters(self) -> None:
        for linear in (self.q, self.k, self.v, self.m):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_mask: torch.Tensor | None) -> torch.Tensor:
        # query [B, Tq, C], key/value [B, Tk, C], key_mask [B, Tk] (true/1 = attend)
        b, tq, c = query.shape
        tk = key.size(1)
        q = self.q(query).view(b, tq, self.heads, self.head_dims).transpose(1, 2)  # [B, H, Tq, dh]
        k = self.k(key).view(b, tk, self.heads, self.head_dims).transpose(1, 2)  # [B, H, Tk, dh]
        v = self.v(value).view(b, tk, self.heads, self.head_dims).transpose(1, 2)  # [B, H, Tk, dh]
        logits = torch.matmul(q, k.transpose(-1, -2)) / self.head_dims**0.5  # [B, H, Tq, Tk]
        if key_mask is not None:
            additive = torch.where(key_mask > 0, 0.0, float("-inf")).to(logits.dtype)  # [B, Tk]
            logits = logits + additive[:, None, None, :]
        weights = logits.softmax(-1)
        out = torch.matmul(weights, v).transpose(1, 2).reshape(b, tq, c)  # [B, Tq, C]
        return self.m(out)


class FeedForward(nn.Module):
    """Two-layer ReLU MLP; ``mapping.0`` and ``mapping.2`` hold the weights (index 1 is the ReLU)."""

    def __init__(self, dims: int, ratio: int) -> None:
        super().__init__()
        self.mapping = nn.Sequential(nn.Linear(dims, dims * ratio), nn.ReLU(inplace=True), nn.Linear(dims * ratio, dims))

    def reset_parameters(self) -> None:
        for index in (0, 2):
            linear = self.mapping[index]
            nn.init.kaiming_normal_(linear.weight, a=0, mode="fan_out", nonlinearity="leaky_relu")
            nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapping(x)


class DecoderLayer(nn.Module):
    """Post-norm transformer decoder layer, order cross-attention -> self-attention -> FFN."""

    def __init__(self, dims: int, heads: int, ratio: int, droppath: float) -> None:
        super().__init__()
        self.cross_att = MultiHeadAttention(dims, heads)
        self.cross_att_norm = nn.LayerNorm(dims)
        self.self_att = MultiHeadAttention(dims, heads)
        self.self_att_norm = nn.LayerNorm(dims)
        self.ffn = FeedForward(dims, ratio)
        self.ffn_norm = nn.LayerNorm(dims)
        self.droppath = DropPath(droppath)
        self.cross_att.reset_parameters()
        self.self_att.reset_parameters()
        self.ffn.reset_parameters()

    def forward(self, x: torch.Tensor, memory: torch.Tensor, pe: torch.Tensor,
                x_mask: torch.Tensor | None, memory_mask: torch.Tensor | None) -> torch.Tensor:
        # x [B, T, C] clip states, memory [B, L, C] query tokens, pe [B, T, C]
        d = self.cross_att(x + pe, memory, memory, memory_mask)
        x = self.cross_att_norm(x + self.droppath(d))
        q = x + pe
        d = self.self_att(q, q, x, x_mask)
        x = self.self_att_norm(x + self.droppath(d))
        d = self.ffn(x)
        return self.ffn_norm(x + self.droppath(d))


def endpoint_features(lengths: torch.Tensor, total: int, device: torch.device) -> torch.Tensor:
    """Temporal endpoint features ``(t/T_i, (t+1)/T_i)`` for each sample, zero beyond its length.

    ``lengths`` [B] int. Rows are built with ``arange(0, 1, 1/T)`` cut to T rows, the same float
    arithmetic as the official code (the arange yields T+1 values for some T). Returns [B, total, 2].
    """
    out = torch.zeros(lengths.numel(), total, 2, device=device)
    cache: dict[int, torch.Tensor] = {}
    for b, length in enumerate(lengths.tolist()):
        if length not in cache:
            start = torch.arange(0, 1, 1 / length, device=device)[:length]
            cache[length] = torch.stack((start, start + 1.0 / length), dim=1)  # [T_i, 2]
        out[b, :length] = cache[length]
    return out


def positional_encoding(lengths: torch.Tensor, total: int, dims: int, device: torch.device,
                        temperature: int = 10000, scale: float = 2 * math.pi) -> torch.Tensor:
    """Normalised sinusoidal encoding: positions 1..T_i scaled to (0, 2*pi], sin/cos interleaved.

    ``lengths`` [B] int: the normaliser of each sample (the padded length reproduces the official code).
    Positions beyond a sample's length continue past 2*pi (they belong to padded clips). Returns [B, total, dims].
    """
    position = torch.arange(1, total + 1, device=device)[None, :]  # [1, T] int
    denominator = lengths.to(device=device, dtype=torch.long)[:, None] + 1e-6  # [B, 1] float
    angle = (position + 0.0) / denominator * scale  # [B, T]
    channel = torch.arange(dims, device=device)
    frequency = temperature ** (channel // 2 * 2 / dims)  # [dims]
    angle = angle.unsqueeze(-1) / frequency  # [B, T, dims]
    return torch.stack((angle[:, :, 0::2].sin(), angle[:, :, 1::2].cos()), dim=3).flatten(start_dim=2)


def masked_conv1d(conv: nn.Conv1d, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Apply a Conv1d to ``x`` [B, T, C] after zeroing positions at or beyond each sample's length."""
    if lengths is not None:
        valid = torch.arange(x.size(1), device=x.device)[None, :] < lengths[:, None]  # [B, T]
        x = x * valid.unsqueeze(-1).to(x.dtype)
    return conv(x.transpose(1, 2)).transpose(1, 2)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity along the last dimension with PyTorch's eps (1e-8)."""
    return F.cosine_similarity(a, b, dim=-1)
