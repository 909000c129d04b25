"""Budgeted video summaries from per-clip embeddings and saliency (pure numpy).

``detect_shots`` (KTS or a threshold rule) → ``knapsack`` over shots → ``summarize_video``.
"""

from r2cli.summary.knapsack import knapsack
from r2cli.summary.shots import detect_shots, kts_change_points, threshold_change_points
from r2cli.summary.summarize import SummarySegment, budget_seconds, summarize_video, summary_rows

__all__ = [
    "SummarySegment",
    "budget_seconds",
    "detect_shots",
    "knapsack",
    "kts_change_points",
    "summarize_video",
    "summary_rows",
    "threshold_change_points",
]
