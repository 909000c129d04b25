"""`report` on a full disk is one error line (#18.8): the plot workers' OSErrors used to reach the
terminal as tracebacks. Real runs (the sample job), a real small tmpfs (root only; skipped elsewhere),
real worker processes; stderr is read at the file-descriptor level, so the workers' output counts too."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def full_disk(tmp_path):
    """A 512 KiB tmpfs filled to leave about 24 KiB free: the thumbnails (ffmpeg) fail softly, the
    first plots or pages hit ENOSPC."""
    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        with open(folder / "filler", "wb") as handle:
            handle.write(b"\0" * ((512 - 24) << 10))
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_report_on_a_full_disk_is_one_line(sample_job_run, full_disk, capfd, monkeypatch, workers):
    import r2cli.report.build as build
    from r2cli.cli.main import main

    monkeypatch.setattr(build, "PARALLEL_PLOTS", 1)  # the sample job's few plots go to worker processes too
    monkeypatch.setenv("R2CLI_NO_PROGRESS", "1")
    out = full_disk / "report"
    with pytest.raises(SystemExit) as caught:
        main(["report", str(sample_job_run), "--out", str(out), "--jobs", str(workers)])
    assert caught.value.code not in (0, None)
    err = capfd.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert lines[-1].startswith("error:") and "No space left on device" in " ".join(lines[-1:]), err
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    assert not [p.name for p in Path(full_disk).iterdir() if ".part-" in p.name]  # the staging folder is gone
