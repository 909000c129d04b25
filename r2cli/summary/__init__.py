"""Budgeted video summaries from per-clip embeddings and saliency (pure numpy).

``detect_shots`` (KTS or a threshold rule) → ``knapsack`` over shots → ``summarize_video``.
``stages`` runs them for ``r2cli summarize`` (plan, R2-Tuning saliency, selection, outputs); it is not
imported here, so this package stays light.
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
