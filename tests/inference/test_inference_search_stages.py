"""The search stages driven without the app layer give the run's moments; windows follow the
checkpoint's preset (issue #14: a 250-s video is grounded whole by a TACoS head, in 150-s windows
by a QVHighlights head)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fixtures import ArchiveVideo, build_archive, random_features

VIDEOS = [("short.mp4", 40), ("long.mp4", 125), ("mid.mp4", 90)]  # clips at 0.5 fps: 80 s, 250 s, 180 s
QUERIES = ("a red scene", "someone opens a door", "blue")


@pytest.fixture
def archive(workspace, tiny_tower):
    build_archive(workspace, tiny_tower,
                  [ArchiveVideo(name, random_features(clips, seed)) for seed, (name, clips) in enumerate(VIDEOS)])
    return workspace


def _options(head, clip, **extra):
    from r2cli.app.search import SearchOptions

    return SearchOptions(queries=QUERIES, checkpoint=str(head), clip_weights=str(clip), device="cpu", top_k=50,
                         **extra)


def test_stages_without_the_app_layer_give_the_same_moments(archive, tiny_clip_path, random_head_path, tmp_path):
    from r2cli.app.search import run_search
    from r2cli.catalog.selection import VideoFilter, require_videos
    from r2cli.features.store import FeatureSettings
    from r2cli.inference.grounding import Grounder
    from r2cli.inference.models import load_models, preset_defaults
    from r2cli.inference.query_files import queries_from_texts
    from r2cli.inference.search import open_features, plan_archive, search_batch
    from r2cli.inference.windows import PostProcess, window_sizes

    result = run_search(archive, _options(random_head_path, tiny_clip_path, out=tmp_path / "run"))

    models = load_models(clip_weights=str(tiny_clip_path), checkpoint=str(random_head_path), preset=None, device="cpu")
    defaults = preset_defaults(models.preset)
    window_clips, stride_clips = window_sizes(defaults.window_s, defaults.stride_s, defaults.fps)
    post = PostProcess(unit=defaults.unit, nms_type=defaults.nms_type, nms_threshold=defaults.nms_threshold,
                       nms_sigma=defaults.nms_sigma, max_moments=models.model.config.max_num_moment)
    records = require_videos(archive, VideoFilter())
    found, skipped = open_features(archive, records, FeatureSettings.for_tower(models.tower, fps=defaults.fps, k=4))
    plan = plan_archive(found, fps=defaults.fps, window_clips=window_clips, stride_clips=stride_clips, post=post)
    batch = search_batch(plan, models.tower, Grounder(models.model, "cpu"), queries_from_texts(QUERIES), k=4,
                         candidates=40, top_k=50, min_score=None, run_id=result.run_id,
                         model_id=models.info["checkpoint_id"], preset=defaults.preset)

    assert not skipped and [len(v.windows) for v in plan.videos] == [1, 3, 2]
    assert len(batch.moments) > 0
    pd.testing.assert_frame_equal(batch.moments, result.moments, check_dtype=False)


def test_windows_follow_the_checkpoint_preset(archive, tiny_clip_path, random_head_path, tacos_head_path, tmp_path):
    from r2cli.app.search import run_search

    qvh = run_search(archive, _options(random_head_path, tiny_clip_path, videos=("long.mp4",), out=tmp_path / "q"))
    tacos = run_search(archive, _options(tacos_head_path, tiny_clip_path, videos=("long.mp4",), out=tmp_path / "t"))
    whole = run_search(archive, _options(random_head_path, tiny_clip_path, videos=("long.mp4",), window=100_000,
                                         out=tmp_path / "w"))

    # QVHighlights heads were trained on 150-s videos: a 250-s video is cut into windows
    assert qvh.counts["windows"] == 3 and qvh.counts["videos_windowed"] == 1
    assert qvh.settings["window_source"] == "preset qvhighlights" and qvh.settings["window_s"] == 150.0
    # TACoS heads were trained and evaluated on whole videos up to 1,402 s: the video is grounded whole
    assert tacos.counts["windows"] == 1 and tacos.counts["videos_whole"] == 1
    manifest = json.loads((tmp_path / "t" / "run.json").read_text())
    assert manifest["settings"]["window_source"] == "preset tacos" and manifest["settings"]["window_s"] == 1404.0
    assert manifest["settings"]["preset"] == "tacos" and manifest["settings"]["unit"] is None
    assert manifest["settings"]["nms"]["type"] == "linear"
    assert tacos.moments["preset"].unique().tolist() == ["tacos"]
    # moments are not rounded to 2 s with the TACoS preset (unit null)
    assert not np.allclose(np.mod(tacos.moments["start_s"], 2.0), 0.0)
    # --window overrides the preset and is recorded as such
    assert whole.counts["windows"] == 1 and whole.settings["window_source"] == "options"
    assert whole.settings["window_clips"] == 1024 and not whole.warnings  # the official 1,024-clip limit


def test_every_preset_names_its_windows_within_the_official_clip_limit():
    from r2cli.model.config import list_presets, load_preset

    for name in list_presets():
        preset = load_preset(name)
        fps = preset.data.fps or 0.5
        assert preset.data.window_s is not None and preset.data.stride_s <= preset.data.window_s, name
        assert preset.data.window_s * fps <= 1024, name
    assert load_preset("tacos").data.window_s >= 1402.18  # the longest TACoS video (train split)
    assert load_preset("charades").data.window_s >= 194.33  # the longest Charades-STA video
