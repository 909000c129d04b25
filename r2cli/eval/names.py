"""Names the evaluators accept, in a module light enough for the CLI's help text."""

from __future__ import annotations

# benchmarks with an official evaluator
DATASETS = ("qvhighlights", "charades", "tacos", "ego4d", "youtube", "tvsum")
# moment-retrieval evaluators: R2-Tuning's vtg_eval, QVHighlights' standalone_eval
PROTOCOLS = ("r2tuning", "moment_detr")
