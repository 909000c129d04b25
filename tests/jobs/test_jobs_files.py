"""Job files, the parts the runner owns: tables, the [job] table, names that are not paths."""

from __future__ import annotations

import pytest

from r2cli.errors import InputError


def _write(tmp_path, text: str, name: str = "job.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[serch]\nqueries = ['x']\n", "unknown table [serch]; known tables: job, index, search, summarize, duplicates, cut, report"),
        ("[job]\nname = 'x'\n", "the job has no step; add one of the tables [index], [search], [summarize], [duplicates], [cut], [report]"),
        ("[search\nqueries = ['x']\n", "not valid TOML"),
        ("search = 3\n", "'search' must be a table ([search]), got int"),
        ("[job]\nname = '../../../escape'\n[index]\npaths = ['a']\n",
         "[job].name must be a name (no '/', '\\', '..' or control characters), not a path, got '../../../escape'"),
        ("[job]\nname = '..'\n[index]\npaths = ['a']\n", "[job].name must be a name"),
        ("[job]\nnmae = 'x'\n[index]\npaths = ['a']\n", "[job] has unknown key 'nmae'; known keys: name, workspace, out"),
    ],
)
def test_invalid_job_files_name_the_file_and_key(tmp_path, text, message):
    from r2cli.app.jobs import load_job

    path = _write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_job(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path))


def test_non_utf8_and_missing_job_files(tmp_path):
    from r2cli.app.jobs import load_job

    path = tmp_path / "latin.toml"
    path.write_bytes(b"[search]\nqueries = ['caf\xe9']\n")
    with pytest.raises(InputError, match=r"latin.toml:2: not valid UTF-8"):
        load_job(path)
    with pytest.raises(InputError, match="does not exist"):
        load_job(tmp_path / "nope.toml")


def test_job_names_stay_inside_runs(tmp_path):
    """A job named like a path was written outside runs/ (issue #14); now only names are accepted."""
    from r2cli.app.jobs import job_out_dir, load_job
    from r2cli.paths import resolve_workspace

    (tmp_path / "archive").mkdir()
    job = load_job(_write(tmp_path, "[job]\nname = 'nightly run'\n[index]\npaths = ['archive']\n"))
    workspace = resolve_workspace(tmp_path / "ws")
    out = job_out_dir(job, workspace)
    assert out.parent == workspace.runs_dir and out.name == "job-nightly run"


def test_template_lists_every_key_and_loads_back(tmp_path):
    """`r2cli run --template` is built from the options classes; uncommenting keys gives a valid file."""
    from r2cli.app.steps import JOB_STEPS
    from r2cli.app.jobs import job_template, load_job, step_module

    text = job_template()
    for section in JOB_STEPS:
        assert f"\n# [{section}]\n" in text
        for key in step_module(section).OPTIONS.job_keys():
            assert f"\n# {key} = " in text.split(f"# [{section}]", 1)[1]
    # the template is all comments: valid TOML with no step to run
    with pytest.raises(InputError, match="the job has no step"):
        load_job(_write(tmp_path, text, "template.toml"))
