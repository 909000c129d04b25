"""Never destroy what the user owns (#18.1, .2, .3, .7, .12): a careless and a hostile user's attempts.

Each test aims an r2cli command at something r2cli did not write (an archive folder, a home-like
folder, a catalogued source video, a user's file next to the videos) or at a catalog it cannot read,
and checks that the command refuses with one line and an exit code and that every byte is still
there. Real catalog (SQLite), real ffmpeg, generated media; no mocks.

Read-only media: the tests run as root on the CI machine, where ``chmod`` does not stop writes, so
a read-only folder is made with a real read-only bind mount inside a private mount namespace
(``unshare -m`` and ``mount -o remount,ro,bind``) and the command runs inside it as a subprocess.
Where the namespace cannot be made (no ``unshare``, no privilege) those tests skip with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from r2cli.errors import CatalogError
from r2cli.outputs import write_table
from r2cli.paths import resolve_workspace

REPO = Path(__file__).resolve().parent.parent


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (relative name -> md5): what must be there, byte for byte, afterwards."""
    return {str(p.relative_to(folder)): _md5(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "r2cli", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def _read_only(folders: list[Path], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``r2cli ARGS`` with ``folders`` bind-mounted read-only (a private mount namespace)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: cannot make a read-only mount")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here: {probe.stderr.decode().strip()}")
    mounts = " && ".join(f"mount --bind {shlex.quote(str(f))} {shlex.quote(str(f))} && "
                         f"mount -o remount,ro,bind {shlex.quote(str(f))}" for f in folders)
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "r2cli", *args])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(["unshare", "-m", "sh", "-c", f"{mounts} && exec {command}"], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture
def archive(tiny_media_path, tmp_path):
    """``arc/`` holding two catalogued videos (one.mp4 8 s, two.mp4 8 s, other bytes) and the user's notes.txt."""
    from r2cli.catalog.scan import scan_archive

    folder = tmp_path / "arc"
    folder.mkdir()
    source = tiny_media_path("cut-source")
    shutil.copyfile(source, folder / "one.mp4")
    shutil.copyfile(source, folder / "two.mp4")
    with open(folder / "two.mp4", "ab") as handle:
        handle.write(b"\x00\x00\x00\x10freer2cli-test")
    (folder / "notes.txt").write_text("my notes\n")
    workspace = resolve_workspace(tmp_path / "ws")
    assert scan_archive([folder], workspace).new == 2
    return workspace, folder


def _moments(path: Path, source: Path) -> Path:
    rows = [{"run_id": "r", "query_id": "q1", "query": "red", "video_id": 1, "path": str(source), "start_s": 1.0,
             "end_s": 2.0, "score": 1.0, "rank_in_query": 1, "rank_in_video": 1, "model": "m", "preset": None}]
    return write_table("moments", rows, path)


# -- #18.1: report --out DIR --force --------------------------------------------------------------

def test_report_force_never_deletes_an_archive_or_a_home_folder(archive, tmp_path):
    workspace, arc = archive
    results = _moments(tmp_path / "run" / "moments.parquet", arc / "one.mp4")
    before = _snapshot(arc)
    result = _cli("report", str(results), "--out", str(arc), "--force")
    assert result.returncode == 2
    assert "r2cli did not write" in _one_line(result) and str(arc) in result.stderr
    assert _snapshot(arc) == before and not list(tmp_path.glob(".arc.*"))

    home = tmp_path / "home"  # like `--out ~`: dotfiles and documents, no report marker
    (home / "Documents").mkdir(parents=True)
    (home / ".bashrc").write_text("alias ll='ls -l'\n")
    (home / "Documents" / "thesis.tex").write_text("\\chapter{One}\n")
    before = _snapshot(home)
    result = _cli("report", str(results), "--out", str(home), "--force")
    assert result.returncode == 2 and "r2cli did not write" in _one_line(result)
    assert _snapshot(home) == before


def test_report_replaces_only_its_own_report(archive, tmp_path):
    from r2cli.ownership import NotOwnedError
    from r2cli.report.build import build_report

    _, arc = archive
    results = _moments(tmp_path / "run" / "moments.parquet", arc / "one.mp4")
    out = tmp_path / "report"
    build_report(results, out)
    build_report(results, out, force=True)  # r2cli's own report: replaced
    assert (out / "index.html").is_file() and (out / "r2cli-report.json").is_file()
    (out / "my-notes.txt").write_text("written by the user inside the report folder")
    with pytest.raises(NotOwnedError, match="my-notes.txt"):
        build_report(results, out, force=True)
    assert (out / "my-notes.txt").read_text() == "written by the user inside the report folder"
    assert (out / "index.html").is_file()


# -- #18.12: a killed report's staging folders ------------------------------------------------------

def test_stale_report_staging_folders_are_removed_and_only_those(archive, tmp_path):
    from r2cli.ownership import STAGING_MARKER
    from r2cli.report.build import build_report

    _, arc = archive
    results = _moments(tmp_path / "run" / "moments.parquet", arc / "one.mp4")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "report"
    stale = tmp_path / f".report.part-{dead.pid}-0123abcd"  # what `kill -9` during a report leaves
    (stale / "thumbs").mkdir(parents=True)
    (stale / "thumbs" / "a.jpg").write_bytes(b"x" * 1000)
    (stale / STAGING_MARKER).write_text("r2cli")
    old = tmp_path / f".report.old-{dead.pid}-89abcdef"  # killed between the two renames
    old.mkdir()
    (old / STAGING_MARKER).write_text("r2cli")
    unmarked = tmp_path / f".report.part-{dead.pid}-fedcba98"  # named like one, but the user's
    unmarked.mkdir()
    (unmarked / "keep.txt").write_text("mine")
    live = tmp_path / f".report.part-{os.getpid()}-00000000"  # another report being built right now
    live.mkdir()
    (live / STAGING_MARKER).write_text("r2cli")
    result = build_report(results, out)
    assert not stale.exists() and not old.exists()
    assert (unmarked / "keep.txt").read_text() == "mine" and live.is_dir()
    assert any(stale.name in w for w in result.warnings)


def test_a_killed_report_leaves_nothing_the_next_run_keeps(archive, tmp_path):
    """The real thing: `report` killed with SIGKILL while it draws, then run again."""
    import signal
    import time

    _, arc = archive
    results = _moments(tmp_path / "run" / "moments.parquet", arc / "one.mp4")
    out = tmp_path / "report"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "r2cli", "report", str(results), "--out", str(out)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.glob(".report.part-*")):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if not list(tmp_path.glob(".report.part-*")):
        pytest.skip("the report finished before it could be killed")
    assert _cli("report", str(results), "--out", str(out)).returncode == 0
    assert not list(tmp_path.glob(".report.*")) and (out / "index.html").is_file()


# -- #18.2: a guard that cannot read the catalog refuses ------------------------------------------

@pytest.mark.parametrize("damage", ["garbage", "folder"])
def test_concat_force_with_an_unreadable_catalog_refuses(archive, tmp_path, damage):
    from r2cli.catalog.db import catalog_exists
    from r2cli.catalog.guards import source_video_paths

    workspace, arc = archive
    catalog = workspace.root / "catalog.sqlite"
    for extra in workspace.root.glob("catalog.sqlite-*"):
        extra.unlink()
    catalog.unlink()
    if damage == "garbage":
        catalog.write_bytes(os.urandom(8192))
    else:
        catalog.mkdir()
    target = arc / "two.mp4"
    before = _md5(target)
    results = _moments(tmp_path / "moments.parquet", arc / "one.mp4")
    result = _cli("cut", str(results), "--concat", str(target), "--force", "--workspace", str(workspace.root))
    assert result.returncode == 5, result.stderr
    assert str(catalog) in _one_line(result)
    assert _md5(target) == before
    with pytest.raises(CatalogError):
        catalog_exists(workspace)
    with pytest.raises(CatalogError):
        source_video_paths(workspace, [target])
    # doctor says so instead of "not created yet"
    doctor = _cli("doctor", "--workspace", str(workspace.root))
    assert doctor.returncode == 5 and "not created yet" not in doctor.stdout
    assert "cannot open catalog" in _one_line(doctor)


def test_an_intact_catalog_on_a_read_only_mount_still_guards(archive, tmp_path):
    workspace, arc = archive
    target = arc / "two.mp4"
    before = _md5(target)
    results = _moments(tmp_path / "moments.parquet", arc / "one.mp4")
    result = _read_only([workspace.root], "cut", str(results), "--concat", str(target), "--force",
                        "--workspace", str(workspace.root))
    assert result.returncode == 2, result.stderr
    assert "is one of the source videos" in _one_line(result)
    assert _md5(target) == before
    listing = _read_only([workspace.root], "doctor", "--workspace", str(workspace.root))
    assert "2 videos" in listing.stdout, listing.stdout + listing.stderr


# -- #18.3: [job].workspace governs the catalog; --force never replaces a user's file --------------

def test_job_workspace_holds_its_catalog_and_a_later_cut_finds_it(archive, tmp_path):
    _, arc = archive
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    job = jobs / "nightly.toml"
    job.write_text('[job]\nname = "nightly"\nworkspace = "../myws"\n\n[index]\npaths = ["../arc"]\nfeatures = false\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _cli("run", str(job), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "myws" / "catalog.sqlite").is_file()
    assert not (elsewhere / ".r2cli").exists()
    target = arc / "two.mp4"
    before = _md5(target)
    results = _moments(tmp_path / "moments.parquet", arc / "one.mp4")
    result = _cli("cut", str(results), "--workspace", "myws", "--concat", str(target), "--force", cwd=tmp_path)
    assert result.returncode == 2 and "source videos" in _one_line(result)
    assert _md5(target) == before


def test_force_replaces_only_r2clis_own_reel_even_without_any_catalog(archive, tmp_path):
    _, arc = archive
    stranger = tmp_path / "stranger"  # a folder of videos no catalog knows
    stranger.mkdir()
    shutil.copyfile(arc / "one.mp4", stranger / "holiday.mp4")
    before = _md5(stranger / "holiday.mp4")
    results = _moments(tmp_path / "moments.parquet", arc / "one.mp4")
    empty = tmp_path / "empty-ws"
    result = _cli("cut", str(results), "--concat", str(stranger / "holiday.mp4"), "--force", "--workspace", str(empty))
    assert result.returncode == 2 and "not written by r2cli" in _one_line(result)
    assert _md5(stranger / "holiday.mp4") == before
    reel = tmp_path / "reels" / "reel.mp4"
    assert _cli("cut", str(results), "--concat", str(reel), "--workspace", str(empty)).returncode == 0
    first = reel.stat().st_mtime_ns
    again = _cli("cut", str(results), "--concat", str(reel), "--force", "--workspace", str(empty))
    assert again.returncode == 0, again.stderr  # r2cli's own reel (container comment 'r2cli output')
    assert reel.stat().st_mtime_ns != first


# -- #18.7: read-only workspaces are one line ------------------------------------------------------

def test_a_workspace_under_a_read_only_parent_is_one_line(archive, tmp_path):
    _, arc = archive
    parent = tmp_path / "locked"
    parent.mkdir()
    result = _read_only([parent], "index", str(arc), "--no-features", "--workspace", str(parent / "ws"))
    assert result.returncode != 0
    line = _one_line(result)
    assert "Read-only file system" in line and str(parent / "ws") in line


def test_a_read_only_workspace_says_read_only(archive, tmp_path):
    workspace, _ = archive
    result = _read_only([workspace.root], "catalog", "list", "--workspace", str(workspace.root))
    if result.returncode == 0:  # read through the read-only engine: fine, and nothing to explain
        return
    line = _one_line(result)
    assert "read-only" in line and "Background on this error" not in line


# -- #18.12: a symlinked video whose link is removed --------------------------------------------------

def test_a_removed_symlink_makes_its_video_missing(tiny_media_path, tmp_path):
    from r2cli.catalog.scan import scan_archive
    from r2cli.catalog.queries import list_videos

    real = tmp_path / "elsewhere" / "real.mp4"
    real.parent.mkdir()
    shutil.copyfile(tiny_media_path("cut-source"), real)
    arc = tmp_path / "arc"
    arc.mkdir()
    (arc / "link.mp4").symlink_to(real)
    workspace = resolve_workspace(tmp_path / "ws")
    assert scan_archive([arc], workspace).new == 1
    (arc / "link.mp4").unlink()
    report = scan_archive([arc], workspace)
    assert report.missing == 1
    assert [v.status for v in list_videos(workspace)] == ["missing"]
    assert real.is_file()  # the target itself is untouched
