"""Job files: validation with errors that name the file and the key; the shipped sample job."""

from __future__ import annotations

import pytest

from r2cli.errors import InputError


def _write(tmp_path, text: str):
    path = tmp_path / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[index]\npaths = ['a']\n[serch]\nqueries = ['x']\n", "unknown table [serch]"),
        ("[search]\nquerys = ['x']\n", "[search] has unknown key 'querys'"),
        ("[search]\nqueries = ['x']\ntop_k = 'ten'\n", "[search].top_k must be an integer, got 'ten'"),
        ("[search]\nqueries = ['x']\ntop_k = 0\n", "[search].top_k must be >= 1, got 0"),
        ("[search]\nqueries = ['x']\nformat = 'xml'\n", "[search].format must be one of parquet, official"),
        ("[search]\nqueries = ['x']\nwindow = 60\nstride = 90\n", "[search].stride (90 s) must not exceed [search].window (60 s)"),
        ("[search]\nvideos = ['*.mp4']\n", "[search].queries or [search].queries_file: give at least one query"),
        ("[search]\nqueries = ['x', '']\n", "[search].queries must be a non-empty string, got ''"),
        ("[index]\nfeatures = true\n", "[index].paths is required"),
        ("[index]\npaths = []\n", "[index].paths must list at least one folder"),
        ("[index]\npaths = ['a']\ndevice = 'gpu'\n", "[index].device must be auto, cpu, cuda, cuda:N or mps"),
        ("[index]\npaths = ['a']\n[cut]\nsource = 'search'\n", "[cut].source is 'search' but the job has no [search] table"),
        ("[summarize]\nratio = 1.5\n", "[summarize].ratio must be in (0, 1], got 1.5"),
        ("[job]\nname = 'x'\n", "the job has no step"),
        ("[search\nqueries = ['x']\n", "not valid TOML"),
        ("search = 3\n", "'search' must be a table"),
    ],
)
def test_invalid_job_files_name_the_key(tmp_path, text, message):
    from r2cli.errors import InputError
    from r2cli.app.jobs import load_job

    path = _write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_job(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_non_utf8_and_missing_job_files(tmp_path):
    from r2cli.errors import InputError
    from r2cli.app.jobs import load_job

    path = tmp_path / "latin.toml"
    path.write_bytes(b"[search]\nqueries = ['caf\xe9']\n")
    with pytest.raises(InputError, match=r"latin.toml:2: not valid UTF-8"):
        load_job(path)
    with pytest.raises(InputError, match="does not exist"):
        load_job(tmp_path / "nope.toml")


def test_relative_paths_and_defaults(tmp_path):
    from r2cli.app.jobs import load_job

    folder = tmp_path / "jobs"
    folder.mkdir()
    path = folder / "nightly.toml"
    path.write_text("[index]\npaths = ['../archive']\n[search]\nqueries_file = 'q.txt'\n", encoding="utf-8")
    job = load_job(path)
    assert job.name == "nightly" and job.steps() == ["index", "search"]
    index, search = job.options["index"], job.options["search"]
    assert index.paths == ((tmp_path / "archive").resolve(),)
    assert search.queries_file == (folder / "q.txt").resolve()
    assert search.top_k == 10 and search.format == "parquet" and index.features is True


def test_sample_job_is_valid_and_every_key_is_commented():
    """The sample job shows every key of every table it has, each under its help text."""
    from r2cli.app.jobs import JobOptions, load_job, step_module
    from r2cli.paths import jobs_dir

    sample = jobs_dir() / "sample.toml"
    job = load_job(sample)
    assert job.steps() == ["index", "search", "summarize", "cut", "report"]
    assert job.options["index"].paths[0].name == "sample_media"
    lines = sample.read_text(encoding="utf-8").splitlines()
    for section in ["job", *job.steps()]:
        cls = JobOptions if section == "job" else step_module(section).OPTIONS
        start = lines.index(f"[{section}]")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
        table = lines[start:end]
        for key in cls.job_keys():
            found = [i for i, line in enumerate(table) if line.lstrip("# ").startswith(f"{key} =")]
            assert found, f"jobs/sample.toml does not show [{section}].{key}"
            assert all(table[i - 1].startswith("# ") and " = " not in table[i - 1][:40] for i in found), \
                f"[{section}].{key} has no help comment above it"


def test_run_check_on_the_cli(capsys):
    from r2cli.cli.main import main
    from r2cli.paths import jobs_dir

    with pytest.raises(SystemExit) as caught:
        main(["run", str(jobs_dir() / "sample.toml"), "--check"])
    assert caught.value.code in (0, None)
    assert "valid; steps: index, search, summarize, cut" in capsys.readouterr().out


def test_cli_error_keeps_the_bracketed_table_name(tmp_path, capsys):
    from r2cli.cli.main import main

    path = _write(tmp_path, "[search]\nqueries = ['x']\ntop_k = 'ten'\n")
    with pytest.raises(SystemExit) as caught:
        main(["run", str(path), "--check"])
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert "[search].top_k must be an integer, got 'ten'" in " ".join(err.split())  # not eaten as rich markup
    assert "Traceback" not in err


def test_job_out_that_is_a_file_is_one_error(tmp_path):
    from r2cli.errors import InputError
    from r2cli.app.jobs import load_job, run_job
    from r2cli.paths import resolve_workspace

    (tmp_path / "taken").write_text("not a folder", encoding="utf-8")
    path = _write(tmp_path, "[job]\nout = 'taken'\n[index]\npaths = ['.']\nfeatures = false\n")
    with pytest.raises(InputError, match=r"\[job\]\.out .*taken: is a file, expected a folder"):
        run_job(load_job(path), resolve_workspace(tmp_path / "ws"))


def test_run_help_examples_name_real_job_files():
    import re

    from typer.testing import CliRunner

    from r2cli.cli.main import app
    from r2cli.paths import jobs_dir

    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    files = re.findall(r"r2cli run (\S+\.toml)", result.stdout)
    assert files
    for name in files:
        assert (jobs_dir().parent / name).is_file(), f"`r2cli run --help` shows {name}, which does not exist"


def test_check_names_inputs_that_do_not_exist(tmp_path):
    from r2cli.app.jobs import validate_job

    (tmp_path / "media").mkdir()
    path = _write(tmp_path, "[index]\npaths = ['media', 'gone']\n")
    with pytest.raises(InputError, match=r"\[index\]\.paths names .*gone, which does not exist"):
        validate_job(path)
    path = _write(tmp_path, "[index]\npaths = ['media']\n[search]\nqueries_file = 'q.txt'\n")
    with pytest.raises(InputError, match=r"\[search\]\.queries_file names .*q\.txt"):
        validate_job(path)
    (tmp_path / "q.txt").write_text("a red scene\n")
    assert validate_job(path).steps() == ["index", "search"]
