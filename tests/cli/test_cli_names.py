"""Names on the terminal: a job whose file name and ``[job].name`` hold ESC sequences, BEL, DEL and
U+202E runs and is reported on whole lines with those characters shown as escapes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FORBIDDEN = ["\r", "\x1b", "\x07", "\x7f", "\u202e", "\x9b"]
SAMPLE = Path(__file__).resolve().parents[2] / "sample_media" / "red_then_blue_cut.mp4"


def _run(capsys, *args: object) -> tuple[int, str, str]:
    from r2cli.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return stopped.value.code, captured.out, captured.err


def test_a_job_with_a_hostile_name_is_shown_escaped(tmp_path, capsys, ffmpeg):
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.copyfile(SAMPLE, archive / "clip \x1b]0;title\x07\u202e.mp4")
    job = tmp_path / "job \x1b[2J\x9b.toml"
    job.write_text(f'[job]\nname = "nightly \\u007f\\u202eevil"\nworkspace = "ws"\n\n'
                   f'[index]\npaths = ["{archive}"]\nfeatures = false\n', encoding="utf-8")
    code, out, err = _run(capsys, "run", job, "--check")
    assert code == 0, err
    assert out == f"{tmp_path}/job \\x1b[2J\\x9b.toml: valid; steps: index\n"
    code, out, err = _run(capsys, "run", job)
    assert code == 0, err
    for char in FORBIDDEN:
        assert char not in out and char not in err, repr(char)
    assert "job nightly \\x7f\\u202eevil" in out
