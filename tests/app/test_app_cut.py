"""The cut use case: CutOptions owns defaults and rules; `r2cli cut RESULTS` works as the README
shows it; the report says what was written; the summary table at 80 columns (real ffmpeg)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from r2cli.app.cut import FORMATS, OPTIONS, CutOptions
from r2cli.app.options import cli_namer
from r2cli.errors import InputError, UsageError
from r2cli.media.timeline import TIMELINE_FORMATS
from r2cli.outputs import write_table


@pytest.fixture(scope="module")
def source_video(ffmpeg, tmp_path_factory):
    """8 s, 25 fps, 160x120, three coloured scenes, 440 Hz audio, keyframe every 25 frames."""
    from fixtures import make_video

    return make_video(tmp_path_factory.mktemp("sources") / "source.mp4", seconds=8, fps=25,
                      colors=("red", "green", "blue"), audio=True, gop=25)


@pytest.fixture(scope="module")
def silent_video(ffmpeg, tmp_path_factory):
    """4 s, 30 fps, 320x240, no audio."""
    from fixtures import make_video

    return make_video(tmp_path_factory.mktemp("sources") / "silent clip.mp4", seconds=4, width=320, height=240, fps=30)


def cli(*args: str) -> int:
    """Run `r2cli ARGS` in this process; its exit code."""
    from r2cli.cli.main import main

    try:
        main(list(args))
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0


def moments(path: Path, rows) -> Path:
    return write_table(
        "moments",
        [
            {"run_id": "r", "query_id": "q1" if query == "red" else "q2", "query": query, "video_id": None,
             "path": str(src), "start_s": a, "end_s": b, "score": 1.0 - i / 10, "rank_in_query": i + 1,
             "rank_in_video": 1, "model": "m", "preset": None}
            for i, (src, a, b, query) in enumerate(rows)
        ],
        path,
    )


def test_options_own_the_defaults_and_rules():
    assert OPTIONS is CutOptions and CutOptions.section == "cut"
    assert FORMATS == ("media", *TIMELINE_FORMATS)
    defaults = CutOptions.defaults()
    assert defaults["pad"] == 0.0 and defaults["format"] == "media" and defaults["source"] == "search"
    assert defaults["top"] is None and defaults["out"] is None and defaults["template"] == "{video}-{query}-{rank}.mp4"
    assert "results" not in CutOptions.job_keys() and "force" not in CutOptions.job_keys()
    assert {"out", "top", "min_score", "pad", "copy", "concat", "template", "format", "jobs", "source"} <= set(
        CutOptions.job_keys())
    assert CutOptions.from_flags(results=Path("r/m.parquet")).out_dir() == Path("r/clips")
    assert CutOptions.from_flags(results=Path("m.parquet"), out=Path("x")).out_dir() == Path("x")


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"format": "gif"}, f"--format must be {', '.join(FORMATS[:-1])} or {FORMATS[-1]}, got 'gif'"),
        ({"pad": -1.0}, "--pad must be >= 0, got -1.0"),
        ({"top": 0}, "--top must be >= 1, got 0"),
        ({"jobs": 0}, "--jobs must be >= 1, got 0"),
        ({"template": "{path}.mp4"}, "--template field {path} is not known; use {video}, {query}, {rank}, {start}, "
                                     "{end}, {index}, {score}, {video_id}, {query_id}, got '{path}.mp4'"),
        ({"copy": True, "concat": Path("r.mp4")}, "--copy cannot be combined with --concat (reels are always cut "
                                                  "accurately)"),
        ({"concat": Path("r.mp4"), "format": "edl"}, "--concat makes a media reel; it cannot be combined with "
                                                     "--format edl"),
    ],
)
def test_flag_rules_name_the_flag(flags, message):
    with pytest.raises(UsageError) as info:
        CutOptions.from_flags(results=Path("m.parquet"), **flags)
    assert str(info.value) == message


def test_job_table_rules_name_the_file_and_key(tmp_path):
    where = "jobs/x.toml: [cut]"
    with pytest.raises(InputError, match=r"jobs/x\.toml: \[cut\]\.source must be search or summarize, got 'index'"):
        CutOptions.from_table({"source": "index"}, where=where, base=tmp_path)
    with pytest.raises(InputError, match=r"unknown key 'padding'; known keys: out, top, min_score, pad"):
        CutOptions.from_table({"padding": 1.0}, where=where, base=tmp_path)
    options = CutOptions.from_table({"out": "clips", "pad": 1, "format": "otio"}, where=where, base=tmp_path)
    assert options.out == (tmp_path / "clips").resolve() and options.pad == 1.0 and options.format == "otio"
    assert cli_namer(CutOptions)("min_score") == "--min-score"


def test_cut_without_out_writes_next_to_the_results(source_video, tmp_path, monkeypatch, capsys):
    """The README's `r2cli cut RESULTS.parquet` works as written: clips go to RESULTS' folder/clips."""
    run = tmp_path / "runs" / "run-1"
    run.mkdir(parents=True)
    path = moments(run / "moments.parquet", [(source_video, 1.0, 2.0, "red")])
    monkeypatch.chdir(tmp_path)
    assert cli("cut", str(path)) == 0
    assert sorted(p.name for p in (run / "clips").iterdir()) == [".r2cli-output", "source-red-1.mp4"]
    assert "1 written, 0 skipped, 0 failed" in capsys.readouterr().out


def test_timeline_report_says_one_timeline(source_video, silent_video, tmp_path, capsys):
    path = moments(tmp_path / "moments.parquet",
                   [(source_video, 1.0, 2.5, "red"), (silent_video, 0.5, 1.7, "dark"), (source_video, 9.0, 9.5, "red")])
    assert cli("cut", str(path), "--format", "edl", "--out", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert out == f"wrote 1 timeline (edl) with 2 event(s): {tmp_path / 'out' / 'moments.edl'}; 1 row(s) skipped\n"
    # .r2cli-written: the ledger of the text outputs r2cli wrote there (r2cli/ownership.py)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".r2cli-output", ".r2cli-written", "moments.edl"]


EXPECTED_TABLE = """\
                         3 clip(s) in clips                          
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━┓
┃ clip                          ┃ source          ┃ start s ┃ end s ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━┩
│ source-red-1.mp4              │ source.mp4      │   1.000 │ 2.500 │
│ source-red-3.mp4              │ source.mp4      │   4.020 │ 6.000 │
│ silent-clip-a-dark-room-2.mp4 │ silent clip.mp4 │   0.500 │ 1.700 │
└───────────────────────────────┴─────────────────┴─────────┴───────┘
3 written, 1 skipped, 0 failed (reencode, 2 job(s))
"""


def test_cut_summary_table_at_80_columns(source_video, silent_video, tmp_path, monkeypatch, capsys):
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.copyfile(source_video, archive / "source.mp4")
    shutil.copyfile(silent_video, archive / "silent clip.mp4")
    moments(tmp_path / "moments.parquet", [
        (archive / "source.mp4", 1.0, 2.5, "red"),
        (archive / "silent clip.mp4", 0.5, 1.7, "a dark room"),
        (archive / "source.mp4", 4.02, 6.0, "red"),
        (archive / "source.mp4", 9.0, 10.0, "red"),  # past the end of the 8 s video: skipped
    ])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    assert cli("cut", "moments.parquet", "--jobs", "2") == 0
    captured = capsys.readouterr()
    assert captured.out == EXPECTED_TABLE
    assert captured.err.splitlines() == [
        f"warning: skipped moments.parquet row 4: {archive / 'source.mp4'} [9.000-10.000 s]: outside the video "
        "(0-8.040 s)"]


LONG_NAMES_TABLE = """\
2 clip(s) in clips
source                                           start s  end s
    clip
the evening news from the harbour, part one.mp4    1.000  2.500
    the-evening-news-from-the-harbour-part-one-a-red-boat-leaves-the-harbour-1.mp4
the evening news from the harbour, part one.mp4    4.020  6.000
    the-evening-news-from-the-harbour-part-one-a-red-boat-leaves-the-harbour-2.mp4
2 written, 0 skipped, 0 failed (reencode, 2 job(s))
"""


def test_cut_table_keeps_long_clip_names_whole_at_80_columns(source_video, tmp_path, monkeypatch, capsys):
    """Clip names longer than a table column go whole on their own lines, so two clips can be told apart (#22)."""
    source = tmp_path / "archive" / "the evening news from the harbour, part one.mp4"
    source.parent.mkdir()
    shutil.copyfile(source_video, source)
    query = "a red boat leaves the harbour"
    path = moments(tmp_path / "moments.parquet", [(source, 1.0, 2.5, query), (source, 4.02, 6.0, query)])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    assert cli("cut", path.name, "--jobs", "2") == 0
    out = capsys.readouterr().out
    assert out == LONG_NAMES_TABLE
    assert sorted(p.name for p in (tmp_path / "clips").glob("*.mp4")) == [
        line.strip() for line in out.splitlines() if line.startswith("    the-")]
