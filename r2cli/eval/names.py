"""Names the evaluators accept, in a module light enough for the CLI's help text."""

from __future__ import annotations

# benchmarks with an official evaluator; "user": a user's own annotations (QVHighlights JSON Lines, scored
# with the moment-retrieval evaluator, #22.4)
DATASETS = ("qvhighlights", "charades", "tacos", "ego4d", "youtube", "tvsum", "user")
# moment-retrieval evaluators: R2-Tuning's vtg_eval, QVHighlights' standalone_eval
PROTOCOLS = ("r2tuning", "moment_detr")
