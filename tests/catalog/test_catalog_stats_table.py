"""`r2cli catalog stats` at 80 columns: the whole table, compared character for character.

The input is deterministic (two tagged copies of one generated 1 s clip, one unreadable file); the
table carries no times, and its one path (the catalog file, folded by its length) is masked.
"""

from __future__ import annotations

import pytest
from catalogkit import workspace_args

from r2cli.cli.main import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out = capsys.readouterr()
    code = caught.value.code
    return (0 if code is None else int(code)), out.out, out.err


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_catalog_stats_table_at_80_columns(tmp_path, workspace, make_copy, capsys, monkeypatch):
    archive = tmp_path / "archive"
    make_copy(archive / "a.mp4", "a")
    make_copy(archive / "b.mp4", "b")
    (archive / "broken.mp4").write_text("not a video")
    ws = workspace_args(workspace)
    code, _, err = run(capsys, "index", str(archive), *ws, "--no-features")
    assert code == 0, err
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run(capsys, "catalog", "stats", *ws)
    assert code == 0, err
    lines = out.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith(" schema version"))
    # the catalog path is the one varying cell (its length folds it over 1 or 2 lines): masked
    catalog = "".join(line[17:].strip() for line in lines[:first])
    assert lines[0].startswith(" catalog         ") and catalog == str(workspace.root / "catalog.sqlite")
    assert {len(line) for line in lines} == {81}  # 80 columns and the newline (rich pads every row)
    assert "".join(line.rstrip() + "\n" for line in lines[first:]) == EXPECTED


EXPECTED = """\
 schema version  2
 videos          3
   ok            2
   error         1
   missing       0
 hours (ok)      0.00
 size (ok)       4.8 KB
 features        none: 2
 feature sets    0
 runs            -
"""
