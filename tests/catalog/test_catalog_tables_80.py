"""`r2cli catalog list` and `catalog show` at 80 columns, compared character for character (#22, 80 columns):
every path whole on its own line (never split mid-word), shapes written for people.

Inputs are deterministic (tagged copies of one generated 1 s clip, one unreadable file); the
archive's temporary folder is masked as ARCHIVE; times are left out of the comparison.
"""

from __future__ import annotations

import pytest
from catalogkit import workspace_args

from r2cli.cli.main import main

LONG = "the evening news from the harbour, part one (2019 final cut).mp4"


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out = capsys.readouterr()
    code = caught.value.code
    return (0 if code is None else int(code)), out.out, out.err


@pytest.fixture
def indexed(tmp_path, workspace, make_copy, capsys):
    archive = tmp_path / "archive"
    make_copy(archive / "a.mp4", "a")
    make_copy(archive / "news" / "2019" / LONG, "long")
    (archive / "broken.mp4").write_text("not a video")
    ws = workspace_args(workspace)
    code, _, err = run(capsys, "index", str(archive), *ws, "--no-features")
    assert code == 0, err
    return archive, ws


EXPECTED_LIST = """\
id  status  duration   size  fps  codec  audio
    path / error
 1  ok        0:01.0  64x48   10  h264   no
    ARCHIVE/a.mp4
 2  error
    ARCHIVE/broken.mp4
"""


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_catalog_list_at_80_columns_keeps_paths_whole(indexed, capsys, monkeypatch):
    archive, ws = indexed
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run(capsys, "catalog", "list", *ws)
    assert code == 0, err
    text = out.replace(str(archive), "ARCHIVE")
    lines = text.splitlines()
    # the long path is one line, whole, however wide the terminal
    assert f"    ARCHIVE/news/2019/{LONG}" in lines
    # the broken file's error is its own line under its path (ffprobe's words vary: only its start is pinned)
    error = lines.index("    ARCHIVE/broken.mp4") + 1
    assert lines[error].startswith("    ") and lines[error].strip()
    kept = [line for i, line in enumerate(lines) if i != error and "news/2019" not in line and not line.startswith(" 3 ")]
    assert "\n".join(kept[:6]) + "\n" == EXPECTED_LIST
    assert lines[-1] == "3 videos"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_catalog_show_at_80_columns_keeps_the_path_on_one_line(indexed, capsys, monkeypatch):
    archive, ws = indexed
    monkeypatch.setenv("COLUMNS", "80")
    target = archive / "news" / "2019" / LONG
    code, out, err = run(capsys, "catalog", "show", str(target), *ws)
    assert code == 0, err
    lines = out.splitlines()
    assert f" path                 {target}" in lines
    assert next(line for line in lines if line.startswith(" fingerprint ")).split()[1].startswith("blake2b:")
    assert lines[-1] == "no feature sets yet"


def test_feature_set_shapes_read_as_dimensions():
    from r2cli.cli.commands.catalog import _shape

    assert _shape({"layers": [8, 4, 5, 64], "embed": [8, 32], "timestamps": [8]}) == \
        "layers 8x4x5x64, embed 8x32, timestamps 8"
    assert _shape([3, 2]) == "3x2"
