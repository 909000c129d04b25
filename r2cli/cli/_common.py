"""Shared pieces of the CLI: consoles, common options, error rendering, rich progress."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from r2cli.progress import Reporter

console = Console()
err_console = Console(stderr=True)

# Options shared by many commands. Defaults live in r2cli.paths, not here.
WorkspaceOpt = Annotated[
    Optional[str],
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (catalog, features, runs). Default: $R2CLI_WORKSPACE or ./.r2cli",
        show_default=False,
    ),
]
CatalogOpt = Annotated[
    Optional[str],
    typer.Option(
        "--catalog",
        help="SQLAlchemy URL of the catalog. Default: $R2CLI_CATALOG or SQLite inside the workspace.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
ClipWeightsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--clip-weights",
        metavar="PATH|TAG",
        help="CLIP weights: a local OpenAI-format file or a registry tag (the same the index used). "
        "Default: $R2CLI_CLIP_WEIGHTS, else OpenAI ViT-B/32 (downloaded once into the cache).",
        show_default=False,
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="Where the models run: auto (a GPU when present), cpu, cuda or cuda:N.")]


def workspace_from(workspace: str | None, catalog: str | None = None):
    """Resolve the workspace from CLI flags (environment and defaults apply)."""
    from r2cli.paths import resolve_workspace

    return resolve_workspace(workspace, catalog)


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout (no rich markup, safe for scripts)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn r2cli errors into one clear line and an exit code; never a traceback for expected errors."""
    from r2cli.errors import R2Error

    try:
        yield
    except R2Error as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("interrupted; work finished so far is saved, run the same command again to resume")
        raise SystemExit(130) from None


class RichReporter(Reporter):
    """Draws one rich progress bar per stage on stderr; warnings are printed above the bars."""

    def __init__(self, enabled: bool = True) -> None:
        self._enabled = enabled and not os.environ.get("R2CLI_NO_PROGRESS")
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
            disable=not self._enabled,
        )
        self._tasks: dict[str, TaskID] = {}
        self._started: dict[str, float] = {}

    def __enter__(self) -> "RichReporter":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.__exit__(*exc_info)

    def begin(self, stage: str, total: float | None = None, unit: str = "items") -> None:
        self._tasks[stage] = self._progress.add_task(stage, total=total, info="")
        self._started[stage] = time.monotonic()

    def set_total(self, stage: str, total: float) -> None:
        if stage in self._tasks:
            self._progress.update(self._tasks[stage], total=total)

    def advance(self, stage: str, amount: float = 1.0, **fields: object) -> None:
        if stage not in self._tasks:
            self.begin(stage)
        info = "  ".join(f"{k}={v}" for k, v in fields.items())
        self._progress.update(self._tasks[stage], advance=amount, info=info)

    def end(self, stage: str) -> None:
        if stage in self._tasks:
            task = self._tasks[stage]
            total = self._progress.tasks[task].total
            if total is not None:
                self._progress.update(task, completed=total)
            self._progress.stop_task(task)

    def warn(self, message: str) -> None:
        err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)
