"""int8 layer tokens (``r2cli.features.compact``): error bound, file round trip, size per video-hour."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file

from r2cli.errors import FeatureError
from r2cli.features.compact import QuantizedLayers, dequantize_layers, quantize_layers
from r2cli.features.store import FeatureSettings, FeatureStore
from r2cli.features.verify import check_file

FP = "blake2b:" + "5e" * 64
FP16 = FeatureSettings(clip_model="ViT-B-32", weights_id="ViT-B-32/openai")
INT8 = dataclasses.replace(FP16, dtype="int8")


def clip_like(clips: int, tokens: int = 5, width: int = 16, seed: int = 0) -> np.ndarray:
    """Layer tokens with a few channels far larger than the rest, like CLIP's residual stream."""
    rng = np.random.default_rng(seed)
    layers = rng.standard_normal((clips, 4, tokens, width)).astype(np.float32)
    layers[..., 3] *= 300.0
    return layers


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 7), st.integers(1, 9), st.floats(1e-3, 1e3), st.integers(0, 10_000))
def test_every_value_comes_back_within_half_a_scale(clips, tokens, width, magnitude, seed):
    rng = np.random.default_rng(seed)
    layers = (rng.standard_normal((clips, 4, tokens, width)) * magnitude).astype(np.float32)
    quantized, scales = quantize_layers(layers)
    assert quantized.dtype == np.int8 and scales.dtype == np.float16
    assert quantized.shape == layers.shape and scales.shape == (clips, 4, width)
    error = np.abs(dequantize_layers(quantized, scales) - layers)
    bound = scales.astype(np.float32)[:, :, None, :] * 0.5 * (1 + 1e-3)
    assert (error <= bound).all()


def test_per_channel_scales_keep_small_channels_exact_beside_outliers():
    layers = clip_like(3)
    back = dequantize_layers(*quantize_layers(layers))
    small = np.delete(np.arange(layers.shape[-1]), 3)
    # a per-token scale would round these channels to zero (the outlier is 300x larger)
    assert np.abs(back[..., small] - layers[..., small]).max() < 0.02


def test_non_finite_layers_are_refused():
    layers = clip_like(2)
    layers[1, 2, 0, 5] = np.nan
    with pytest.raises(FeatureError, match="non-finite"):
        quantize_layers(layers)


def test_int8_file_round_trip_next_to_the_fp16_one(tmp_path):
    store = FeatureStore(tmp_path)
    layers = clip_like(7)
    rng = np.random.default_rng(1)
    embed, stamps = rng.standard_normal((7, 6)), np.arange(7) * 2.0 + 1.0
    full = store.put(FP, FP16, layers, embed, stamps, duration=14.0)
    with store.writer(FP, INT8, duration=14.0) as writer:  # in two chunks, as extraction writes
        writer.append(layers[:3], embed[:3], stamps[:3])
        writer.append(layers[3:], embed[3:], stamps[3:])
        compact = writer.commit()
    assert full.settings_key != compact.settings_key and compact.dtype == "int8"
    features = store.get(FP, INT8)
    assert isinstance(features.layers, QuantizedLayers)
    assert features.layers.shape == layers.shape and len(features.layers) == 7
    rows = features.layers[2:5]
    assert rows.dtype == np.float32 and rows.shape == (3, 4, 5, 16)
    np.testing.assert_array_equal(rows, np.asarray(features.layers)[2:5])
    np.testing.assert_array_equal(features.layers[4], rows[2])
    quantized, scales = quantize_layers(layers)
    np.testing.assert_array_equal(np.asarray(features.layers), dequantize_layers(quantized, scales))
    np.testing.assert_array_equal(features.embed, embed.astype(np.float16))
    assert store.get(FP, FP16).layers.dtype == np.float16
    assert check_file(features.path, compact) is None
    # plain safetensors: any reader sees int8 layers and their fp16 scales
    raw = load_file(str(features.path))
    assert raw["layers"].dtype == np.int8 and raw["layer_scales"].dtype == np.float16
    np.testing.assert_array_equal(raw["layer_scales"], scales)


def test_int8_store_is_under_0_3_gb_per_video_hour_at_vit_b32_shapes(tmp_path):
    # ViT-B/32: k=4 layers of 50 tokens x 768 channels, 512-d embeddings; 0.5 fps = 1,800 clips an hour
    clips = 6
    rng = np.random.default_rng(2)
    layers = rng.standard_normal((clips, 4, 50, 768)).astype(np.float32)
    embed, stamps = rng.standard_normal((clips, 512)), np.arange(clips) * 2.0
    store = FeatureStore(tmp_path)
    sizes = {}
    for settings_ in (FP16, INT8):
        stored = store.put(FP, settings_, layers, embed, stamps, duration=clips * 2.0)
        header = 8 + int.from_bytes(store.path(FP, settings_).read_bytes()[:8], "little")
        sizes[settings_.dtype] = (stored.bytes - header) / clips * 1800
    assert sizes["int8"] <= 0.3e9
    assert 288e6 < sizes["int8"] < 290e6 and 554e6 < sizes["float16"] < 556e6


def test_a_corrupted_scale_is_caught_by_verify(tmp_path):
    store = FeatureStore(tmp_path)
    stored = store.put(FP, INT8, clip_like(3), np.ones((3, 6)), np.arange(3.0), duration=6.0)
    path = store.path(FP, INT8)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside layer_scales, the last tensor of an int8 file
    path.write_bytes(bytes(data))
    assert check_file(path, stored) is not None
