"""No r2cli output ever replaces a video of the catalog, with or without --force; outputs are marked
so that `r2cli index` can skip them (real catalog scan, real ffmpeg)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from r2cli.catalog.guards import catalogued_folder_above, source_video_paths
from r2cli.errors import UsageError
from r2cli.media.clips import cut_segments
from r2cli.media.naming import OUTPUT_COMMENT, OUTPUT_MARKER
from r2cli.media.reels import make_reel
from r2cli.media.segments import Segment
from r2cli.outputs import write_table
from r2cli.paths import resolve_workspace


@pytest.fixture
def archive(source_video, tmp_path):
    """Two catalogued copies of the 8 s source in ``archive/`` (the real scan, no features)."""
    from r2cli.catalog.scan import scan_archive

    folder = tmp_path / "archive"
    folder.mkdir()
    first, second = folder / "first.mp4", folder / "second.mp4"
    shutil.copyfile(source_video, first)
    shutil.copyfile(source_video, second)
    with open(second, "ab") as handle:  # other bytes, same video: a second catalog row
        handle.write(b"\x00\x00\x00\x10freer2cli-test")
    workspace = resolve_workspace(tmp_path / "ws")
    report = scan_archive([folder], workspace)
    assert report.new == 2
    return workspace, first, second


def _moments(path: Path, source: Path) -> Path:
    rows = [{"run_id": "r", "query_id": "q1", "query": "red", "video_id": 1, "path": str(source), "start_s": 1.0,
             "end_s": 2.0, "score": 1.0, "rank_in_query": 1, "rank_in_video": 1, "model": "m", "preset": None}]
    return write_table("moments", rows, path)


def _cut(*args: str):
    from r2cli.cli.main import main

    try:
        main(["cut", *args])
    except SystemExit as exit:
        return exit.code
    return 0


def test_guard_finds_catalogued_videos_by_path_symlink_and_hard_link(archive, tmp_path):
    workspace, first, second = archive
    link = tmp_path / "elsewhere" / "hard.mp4"
    link.parent.mkdir()
    os.link(second, link)
    symlink = tmp_path / "elsewhere" / "soft.mp4"
    symlink.symlink_to(first)
    other = tmp_path / "elsewhere" / "other.mp4"
    shutil.copyfile(first, other)  # same bytes, another file: not a catalogued video
    candidates = [str(first), str(link), str(symlink), str(other), str(tmp_path / "missing.mp4")]
    assert source_video_paths(workspace, candidates) == {str(first), str(link), str(symlink)}
    assert source_video_paths(resolve_workspace(tmp_path / "no-catalog"), candidates) == set()
    assert catalogued_folder_above(workspace, first.parent / "clips" / "deeper") == first.parent
    assert catalogued_folder_above(workspace, tmp_path / "elsewhere") is None


def test_concat_force_never_replaces_another_catalogued_video(archive, tmp_path, capsys):
    workspace, first, second = archive
    before = second.read_bytes()
    results = _moments(tmp_path / "moments.parquet", first)
    code = _cut(str(results), "--concat", str(second), "--force", "--workspace", str(workspace.root))
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --concat {second} is one of the source videos; an input is never an output")
    assert second.read_bytes() == before
    # through a hard link elsewhere too
    link = tmp_path / "link.mp4"
    os.link(second, link)
    assert _cut(str(results), "--concat", str(link), "--force", "--workspace", str(workspace.root)) == 2
    assert second.read_bytes() == before


def test_summarize_reel_path_is_guarded_the_same_way(archive, tmp_path):
    """``summarize --reel`` renders with ``make_reel``; given the catalog guard it refuses the same way."""
    workspace, first, second = archive
    before = second.read_bytes()
    with pytest.raises(UsageError, match="is one of the source videos"):
        make_reel([Segment(str(first), 1.0, 2.0)], second, force=True, flag="--reel",
                  protected=lambda paths: source_video_paths(workspace, paths))
    assert second.read_bytes() == before


def test_clip_names_never_replace_a_catalogued_video_and_cutting_into_the_archive_warns(archive, tmp_path, capsys):
    workspace, first, second = archive
    before = second.read_bytes()
    results = _moments(tmp_path / "moments.parquet", first)
    code = _cut(str(results), "--out", str(second.parent), "--template", "second.mp4", "--force",
                "--workspace", str(workspace.root), "--json")
    assert code == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["counts"] == {"written": 0, "skipped": 1, "failed": 0}
    assert "is a source video" in data["clips"][0]["reason"]
    assert second.read_bytes() == before
    assert "catalogued videos" not in captured.err  # nothing was written

    code = _cut(str(results), "--out", str(second.parent), "--workspace", str(workspace.root))
    assert code == 0 and (second.parent / "first-red-1.mp4").is_file()
    assert f"warning: {second.parent} holds catalogued videos; r2cli marked its outputs" in capsys.readouterr().err
    assert not (second.parent / OUTPUT_MARKER).exists()  # an existing archive folder is never marked


def test_outputs_are_tagged_and_new_folders_marked(source_video, tmp_path):
    out = tmp_path / "new" / "clips"
    report = cut_segments([Segment(str(source_video), 1.0, 2.0)], out, copy=True)
    reel = make_reel([Segment(str(source_video), 1.0, 2.0)], tmp_path / "reels" / "reel.mkv")
    assert (tmp_path / "new" / OUTPUT_MARKER).is_file() and (out / OUTPUT_MARKER).is_file()
    assert (tmp_path / "reels" / OUTPUT_MARKER).is_file() and not (tmp_path / OUTPUT_MARKER).exists()
    for media in (report.written[0].output, reel.reel):
        tags = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags=comment", "-of", "json", media],
                              capture_output=True, text=True, check=True)
        found = {k.lower(): v for k, v in json.loads(tags.stdout)["format"]["tags"].items()}  # Matroska: COMMENT
        assert found["comment"] == OUTPUT_COMMENT
