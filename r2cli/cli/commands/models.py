"""`r2cli models`: the pretrained registry (list, download, cache paths for offline use)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from r2cli.cli._common import JsonOpt, RichReporter, console, print_json
from r2cli.safe_text import one_line

CacheOpt = Annotated[
    Optional[str],
    typer.Option(
        "--cache-dir",
        help="Weights cache folder. Default: $R2CLI_CACHE or ~/.cache/r2cli",
        show_default=False,
    ),
]

models_app = typer.Typer(
    name="models",
    help=(
        "Pretrained weights: the official R2-Tuning checkpoints and the CLIP weights they need.\n\n"
        "Files are kept in the weights cache ($R2CLI_CACHE or ~/.cache/r2cli): checkpoints/<file> and "
        "clip/<file>. Offline, copy the files there by hand (`r2cli models path NAME` prints where) "
        "or pass --checkpoint PATH / --clip-weights PATH.\n\n"
        "Example:  r2cli models list && r2cli models download qvhighlights"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return ""
    return f"{num_bytes / 1e6:.1f} MB"


@models_app.command("list")
def list_command(
    verify: Annotated[
        bool, typer.Option("--verify", help="Hash cached files against the registry (slow the first time).")
    ] = False,
    cache_dir: CacheOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List every known checkpoint and CLIP weights file, whether it is cached, and its preset.

    Example:  r2cli models list --verify
    """
    from rich.table import Table

    from r2cli.model.registry import list_models

    statuses = list_models(cache_dir=cache_dir, verify=verify, check_presets=True)
    if json_output:
        print_json([status.to_dict() for status in statuses])
        return
    # Two tables, each only with the columns whose values differ from row to row, so that the
    # file names (what a user copies into the cache by hand) fit 80 columns without breaking.
    for kind, title in (("clip", "CLIP weights"), ("checkpoint", "R2-Tuning checkpoints")):
        rows = [status for status in statuses if status.kind == kind]
        if not rows:
            continue
        presets = {status.name: _preset_cell(status) for status in rows}
        show_preset = kind == "checkpoint" and any(presets[status.name] != status.name for status in rows)
        clips = {status.clip or "" for status in rows}
        table = Table(title=title, title_justify="left", show_lines=False)
        table.add_column("name", no_wrap=True)
        table.add_column("cached", no_wrap=True)
        if show_preset:
            table.add_column("preset", no_wrap=True)
        if len(clips) > 1:
            table.add_column("needs CLIP", no_wrap=True)
        table.add_column("file", no_wrap=True, overflow="fold")
        for status in rows:
            cells = [status.name, _cached_cell(status)]
            if show_preset:
                cells.append(presets[status.name])
            if len(clips) > 1:
                cells.append(status.clip or "")
            table.add_row(*cells, status.filename)
        console.print(table)
        notes = []
        if kind == "checkpoint" and not show_preset:
            notes.append("presets as named")
        if kind == "checkpoint" and len(clips) == 1 and next(iter(clips)):
            notes.append(f"all need CLIP {next(iter(clips))}")
        if notes:
            text = "; ".join(notes)
            console.print(text[0].upper() + text[1:] + ".", highlight=False, markup=False, soft_wrap=True)


def _cached_cell(status) -> str:
    if not status.cached:
        return "no"
    state = {True: "yes (verified)", False: "CORRUPT", None: "yes"}[status.verified]
    return f"{state} {_size(status.bytes)}"


def _preset_cell(status) -> str:
    preset = status.preset or ""
    if status.preset and status.preset_available is False:
        preset += " (missing)"
    return preset


@models_app.command("download")
def download_command(
    names: Annotated[list[str], typer.Argument(help="Checkpoint names or CLIP tags (see `r2cli models list`).")],
    no_clip: Annotated[
        bool, typer.Option("--no-clip", help="Do not also fetch the CLIP weights a checkpoint needs.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Download again even when the file is cached.")] = False,
    cache_dir: CacheOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Download checkpoints (and the CLIP weights they need) into the weights cache, verified by SHA-256.

    Example:  r2cli models download qvhighlights charades
    """
    from r2cli.model.registry import download_many

    with RichReporter(enabled=not json_output) as reporter:
        statuses = download_many(names, with_clip=not no_clip, cache_dir=cache_dir, force=force, reporter=reporter)
    if json_output:
        print_json([status.to_dict() for status in statuses])
        return
    for status in statuses:
        console.print(one_line(f"{status.kind} {status.name}: {status.path} ({_size(status.bytes)}, sha256 ok)"), highlight=False,
                      markup=False)


@models_app.command("path")
def path_command(
    name: Annotated[str, typer.Argument(help="Checkpoint name or CLIP tag (see `r2cli models list`).")],
    cache_dir: CacheOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Print the cache path of a checkpoint or CLIP weights file: where to copy it by hand for offline use.

    Example:  cp ViT-B-32.pt "$(r2cli models path ViT-B-32/openai)"
    """
    from r2cli.model.registry import describe

    status = describe(name, cache_dir=cache_dir)
    if json_output:
        print_json(status.to_dict())
        return
    typer.echo(str(status.path))


def register(app: typer.Typer) -> None:
    """Add the `models` command group to the root app."""
    app.add_typer(models_app, name="models")
