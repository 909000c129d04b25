"""Progress bars on an 80-column terminal (#22, 80 columns): counts, elapsed time and ETA whole, and a
stage without a known total ends as N/N."""

from __future__ import annotations

import io

from rich.console import Console


def test_progress_at_80_columns_keeps_counts_and_times_whole(monkeypatch):
    from r2cli.cli import _common

    buffer = io.StringIO()
    console = Console(file=buffer, width=80, force_terminal=True, color_system=None, legacy_windows=False)
    monkeypatch.setattr(_common, "err_console", console)
    monkeypatch.delenv("R2CLI_NO_PROGRESS", raising=False)
    with _common.RichReporter() as reporter:
        reporter.begin("features", total=120, unit="frames")
        reporter.advance("features", 60, videos="5/9")
        reporter.begin("queries")  # no total known
        for _ in range(9):
            reporter.advance("queries")
        reporter.end("features")
        reporter.end("queries")
    final = buffer.getvalue().split("\x1b[2K")[-2:]  # the last frame: one line per stage
    text = "".join(final)
    assert "…" not in text, text
    assert "120/120" in text and "9/9" in text and "9/?" not in text, text
    assert "ETA" in text and "0:00:0" in text
