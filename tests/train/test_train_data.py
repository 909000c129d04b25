"""Training data: the official collate (padding, masks), the official feature layout, labels and data order."""

from __future__ import annotations

import json
import random

import pytest

from trainkit import K, TEXT_WIDTH, TOKENS, VIDEO_WIDTH, write_official_layout

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

from r2cli.errors import FeatureError, InputError  # noqa: E402
from r2cli.train.data import (  # noqa: E402
    OfficialFeatureDir,
    PairDataset,
    Sample,
    TrainItem,
    batches,
    collate,
    epoch_order,
    items_from_moments,
)


def _sample(key, clips, tokens, windows=((0.0, 2.0),), fill=1.0):
    video = np.full((clips, K, TOKENS, VIDEO_WIDTH), fill, np.float16)
    query = np.full((tokens, K, TEXT_WIDTH), fill, np.float16)
    saliency = np.linspace(0.1, 1.0, clips, dtype=np.float32)
    return Sample(key=key, video=video, query=query, saliency=saliency, pos_clip=clips - 1,
                  boundary=np.asarray(windows, np.float32), fps=0.5)


def test_collate_pads_with_inf_derives_masks_then_zeroes_the_padding():
    batch = collate([_sample("a", 5, 3, fill=2.0), _sample("b", 2, 4, windows=((0, 1), (1, 3)))])
    assert batch.video.shape == (2, 5, K, TOKENS, VIDEO_WIDTH) and batch.video.dtype == torch.float16
    assert batch.query.shape == (2, 4, K, TEXT_WIDTH)
    assert batch.video_mask.tolist() == [[True] * 5, [True, True, False, False, False]]
    assert batch.query_mask.tolist() == [[True, True, True, False], [True] * 4]
    assert torch.isfinite(batch.video).all() and torch.isfinite(batch.query).all()
    assert float(batch.video[1, 2:].abs().sum()) == 0 and float(batch.video[0].min()) == 2.0
    assert float(batch.query[0, 3:].abs().sum()) == 0
    assert batch.saliency[1, 2:].tolist() == [0.0, 0.0, 0.0]
    assert batch.saliency[0].tolist() == pytest.approx(np.linspace(0.1, 1.0, 5).tolist())
    assert batch.pos_clip.tolist() == [[4], [1]]
    # boundaries: +inf rows pad the sample with fewer windows
    assert batch.boundary.shape == (2, 2, 2)
    assert batch.boundary[0, 0].tolist() == [0.0, 2.0] and torch.isinf(batch.boundary[0, 1]).all()
    assert batch.boundary[1].tolist() == [[0.0, 1.0], [1.0, 3.0]]
    assert batch.fps == [0.5, 0.5] and batch.keys == ["a", "b"]


def test_collate_masks_follow_element_zero_like_the_official_code():
    # a real clip whose first element is inf is masked out (official: mask = isfinite(row[0])) and zeroed
    odd = _sample("a", 3, 2)
    odd.video[1, 0, 0, 0] = np.inf
    odd.video[2, 0, 0, 5] = np.nan
    batch = collate([odd])
    assert batch.video_mask.tolist() == [[True, False, True]]
    assert float(batch.video[0, 1, 0, 0, 0]) == 0.0 and float(batch.video[0, 2, 0, 0, 5]) == 0.0


def test_collate_of_highlight_samples_gives_all_inf_boundaries():
    sample = _sample("v", 4, 2)
    sample.boundary = None
    batch = collate([sample, sample])
    assert batch.boundary.shape == (2, 1, 2) and torch.isinf(batch.boundary).all()


def test_collate_rejects_mixed_feature_shapes():
    other = _sample("b", 3, 2)
    other.video = np.zeros((3, K, TOKENS + 1, VIDEO_WIDTH), np.float16)
    with pytest.raises(InputError, match="disagree on feature shapes"):
        collate([_sample("a", 3, 2), other])


@pytest.mark.parametrize("flat", [False, True])
def test_official_layout_reader_loads_layers_and_labels(tmp_path, flat):
    from r2cli.data import read_qvhighlights

    root, anno = write_official_layout(tmp_path / "feats", videos=2, queries_per_video=2, clips=(11, 7), flat=flat)
    items = items_from_moments(read_qvhighlights(anno))
    source = OfficialFeatureDir(root, "qvhighlights", fps=0.5, video_shape=(K, TOKENS, VIDEO_WIDTH),
                                query_shape=(K, TEXT_WIDTH))
    dataset = PairDataset(items, source, k=K)
    sample = dataset.load(0, random.Random(0))
    raw = np.load(root / "clip_b32_vid_k4" / "video00.npy").reshape(11, K, TOKENS, VIDEO_WIDTH)
    assert sample.video.shape == (11, K, TOKENS, VIDEO_WIDTH) and sample.video.dtype == np.float16
    assert np.array_equal(sample.video, raw)
    assert sample.query.shape[1:] == (K, TEXT_WIDTH)
    record = json.loads(anno.read_text().splitlines()[0])
    start, end = record["relevant_windows"][0]
    expected = np.zeros(11, np.float32)
    expected[int(np.ceil(start * 0.5)): int(np.ceil(end * 0.5))] = 1
    assert sample.saliency.tolist() == expected.tolist()
    assert sample.saliency[sample.pos_clip] == 1.0
    assert sample.boundary.tolist() == [[start, end]]
    # positive clips are re-drawn per read, reproducibly from the draw seed
    draws = {dataset[(0, seed)].pos_clip for seed in range(40)}
    assert draws <= set(np.nonzero(expected)[0].tolist()) and len(draws) > 1
    assert dataset[(0, 3)].pos_clip == dataset[(0, 3)].pos_clip


def test_official_layout_applies_tacos_suffix_and_highlight_query_names(tmp_path):
    (tmp_path / "clip_b32_vid_k4").mkdir()
    (tmp_path / "clip_b32_txt_k4").mkdir()
    tacos = OfficialFeatureDir(tmp_path, "tacos", fps=0.5)
    item = TrainItem(key="s13-d21_4", kind="grounding", vid="s13-d21", query="q", duration=10.0)
    assert tacos.video_path(item).name == "s13-d21-cam-002.npy"
    assert tacos.query_path(item).name == "s13-d21_4.npy"
    tvsum = OfficialFeatureDir(tmp_path, "tvsum", fps=0.5)
    video = TrainItem(key="AwmHb44_ouw", kind="tvsum", vid="AwmHb44_ouw", query="title", duration=None)
    assert tvsum.query_path(video).name == "AwmHb44_ouw.npy"
    with pytest.raises(FeatureError, match="AwmHb44_ouw.npy is missing"):
        tvsum.video(video)


def test_official_layout_needs_both_folders(tmp_path):
    (tmp_path / "clip_b32_vid_k4").mkdir()
    with pytest.raises(InputError, match="clip_b32_txt_k4/ is missing"):
        OfficialFeatureDir(tmp_path, "qvhighlights", fps=0.5)


def test_tvsum_items_truncate_features_to_the_annotated_shots(tmp_path):
    from r2cli.data.highlights import TVSumVideo
    from r2cli.train.data import MappedFeatures

    scores = tuple(tuple(float(1 + i % 5) for _ in range(20)) for i in range(8))
    video = TVSumVideo(vid="x", domain="BK", title="t", fps=30.0, num_frames=480, scores=scores)
    item = TrainItem(key="x", kind="tvsum", vid="x", query="t", duration=None, annotation=video)
    features = MappedFeatures({"x": np.ones((10, K, TOKENS, VIDEO_WIDTH), np.float16)},
                              {"x": np.ones((3, K, TEXT_WIDTH), np.float16)}, 0.5)
    sample = PairDataset([item], features).load(0, random.Random(1))
    assert sample.video.shape[0] == 8 and sample.saliency.shape == (8,)
    assert sample.boundary is None
    assert sample.saliency[sample.pos_clip] > np.sort(sample.saliency)[3]  # above the lower median


def test_epoch_order_repeats_shuffles_and_depends_only_on_seed_and_epoch():
    order = epoch_order(5, repeat=4, seed=3, epoch=0)
    assert len(order) == 20 and sorted(i for i, _ in order) == sorted(list(range(5)) * 4)
    assert order == epoch_order(5, repeat=4, seed=3, epoch=0)
    assert order != epoch_order(5, repeat=4, seed=3, epoch=1)
    assert order != epoch_order(5, repeat=4, seed=4, epoch=0)
    chunks = batches(order, 8)
    assert [len(c) for c in chunks] == [8, 8, 4]  # drop_last=False
