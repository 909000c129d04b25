"""`r2cli run --check` refuses what `run` would refuse, naming the file and the key (#18.9), and job
files that are deep, start with a byte-order mark or carry huge names are read in one line (#18.10)."""

from __future__ import annotations

import math

import pytest

from r2cli.errors import InputError


def _write(tmp_path, text: str, name: str = "job.toml", *, bom: bool = False):
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def _check(path, capsys) -> tuple[int, str]:
    from r2cli.cli.main import main

    with pytest.raises(SystemExit) as caught:
        main(["run", str(path), "--check"])
    code = caught.value.code
    return (0 if code is None else int(code)), " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(("text", "message"), [
    ("[job]\nname = '" + "n" * 300 + "'\n[index]\npaths = ['.']\n",
     "[job].name must be at most 200 bytes (it becomes part of a file name)"),
    ("[job]\nname = '" + "é" * 101 + "'\n[index]\npaths = ['.']\n", "[job].name must be at most 200 bytes"),
    ("[summarize]\nseconds = inf\n", "[summarize].seconds must be a finite number, got inf"),
    ("[summarize]\nratio = nan\n", "[summarize].ratio must be a finite number, got nan"),
    ("[search]\nqueries = ['x']\nstride = 1e-9\n", "[search].stride must be >= 0.001, got 1e-09"),
    ("[search]\nqueries = ['x']\nwindow = inf\n", "[search].window must be a finite number, got inf"),
    ("[summarize]\nratio = 0.2\nstride = 0.0000001\n", "[summarize].stride must be >= 0.001"),
    ("[search]\nqueries = ['x']\nmin_score = -inf\n", "[search].min_score must be a finite number, got -inf"),
    ("[index]\npaths = ['.']\nfps = inf\n", "[index].fps must be a finite number, got inf"),
])
def test_check_refuses_what_run_would_refuse(tmp_path, capsys, text, message):
    path = _write(tmp_path, text)
    code, err = _check(path, capsys)
    assert code == 1
    assert message in err and str(path) in err, err
    assert "Traceback" not in err


def test_a_long_file_name_without_job_name_is_refused(tmp_path, capsys):
    path = _write(tmp_path, "[index]\npaths = ['.']\n", name="j" * 240 + ".toml")
    code, err = _check(path, capsys)
    assert code == 1 and "must be at most 200 bytes" in err and "[job].name is absent" in err


def test_flags_take_the_same_rules():
    from r2cli.app.search import SearchOptions
    from r2cli.app.summarize import SummarizeOptions
    from r2cli.errors import UsageError

    with pytest.raises(UsageError, match=r"--seconds must be a finite number, got inf"):
        SummarizeOptions.from_flags(seconds=math.inf)
    with pytest.raises(UsageError, match=r"--stride must be >= 0.001"):
        SearchOptions.from_flags(queries=("x",), stride=1e-9)
    SearchOptions.from_flags(queries=("x",), stride=0.5, window=30.0)  # ordinary values still pass


def test_deeply_nested_job_file_is_one_line(tmp_path, capsys):
    from r2cli.app.jobs import load_job

    path = _write(tmp_path, "[search]\nqueries = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(InputError) as caught:
        load_job(path)
    assert str(caught.value).startswith(f"{path}: arrays or tables nested too deeply")
    code, err = _check(path, capsys)
    assert code == 1 and "nested too deeply" in err and "Traceback" not in err


def test_byte_order_mark_is_accepted(tmp_path):
    from r2cli.app.jobs import load_job

    path = _write(tmp_path, "[job]\nname = 'nightly'\n[index]\npaths = ['.']\n", bom=True)
    job = load_job(path)
    assert job.name == "nightly" and job.steps() == ["index"]
