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
from r2cli.safe_text import json_safe, one_line

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


def shown(text: object) -> str:
    """User text (a name, a query, a message that holds them) for a rich markup string: one line
    that cannot drive the terminal (``one_line``), with rich markup escaped. Where markup is off,
    ``one_line`` alone."""
    return escape(one_line(text))


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout (no rich markup, safe for scripts and terminals: ``json_safe``)."""
    sys.stdout.write(json_safe(json.dumps(data, indent=2, default=str, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn r2cli errors into one clear line and an exit code; never a traceback for expected errors."""
    from r2cli.errors import R2Error

    try:
        yield
    except R2Error as exc:
        err_console.print(f"[bold red]error:[/] {shown(exc)}", markup=True, highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("interrupted; work finished so far is saved, run the same command again to resume")
        raise SystemExit(130) from None


class RichReporter(Reporter):
    """Progress of long calls on stderr.

    On a terminal: one rich progress bar per stage, started at the first stage (so a command that
    fails before any work prints nothing but its error). Piped or redirected: no live display; one
    plain line per finished stage (``index: 5/5 videos in 3.2 s``), so logs stay complete.
    Warnings are printed above the bars.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._enabled = enabled and not os.environ.get("R2CLI_NO_PROGRESS")
        self._live = self._enabled and err_console.is_terminal
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._plain: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> "RichReporter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc_info)
            self._progress = None

    def _bars(self) -> Progress:
        if self._progress is None:
            # at 80 columns the bar gives way (bar_width=None: it takes what is left), so the counts,
            # elapsed time and ETA are never cut to `0:…`
            narrow = err_console.width < 110
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=None if narrow else 40),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err_console,
                transient=False,
                expand=narrow,
            )
            self._progress.__enter__()
        return self._progress

    def begin(self, stage: str, total: float | None = None, unit: str = "items") -> None:
        if not self._enabled:
            return
        if self._live:
            self._tasks[stage] = self._bars().add_task(shown(stage), total=total, info="")
        else:
            self._plain[stage] = {"done": 0.0, "total": total, "unit": unit, "info": "", "started": time.monotonic()}

    def set_total(self, stage: str, total: float) -> None:
        if stage in self._tasks and self._progress is not None:
            self._progress.update(self._tasks[stage], total=total)
        elif stage in self._plain:
            self._plain[stage]["total"] = total

    def advance(self, stage: str, amount: float = 1.0, **fields: object) -> None:
        if not self._enabled:
            return
        if stage not in self._tasks and stage not in self._plain:
            self.begin(stage)
        info = "  ".join(f"{k}={v}" for k, v in fields.items())
        if self._live and self._progress is not None:
            self._progress.update(self._tasks[stage], advance=amount, info=shown(info))
        elif stage in self._plain:
            self._plain[stage]["done"] += amount
            self._plain[stage]["info"] = info

    def end(self, stage: str) -> None:
        if stage in self._tasks and self._progress is not None:
            task = self._tasks.pop(stage)
            total = self._progress.tasks[task].total
            if total is not None:
                self._progress.update(task, completed=total)
            else:  # a stage without a known total ends as N/N, not N/?
                self._progress.update(task, total=self._progress.tasks[task].completed)
            self._progress.stop_task(task)
        elif stage in self._plain:
            state = self._plain.pop(stage)
            done = _amount(state["total"] if state["total"] is not None else state["done"])
            count = f"{done} {state['unit']}" if state["total"] is None else f"{done}/{done} {state['unit']}"
            info = f" ({state['info']})" if state["info"] else ""
            err_console.print(one_line(f"{stage}: {count}{info} in {time.monotonic() - state['started']:.1f} s"),
                              highlight=False, markup=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        err_console.print(f"[yellow]warning:[/] {shown(message)}", highlight=False, soft_wrap=True)


def _amount(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
