"""Batch invariance of the product path: each pair of a padded batch equals its batch-of-one result."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from r2cli.model.config import ModelConfig  # noqa: E402
from r2cli.model.r2tuning import build_model  # noqa: E402

CLIP_LAYERS = 5  # more layers than k, so the "last k" slice is exercised


def tiny_model(seed: int = 0, num_tokens: int = 5, **overrides):
    """A tiny head with every parameter randomised (official init zeroes gate/scale, hiding the pooling)."""
    config = ModelConfig(video_width=24, query_width=16, num_tokens=num_tokens, clip_arch="tiny", dims=32, heads=4,
                         **overrides)
    model = build_model(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            fan_in = param[0].numel() if param.dim() > 1 else 1
            param.copy_(torch.randn(param.shape, generator=gen) * (fan_in**-0.5 if param.dim() > 1 else 0.3))
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.add_(1.0)
    return model.eval()


def random_pairs(lengths_t, lengths_l, seed, config):
    gen = torch.Generator().manual_seed(seed)
    videos = [torch.randn(t, CLIP_LAYERS, config.num_tokens, config.video_width, generator=gen) for t in lengths_t]
    queries = [torch.randn(n, CLIP_LAYERS, config.query_width, generator=gen) for n in lengths_l]
    return videos, queries


def pad(items, fill=float("nan")):
    longest = max(x.size(0) for x in items)
    out = torch.full((len(items), longest, *items[0].shape[1:]), fill)
    mask = torch.zeros(len(items), longest, dtype=torch.bool)
    for i, x in enumerate(items):
        out[i, : x.size(0)] = x
        mask[i, : x.size(0)] = True
    return out, mask


def single(model, video, query, fps):
    with torch.no_grad():
        out = model(video[None], query[None])
        return model.predict(out, fps)[0]


def assert_pair_equal(batched, alone, where):
    torch.testing.assert_close(batched.saliency, alone.saliency, atol=1e-5, rtol=1e-5, msg=lambda m: f"{where}: {m}")
    torch.testing.assert_close(batched.class_logits, alone.class_logits, atol=1e-5, rtol=1e-5,
                               msg=lambda m: f"{where}: {m}")
    assert torch.equal(batched.points, alone.points), where
    if alone.boundary is not None:
        torch.testing.assert_close(batched.boundary, alone.boundary, atol=1e-5, rtol=1e-5,
                                   msg=lambda m: f"{where}: {m}")


@pytest.mark.parametrize("seed, lengths_t, lengths_l", [
    (1, [17, 3, 9, 30, 1], [4, 7, 2, 11, 1]),  # T=3 and T=1 are below the largest stride
    (2, [8, 8, 23, 5, 12], [3, 3, 9, 6, 5]),
    (3, [40, 7, 29, 13, 2], [10, 16, 4, 1, 8]),
])
def test_padded_batch_equals_batch_of_one(seed, lengths_t, lengths_l):
    model = tiny_model(seed)
    videos, queries = random_pairs(lengths_t, lengths_l, seed, model.config)
    fps = [0.5, 1.0, 0.5, 2.0, 0.5]
    video, video_mask = pad(videos)  # padding is NaN: it must never leak
    query, query_mask = pad(queries)
    with torch.no_grad():
        out = model(video, query, video_mask, query_mask)
        batched = model.predict(out, fps)
    for i in range(len(videos)):
        alone = single(model, videos[i], queries[i], fps[i])
        assert batched[i].saliency.shape == (lengths_t[i],)
        assert batched[i].boundary.shape[0] == min(model.config.max_num_moment, alone.class_logits.numel())
        assert_pair_equal(batched[i], alone, f"pair {i} (T={lengths_t[i]}, L={lengths_l[i]})")


def test_one_video_side_serves_many_queries():
    model = tiny_model(4)
    videos, queries = random_pairs([21, 6], [5, 3, 8, 2, 6], 4, model.config)
    pair_video = torch.tensor([0, 1, 0, 1, 0])
    video, video_mask = pad(videos)
    query, query_mask = pad(queries)
    with torch.no_grad():
        side = model.encode_video(video.half(), video_mask)  # fp16 cache features are accepted
        out = model.ground(side, query.half(), query_mask, pair_video)
        batched = model.predict(out, 0.5)
    assert side.tokens.shape == (model.config.k, 2, 21, model.config.num_tokens, model.config.dims)
    for i, v in enumerate(pair_video.tolist()):
        alone = single(model, videos[v].half(), queries[i].half(), 0.5)
        assert_pair_equal(batched[i], alone, f"pair {i} on video {v}")


def test_official_padding_differs_from_batch_of_one():
    """The official padded path mixes padding into valid positions (that is why the product path exists)."""
    model = tiny_model(5)
    videos, queries = random_pairs([20, 9], [3, 9], 5, model.config)
    video, video_mask = pad(videos, fill=0.0)
    query, query_mask = pad(queries, fill=0.0)
    with torch.no_grad():
        official = model(video, query, video_mask, query_mask, official_padding=True)
    alone = single(model, videos[1], queries[1], 0.5)
    assert not torch.allclose(model.saliency(official)[1, :9], alone.saliency, atol=1e-4)


def test_long_video_beyond_the_official_point_table():
    model = tiny_model(6, num_tokens=2)
    config = model.config
    gen = torch.Generator().manual_seed(6)
    video = torch.randn(1, 1100, CLIP_LAYERS, config.num_tokens, config.video_width, generator=gen)
    query = torch.randn(1, 4, CLIP_LAYERS, config.query_width, generator=gen)
    with torch.no_grad():
        out = model(video, query)
        prediction = model.predict(out, 0.5)[0]
    assert out.points.shape[0] == 1100 + 550 + 275 + 137
    assert float(out.points[-1, 0]) == 136 * 8 and float(out.points[1099, 0]) == 1099
    assert prediction.saliency.shape == (1100,) and bool(torch.isfinite(prediction.saliency).all())
    assert prediction.boundary.shape == (config.max_num_moment, 3)


def test_inputs_that_do_not_fit_are_refused():
    from r2cli.errors import InputError

    model = tiny_model(7)
    config = model.config
    video = torch.randn(1, 4, CLIP_LAYERS, config.num_tokens, config.video_width + 1)
    with pytest.raises(InputError, match="width"):
        model.encode_video(video)
    video = torch.randn(2, 4, CLIP_LAYERS, config.num_tokens, config.video_width)
    with pytest.raises(InputError, match="at least one real clip"):
        model.encode_video(video, torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]))
    side = model.encode_video(video)
    query = torch.randn(3, 2, CLIP_LAYERS, config.query_width)
    with pytest.raises(InputError, match="pair_video"):
        model.ground(side, query)
    with pytest.raises(InputError, match="pair_video"):
        model.ground(side, query, pair_video=torch.tensor([0, 1, 2]))
