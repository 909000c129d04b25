"""`r2cli evaluate`: score predictions with the benchmarks' official metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from r2cli.cli._common import JsonOpt, console, err_console, print_json, shown


def _help(name: str) -> str:
    from r2cli.app.evaluate import EvaluateOptions

    return EvaluateOptions.help(name)


def evaluate(
    predictions: Annotated[Path, typer.Argument(help=_help("predictions"), show_default=False)],
    ground_truth: Annotated[Path, typer.Argument(help=_help("ground_truth"), show_default=False)],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help=_help("dataset"), show_default=False)],
    json_output: JsonOpt = False,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help=_help("allow_missing"))] = False,
    domain: Annotated[Optional[list[str]], typer.Option("--domain", help=_help("domains"), show_default=False)] = None,
    protocol: Annotated[Optional[str], typer.Option("--protocol", help=_help("protocol"), show_default=False)] = None,
    split: Annotated[Optional[str], typer.Option("--split", help=_help("split"), show_default=False)] = None,
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
    from r2cli.app.evaluate import EvaluateOptions, run_evaluate

    options = EvaluateOptions.from_flags(predictions=predictions, ground_truth=ground_truth, dataset=dataset,
                                         allow_missing=allow_missing, domains=domain, protocol=protocol, split=split)
    report = run_evaluate(options)
    if report.missing or report.extra:
        from r2cli.eval._align import describe_ids

        if report.missing:
            err_console.print(f"warning: skipped {len(report.missing)} ids without a prediction: {shown(describe_ids(report.missing))}", highlight=False, soft_wrap=True)
        if report.extra:
            err_console.print(f"warning: skipped {len(report.extra)} predicted ids not in the ground truth: {shown(describe_ids(report.extra))}", highlight=False, soft_wrap=True)
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
    from rich.table import Table

    table = Table(title=f"{report.dataset}: detail (official nested output)", title_justify="left")
    table.add_column("bucket / metric / threshold")
    table.add_column("value", justify="right")
    for name, section in report.metrics.items():
        if name == "brief":
            continue
        for label, value in _flatten(name, section):
            table.add_row(shown(label), f"{value:.2f}" if isinstance(value, (int, float)) else shown(str(value)))
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
