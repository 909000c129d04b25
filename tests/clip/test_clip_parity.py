"""Parity of the CLIP towers with the official R2-Tuning towers (every clip_tower_*.pt in the parity folder).

Each file's state dict is saved alone and loaded with ``load_clip(path)``, the path a user takes with
``--clip-weights``. Tolerance 1e-4 absolute (the parity README observed 3.9e-6 with open_clip).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

ATOL = 1e-4


def _split(tensor, lengths):
    return list(torch.split(tensor, list(lengths), dim=0))


def _video_lengths(data) -> list[int]:
    return [int(frames.shape[0]) for frames in data["frames_uint8"]]


def _assert_close(actual, expected, what, atol=ATOL):
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual.float() - expected.float()).abs().max().item()
    assert diff <= atol, f"{what}: max abs difference {diff:.3g} > {atol}"


def _assert_rounds_to_fp16(actual_fp32, expected_fp16, what):
    """Our fp32 features cast to fp16 must equal the official fp16 cache, except where the fp32 value
    lies within 1e-4 of a rounding midpoint (there the cast may round the other way by one step)."""
    expected = expected_fp16.float()
    assert actual_fp32.shape == expected.shape, f"{what}: shape {tuple(actual_fp32.shape)} != {tuple(expected.shape)}"
    exponent = torch.floor(torch.log2(expected.abs().clamp_min(2.0**-14)))
    half_step = torch.finfo(torch.float16).eps * 2.0**exponent / 2
    excess = ((actual_fp32 - expected).abs() - half_step).max().item()
    assert excess <= ATOL, f"{what}: exceeds fp16 rounding of the official value by {excess:.3g}"
    exact = (actual_fp32.half() == expected_fp16).float().mean().item()
    assert exact >= 0.99, f"{what}: only {exact:.2%} of the fp16 values are identical"


def test_clip_parity_architecture(clip_parity_cases):
    for case in clip_parity_cases:
        arch, tower = case.data["arch"], case.tower
        assert tower.image_size == arch["image_resolution"], case.name
        assert tower.video_width == arch["vision_width"], case.name
        assert tower.text_width == arch["transformer_width"], case.name
        assert tower.num_layers == min(arch["vision_layers"], arch["transformer_layers"]), case.name
        assert tower.embed_dim == arch["embed_dim"], case.name
        assert tower.context_length == arch["context_length"], case.name
        grid = arch["image_resolution"] // arch["vision_patch_size"]
        assert tower.num_tokens == grid * grid + 1, case.name
        assert tower.weights_id.startswith("sha256:") and len(tower.weights_id) == len("sha256:") + 16
        assert tower.device == "cpu"


def test_clip_parity_video_tower_every_last_k_slice(clip_parity_cases):
    for case in clip_parity_cases:
        expected = case.data["video_tower"]  # [layers, frames, tokens, channels]
        total = expected.shape[0]
        for k in range(1, total + 1):
            layers, _ = case.tower.video_features(case.data["frames"], k=k)  # [N, k, P, C]
            _assert_close(layers, expected[total - k :].permute(1, 0, 2, 3), f"{case.name} video layers k={k}")


def test_clip_parity_query_tower_every_last_k_slice(clip_parity_cases):
    for case in clip_parity_cases:
        expected = case.data["query_tower"]  # [layers, queries, 77, channels]
        total = expected.shape[0]
        for k in range(1, total + 1):
            all_positions, _ = case.tower.token_features(case.data["tokens"], k=k)  # [n, k, 77, C]
            _assert_close(
                all_positions, expected[total - k :].permute(1, 0, 2, 3), f"{case.name} query layers k={k}"
            )


def test_clip_parity_tokens(clip_parity_cases):
    from r2cli.features.tokenizer import encode

    for case in clip_parity_cases:
        ids, truncated = case.tower.tokenize(list(case.data["queries"]))
        assert ids.dtype == torch.int64
        assert torch.equal(ids, case.data["tokens"]), f"{case.name}: token ids differ from clip.tokenize"
        expected_flags = [len(encode(text)) + 2 > case.tower.context_length for text in case.data["queries"]]
        assert truncated == expected_flags, case.name
        for row, cut in zip(ids, truncated):
            if cut:
                assert int(row[-1]) == 49407, f"{case.name}: a truncated query must end with EOT"


def test_clip_parity_cache_video_from_normalised_frames(clip_parity_cases):
    for case in clip_parity_cases:
        k = int(case.data["cache_k"])
        layers, _ = case.tower.video_features(case.data["frames"], k=k)
        for index, (ours, official) in enumerate(zip(_split(layers, _video_lengths(case.data)), case.data["cache_video"])):
            _assert_rounds_to_fp16(ours, official, f"{case.name} cache_video[{index}] from frames")
        half, _ = case.tower.video_features(case.data["frames"], k=k, output_dtype=torch.float16)
        assert half.dtype == torch.float16 and torch.equal(half, layers.half())


def test_clip_parity_cache_video_from_uint8_frames(clip_parity_cases):
    for case in clip_parity_cases:
        k = int(case.data["cache_k"])
        for index, (frames, official) in enumerate(zip(case.data["frames_uint8"], case.data["cache_video"])):
            pixels = case.tower.normalize(frames)
            assert pixels.dtype == torch.float32
            lengths = _video_lengths(case.data)
            start = sum(lengths[:index])
            _assert_close(pixels, case.data["frames"][start : start + lengths[index]], f"{case.name} normalize[{index}]", 1e-6)
            layers, _ = case.tower.video_features(pixels, k=k)
            _assert_rounds_to_fp16(layers, official, f"{case.name} cache_video[{index}] from uint8")


def test_clip_parity_cache_query_only_real_tokens(clip_parity_cases):
    for case in clip_parity_cases:
        k = int(case.data["cache_k"])
        layers, _, truncated = case.tower.query_features(list(case.data["queries"]), k=k)
        assert len(layers) == len(case.data["cache_query"]) == len(truncated)
        for index, (ours, official) in enumerate(zip(layers, case.data["cache_query"])):
            real = int((case.data["tokens"][index] != 0).sum())
            assert ours.shape == (real, k, case.tower.text_width), f"{case.name} query {index}: {tuple(ours.shape)}"
            _assert_rounds_to_fp16(ours, official, f"{case.name} cache_query[{index}]")


def test_clip_parity_embeddings(clip_parity_cases):
    for case in clip_parity_cases:
        _, image_embed = case.tower.video_features(case.data["frames"], k=1)
        expected_image = torch.nn.functional.normalize(case.data["encode_image"].float(), dim=-1)
        _assert_close(image_embed, expected_image, f"{case.name} image embed")
        assert torch.allclose(image_embed.norm(dim=-1), torch.ones(image_embed.shape[0]), atol=1e-5)
        _, text_embed, _ = case.tower.query_features(list(case.data["queries"]), k=1)
        expected_text = torch.nn.functional.normalize(case.data["encode_text"].float(), dim=-1)
        _assert_close(text_embed, expected_text, f"{case.name} text embed")
