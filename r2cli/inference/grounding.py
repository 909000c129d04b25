"""Batched R2-Tuning grounding of many (window, query) pairs.

The fine stage of a search: windows (a video, or a window of a long video) are encoded in
chunks with ``model.encode_video`` (the query-independent side, about 90% of the official
per-pair arithmetic) once each, then every query paired with a window of the chunk is run
through ``model.ground`` in batches of up to ``batch_size`` pairs made of whole windows (the
model pools the pairs of one window against its shared tokens and keys). Decoding (saliency merge and
the top boundaries of every pair) is vectorised over the batch, so a GPU is not throttled by
a Python loop per pair. A pair's result does not depend on the batch it ran in (the model's
product path masks padding); tests check it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from r2cli.errors import UsageError
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class PairOutput:
    """Decoded prediction of one (window, query) pair, on the CPU, in window-local seconds."""

    boundaries: "np.ndarray"  # [n <= max_num_moment, 3] float64 rows (start s, end s, score), best first, unclamped
    saliency: "np.ndarray"  # [T_window] float32 per-clip saliency


_CPU_BUDGET_BYTES = 512 << 20  # memory for video sides / gathered pair tokens on a CPU
_GPU_BUDGET_BYTES = 6 << 30  # the same on a GPU (each; H100-class cards have 80 GB)


def _budget(device: str) -> int:
    return _GPU_BUDGET_BYTES if str(device).startswith("cuda") else _CPU_BUDGET_BYTES


def _token_bytes(config: Any, num_clips: int) -> int:
    """Bytes of one window's mapped tokens and keys for one layer: 2 x [T, P, D] float32."""
    return 2 * num_clips * config.num_tokens * config.dims * 4


def _pair_bytes(config: Any, num_clips: int) -> int:
    """Bytes one pair holds during ``ground``: its clip states and decoder temporaries (~24 x [T, D] float32).

    The pairs of a window share the window's tokens and keys (no per-pair copy), and the pooling
    product is cut to a fixed budget inside the model, so a pair costs only its own [T, D]-sized states.
    """
    return 24 * num_clips * config.dims * 4


def default_batch_size(device: str, config: Any = None, num_clips: int = 75) -> int:
    """Pairs per ``ground`` call: as many as fit the memory budget for the pairs' own states.

    Batches are made of whole windows (all pairs of a window in one call) where the size allows.
    """
    if config is None:
        return 1024 if str(device).startswith("cuda") else 256
    return int(max(1, min(4096, _budget(device) // max(1, _pair_bytes(config, num_clips)))))


def default_chunk_windows(device: str, config: Any = None, num_clips: int = 75) -> int:
    """Windows encoded at once (their video side, k x 2 x [T, P, D], and one input layer stay in memory)."""
    if config is None:
        return 128 if str(device).startswith("cuda") else 8
    input_layer = num_clips * config.num_tokens * (config.video_width + 2) * 4  # the conversion buffer
    per_window = _token_bytes(config, num_clips) * config.k + input_layer
    return int(max(1, min(1024, _budget(device) // max(1, per_window))))


class Grounder:
    """Runs a loaded R2-Tuning head over (window, query) pairs with a shared video side.

    Args:
        model: an ``r2cli.model.R2Tuning`` in eval mode.
        device: torch device string the model runs on.
        batch_size: pairs per ``ground`` call (default: what fits the memory budget, ``default_batch_size``).
        chunk_windows: windows whose video side is computed at once (default: ``default_chunk_windows``).
        precision: "fp32" (default, the official evaluation precision), or "bf16"/"fp16" autocast on a GPU.
    """

    def __init__(self, model: Any, device: str = "cpu", *, batch_size: int | None = None,
                 chunk_windows: int | None = None, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if batch_size is not None and batch_size < 1:
            raise UsageError(f"batch size must be >= 1 pair, got {batch_size}")
        if chunk_windows is not None and chunk_windows < 1:
            raise UsageError(f"chunk size must be >= 1 window, got {chunk_windows}")
        self.model = model
        self.device = str(device)
        config = model.config
        self.batch_size = batch_size or default_batch_size(self.device, config)
        self.chunk_windows = chunk_windows or default_chunk_windows(self.device, config)
        self.precision = precision
        self.max_moments = int(model.config.max_num_moment)
        self.has_boundaries = model.coord_head is not None

    # ------------------------------------------------------------------ helpers
    def _autocast(self):
        import contextlib

        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=torch.device(self.device).type, dtype=dtype)

    def pad_queries(self, queries: list["torch.Tensor"]) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Stack per-query layer features ``[L_i, k, Cq]`` into ``[Q, Lmax, k, Cq]`` plus a mask ``[Q, Lmax]``."""
        import torch

        if not queries:
            raise UsageError("no query features to ground")
        lmax = max(int(q.shape[0]) for q in queries)
        k, width = int(queries[0].shape[1]), int(queries[0].shape[2])
        out = torch.zeros(len(queries), lmax, k, width, dtype=torch.float32)
        mask = torch.zeros(len(queries), lmax, dtype=torch.bool)
        for i, q in enumerate(queries):
            out[i, : q.shape[0]] = q.to(torch.float32)
            mask[i, : q.shape[0]] = True
        return out.to(self.device), mask.to(self.device)

    def encode(self, windows: list[Any]) -> Any:
        """Video side of a list of window features (arrays ``[T_i, k, P, Cv]``), padded to the longest.

        Features are copied once from the (memory-mapped) arrays into one padded host tensor, pinned
        on a GPU so the transfer runs at full bus speed; only padded clips are zeroed.
        """
        import warnings

        import numpy as np
        import torch

        tmax = max(int(w.shape[0]) for w in windows)
        first = windows[0]
        dtype = torch.float16 if str(first.dtype) in ("float16", "torch.float16") else torch.float32
        shape = (len(windows), tmax, *first.shape[1:])
        on_gpu = self.device.startswith("cuda")
        video = self._staging(shape, dtype) if on_gpu else torch.empty(shape, dtype=dtype)
        mask = torch.zeros(len(windows), tmax, dtype=torch.bool)
        with warnings.catch_warnings():
            # store arrays are read-only memory maps; they are only read here
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            for i, w in enumerate(windows):
                data = w if isinstance(w, torch.Tensor) else torch.from_numpy(np.asarray(w))
                length = int(data.shape[0])
                video[i, :length].copy_(data)
                if length < tmax:
                    video[i, length:].zero_()
                mask[i, :length] = True
        with torch.inference_mode(), self._autocast():
            side = self.model.encode_video(video.to(self.device, non_blocking=True), mask.to(self.device))
        return side

    def _staging(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """A pinned host buffer of at least ``shape`` (reused across chunks; grows when needed)."""
        import math

        import torch

        needed = math.prod(shape)
        buffer = getattr(self, "_pinned", None)
        if buffer is None or buffer.dtype != dtype or buffer.numel() < needed:
            # wait for any transfer still reading the old buffer before replacing it
            torch.cuda.synchronize(self.device)
            buffer = torch.empty(needed, dtype=dtype, pin_memory=True)
            self._pinned = buffer
        else:
            torch.cuda.synchronize(self.device)  # the previous chunk's copy must be done before refilling
        return buffer[:needed].view(shape)

    def decode(self, out: Any, fps: float) -> tuple["torch.Tensor", "torch.Tensor | None", "torch.Tensor"]:
        """Batched decoding: saliency ``[N, T]``, top boundaries ``[N, R, 3]`` and their counts ``[N]``.

        Boundaries follow ``model.boundaries``: every valid point gives ``((p - s*d0)/fps, (p + s*d1)/fps)``
        with score sigmoid(logit); rows are sorted by score (stable) and cut to ``max_num_moment``.
        """
        import torch

        model = self.model
        saliency = model.saliency(out).float()  # [N, T]
        if out.out_coord is None:
            return saliency, None, torch.zeros(saliency.size(0), dtype=torch.long)
        points = out.points  # [M, 4]
        position, stride = points[:, 0], points[:, 3]
        coord = out.out_coord.float()
        start = (position - coord[:, :, 0] * stride) / fps  # [N, M]
        end = (position + coord[:, :, 1] * stride) / fps  # [N, M]
        score = out.out_class[:, :, 0].float().sigmoid()  # [N, M]
        valid = torch.cat(out.level_masks(), dim=1)  # [N, M]
        ranked = torch.where(valid, score, torch.full_like(score, float("-inf")))
        order = torch.sort(ranked, dim=1, descending=True, stable=True).indices[:, : self.max_moments]  # [N, R]
        rows = torch.stack((start.gather(1, order), end.gather(1, order), score.gather(1, order)), dim=2)  # [N, R, 3]
        counts = valid.sum(1).clamp(max=self.max_moments)  # [N]
        return saliency, rows, counts

    def _batches(self, chunk: list[int], by_window: dict[int, list[int]]) -> Iterable[list[tuple[int, int, int]]]:
        """Batches of ``(local window, window, query)`` of at most ``batch_size`` pairs, made of whole windows.

        The model pools the pairs of one window together, so a window's pairs are split only when
        they alone exceed the batch size.
        """
        batch: list[tuple[int, int, int]] = []
        for local, w in enumerate(chunk):
            pairs = [(local, w, q) for q in by_window[w]]
            if batch and len(batch) + len(pairs) > self.batch_size:
                yield batch
                batch = []
            while len(pairs) > self.batch_size:
                yield pairs[: self.batch_size]
                pairs = pairs[self.batch_size :]
            batch.extend(pairs)
        if batch:
            yield batch

    # ------------------------------------------------------------------ main loop
    def run(
        self,
        windows: list[Any],
        queries: list["torch.Tensor"],
        pairs: Iterable[tuple[int, int]],
        *,
        fps: float,
        reporter: Reporter = NULL_REPORTER,
        stage: str = "grounding",
    ) -> dict[tuple[int, int], PairOutput]:
        """Ground every ``(window index, query index)`` pair; returns outputs keyed by the pair.

        ``windows`` are feature arrays ``[T_i, k, P, Cv]`` (numpy memory maps are fine), ``queries``
        per-query tensors ``[L_i, k, Cq]``. Each window's video side is computed once, whatever the
        number of queries paired with it.

        Raises:
            UsageError: a pair refers to a window or query that does not exist.
            InputError: features do not fit the model (raised by the model).
        """
        import torch

        by_window: dict[int, list[int]] = {}
        total = 0
        for w, q in pairs:
            if not (0 <= w < len(windows)) or not (0 <= q < len(queries)):
                raise UsageError(f"pair ({w}, {q}) is out of range ({len(windows)} windows, {len(queries)} queries)")
            by_window.setdefault(w, []).append(q)
            total += 1
        results: dict[tuple[int, int], PairOutput] = {}
        if not total:
            return results
        query_all, query_mask_all = self.pad_queries(queries)
        reporter.begin(stage, total=total, unit="pairs")
        # windows of similar length share a chunk, so little padding is computed
        order = sorted(by_window, key=lambda w: (-int(windows[w].shape[0]), w))
        for start in range(0, len(order), self.chunk_windows):
            chunk = order[start : start + self.chunk_windows]
            side = self.encode([windows[w] for w in chunk])
            for batch in self._batches(chunk, by_window):
                local_index = torch.tensor([p[0] for p in batch], device=self.device)
                query_index = torch.tensor([p[2] for p in batch], device=self.device)
                qmask = query_mask_all[query_index]  # [N, Lmax]
                lmax = int(qmask.sum(1).max())
                with torch.inference_mode():
                    with self._autocast():
                        out = self.model.ground(side, query_all[query_index, :lmax], qmask[:, :lmax], local_index)
                    saliency, rows, counts = self.decode(out, fps)
                    lengths = out.lengths.cpu().tolist()
                    saliency_cpu = saliency.cpu().numpy()
                    rows_cpu = rows.double().cpu().numpy() if rows is not None else None
                    counts_cpu = counts.cpu().tolist()
                for i, (_, w, q) in enumerate(batch):
                    bounds = rows_cpu[i, : counts_cpu[i]] if rows_cpu is not None else _empty_rows()
                    results[(w, q)] = PairOutput(boundaries=bounds, saliency=saliency_cpu[i, : lengths[i]])
                reporter.advance(stage, len(batch))
            del side
        reporter.end(stage)
        return results


def _empty_rows() -> "np.ndarray":
    import numpy as np

    return np.zeros((0, 3), dtype=np.float64)
