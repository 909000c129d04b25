"""File names the catalog cannot store are named and skipped, never a traceback (both back-ends)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_name_that_is_not_utf8_is_ignored_with_the_reason(workspace, tmp_path, ffmpeg):
    from r2cli.catalog.scan import scan_archive

    archive = tmp_path / "archive"
    archive.mkdir()
    sample = REPO / "sample_media" / "red_then_blue_cut.mp4"
    shutil.copy(sample, archive / "fine.mp4")
    shutil.copy(sample, os.path.join(os.fsencode(archive), b"caf\xe9.mp4"))  # Latin-1 bytes, as old NAS shares have
    report = scan_archive([str(archive)], workspace)
    assert (report.new, report.errors, report.ignored) == (1, 0, 1)
    (ignored,) = report.ignored_paths
    assert ignored.path == f"{archive}/caf\\xe9.mp4"
    assert ignored.error.startswith("the file name is not valid UTF-8, so the catalog cannot store it")
    again = scan_archive([str(archive)], workspace)
    assert (again.unchanged, again.ignored) == (1, 1)
