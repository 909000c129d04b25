"""The result of ``r2cli summarize`` at 80 columns, compared character for character (#23, 80 columns):
the per-video table (every column kept, each file name whole on its own line where the names do not
fit), then the summary line, as ``render_summary_result`` prints them."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

EXPECTED_TABLE = """\
summarize run 20260101-000000-abcdef
Beach holiday with the dog (title)
shots  selected  summary  budget   duration
  214    31/230   9:16.0  9:18.8  1:02:05.5
    2019_summer_vacation_at_the_beach_with_the_dog.mp4
b (file name)
shots  selected  summary  budget   duration
    4       1/4   0:08.0  0:09.3     1:02.0
    b.mp4
red\\x1b[31m car
shots  selected  summary  budget   duration
    1       1/1   0:02.0  0:00.3     0:02.0
    red car.mp4
"""

EXPECTED_OUTPUT = EXPECTED_TABLE + """\
3 videos summarized (33 segments selected) in 12.3 s; outputs: /runs/20260101-000000-abcdef
"""


def _videos():
    from r2cli.summary.stages import VideoSummary

    return [
        VideoSummary(video_id=1, path="/archive/holidays/2019_summer_vacation_at_the_beach_with_the_dog.mp4",
                     query="Beach holiday with the dog", query_source="title", duration_s=3725.5, budget_s=558.8,
                     selected_s=556.0, clips=1863, windows=13, shots=214, segments=230, segments_selected=31),
        VideoSummary(video_id=2, path="/a/b.mp4", query="b", query_source="file name", duration_s=62.0,
                     budget_s=9.3, selected_s=8.0, clips=31, windows=1, shots=4, segments=4, segments_selected=1),
        # a control character in a query is shown escaped
        VideoSummary(video_id=3, path="/a/red car.mp4", query="red\x1b[31m car", query_source="--query",
                     duration_s=2.0, budget_s=0.3, selected_s=2.0, clips=1, windows=1, shots=1, segments=1,
                     segments_selected=1, over_budget=True),
    ]


def test_summary_table_at_80_columns():
    from r2cli.cli._tables import print_named_rows
    from r2cli.cli.commands.summarize import summary_table

    buffer = io.StringIO()
    print_named_rows(Console(file=buffer, width=80, color_system=None),
                     summary_table(_videos(), "summarize run 20260101-000000-abcdef"))
    assert buffer.getvalue() == EXPECTED_TABLE
    assert all(len(line) <= 80 for line in buffer.getvalue().splitlines())
    # where the names fit, the bordered table, every name whole on one line of it
    wide = io.StringIO()
    print_named_rows(Console(file=wide, width=120, color_system=None),
                     summary_table(_videos(), "summarize run 20260101-000000-abcdef"))
    lines = wide.getvalue().splitlines()
    assert lines[1].startswith("┏") and all(len(line) <= 120 for line in lines)
    for video in _videos():
        assert any(f"│ {Path(video.path).name} " in line for line in lines), video.path


def test_summarize_output_at_80_columns(monkeypatch):
    import r2cli.cli.commands.summarize as command

    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(command, "console", Console(file=out, width=80, color_system=None))
    monkeypatch.setattr(command, "err_console", Console(file=err, width=80, color_system=None))
    result = SimpleNamespace(
        run_id="20260101-000000-abcdef", resumed=False, videos=_videos(), files={}, skipped=[],
        counts={"videos_summarized": 3, "segments_selected": 33}, timings={"total_s": 12.34},
        out_dir=Path("/runs/20260101-000000-abcdef"))
    command.render_summary_result(result)
    assert out.getvalue() == EXPECTED_OUTPUT and err.getvalue() == ""
