"""The lifecycle search, summarize, search by picture and duplicates share (``r2cli.app.model_run``, #23):
options declared once, window rules written once and named as the user wrote them, small functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from r2cli.errors import InputError, UsageError


def test_shared_option_fields_are_declared_once():
    from r2cli.app.duplicates import DuplicatesOptions
    from r2cli.app.model_run import ModelRunOptions
    from r2cli.app.options import RunFolderOptions
    from r2cli.app.search import SearchOptions
    from r2cli.app.summarize import SummarizeOptions

    shared = ModelRunOptions.specs()
    assert {"videos", "min_duration", "out", "report", "checkpoint", "window", "stride", "ray"} <= set(shared)
    reworded = {"videos", "preset", "checkpoint", "format"}  # summarize says these its own way
    for name, spec in shared.items():
        assert SearchOptions.specs()[name] is spec, name
        if name not in reworded:
            assert SummarizeOptions.specs()[name] is spec, name
        else:  # same default and rule, other words
            own = SummarizeOptions.specs()[name]
            assert (own.minimum, own.maximum, own.choices, own.check) == (spec.minimum, spec.maximum, spec.choices,
                                                                          spec.check), name
            assert SummarizeOptions.default(name) == ModelRunOptions.default(name), name
    for name, spec in RunFolderOptions.specs().items():
        assert DuplicatesOptions.specs()[name] is spec, name
    assert SummarizeOptions.specs()["videos"].flag == "VIDEO" and SearchOptions.specs()["videos"].flag == "--video"


def test_the_video_filter_and_its_rule_are_shared():
    from r2cli.app.duplicates import DuplicatesOptions
    from r2cli.app.summarize import SummarizeOptions

    with pytest.raises(UsageError, match=r"^--min-duration \(5\) must not exceed --max-duration \(2\)$"):
        DuplicatesOptions.from_flags(min_duration=5.0, max_duration=2.0)
    options = SummarizeOptions.from_flags(ratio=0.5, videos=("a*.mp4",), path_contains="x")
    assert options.video_filter().patterns == ("a*.mp4",) and options.video_filter().path_contains == "x"


def _preset(name: str = "qvhighlights"):
    from r2cli.model import load_preset

    return load_preset(name)


def test_a_stride_beyond_the_presets_window_names_the_flag():
    from r2cli.app.model_run import resolve_windows
    from r2cli.app.search import SearchOptions

    options = SearchOptions.from_flags(queries=("x",), stride=200.0)  # the preset's window: 150 s
    with pytest.raises(UsageError) as caught:
        resolve_windows(_preset(), options)
    assert str(caught.value) == "--stride (200 s) must not exceed the window of preset qvhighlights (150 s)"
    with pytest.raises(UsageError, match=r"^--window must cover at least 8 clips \(16 s at 0.5 fps\), got 10 s$"):
        resolve_windows(_preset(), SearchOptions.from_flags(queries=("x",), window=10.0))


def test_a_stride_from_a_job_file_names_the_file_and_key(tmp_path):
    from r2cli.app.model_run import resolve_windows
    from r2cli.app.summarize import SummarizeOptions

    options = SummarizeOptions.from_table({"ratio": 0.5, "stride": 200}, where="job.toml: [summarize]", base=tmp_path)
    options = options.replace(out=tmp_path / "out")  # a copy remembers where its values came from
    with pytest.raises(InputError) as caught:
        resolve_windows(_preset(), options)
    assert str(caught.value) == ("job.toml: [summarize].stride (200 s) must not exceed the window of preset "
                                 "qvhighlights (150 s)")
    options = SummarizeOptions.from_table({"ratio": 0.5, "window": 10}, where="job.toml: [summarize]", base=tmp_path)
    with pytest.raises(InputError, match=r"^job.toml: \[summarize\].window must cover at least 8 clips"):
        resolve_windows(_preset(), options)


def test_windows_longer_than_the_model_takes_are_cut_to_1024_clips():
    from r2cli.app.model_run import resolve_windows
    from r2cli.app.summarize import SummarizeOptions
    from r2cli.inference.windows import MAX_WINDOW_CLIPS

    windows = resolve_windows(_preset(), SummarizeOptions.from_flags(ratio=0.5, window=4000.0))
    assert (windows.asked_clips, windows.window_clips, windows.stride_clips) == (2000, MAX_WINDOW_CLIPS, 1000)
    assert windows.record()["window_source"] == "options"
    assert windows.cut_warning(longest_clips=900) is None  # no video is longer than a window: nothing cut
    assert windows.cut_warning(longest_clips=3000) == (
        "--window 4000 s is 2000 clips at 0.5 fps; the model takes at most 1024, so longer videos are grounded "
        "in windows of 1024 clips")
    within = resolve_windows(_preset(), SummarizeOptions.from_flags(ratio=0.5))
    assert (within.window_clips, within.stride_clips) == (75, 38) and within.cut_warning(10_000) is None


def test_use_case_functions_stay_short():
    """No function of the run use cases grows past 100 lines again (#23: the lifecycle is shared)."""
    app = Path(__file__).resolve().parents[2] / "r2cli" / "app"
    long = []
    for name in ("search.py", "summarize.py", "search_visual.py", "duplicates.py", "model_run.py",
                 "search_common.py"):
        for node in ast.walk(ast.parse((app / name).read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 100:
                long.append(f"{name}: {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long
