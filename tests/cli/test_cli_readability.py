"""The command line as a person reads it: help at 80 columns, errors, piped progress (issue #10, item 7)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _r2cli(*args: str, columns: int = 80, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb"}
    env.pop("R2CLI_NO_PROGRESS", None)
    return subprocess.run([sys.executable, "-m", "r2cli.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def _commands() -> list[str]:
    import typer.main

    from r2cli.cli.main import app

    return sorted(typer.main.get_command(app).commands)


@pytest.mark.parametrize("command", _commands())
def test_help_at_80_columns_has_no_bool_hints_and_no_overflow(command):
    result = _r2cli(command, "--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines, "no help printed"
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "<bool>" not in result.stdout
    # no help text cut with an ellipsis (#22: `finetune --help` lost `QVHighlights-form…`)
    assert "…" not in result.stdout, [line for line in lines if "…" in line]
    # usage and types as a person reads them: no `{DIR...}...`, `[[QUERY]...]...`, `<list[str]>`
    assert "list[" not in result.stdout
    usage = next(line for line in lines if line.strip().startswith("Usage:"))
    assert "{" not in usage and "[[" not in usage and "]..." not in usage.replace("]...", "", 1), usage


@pytest.mark.parametrize("command, usage", [
    ("index", "Usage: r2cli index [OPTIONS] DIR..."),
    ("search", "Usage: r2cli search [OPTIONS] [QUERY]..."),
    ("summarize", "Usage: r2cli summarize [OPTIONS] [VIDEO]..."),
    ("cut", "Usage: r2cli cut [OPTIONS] RESULTS"),
    ("evaluate", "Usage: r2cli evaluate [OPTIONS] PREDICTIONS GROUND_TRUTH"),
    ("run", "Usage: r2cli run [OPTIONS] [JOB.toml]"),
])
def test_usage_lines_read_as_posix_usage(command, usage):
    lines = _r2cli(command, "--help").stdout.splitlines()
    assert next(line.strip() for line in lines if line.strip().startswith("Usage:")) == usage


def test_help_reflows_docstring_line_breaks():
    """A docstring's hard line breaks are joined, so paragraphs wrap at the terminal's width."""
    from r2cli.cli.main import _reflow

    text = "First line of\n    a paragraph.\n\n    Second\n    paragraph."
    assert _reflow(text) == "First line of a paragraph.\n\nSecond paragraph."


def test_error_is_one_line_without_a_blank_line_before(tmp_path):
    result = _r2cli("cut", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "clips"))
    assert result.returncode != 0
    assert result.stderr.splitlines()[0].startswith("error: ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.skipif(not (REPO / "sample_media").is_dir(), reason="sample_media missing")
def test_piped_progress_is_plain_lines(tmp_path, ffmpeg):
    """Redirected stderr gets one plain line per finished stage: no escape codes, no spinner frames."""
    result = _r2cli("index", str(REPO / "sample_media"), "--no-features", "--workspace", str(tmp_path / "ws"))
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stderr and "\r" not in result.stderr
    stages = [line.split(":", 1)[0] for line in result.stderr.splitlines()]
    assert "index" in stages, result.stderr
    index_line = next(line for line in result.stderr.splitlines() if line.startswith("index:"))
    assert index_line.startswith("index: 5/5 files")


def test_models_list_keeps_every_file_name_whole_at_80_columns():
    """`models list` used to drop its file column at 80 columns; now every file name shows unbroken."""
    import json

    listing = json.loads(_r2cli("models", "list", "--json").stdout)
    text = _r2cli("models", "list").stdout
    assert all(len(line) <= 80 for line in text.splitlines())
    for entry in listing:
        assert entry["filename"] in text, entry["filename"]
    assert "Presets as named; all need CLIP ViT-B-32/openai." in text


def test_catalog_show_prints_times_and_sizes_for_people(tmp_path, ffmpeg, monkeypatch):
    import datetime as dt

    _r2cli("index", str(REPO / "sample_media" / "red_then_blue_cut.mp4"), "--no-features",
           "--workspace", str(tmp_path / "ws"))
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # local time with its offset (#22.11); the child reads it
    shown = _r2cli("catalog", "show", "1", "--workspace", str(tmp_path / "ws")).stdout
    monkeypatch.undo()
    mtime = (REPO / "sample_media" / "red_then_blue_cut.mp4").stat().st_mtime
    kolkata = dt.timezone(dt.timedelta(hours=5, minutes=30))
    expected = dt.datetime.fromtimestamp(int(mtime), tz=kolkata).isoformat()
    assert expected.endswith("+05:30")
    fields = {}
    for line in shown.splitlines():
        parts = line.split(None, 1)
        if parts:
            fields[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    assert fields["mtime"] == expected
    size = (REPO / "sample_media" / "red_then_blue_cut.mp4").stat().st_size
    assert fields["size"].endswith(f"({size:,} bytes)")
