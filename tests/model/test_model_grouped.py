"""The grouped inference path (pairs of a window pooled together, video side written in place).

Under ``torch.no_grad`` / ``inference_mode`` the model pools all pairs of one window against the
window's shared tokens and keys; with gradients it runs the per-pair gathered reference path (the
training path). Both must give the same numbers, on the product and on the official-padding path,
whatever the order of the pairs, the mix of window lengths and the number of queries per window.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import r2cli.model.r2tuning as r2tuning  # noqa: E402
from test_model_batching import assert_pair_equal, pad, random_pairs, single, tiny_model  # noqa: E402

# windows of mixed length (two share a length, one is shorter than the largest stride) and
# mixed query counts per window (1, 3, 2, 3, 1), listed out of window order
LENGTHS_T = [19, 7, 19, 3, 12]
LENGTHS_L = [4, 9, 2, 6, 1, 7, 3]
PAIRS = [(2, 0), (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (2, 6), (4, 0), (1, 1), (3, 2), (3, 6), (0, 0)]


def _reference(fn):
    """Run ``fn`` on the reference path (gradients enabled selects it); returns detached outputs."""
    with torch.enable_grad():
        return fn()


def _inputs(seed):
    model = tiny_model(seed)
    videos, queries = random_pairs(LENGTHS_T, LENGTHS_L, seed, model.config)
    video, video_mask = pad(videos)  # NaN padding must never leak
    query, query_mask = pad(queries)
    pair_video = torch.tensor([w for w, _ in PAIRS])
    pair_query = torch.tensor([q for _, q in PAIRS])
    return model, videos, queries, video, video_mask, query[pair_query], query_mask[pair_query], pair_video


@pytest.mark.parametrize("official", [False, True])
def test_video_side_equals_the_reference_path(official):
    model, _, _, video, video_mask, _, _, _ = _inputs(11)
    if official:
        video = torch.nan_to_num(video, nan=0.0)  # the official path reads padded clips as zero features
    with torch.no_grad():
        fast = model.encode_video(video.half(), video_mask, official_padding=official)
    slow = _reference(lambda: model.encode_video(video.half(), video_mask, official_padding=official))
    assert fast.tokens.shape == slow.tokens.shape == (4, len(LENGTHS_T), max(LENGTHS_T), 5, 32)
    torch.testing.assert_close(fast.tokens, slow.tokens.detach(), atol=1e-6, rtol=1e-6)
    assert fast.keys is None  # the grouped pooling needs no keys (v_map is folded into the query side)
    with torch.no_grad():
        torch.testing.assert_close(model.adapter.v_map(fast.tokens), slow.keys.detach(), atol=1e-6, rtol=1e-6)
    assert torch.equal(fast.lengths, slow.lengths) and torch.equal(fast.mask, slow.mask)


@pytest.mark.parametrize("budget", [None, 1, 5000])  # default; one clip per step; several windows per step
def test_grouped_pairs_of_mixed_lengths_and_query_counts(monkeypatch, budget):
    if budget is not None:
        monkeypatch.setitem(r2tuning._POOL_BUDGET, "cpu", budget)
    model, videos, queries, video, video_mask, query, query_mask, pair_video = _inputs(12)
    with torch.no_grad():
        side = model.encode_video(video, video_mask)
        out = model.ground(side, query, query_mask, pair_video, record=True)
        grouped = model.predict(out, 0.5)

    def reference():
        ref_side = model.encode_video(video, video_mask)
        return model.ground(ref_side, query, query_mask, pair_video, record=True)

    ref = _reference(reference)
    for name in ("adapter_video_emb", "out_class", "out_coord", "query_emb"):
        valid = out.video_mask if name == "adapter_video_emb" else None
        a, b = getattr(out, name), getattr(ref, name).detach()
        if valid is not None:
            a, b = a[valid], b[valid]
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=lambda m: f"{name}: {m}")
    for step, (a, b) in enumerate(zip(out.tem_inputs, ref.tem_inputs)):
        torch.testing.assert_close(a[out.video_mask], b.detach()[out.video_mask], atol=1e-5, rtol=1e-5,
                                   msg=lambda m: f"decoder input of step {step}: {m}")
    for i, (w, q) in enumerate(PAIRS):
        alone = single(model, videos[w], queries[q], 0.5)
        assert grouped[i].saliency.shape == (LENGTHS_T[w],)
        assert_pair_equal(grouped[i], alone, f"pair {i} (window {w}, T={LENGTHS_T[w]}, query {q})")


def test_grouped_official_padding_equals_the_reference_path():
    """The official padded path uses padded clips (unmasked convolutions), so the grouped path must
    compute them exactly as the reference does, not skip them."""
    model, _, _, video, video_mask, query, query_mask, pair_video = _inputs(13)
    video = torch.nan_to_num(video, nan=0.0)
    query = torch.nan_to_num(query, nan=0.0)
    with torch.no_grad():
        out = model(video, query, video_mask, query_mask, pair_video, official_padding=True, record=True)
    ref = _reference(lambda: model(video, query, video_mask, query_mask, pair_video, official_padding=True,
                                   record=True))
    torch.testing.assert_close(out.out_class, ref.out_class.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.out_coord, ref.out_coord.detach(), atol=1e-5, rtol=1e-5)
    for a, b in zip(out.tem_outputs, ref.tem_outputs):
        torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=1e-5)


def test_grouped_result_does_not_depend_on_pair_order_or_batch():
    model, _, _, video, video_mask, query, query_mask, pair_video = _inputs(14)
    perm = torch.randperm(len(PAIRS), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        side = model.encode_video(video, video_mask)
        whole = model.saliency(model.ground(side, query, query_mask, pair_video))
        shuffled = model.saliency(model.ground(side, query[perm], query_mask[perm], pair_video[perm]))
        halves = [model.saliency(model.ground(side, query[s], query_mask[s], pair_video[s]))
                  for s in (slice(0, 5), slice(5, None))]
    torch.testing.assert_close(shuffled, whole[perm], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(torch.cat(halves), whole, atol=1e-6, rtol=1e-6)


def test_grounder_batches_hold_whole_windows():
    from r2cli.inference.grounding import Grounder

    model = tiny_model(15)
    videos, queries = random_pairs(LENGTHS_T, LENGTHS_L, 15, model.config)
    windows = [v.half().numpy() for v in videos]
    small = Grounder(model, "cpu", batch_size=3, chunk_windows=2)
    batches = list(small._batches([0, 1, 2], {0: [0, 1], 1: [2], 2: [3, 4, 5, 6]}))
    assert [[(w, q) for _, w, q in b] for b in batches] == [[(0, 0), (0, 1), (1, 2)], [(2, 3), (2, 4), (2, 5)],
                                                             [(2, 6)]]
    a = small.run(windows, queries, PAIRS, fps=0.5)
    b = Grounder(model, "cpu").run(windows, queries, PAIRS, fps=0.5)
    for pair in PAIRS:
        torch.testing.assert_close(torch.from_numpy(a[pair].saliency), torch.from_numpy(b[pair].saliency),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(torch.from_numpy(a[pair].boundaries), torch.from_numpy(b[pair].boundaries),
                                   atol=1e-5, rtol=1e-5)
