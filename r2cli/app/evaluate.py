"""The ``evaluate`` use case: score predictions with the benchmarks' official metrics.

``EvaluateOptions`` owns the rules of ``r2cli evaluate``; the scoring is ``r2cli.eval.api``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from r2cli.app.options import Options, option
from r2cli.eval.names import DATASETS, PROTOCOLS

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.eval.api import EvaluationReport


@dataclass(frozen=True)
class EvaluateOptions(Options):
    """What to score against what, and how."""

    predictions: Path | None = option(None, help="Predictions in the official submission format (JSON Lines).",
                                      exists=True)
    ground_truth: Path | None = option(None, help="Ground truth: the benchmark's annotation file (jsonl; Charades "
                                                  ".txt; youtube_anno.json; tvsum_anno.json).", exists=True)
    dataset: str | None = option(None, help=f"Benchmark whose evaluator to use: {', '.join(DATASETS)}.",
                                 choices=DATASETS)
    allow_missing: bool = option(False, help="Score the ids present in both files instead of failing when they "
                                             "differ.")
    domains: tuple[str, ...] = option((), help="YouTube/TVSum domains to score (default all): dog, gymnastics, ... "
                                               "or BK, BT, ...", flag="--domain")
    protocol: str = option("r2tuning", help="Moment-retrieval evaluator: r2tuning (R2-Tuning vtg_eval, adds R1@0.3, "
                                            "R5, mIoU) or moment_detr (QVHighlights standalone_eval).",
                           choices=PROTOCOLS)
    split: str = option("val", help="YouTube/TVSum split to score: val (the reported one) or train.",
                        choices=("val", "train"))

    def check(self):
        for name in ("predictions", "ground_truth", "dataset"):
            if getattr(self, name) is None:
                return (name,), "{0} is required"
        if self.dataset in ("youtube", "tvsum") and self.protocol != "r2tuning":
            return ("protocol",), "{0} applies to moment retrieval (qvhighlights, charades, tacos, ego4d), " \
                                  f"not {self.dataset}"
        return None


def run_evaluate(options: EvaluateOptions) -> "EvaluationReport":
    """Score ``options.predictions`` against ``options.ground_truth``; see ``r2cli.eval.api.evaluate_files``."""
    from r2cli.eval.api import evaluate_files

    options.validate()
    return evaluate_files(options.dataset, options.predictions, options.ground_truth,
                          allow_missing=options.allow_missing, domains=list(options.domains) or None,
                          protocol=options.protocol, split=options.split)
