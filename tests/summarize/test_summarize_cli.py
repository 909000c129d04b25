"""`r2cli summarize` from the command line: tables, JSON and every bad-input case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r2cli.errors import InputError, UsageError
from r2cli.app.summarize import summarize
from r2cli.summary.stages import check_budget


@pytest.fixture
def model_args(head_path, tiny_clip_path):
    return ("--checkpoint", head_path, "--clip-weights", tiny_clip_path, "--device", "cpu")


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--ratio", "0.2", "--seconds", "5"), "give exactly one of --ratio or --seconds"),
        ((), "give exactly one of --ratio or --seconds"),
        (("--ratio", "1.5"), "--ratio must be in (0, 1], got 1.5"),
        (("--ratio", "0"), "--ratio must be in (0, 1], got 0.0"),
        (("--seconds", "-3"), "--seconds must be > 0, got -3.0"),
        (("--ratio", "0.2", "--format", "csv"), "--format must be one of parquet, official, got 'csv'"),
        (("--ratio", "0.2", "--query", "  "), "--query must not be empty"),
        (("--ratio", "0.2", "--shots", "scenes"), "--shots must be one of kts, threshold, got 'scenes'"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(cli, archive, flags, message):
    code, out, err = cli("summarize", *flags, "--workspace", archive.workspace.root)
    assert code == 2, err
    assert message in " ".join(err.split())
    assert "Traceback" not in err and out == ""


def test_budget_rules_in_the_library():
    with pytest.raises(UsageError, match=r"--ratio must be in \(0, 1\], got 1.5"):
        check_budget(1.5, None)
    with pytest.raises(UsageError, match="exactly one"):
        check_budget(None, None)
    with pytest.raises(UsageError, match="--ratio must be a number"):
        check_budget(True, None)
    check_budget(1.0, None)
    check_budget(None, 0.5)


def test_unknown_videos_are_all_named(cli, archive, model_args):
    code, _, err = cli("summarize", "scenes.mp4", "nope.mp4", "42", "--ratio", "0.2", *model_args,
                       "--workspace", archive.workspace.root)
    assert code == 1
    text = " ".join(err.split())
    assert "unknown videos 'nope.mp4', '42'" in text and "scenes.mp4" not in text


def test_videos_without_features_are_named_skipped_and_counted(cli, archive, model_args, tmp_path):
    code, out, err = cli("summarize", "unextracted.mp4", "scenes.mp4", "--ratio", "0.2", "--json", *model_args,
                         "--out", tmp_path / "run", "--workspace", archive.workspace.root)
    assert code == 0, err
    data = json.loads(out)
    assert data["counts"]["videos_selected"] == 2 and data["counts"]["videos_skipped"] == 1
    assert data["counts"]["videos_summarized"] == 1
    assert [Path(s["path"]).name for s in data["skipped"]] == ["unextracted.mp4"]
    assert "no features" in data["skipped"][0]["reason"]
    assert any("unextracted.mp4" in w for w in data["warnings"])

    with pytest.raises(InputError, match=r"none of the 1 selected videos can be summarized \(no features"):
        summarize(archive.workspace, (str(archive.unextracted),), ratio=0.2, checkpoint=model_args[1],
                  clip_weights=str(model_args[3]), device="cpu")


def test_missing_catalog_is_one_line(cli, tmp_path, model_args):
    code, _, err = cli("summarize", "--ratio", "0.2", *model_args, "--workspace", tmp_path / "empty")
    assert code == 5 and "r2cli index" in err


def test_table_shows_each_video_with_its_budget(cli, archive, model_args, tmp_path, monkeypatch):
    from r2cli.cli._common import console

    monkeypatch.setattr(console, "width", 200)  # one table row per line
    code, out, err = cli("summarize", "scenes.mp4", "holiday_trip-2019.mp4", "--seconds", "6", *model_args,
                         "--out", tmp_path / "run", "--workspace", archive.workspace.root)
    assert code == 0, err
    text = " ".join(out.split())
    for expected in ("scenes.mp4", "holiday_trip-2019.mp4", "(title)", "(file name)", "0:06.0", "0:30.0",
                     "2 videos summarized", str(tmp_path / "run")):
        assert expected in text, expected
    from r2cli.outputs import read_results

    frame = read_results(tmp_path / "run" / "summary.parquet").df
    for path, rows in frame.groupby("path"):  # "selected" column: chosen of all segments of the video
        row = next(line for line in out.splitlines() if Path(path).name in line)
        assert f"{int(rows['selected'].sum())}/{len(rows)}" in row


def test_json_document(cli, archive, model_args, tmp_path):
    code, out, err = cli("summarize", str(archive.long), "--ratio", "0.25", "--query", "a walk in the snow",
                         "--json", *model_args, "--out", tmp_path / "run", "--format", "official",
                         "--workspace", archive.workspace.root)
    assert code == 0, err
    data = json.loads(out)
    assert set(data["files"]) == {"summary", "official", "manifest"}
    (video,) = data["videos"]
    assert (video["query"], video["query_source"], video["clips"]) == ("a walk in the snow", "--query", 32)
    assert video["budget_s"] == pytest.approx(16.0) and 0 < video["selected_s"] <= 16.0
    assert sum(b - a for a, b in video["selected"]) == pytest.approx(video["selected_s"])
    assert data["reel"] is None and data["resumed"] is False


def test_help_has_an_example(cli):
    code, out, _ = cli("summarize", "--help")
    assert code == 0
    assert "Example" in out and "--ratio" in out and "--reel" in out


def test_a_preset_without_checkpoint_asks_for_its_pretrained_head(cli, archive, tiny_clip_path):
    """Offline (the test environment), the tvsum_bk head is not cached: one line says which file is missing."""
    code, _, err = cli("summarize", "scenes.mp4", "--ratio", "0.2", "--preset", "tvsum_bk",
                       "--clip-weights", tiny_clip_path, "--device", "cpu", "--workspace", archive.workspace.root)
    assert code == 4, err
    assert "tvsum_bk" in err and len(err.strip().splitlines()) == 1


def test_out_that_is_a_file_is_one_error_line(cli, archive, model_args, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("not a folder", encoding="utf-8")
    code, out, err = cli("summarize", "scenes.mp4", "--ratio", "0.5", *model_args, "--out", taken,
                         "--workspace", archive.workspace.root)
    assert code == InputError.exit_code, err
    assert "--out" in err and "is a file, expected a folder" in " ".join(err.split())
    assert "Traceback" not in err


def test_table_shows_queries_literally(cli, archive, model_args, tmp_path, monkeypatch):
    from r2cli.cli._common import console

    monkeypatch.setattr(console, "width", 200)
    code, out, err = cli("summarize", "scenes.mp4", "--ratio", "0.5", "--query", "[red]the snow[/red]", *model_args,
                         "--out", tmp_path / "run", "--workspace", archive.workspace.root)
    assert code == 0, err
    assert "[red]the snow[/red]" in out  # rich markup in user text is shown, not interpreted
