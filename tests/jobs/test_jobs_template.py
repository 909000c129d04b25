"""The template and jobs/sample.toml show real defaults, or describe a key without a value (#22.15)."""

from __future__ import annotations

import re

from r2cli.app.jobs import JobOptions, commented_key, job_template, step_module


def _cls(section: str):
    return JobOptions if section == "job" else step_module(section).OPTIONS


def test_no_placeholder_reads_as_a_recommendation():
    text = job_template()
    for section, key, value in (("index", "batch_size", "<integer>"), ("search", "candidates", "<integer>"),
                                ("search", "min_score", "<number>"), ("cut", "jobs", "<integer>"),
                                ("search", "checkpoint", "<text>"), ("job", "out", "<path>"),
                                ("index", "paths", "[<path>, ...]")):
        block = text.split(f"# [{section}]\n", 1)[1].split("\n# [", 1)[0]
        assert f"\n# {key} = {value}\n" in block, (section, key)
    assert "\n# top_k = 10\n" in text  # a real default is shown as itself
    for section in ("job", "index", "search", "summarize", "cut", "report"):
        cls = _cls(section)
        for key in cls.job_keys():
            shown = commented_key(cls, key)[1].split(" = ", 1)[1]
            assert (shown.startswith(("<", "[<")) if cls.default(key) is None else not shown.startswith("<")), key


def test_sample_job_shows_each_kept_default_as_the_template_does():
    from r2cli.paths import jobs_dir

    section = None
    lines = (jobs_dir() / "sample.toml").read_text(encoding="utf-8").splitlines()
    compared = 0
    for number, line in enumerate(lines):
        header = re.match(r"^\[(\w+)\]$", line)
        if header:
            section = header.group(1)
        key = re.match(r"^# (\w+) = ", line)
        if section and key and key.group(1) in _cls(section).job_keys():
            assert lines[number - 1:number + 1] == commented_key(_cls(section), key.group(1)), \
                f"jobs/sample.toml:{number + 1}: [{section}].{key.group(1)} differs from `r2cli run --template`"
            compared += 1
    assert compared > 30
