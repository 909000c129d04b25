"""Official benchmark metrics (moment retrieval, QVHighlights highlights, YouTube Highlights, TVSum).

Pure functions returning dicts keyed by the official metric names; no printing.
"""

from __future__ import annotations

import importlib
from typing import Any

# Names re-exported from the submodules, loaded on first use (PEP 562) so that importing a light
# module such as ``r2cli.eval.names`` (the CLI's help text) does not load the evaluators (#23).
_HOMES = {
    "DATASETS": "r2cli.eval.api",
    "HEADLINE_KEYS": "r2cli.eval.api",
    "EvaluationReport": "r2cli.eval.api",
    "evaluate_files": "r2cli.eval.api",
    "evaluate_moments": "r2cli.eval.api",
    "evaluate_tvsum": "r2cli.eval.api",
    "evaluate_youtube": "r2cli.eval.api",
    "normalize_domains": "r2cli.eval.api",
    "MomentPrediction": "r2cli.eval.formats",
    "SaliencyPrediction": "r2cli.eval.formats",
    "read_moment_predictions": "r2cli.eval.formats",
    "read_saliency_predictions": "r2cli.eval.formats",
    "write_moment_predictions": "r2cli.eval.formats",
    "write_saliency_predictions": "r2cli.eval.formats",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'r2cli.eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


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
