"""`cut --template` format specs are bounded (#18.10): `{rank:>9999999999}` raised MemoryError and
`{rank:>99999999}` took 65 s and 1 GB before the name was cut to 200 bytes anyway."""

from __future__ import annotations

import time

import pytest

from r2cli.media.naming import MAX_NAME_BYTES, render_name, template_problem
from r2cli.media.segments import Segment


@pytest.mark.parametrize("template", ["{rank:>9999999999}.mp4", "{rank:>99999999}.mp4", "{start:.99999999f}.mp4",
                                      "{query:x<201}.mp4", "{rank:{rank}}.mp4"])
def test_unbounded_specs_are_refused(template):
    from r2cli.errors import UsageError

    problem = template_problem(template)
    assert problem is not None and "\n" not in problem
    segment = Segment(path="/a/v.mp4", start_s=1.0, end_s=2.0, rank=1, query="red car")
    started = time.monotonic()
    with pytest.raises(UsageError, match="--template field"):
        render_name(template, segment, 0)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("template", ["{rank:03d}.mp4", "{start:.1f}-{end:08.2f}.mp4", f"{{query:_<{MAX_NAME_BYTES}}}.mp4",
                                      "{rank:9>5}.mp4"])
def test_ordinary_specs_still_work(template):
    assert template_problem(template) is None
    name = render_name(template, Segment(path="/a/v.mp4", start_s=1.0, end_s=2.0, rank=1, query="red car"), 0)
    assert name.endswith(".mp4") and len(name.encode()) <= MAX_NAME_BYTES


def test_cut_cli_refuses_a_huge_width_in_one_line(tmp_path, capsys):
    from r2cli.cli.main import main

    moments = tmp_path / "moments.parquet"
    moments.write_bytes(b"")
    started = time.monotonic()
    with pytest.raises(SystemExit) as caught:
        main(["cut", str(moments), "--out", str(tmp_path / "clips"), "--template", "{rank:>9999999999}.mp4"])
    assert caught.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert "--template" in err and "at most 200" in err and len(err.splitlines()) == 1, err
    assert time.monotonic() - started < 5
