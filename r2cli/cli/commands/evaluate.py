"""`r2cli evaluate`: score predictions with the benchmarks' official metrics."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from r2cli.cli._common import JsonOpt, console, err_console, print_json


class Dataset(str, Enum):
    qvhighlights = "qvhighlights"
    charades = "charades"
    tacos = "tacos"
    ego4d = "ego4d"
    youtube = "youtube"
    tvsum = "tvsum"


class Protocol(str, Enum):
    r2tuning = "r2tuning"
    moment_detr = "moment_detr"


def evaluate(
    predictions: Annotated[
        Path, typer.Argument(help="Predictions in the official submission format (JSON Lines).", show_default=False)
    ],
    ground_truth: Annotated[
        Path,
        typer.Argument(
            help="Ground truth: the benchmark's annotation file (jsonl; Charades .txt; youtube_anno.json; tvsum_anno.json).",
            show_default=False,
        ),
    ],
    dataset: Annotated[
        Dataset, typer.Option("--dataset", "-d", help="Benchmark whose evaluator to use.", show_default=False)
    ],
    json_output: JsonOpt = False,
    allow_missing: Annotated[
        bool,
        typer.Option("--allow-missing", help="Score the ids present in both files instead of failing when they differ."),
    ] = False,
    domain: Annotated[
        Optional[list[str]],
        typer.Option(
            "--domain",
            help="YouTube/TVSum domain to score (repeatable; default all): dog, gymnastics, ... or BK, BT, ...",
            show_default=False,
        ),
    ] = None,
    protocol: Annotated[
        Protocol,
        typer.Option(
            "--protocol",
            help="Moment-retrieval evaluator: r2tuning (R2-Tuning vtg_eval, adds R1@0.3, R5, mIoU) or "
            "moment_detr (QVHighlights standalone_eval).",
        ),
    ] = Protocol.r2tuning,
    detail: Annotated[
        bool,
        typer.Option(
            "--detail",
            help="Also the official nested output (every threshold and bucket): with --json instead of the brief "
            "block, else as a second table.",
        ),
    ] = False,
) -> None:
    """Score PREDICTIONS against GROUND_TRUTH with the official metrics and key names.

    Moment retrieval (qvhighlights, charades, tacos, ego4d): R1/R5 at IoU thresholds, mIoU, mAP@0.5/0.75 and
    the average over 0.5:0.05:0.95, by length bucket; QVHighlights adds highlight mAP and HIT@1
    (HL-min-Fair/Good/VeryGood). YouTube Highlights: mAP per domain. TVSum: top-5 mAP per category. Values
    match the official evaluators to the printed digit.

    Example:  r2cli evaluate --dataset qvhighlights hl_val_submission.jsonl highlight_val_release.jsonl --json
    """
    from r2cli.eval import evaluate_files

    report = evaluate_files(
        dataset.value,
        predictions,
        ground_truth,
        allow_missing=allow_missing,
        domains=domain or None,
        protocol=protocol.value,
    )
    if report.missing or report.extra:
        from r2cli.eval._align import describe_ids

        if report.missing:
            err_console.print(f"warning: skipped {len(report.missing)} ids without a prediction: {describe_ids(report.missing)}", highlight=False, soft_wrap=True)
        if report.extra:
            err_console.print(f"warning: skipped {len(report.extra)} predicted ids not in the ground truth: {describe_ids(report.extra)}", highlight=False, soft_wrap=True)
    if json_output:
        print_json(report.metrics if detail else report.brief)
        return
    _render_table(report)
    if detail and report.dataset not in ("youtube", "tvsum"):
        _render_detail(report)


def _flatten(prefix: str, value) -> list[tuple[str, float]]:
    """Nested official metrics -> ("full MR-mAP @0.5", 89.06) rows, in the official order."""
    if isinstance(value, dict):
        rows: list[tuple[str, float]] = []
        for key, inner in value.items():
            label = f"{prefix} @{key}" if not isinstance(inner, dict) and _is_threshold(key) else f"{prefix} {key}".strip()
            rows.extend(_flatten(label, inner))
        return rows
    return [(prefix, value)]


def _is_threshold(key: str) -> bool:
    try:
        float(key)
    except ValueError:
        return False
    return True


def _render_detail(report) -> None:
    """--detail without --json: every value of the official nested output (thresholds and buckets)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{report.dataset}: detail (official nested output)", title_justify="left")
    table.add_column("bucket / metric / threshold")
    table.add_column("value", justify="right")
    for name, section in report.metrics.items():
        if name == "brief":
            continue
        for label, value in _flatten(name, section):
            table.add_row(escape(label), f"{value:.2f}" if isinstance(value, (int, float)) else escape(str(value)))
    console.print(table)


def _render_table(report) -> None:
    from rich.table import Table

    unit = "percent" if report.dataset not in ("youtube", "tvsum") else "fraction, 5 decimals"
    table = Table(title=f"{report.dataset}: {report.num_scored} scored ({unit})", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    if report.dataset in ("youtube", "tvsum"):
        for name, values in report.brief.items():
            if isinstance(values, dict):
                table.add_row(f"{name} mAP", f"{values['mAP']:.5f}")
        table.add_row("[bold]mean mAP[/]", f"[bold]{report.brief['mAP']:.5f}[/]")
    else:
        headline = [k for k in report.headline if k in report.brief]
        for key in headline:
            table.add_row(f"[bold]{key}[/]", f"[bold]{report.brief[key]:.2f}[/]")
        for key, value in report.brief.items():
            if key not in headline:
                table.add_row(key, f"{value:.2f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
