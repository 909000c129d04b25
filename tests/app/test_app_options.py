"""The options contract: defaults, rules and job-table parsing are defined once, on the fields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from r2cli.app.options import Options, device_rule, name_rule, option
from r2cli.errors import InputError, UsageError


@dataclass(frozen=True)
class _Demo(Options):
    section = "demo"
    top_k: int = option(10, help="Moments per query.", minimum=1)
    ratio: float | None = option(None, help="Budget as a fraction.", above=0, maximum=1)
    window: float | None = option(None, help="Window length (s).", above=0)
    stride: float | None = option(None, help="Stride (s).", above=0)
    device: str = option("auto", help="Where models run.", check=device_rule)
    format: str = option("parquet", help="Output format.", choices=("parquet", "official"))
    videos: tuple[str, ...] = option((), help="Video filters.")
    queries_file: Path | None = option(None, help="Query file.")
    name: str | None = option(None, help="A name.", check=name_rule)
    resume: bool = option(True, help="Reuse outputs.", job=False)

    def check(self):
        if self.window is not None and self.stride is not None and self.stride > self.window:
            return ("stride", "window"), "{0} must not exceed {1}"
        return None


def test_flags_keep_defaults_for_unset_values():
    options = _Demo.from_flags(top_k=None, ratio=0.5, videos=["a", "b"])
    assert options.top_k == 10 and options.ratio == 0.5 and options.videos == ("a", "b")


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"top_k": 0}, "--top-k must be >= 1, got 0"),
        ({"ratio": 1.5}, "--ratio must be in (0, 1], got 1.5"),
        ({"ratio": 0.0}, "--ratio must be in (0, 1], got 0.0"),
        ({"device": "gpu"}, "--device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
        ({"format": "csv"}, "--format must be one of parquet, official, got 'csv'"),
        ({"window": 10.0, "stride": 20.0}, "--stride must not exceed --window"),
        ({"name": "../../escape"}, "--name must be a name (no '/', '\\', '..' or control characters), not a path, got '../../escape'"),
    ],
)
def test_flag_rules_name_the_flag(flags, message):
    with pytest.raises(UsageError) as caught:
        _Demo.from_flags(**flags)
    assert str(caught.value) == message


def test_table_types_paths_and_rules(tmp_path: Path):
    options = _Demo.from_table({"top_k": 3, "queries_file": "q.txt", "videos": "one.mp4"},
                               where="job.toml: [demo]", base=tmp_path)
    assert options.top_k == 3
    assert options.queries_file == (tmp_path / "q.txt").resolve()
    assert options.videos == ("one.mp4",)
    assert options.resume is True


@pytest.mark.parametrize(
    "table, message",
    [
        ({"top_k": "3"}, "job.toml: [demo].top_k must be an integer, got '3'"),
        ({"top_k": 0}, "job.toml: [demo].top_k must be >= 1, got 0"),
        ({"ratio": True}, "job.toml: [demo].ratio must be a number, got True"),
        ({"resume": False}, "job.toml: [demo] has unknown key 'resume'; known keys: top_k, ratio, window, stride, "
                            "device, format, videos, queries_file, name"),
        ({"window": 5, "stride": 6}, "job.toml: [demo].stride must not exceed [demo].window"),
    ],
)
def test_table_errors_name_file_and_key(table, message, tmp_path: Path):
    with pytest.raises(InputError) as caught:
        _Demo.from_table(table, where="job.toml: [demo]", base=tmp_path)
    assert str(caught.value) == message


def test_help_appends_the_default_once():
    assert _Demo.help("top_k") == "Moments per query. Default: 10."
    assert _Demo.help("ratio") == "Budget as a fraction."
    assert _Demo.job_keys()[-1] == "name"
