"""The ranked table of ``r2cli search`` at 80 columns, compared in full (APP_CONTRACT item 5)."""

from __future__ import annotations

import io

import pandas as pd

# At 80 columns the file names do not fit a table column: each goes whole on its own line (#22, 80 columns)
EXPECTED = """\
search run 20260101-000000-abcdef
q1: a dog catches a frisbee on the beach at sunset
#   score       start         end
1  0.9123     0:12.00     0:20.00
    2019_summer_vacation_at_the_beach_with_the_dog.mp4
2  0.5000  1:02:05.50  1:02:11.00
    b.mp4
q2: red\\x1b[31m car
#   score       start         end
1  0.2500     0:00.00     0:02.00
    red car.mp4
"""


def test_ranked_table_at_80_columns():
    from rich.console import Console

    from r2cli.cli.commands.search import search_table

    query = "a dog catches a frisbee on the beach at sunset"
    frame = pd.DataFrame({
        "query_id": ["q1", "q1", "q2"],
        "query": [query, query, "red\x1b[31m car"],  # a control character is shown escaped
        "rank_in_query": [1, 2, 1],
        "score": [0.91234, 0.5, 0.25],
        "start_s": [12.0, 3725.5, 0.0],
        "end_s": [20.0, 3731.0, 2.0],
        "path": ["/archive/holidays/2019_summer_vacation_at_the_beach_with_the_dog.mp4", "/a/b.mp4",
                 "/a/red car.mp4"],
    })
    from r2cli.cli._tables import print_named_rows

    buffer = io.StringIO()
    print_named_rows(Console(file=buffer, width=80, color_system=None),
                     search_table(frame, "search run 20260101-000000-abcdef"))
    assert buffer.getvalue() == EXPECTED
    # every column is kept and no line is wider than the terminal
    assert all(len(line) <= 80 for line in buffer.getvalue().splitlines())
    # where the names fit, the bordered table, every name whole on one line of it
    wide = io.StringIO()
    print_named_rows(Console(file=wide, width=120, color_system=None),
                     search_table(frame, "search run 20260101-000000-abcdef"))
    lines = wide.getvalue().splitlines()
    assert lines[1].startswith("┏") and all(len(line) <= 120 for line in lines)
    for path in frame["path"]:
        assert any(f"│ {path.rsplit('/', 1)[1]} " in line for line in lines), path


def test_counts_read_as_english():
    from r2cli.cli.commands.search import plural

    assert plural(1, "query", "queries") == "1 query"
    assert plural(2, "query", "queries") == "2 queries"
    assert plural(1, "segment") == "1 segment" and plural(0, "segment") == "0 segments"


def test_search_output_at_80_columns(monkeypatch):
    """What `r2cli search` prints after the run, at 80 columns: the table, then the summary line."""
    from types import SimpleNamespace

    from rich.console import Console

    import r2cli.cli.commands.search as command

    frame = pd.DataFrame({
        "query_id": ["q1", "q2"], "query": ["a dog catches a frisbee on the beach at sunset", "red car"],
        "rank_in_query": [1, 1], "score": [0.91234, 0.25], "start_s": [12.0, 0.0], "end_s": [20.0, 2.0],
        "path": ["/archive/holidays/2019_summer_vacation_at_the_beach_with_the_dog.mp4", "/a/red car.mp4"],
    })
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(command, "console", Console(file=out, width=80, color_system=None))
    monkeypatch.setattr(command, "err_console", Console(file=err, width=80, color_system=None))
    result = SimpleNamespace(
        run_id="20260101-000000-abcdef", resumed=False, files={}, skipped=[], settings={},
        counts={"queries": 2, "videos_searched": 3, "pairs": 6}, timings={"total_s": 1.25},
        out_dir="/runs/20260101-000000-abcdef", preview=lambda queries: frame)
    command.render_search_result(result)
    assert out.getvalue() == """\
search run 20260101-000000-abcdef
q1: a dog catches a frisbee on the beach at sunset
#   score    start      end
1  0.9123  0:12.00  0:20.00
    2019_summer_vacation_at_the_beach_with_the_dog.mp4
q2: red car
#   score    start      end
1  0.2500  0:00.00  0:02.00
    red car.mp4
2 queries searched over 3 videos (6 window-query pairs) in 1.2 s; outputs: /runs/20260101-000000-abcdef
"""
    # the summary line is soft-wrapped (the terminal folds it; a copied path stays whole)
    assert err.getvalue() == ""
