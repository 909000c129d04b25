"""Benchmark and user annotation readers, domain splits and training-label helpers.

Readers return typed records (:class:`MomentAnnotation`, :class:`YouTubeVideo`, :class:`TVSumVideo`) and raise
:class:`r2cli.errors.InputError` naming the file, line (or video key) and field. ``r2cli.data.labels`` holds
the label construction of spec §5.2-5.5 (numpy, imported lazily).
"""

from __future__ import annotations

from r2cli.data.grounding import (
    GROUNDING_DATASETS,
    MomentAnnotation,
    read_charades,
    read_charades_sta_txt,
    read_ego4d_nlq,
    read_grounding_annotations,
    read_moment_annotations,
    read_qvhighlights,
    read_tacos,
    read_user_annotations,
    tacos_feature_id,
)
from r2cli.data.highlights import TVSumVideo, YouTubeVideo, read_tvsum, read_youtube_highlights, split_videos
from r2cli.data.splits import TVSUM_DOMAINS, TVSUM_SPLITS, YOUTUBE_DOMAINS, YOUTUBE_SPLITS

__all__ = [
    "GROUNDING_DATASETS",
    "TVSUM_DOMAINS",
    "TVSUM_SPLITS",
    "YOUTUBE_DOMAINS",
    "YOUTUBE_SPLITS",
    "MomentAnnotation",
    "TVSumVideo",
    "YouTubeVideo",
    "read_charades",
    "read_charades_sta_txt",
    "read_ego4d_nlq",
    "read_grounding_annotations",
    "read_moment_annotations",
    "read_qvhighlights",
    "read_tacos",
    "read_tvsum",
    "read_user_annotations",
    "read_youtube_highlights",
    "split_videos",
    "tacos_feature_id",
]
