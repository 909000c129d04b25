"""Issue #14: a search killed by ``kill -9`` reads as interrupted and leaves no output under a final
name; a second search writing to the same --out is refused; a full disk is one error line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures import ArchiveVideo, build_archive, random_features, run_cli

REPO = Path(__file__).resolve().parents[2]
FINAL_NAMES = ("moments.parquet", "saliency.parquet", "run.json")


@pytest.fixture
def archive(workspace, tiny_tower):
    build_archive(workspace, tiny_tower, [ArchiveVideo("a.mp4", random_features(40, 0)),
                                          ArchiveVideo("b.mp4", random_features(30, 1))])
    return workspace


def _model_args(tiny_clip_path, head):
    return ["--checkpoint", str(head), "--clip-weights", str(tiny_clip_path), "--device", "cpu"]


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_reads_as_interrupted_and_a_second_run_on_the_same_out_is_refused(
        capsys, archive, tiny_clip_path, random_head_path, tmp_path):
    from r2cli.catalog.runs import get_run, list_runs

    queries = tmp_path / "many.txt"
    queries.write_text("".join(f"scene {i}\n" for i in range(5000)))
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO), R2CLI_NO_PROGRESS="1")
    child = subprocess.Popen(
        [sys.executable, "-m", "r2cli.cli.main", "search", "--queries", str(queries), "--query-batch", "2",
         "-w", str(archive.root), "--out", str(out), *_model_args(tiny_clip_path, random_head_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def running():
            try:
                runs = list_runs(archive, kind="search")
            except Exception:
                return None
            return runs[0] if runs and runs[0].status == "running" else None

        run = _wait_for(running, 120, "the child's run row")
        assert run.owner["pid"] == child.pid
        _wait_for(lambda: any(p.name.startswith(".moments.parquet.staging-") for p in out.iterdir()), 120,
                  "the child's first staged batch")

        # a second search writing to the same folder is refused, naming the writer
        code, _, err = run_cli(capsys, "search", "dogs", "-w", str(archive.root), "--out", str(out),
                               *_model_args(tiny_clip_path, random_head_path))
        assert code != 0 and "Traceback" not in err
        assert f"--out {out} is in use" in " ".join(err.split()) and f"pid {child.pid}" in err

        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)

    assert get_run(archive, run.id).status == "interrupted"
    assert not any((out / name).exists() for name in FINAL_NAMES)  # no partial set under final names

    # the folder is free again: a new run publishes a complete set and clears the dead run's staging files
    code, _, err = run_cli(capsys, "search", "dogs", "-w", str(archive.root), "--out", str(out),
                           *_model_args(tiny_clip_path, random_head_path))
    assert code == 0, err
    assert all((out / name).is_file() for name in FINAL_NAMES)
    assert not [p.name for p in out.iterdir() if ".staging-" in p.name]
    assert get_run(archive, run.id).status == "interrupted"


def _mount_tmpfs(folder: Path, size: str, *, read_only: bool = False) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB file system (tmpfs; needs root), filled to leave about 8 KiB free."""
    folder = tmp_path / "disk"
    if not _mount_tmpfs(folder, "64k"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        filler = folder / "filler"
        with open(filler, "wb") as handle:
            try:
                handle.write(b"\0" * (56 << 10))
            except OSError:
                pass
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_is_one_error_line_and_publishes_nothing(capsys, archive, tiny_clip_path, random_head_path,
                                                             small_disk):
    from r2cli.catalog.runs import list_runs

    out = small_disk / "run"
    queries = small_disk.parent / "queries.txt"
    queries.write_text("".join(f"scene {i}\n" for i in range(40)))
    code, stdout, err = run_cli(capsys, "search", "--queries", str(queries), "-w", str(archive.root), "--out",
                                str(out), "--top-k", "1000", *_model_args(tiny_clip_path, random_head_path))
    assert code != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "No space left on device" in lines[0], err
    assert not any((out / name).exists() for name in FINAL_NAMES)
    assert not [p.name for p in out.iterdir() if ".staging-" in p.name]
    assert list_runs(archive, kind="search")[-1].status == "failed"


def test_a_workspace_under_a_read_only_parent_is_one_error_line(capsys, tmp_path, tiny_clip_path, random_head_path):
    parent = tmp_path / "ro"
    if not _mount_tmpfs(parent, "64k", read_only=True):
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        code, _, err = run_cli(capsys, "search", "dogs", "-w", str(parent / "ws"),
                               *_model_args(tiny_clip_path, random_head_path))
    finally:
        subprocess.run(["umount", str(parent)], check=False)
    assert code != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
