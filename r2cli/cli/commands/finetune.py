"""`r2cli finetune`: train an R2-Tuning head with a preset's official recipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from r2cli.cli._common import CatalogOpt, ClipWeightsOpt, JsonOpt, RichReporter, WorkspaceOpt, console, print_json, workspace_from
from r2cli.safe_text import one_line


def _model_overrides(values: list[str] | None) -> dict:
    """``--model-set dims=64`` pairs -> {"dims": 64} (values parsed as JSON, else kept as text)."""
    out: dict = {}
    for value in values or []:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            from r2cli.errors import UsageError

            raise UsageError(f"--model-set must look like FIELD=VALUE, got {value!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _help(name: str) -> str:
    from r2cli.app.finetune import FinetuneOptions

    return FinetuneOptions.help(name)


def result_to_json(result) -> dict:
    """The JSON document `r2cli finetune --json` prints."""
    return {
        "run_id": result.run_id,
        "out_dir": str(result.out_dir),
        "preset": result.preset,
        "seed": result.seed,
        "device": result.device,
        "amp": result.amp,
        "resumed": result.resumed,
        "epochs": result.epochs,
        "iterations": result.iterations,
        "selection_metric": result.selection_metric,
        "best_value": result.best_value,
        "best_epoch": result.best_epoch,
        "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
        "last_checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
        "files": {name: str(path) for name, path in result.files.items()},
        "counts": result.counts,
        "history": result.history,
        "warnings": result.warnings,
    }


def render_result(result) -> None:
    """A table of the epochs (loss, lr, selection metric) and where the outputs are."""
    from rich.table import Table

    table = Table(title=f"finetune run {result.run_id} ({result.preset})", header_style="bold")
    for name in ("epoch", "loss", "lr", result.selection_metric, "seconds"):
        table.add_column(name, justify="right")
    shown = result.history if len(result.history) <= 30 else result.history[:5] + result.history[-20:]
    for record in shown:
        metric = (record.get("metrics") or {}).get(result.selection_metric)
        marker = " *" if record["epoch"] == result.best_epoch else ""
        table.add_row(str(record["epoch"]), f"{record['loss']:.4f}",
                      f"{record['lr']:.2e}" if record.get("lr") is not None else "-",
                      ("-" if metric is None else f"{metric:g}") + marker, f"{record['train_seconds']:.1f}")
    console.print(table)
    if result.best_value is not None:
        console.print(one_line(f"best {result.selection_metric} = {result.best_value:g} at epoch {result.best_epoch}: "
                               f"{result.best_checkpoint}"), highlight=False, markup=False, soft_wrap=True)
    console.print(one_line(f"{result.epochs} epochs, {result.iterations} iterations on {result.device}"
                           f"{' (AMP fp16)' if result.amp else ''}; outputs: {result.out_dir}"),
                  highlight=False, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune(
        preset: Annotated[Optional[str], typer.Option("--preset", "-p", help=_help("preset"))] = None,
        train: Annotated[Optional[Path], typer.Option("--train", help=_help("train"))] = None,
        val: Annotated[Optional[Path], typer.Option("--val", help=_help("val"))] = None,
        features_dir: Annotated[Optional[Path], typer.Option("--features-dir", help=_help("features_dir"))] = None,
        init: Annotated[Optional[str], typer.Option("--init", help=_help("init"))] = None,
        epochs: Annotated[Optional[int], typer.Option("--epochs", help=_help("epochs"))] = None,
        batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=_help("batch_size"))] = None,
        lr: Annotated[Optional[float], typer.Option("--lr", help=_help("lr"))] = None,
        model_set: Annotated[
            Optional[list[str]],
            typer.Option("--model-set", help="Override a head field, FIELD=VALUE (repeat), e.g. dims=128 or dropout=0.3."),
        ] = None,
        seed: Annotated[Optional[int], typer.Option("--seed", help=_help("seed"))] = None,
        device: Annotated[Optional[str], typer.Option("--device", help=_help("device"))] = None,
        amp: Annotated[Optional[bool], typer.Option("--amp/--no-amp", help=_help("amp"))] = None,
        workers: Annotated[Optional[int], typer.Option("--workers", help=_help("workers"))] = None,
        out: Annotated[Optional[Path], typer.Option("--out", help=_help("out"))] = None,
        resume: Annotated[bool, typer.Option("--resume", help=_help("resume"))] = False,
        clip_weights: ClipWeightsOpt = None,
        index: Annotated[Optional[bool], typer.Option("--index/--no-index", help=_help("index_missing"))] = None,
        official_padding: Annotated[
            Optional[bool], typer.Option("--official-padding/--batch-invariant", help=_help("official_padding"))
        ] = None,
        val_batch_size: Annotated[Optional[int], typer.Option("--val-batch-size", help=_help("val_batch_size"))] = None,
        keep_last: Annotated[Optional[int], typer.Option("--keep-last", help=_help("keep_last"))] = None,
        json_output: JsonOpt = False,
        workspace: WorkspaceOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Train an R2-Tuning head with a preset's official recipe (AdamW, warm-up, step decay, clipping, AMP).

        Every epoch writes a checkpoint (r2cli format), validates on --val with the preset's selection
        metric, keeps the best one and appends to train_log.jsonl in the run folder. Videos named by path in
        the annotations are indexed first; --features-dir trains on the authors' released features instead.

        Example:  r2cli finetune --preset qvhighlights --train qvhighlights_train.jsonl --val qvhighlights_val.jsonl --features-dir data/qvhighlights

        Example:  r2cli finetune --train my_moments.jsonl --val my_val.jsonl --init qvhighlights --epochs 10 --out runs/mine

        Example:  r2cli finetune --out runs/mine --resume
        """
        from r2cli.app.finetune import FinetuneOptions, run_finetune

        options = FinetuneOptions.from_flags(
            preset=preset, train=train, val=val, features_dir=features_dir, init=init, epochs=epochs,
            batch_size=batch_size, lr=lr, model_overrides=_model_overrides(model_set), seed=seed, device=device,
            amp=amp, workers=workers, out=out, resume=resume or None, clip_weights=clip_weights, index_missing=index,
            official_padding=official_padding, val_batch_size=val_batch_size, keep_last=keep_last,
        )
        with RichReporter(enabled=not json_output) as reporter:
            result = run_finetune(workspace_from(workspace, catalog), options, reporter=reporter)
        if json_output:
            print_json(result_to_json(result))
        else:
            render_result(result)
