"""Official benchmark metrics (moment retrieval, QVHighlights highlights, YouTube Highlights, TVSum).

Pure functions returning dicts keyed by the official metric names; no printing.
"""

from __future__ import annotations

from r2cli.eval.api import (
    DATASETS,
    HEADLINE_KEYS,
    EvaluationReport,
    evaluate_files,
    evaluate_moments,
    evaluate_tvsum,
    evaluate_youtube,
    normalize_domains,
)
from r2cli.eval.formats import (
    MomentPrediction,
    SaliencyPrediction,
    read_moment_predictions,
    read_saliency_predictions,
    write_moment_predictions,
    write_saliency_predictions,
)

__all__ = [
    "DATASETS",
    "HEADLINE_KEYS",
    "EvaluationReport",
    "MomentPrediction",
    "SaliencyPrediction",
    "evaluate_files",
    "evaluate_moments",
    "evaluate_tvsum",
    "evaluate_youtube",
    "normalize_domains",
    "read_moment_predictions",
    "read_saliency_predictions",
    "write_moment_predictions",
    "write_saliency_predictions",
]
