"""The summarize stages driven without the app layer give the run's summary."""

from __future__ import annotations

import pandas as pd


def test_stages_without_the_app_layer_give_the_same_summary(archive, head_path, tiny_clip_path, tmp_path):
    from r2cli.app.summarize import summarize
    from r2cli.catalog.selection import VideoFilter, require_videos
    from r2cli.features.store import FeatureSettings
    from r2cli.inference.grounding import Grounder
    from r2cli.inference.models import load_models, preset_defaults
    from r2cli.inference.search import open_features
    from r2cli.summary.stages import plan_videos, select_segments, summary_frame, video_saliency
    from r2cli.inference.windows import window_sizes

    result = summarize(archive.workspace, ("scenes.mp4", "long_walk.mp4"), ratio=0.3, checkpoint=str(head_path),
                       clip_weights=str(tiny_clip_path), device="cpu", window=20.0, out=tmp_path / "run")

    models = load_models(clip_weights=str(tiny_clip_path), checkpoint=str(head_path), preset=None, device="cpu")
    defaults = preset_defaults(models.preset, window_s=20.0)
    window_clips, stride_clips = window_sizes(defaults.window_s, defaults.stride_s, defaults.fps)
    records = [r for r in require_videos(archive.workspace, VideoFilter(patterns=("scenes.mp4", "long_walk.mp4")))]
    found, skipped = open_features(archive.workspace, records,
                                   FeatureSettings.for_tower(models.tower, fps=defaults.fps, k=4))
    plans = plan_videos(found, fps=defaults.fps, window_clips=window_clips, stride_clips=stride_clips, query=None)
    saliency, texts, _ = video_saliency(Grounder(models.model, "cpu"), models.tower, plans, k=4, fps=defaults.fps)
    rows = []
    for plan, scores in zip(plans, saliency):
        video_rows, summary, _ = select_segments(plan, scores, fps=defaults.fps, ratio=0.3, seconds=None,
                                                 shot_method="kts", run_id=result.run_id)
        rows.extend(video_rows)
    assert not skipped and sorted(len(p.windows) for p in plans) == [2, 6]  # 30 s and 64 s in 20-s windows every 10 s
    pd.testing.assert_frame_equal(summary_frame(rows), result.summary)
