"""Entry point of the ``r2cli`` command."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys

from typing import Any

import typer
import typer.main

from r2cli import __version__
from r2cli.cli import commands as _commands_pkg
from r2cli.cli._common import handle_errors

# Order in which commands appear in `r2cli --help`; modules not listed come last.
_COMMAND_ORDER = [
    "index",
    "catalog",
    "search",
    "summarize",
    "duplicates",
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


def _reflow(text: str | None) -> str | None:
    """Join the hard line breaks of source code inside each paragraph, so help text wraps to the
    terminal instead of breaking where the docstring did; paragraphs (blank lines) stay."""
    if not text:
        return text
    paragraphs = [" ".join(line.strip() for line in block.splitlines() if line.strip())
                  for block in inspect.cleandoc(text).split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def _usage_name(argument: Any) -> str:
    """An argument in the usage line as POSIX usage writes it: ``DIR...``, ``[QUERY]...``, ``RESULTS``
    (typer writes ``{DIR...}...`` and ``[[QUERY]...]...``). A metavar given in the code is used as written."""
    if argument.metavar:
        bracketed = argument.required or argument.metavar.startswith("[")
        return argument.metavar if bracketed else f"[{argument.metavar}]"
    name = argument.name.upper() + ("..." if argument.nargs != 1 else "")
    return name if argument.required else f"[{name}]"


def _plain_type(display: Any) -> Any:
    """A value type without typer's ``list[...]``: a repeatable option reads ``<str>`` (its help says
    "repeat"); an argument's name already says ``...``."""
    return re.sub(r"list\[([^\]]*)\]", r"\1", display) if isinstance(display, str) else display


def _help_folds_long_words() -> None:
    """Typer cuts a word longer than the help column with an ellipsis (``QVHighlights-form…``) at 80
    columns; fold it onto the next line instead, so no help text is lost. Installed when help is printed."""
    import typer.rich_utils as rich_utils

    if getattr(rich_utils._get_parameter_help, "_r2cli_folds", False):
        return
    original = rich_utils._get_parameter_help

    def parameter_help(**kwargs: Any) -> Any:
        columns = original(**kwargs)
        for item in getattr(columns, "renderables", []):
            if hasattr(item, "overflow"):
                item.overflow = "fold"
        return columns

    parameter_help._r2cli_folds = True  # type: ignore[attr-defined]
    rich_utils._get_parameter_help = parameter_help

    class FoldingTable(rich_utils.Table):  # type: ignore[misc, name-defined]
        """Option names too (``--coarse-index-min-clips``): folded onto the next line, never cut."""

        def add_row(self, *renderables: Any, **kwargs: Any) -> None:
            for item in renderables:
                if isinstance(item, rich_utils.Text):
                    item.overflow, item.no_wrap = "fold", False
            super().add_row(*renderables, **kwargs)

    rich_utils.Table = FoldingTable


def _tidy(command: Any) -> None:
    """Help as a person reads it: reflowed paragraphs, no value hint on on/off flags (typer shows
    ``<bool>`` for them, though they take no value), plain usage names and types, no word cut."""
    command.help = _reflow(command.help)
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
        if getattr(param, "help", None):
            param.help = _reflow(param.help)
        if getattr(param, "param_type_name", None) == "argument" and hasattr(param, "_usage_display_name"):
            param._usage_display_name = lambda argument=param: _usage_name(argument)
        if hasattr(param, "display_type_rich"):
            original_type = param.display_type_rich
            param.display_type_rich = lambda ctx, original=original_type: _plain_type(original(ctx))
    original_format_help = command.format_help

    def format_help(ctx: Any, formatter: Any) -> Any:
        _help_folds_long_words()
        return original_format_help(ctx, formatter)

    command.format_help = format_help
    original_help_option = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = original_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _tidy(sub)


def build_command() -> Any:
    """The click command behind ``r2cli``, with its help tidied."""
    command = typer.main.get_command(app)
    _tidy(command)
    return command


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; library errors become one line on stderr and an exit code."""
    with handle_errors():
        build_command()(args=argv, prog_name="r2cli", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
