"""Compact layer tokens: int8 with one fp16 scale per (clip, layer, channel).

``r2cli index --feature-dtype int8`` stores the CLIP layer tokens of each clip as int8 plus a
scale for every (clip, layer, channel): ``q = round(x / s)`` with ``s = max_p |x[p]| / 127`` taken
over the clip's P tokens (symmetric, no zero point). For ViT-B/32 (k=4, P=50, Cv=768) a clip is
153,600 bytes of int8 and 6,144 bytes of scales instead of 307,200 bytes of fp16: about 289 MB
per video-hour at 0.5 fps instead of 555 MB (the CLIP embeddings of the coarse stage stay fp16).

Per channel because CLIP's residual stream has a few channels hundreds of times larger than the
rest: one scale per token would spend the int8 range on them and flatten every other channel.
The max over the tokens of one clip bounds the error of every value by ``s / 2``.

Search reads such a file through ``QuantizedLayers``, which slices like the fp16 memory map and
dequantizes only the rows asked for (to float32, the dtype the R2-Tuning head computes in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from r2cli.errors import FeatureError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

QUANT_MAX = 127  # symmetric int8 range [-127, 127] (-128 unused, so the range is symmetric)
# the smallest scale stored: fp16 has no smaller normal number, and a channel whose tokens are all
# below it is stored as zeros (its values are under 1e-2, far below anything CLIP produces)
_MIN_SCALE = 2.0**-14


def check_finite(array: Any, what: str) -> None:
    """Refuse features holding NaN or inf before they are stored (a file must never hide them).

    Raises:
        FeatureError: ``array`` has a non-finite value; the message names ``what`` and where.
    """
    import numpy as np

    values = np.asarray(array)
    finite = np.isfinite(values)
    if not finite.all():
        first = np.argwhere(~finite)[0]
        raise FeatureError(f"{what} hold a non-finite value (NaN or inf) at index {first.tolist()}; "
                           "nothing was stored")


def quantize_layers(layers: Any) -> tuple["np.ndarray", "np.ndarray"]:
    """``layers [n, k, P, Cv]`` (float) -> int8 ``[n, k, P, Cv]`` and fp16 scales ``[n, k, Cv]``.

    The scales are rounded to fp16 first and the values divided by the rounded scale, so
    ``dequantize_layers`` gives back ``x`` within ``scale / 2`` for every value.

    Raises:
        FeatureError: ``layers`` has the wrong rank or a non-finite value.
    """
    import numpy as np

    values = np.asarray(layers, dtype=np.float32)  # [n, k, P, Cv]
    if values.ndim != 4:
        raise FeatureError(f"layers must be [n, k, P, Cv] to quantize, got shape {list(values.shape)}")
    check_finite(values, "layer features")
    peak = np.abs(values).max(axis=2)  # [n, k, Cv]
    scales = np.maximum(peak / QUANT_MAX, _MIN_SCALE).astype(np.float16)  # [n, k, Cv]
    divided = values / scales.astype(np.float32)[:, :, None, :]  # [n, k, P, Cv]
    quantized = np.clip(np.rint(divided), -QUANT_MAX, QUANT_MAX).astype(np.int8)
    return quantized, scales


def dequantize_layers(quantized: Any, scales: Any, dtype: Any = "float32") -> "np.ndarray":
    """int8 ``[n, k, P, Cv]`` and scales ``[n, k, Cv]`` -> ``[n, k, P, Cv]`` of ``dtype``."""
    import numpy as np

    values = np.asarray(quantized, dtype=np.float32)  # [n, k, P, Cv]
    return (values * np.asarray(scales, dtype=np.float32)[:, :, None, :]).astype(dtype, copy=False)


class QuantizedLayers:
    """Array-like view of stored int8 layers: slicing clips returns dequantized float32 rows.

    Has what the readers of ``VideoFeatures.layers`` use: ``shape``, ``dtype``, ``ndim``,
    ``len()``, slicing along the clip axis, and ``numpy.asarray`` of the whole.
    """

    def __init__(self, quantized: "np.ndarray", scales: "np.ndarray") -> None:
        import numpy as np

        if quantized.ndim != 4 or scales.shape != (quantized.shape[0], quantized.shape[1], quantized.shape[3]):
            raise FeatureError(
                f"int8 layers {list(quantized.shape)} and their scales {list(scales.shape)} do not fit together")
        self.quantized = quantized  # [T, k, P, Cv] int8, memory-mapped
        self.scales = scales  # [T, k, Cv] float16, memory-mapped
        self.dtype = np.dtype(np.float32)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.quantized.shape)

    @property
    def ndim(self) -> int:
        return 4

    @property
    def nbytes_stored(self) -> int:
        return int(self.quantized.nbytes + self.scales.nbytes)

    def __len__(self) -> int:
        return int(self.quantized.shape[0])

    def __getitem__(self, index: Any) -> "np.ndarray":
        if isinstance(index, tuple):
            head, rest = index[0], index[1:]
        else:
            head, rest = index, ()
        if isinstance(head, int):
            rows = dequantize_layers(self.quantized[head : head + 1 or None], self.scales[head : head + 1 or None])[0]
        else:
            rows = dequantize_layers(self.quantized[head], self.scales[head])
        return rows[rest] if rest else rows

    def __array__(self, dtype: Any = None, copy: Any = None) -> "np.ndarray":
        values = dequantize_layers(self.quantized, self.scales)
        return values if dtype is None else values.astype(dtype, copy=False)
