"""`r2cli predict`: ground each annotated query in its own video; predictions `r2cli evaluate` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from r2cli.cli._common import CatalogOpt, JsonOpt, RichReporter, WorkspaceOpt, console, print_json, shown, workspace_from


def _help(name: str) -> str:
    from r2cli.app.predict import PredictOptions

    return PredictOptions.help(name)


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        annotations: Annotated[Path, typer.Argument(metavar="ANNOTATIONS", help=_help("annotations"),
                                                    show_default=False)],
        out: Annotated[Optional[Path], typer.Option("--out", help=_help("out"), show_default=False)] = None,
        force: Annotated[bool, typer.Option("--force", help=_help("force"))] = False,
        preset: Annotated[Optional[str], typer.Option("--preset", help=_help("preset"))] = None,
        checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", help=_help("checkpoint"))] = None,
        clip_weights: Annotated[
            Optional[str], typer.Option("--clip-weights", metavar="PATH|TAG", help=_help("clip_weights"))] = None,
        device: Annotated[Optional[str], typer.Option("--device", help=_help("device"))] = None,
        batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=_help("batch_size"))] = None,
        json_output: JsonOpt = False,
        workspace: WorkspaceOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Ground each query of your annotations in its own video and write predictions to evaluate.

        The videos must be indexed (r2cli index); each annotation gives one line with its qid, in
        the official submission format, so `r2cli evaluate --dataset user` reads it as it is.

        Example:  r2cli predict mine.jsonl --out preds.jsonl && r2cli evaluate --dataset user preds.jsonl mine.jsonl
        """
        from r2cli.app.predict import PredictOptions, predict_annotations

        options = PredictOptions.from_flags(annotations=annotations, out=out, force=force or None, preset=preset,
                                            checkpoint=checkpoint, clip_weights=clip_weights, device=device,
                                            batch_size=batch_size)
        ws = workspace_from(workspace, catalog)
        with RichReporter(enabled=not json_output) as reporter:
            result = predict_annotations(ws, options, reporter=reporter)
        if json_output:
            print_json({"out": str(result.out), "predicted": result.predicted,
                        "skipped": [{"qid": qid, "reason": why} for qid, why in result.skipped],
                        "seconds": round(result.seconds, 3), "model": result.model})
            return
        console.print(f"{result.predicted} predictions ({len(result.skipped)} annotations skipped) in "
                      f"{result.seconds:.1f} s: {shown(result.out)}", highlight=False, markup=False, soft_wrap=True)
