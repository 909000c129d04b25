"""A full disk during `search`, in a real process (#18.8): the one error line is all stderr holds,
including what Python prints at exit. An unclosed ParquetWriter used to add an ``Exception ignored in
ParquetWriter.__del__`` traceback after the error line, and a disk too full for the --out lock file's
one line gave a traceback from ``RunFolder``. Real small tmpfs mounts (root only; skipped elsewhere)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fixtures import ArchiveVideo, build_archive, random_features
import pytest

REPO = Path(__file__).resolve().parents[2]

# (tmpfs KiB, KiB filled before the run, --query-batch): each failed one of the ways above before the fix
CASES = [(64, 50, 8), (96, 80, 8), (256, 240, 2), (64, 62, 40)]


def _mount_tmpfs(folder: Path, size_kb: int) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


def test_full_disk_search_process_prints_one_line(workspace, tiny_tower, tiny_clip_path, random_head_path,
                                                  tmp_path):
    if not _mount_tmpfs(tmp_path / "probe", 64):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    subprocess.run(["umount", "-l", str(tmp_path / "probe")], check=False)
    build_archive(workspace, tiny_tower, [ArchiveVideo("a.mp4", random_features(40, 0)),
                                          ArchiveVideo("b.mp4", random_features(30, 1))])
    queries = tmp_path / "queries.txt"
    queries.write_text("".join(f"scene {i}\n" for i in range(40)))
    env = dict(os.environ, PYTHONPATH=str(REPO), R2CLI_NO_PROGRESS="1")
    for size_kb, fill_kb, batch in CASES:
        disk = tmp_path / f"disk-{size_kb}-{fill_kb}-{batch}"
        assert _mount_tmpfs(disk, size_kb)
        try:
            with open(disk / "filler", "wb") as handle:
                try:
                    handle.write(b"\0" * (fill_kb << 10))
                except OSError:
                    pass
            done = subprocess.run(
                [sys.executable, "-m", "r2cli.cli.main", "search", "--queries", str(queries), "-w",
                 str(workspace.root), "--out", str(disk / "run"), "--top-k", "1000", "--query-batch", str(batch),
                 "--checkpoint", str(random_head_path), "--clip-weights", str(tiny_clip_path), "--device", "cpu"],
                env=env, capture_output=True, text=True, timeout=300)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
        case = f"{size_kb} KiB tmpfs, {fill_kb} KiB filled, --query-batch {batch}"
        assert done.returncode != 0, case
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, f"{case}: {done.stderr}"
        assert lines[0].startswith("error:") and "No space left on device" in lines[0], f"{case}: {done.stderr}"
