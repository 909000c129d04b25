"""Entry point of the ``r2cli`` command."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from r2cli import __version__
from r2cli.cli import commands as _commands_pkg
from r2cli.cli._common import handle_errors

# Order in which commands appear in `r2cli --help`; modules not listed come last.
_COMMAND_ORDER = [
    "index",
    "catalog",
    "search",
    "summarize",
    "cut",
    "report",
    "run",
    "evaluate",
    "finetune",
    "models",
    "doctor",
]

app = typer.Typer(
    name="r2cli",
    help=(
        "Video temporal grounding for media archives (R2-Tuning, ECCV 2024).\n\n"
        "Index folders of video once, then search them in plain language, summarize "
        "them to a budget, and cut the results into clips, reels and editor timelines.\n\n"
        "Example:  r2cli index ./archive && r2cli search \"dog catches frisbee\""
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"r2cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version_callback, is_eager=True
    ),
) -> None:
    """Video temporal grounding for media archives."""


def _register_commands() -> None:
    names = [m.name for m in pkgutil.iter_modules(_commands_pkg.__path__) if not m.name.startswith("_")]
    rank = {name: i for i, name in enumerate(_COMMAND_ORDER)}
    for name in sorted(names, key=lambda n: (rank.get(n, len(rank)), n)):
        module = importlib.import_module(f"{_commands_pkg.__name__}.{name}")
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; library errors become one line on stderr and an exit code."""
    with handle_errors():
        app(args=argv, prog_name="r2cli", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
