"""What a folder watch asks of the scan: files held while written, paths seen gone, one change per path (#20.1)."""

from __future__ import annotations

import os

import pytest

from r2cli.catalog.scan import PathChange, scan_archive
from r2cli.errors import UsageError


def _status(workspace) -> dict[str, str]:
    from catalogkit import catalog_rows

    return {path: status for path, status in catalog_rows(workspace, "SELECT path, status FROM videos")}


def test_held_files_are_not_read_and_not_swept(workspace, make_copy, tmp_path):
    archive = tmp_path / "archive"
    done, writing = make_copy(archive / "done.mp4", 1), make_copy(archive / "writing.mp4", 2)
    report = scan_archive([archive], workspace, hold=[str(writing)])
    assert (report.new, report.held, report.missing) == (1, 1, 0)
    assert report.changes == [PathChange(str(done), "new")]
    assert _status(workspace) == {str(done): "ok"}
    assert "held" not in report.to_dict() and "changes" not in report.to_dict()  # the JSON document keeps its keys

    report = scan_archive([archive], workspace)  # settled: the next scan takes it
    assert (report.new, report.unchanged, report.held) == (1, 1, 0)


def test_gone_paths_are_swept_without_a_walk(workspace, make_copy, tmp_path):
    archive = tmp_path / "archive"
    a, b = make_copy(archive / "sub" / "a.mp4", 1), make_copy(archive / "sub" / "b.mp4", 2)
    keep = make_copy(archive / "keep.mp4", 3)
    scan_archive([archive], workspace)
    os.remove(a)
    report = scan_archive([], workspace, gone=[str(a)])
    assert (report.seen, report.missing) == (0, 1)
    assert report.changes == [PathChange(str(a), "missing")]
    os.remove(b)
    os.rmdir(archive / "sub")
    report = scan_archive([], workspace, gone=[str(archive / "sub")])  # a folder: the rows under it
    assert [c.path for c in report.changes] == [str(b)]
    assert _status(workspace) == {str(a): "missing", str(b): "missing", str(keep): "ok"}
    with pytest.raises(UsageError, match="index needs at least one folder or file"):
        scan_archive([], workspace)


def test_a_renamed_file_is_a_move_with_its_old_path(workspace, make_copy, tmp_path):
    archive = tmp_path / "archive"
    old = make_copy(archive / "old.mp4", 1)
    scan_archive([archive], workspace)
    new = archive / "new name.mp4"
    os.rename(old, new)
    report = scan_archive([str(new)], workspace, gone=[str(old)])
    assert (report.moved, report.probed, report.missing) == (1, 0, 0)  # not probed again, not left missing
    assert report.changes == [PathChange(str(new), "moved", previous=str(old))]


def test_the_sweep_finds_rows_under_folders_with_like_wildcards_in_their_names(workspace, make_copy, tmp_path):
    """The sweep reads only the rows under its roots (SQL LIKE): '%', '_' and '\\' in a name are literal."""
    archive = tmp_path / "archive"
    odd = archive / "100%_done \\ [v2]"
    inside, sibling = make_copy(odd / "a.mp4", 1), make_copy(archive / "100%Xdone \\ [v2]" / "b.mp4", 2)
    scan_archive([archive], workspace)
    os.remove(inside)
    os.remove(sibling)
    report = scan_archive([], workspace, gone=[str(odd)])
    assert [c.path for c in report.changes] == [str(inside)] and report.missing == 1
    assert _status(workspace) == {str(inside): "missing", str(sibling): "ok"}
