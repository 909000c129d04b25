"""ffmpeg children die with r2cli, partial files of a killed run are removed by the next one, and
an unwritable output folder is one error line (real ffmpeg, real signals, real permissions)."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from r2cli.ownership import STAGING_MARKER

from r2cli.media._process import pid_alive, remove_stale_partials
from r2cli.media.clips import cut_segments
from r2cli.media.naming import partial_name, partial_writer
from r2cli.media.segments import Segment
from r2cli.outputs import write_table

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["R2CLI_NO_PROGRESS"] = "1"
    env.update(extra)
    return env


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of the live children of ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append((int(entry.name), name))
    return found


@pytest.fixture(scope="module")
def long_source(ffmpeg, tmp_path_factory) -> Path:
    """60 s of lavfi testsrc2, small and quick to make:
    ffmpeg -f lavfi -i testsrc2=s=160x120:r=10:d=60 -c:v libx264 -preset ultrafast -pix_fmt yuv420p OUT"""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=60", "-c:v",
                    "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_kill_9_takes_ffmpeg_along_and_the_next_run_removes_the_partial_file(ffmpeg, long_source, tmp_path):
    slow = _slow_ffmpeg(ffmpeg, tmp_path)
    out = tmp_path / "clips"
    script = textwrap.dedent(f"""
        from r2cli.media.clips import cut_segments
        from r2cli.media.segments import Segment
        cut_segments([Segment({str(long_source)!r}, 0.0, 59.0)], {str(out)!r}, jobs=1)
    """)
    cutter = subprocess.Popen([sys.executable, "-c", script], env=_env(R2CLI_FFMPEG=str(slow)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: list[tuple[int, str]] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            children = [c for c in _children(cutter.pid) if c[1] == "ffmpeg"]
            partials = list(out.glob(".*.part-*")) if out.is_dir() else []
            if children and partials:
                break
            assert cutter.poll() is None, cutter.stderr.read().decode()
            time.sleep(0.1)
        assert children and partials, "the cut never started its ffmpeg"
        cutter.send_signal(signal.SIGKILL)
        cutter.wait(timeout=30)
        (child, _), = children
        deadline = time.monotonic() + 10
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child), "ffmpeg outlived the r2cli process that started it"
    finally:
        if cutter.poll() is None:
            cutter.kill()
            cutter.wait()
        for pid, _name in children:  # only when the test fails: no orphan outlives it
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    (partial,) = partials
    assert partial.exists() and partial_writer(partial.name) == cutter.pid

    # a file being written by a live process is left alone; the dead writer's file goes
    live = partial_name(out / "other.mp4", os.getpid())
    live.write_bytes(b"being written")
    report = cut_segments([Segment(str(long_source), 1.0, 1.5)], out, jobs=1)
    assert report.counts() == {"written": 1, "skipped": 0, "failed": 0}
    assert not partial.exists() and live.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted([".r2cli-output", live.name, "long-clip-1.mp4"])


def _slow_ffmpeg(ffmpeg: str, folder: Path) -> Path:
    """An ffmpeg that reads its input at native speed (-re): cutting 60 s takes a minute."""
    slow = folder / "ffmpeg-re"
    slow.write_text(f'#!/bin/sh\nexec {ffmpeg} -re "$@"\n')
    slow.chmod(0o755)
    return slow


def test_ctrl_c_stops_every_ffmpeg_at_once_and_leaves_no_partial_file(ffmpeg, long_source, tmp_path):
    """ffmpeg runs in its own process group (the terminal's Ctrl-C reaches only r2cli), so r2cli stops it."""
    results = write_table("moments", [
        {"run_id": "r", "query_id": "q1", "query": "q", "video_id": None, "path": str(long_source), "start_s": a,
         "end_s": a + 25.0, "score": 1.0, "rank_in_query": i + 1, "rank_in_video": 1, "model": "m", "preset": None}
        for i, a in enumerate((0.0, 30.0))], tmp_path / "moments.parquet")
    out = tmp_path / "clips"
    env = _env(R2CLI_FFMPEG=str(_slow_ffmpeg(ffmpeg, tmp_path)))
    # As from a terminal: Ctrl-C's signal is not ignored (a test run started in the background of a
    # non-interactive shell inherits SIGINT ignored, and Python then installs no KeyboardInterrupt)
    cutter = subprocess.Popen([sys.executable, "-m", "r2cli.cli.main", "cut", str(results), "--out", str(out), "--jobs",
                               "2", "--workspace", str(tmp_path / "ws")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    children: list[tuple[int, str]] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(children) < 2:
            children = [c for c in _children(cutter.pid) if c[1] == "ffmpeg"]
            assert cutter.poll() is None, cutter.stderr.read()
            time.sleep(0.1)
        assert len(children) == 2, "the cut never started its two ffmpeg"
        began = time.monotonic()
        cutter.send_signal(signal.SIGINT)
        _, err = cutter.communicate(timeout=30)
        assert time.monotonic() - began < 10
    finally:
        if cutter.poll() is None:
            cutter.kill()
            cutter.wait()
        for pid, _name in children:  # only when the test fails: no orphan outlives it
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert cutter.returncode == 130, err  # the CLI's exit code for an interrupt
    assert not any(pid_alive(pid) for pid, _ in children)
    assert sorted(p.name for p in out.iterdir()) == [".r2cli-output"]  # no clip, no partial file


def test_stale_partials_are_recognised_by_name(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = partial_name(tmp_path / "a b.mp4", dead.pid)
    stale.write_bytes(b"x")
    pieces = tmp_path / f".reel.pieces.part-{dead.pid}-0123abcd"  # a reel's work folder, marked by r2cli
    pieces.mkdir()
    (pieces / "piece-00000.mov").write_bytes(b"x")
    (pieces / STAGING_MARKER).write_text("r2cli")
    unmarked = partial_name(tmp_path / "user.pieces", dead.pid)  # named like one, but not marked: not ours
    unmarked.mkdir()
    kept = [tmp_path / ".a.part-12.mp4", tmp_path / "clip.part-1-0123abcd.mp4", partial_name(tmp_path / "c.mp4", os.getpid())]
    for path in kept:
        path.write_bytes(b"x")
    assert sorted(remove_stale_partials(tmp_path)) == sorted([stale, pieces])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [*kept, unmarked])


def _without_dac_override() -> list[str]:
    """As root, a prefix that drops the capabilities which let root write anywhere; as a user, nothing."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, where read-only folders do not bite, and setpriv (util-linux) is absent")
    drop = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    probe = subprocess.run([*drop, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {probe.stderr[-200:]!r}")
    return drop


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    yield folder
    folder.chmod(0o755)


def _moments(path: Path, source: Path) -> Path:
    rows = [{"run_id": "r", "query_id": "q1", "query": "red", "video_id": None, "path": str(source), "start_s": 1.0,
             "end_s": 2.0, "score": 1.0, "rank_in_query": 1, "rank_in_video": 1, "model": "m", "preset": None}]
    return write_table("moments", rows, path)


@pytest.mark.parametrize(
    "where, flag, message",
    [
        ("{ro}", "--out", "--out {ro}: cannot write there: Permission denied"),
        ("{ro}/new/clips", "--out", "--out {ro}/new/clips: cannot create the folder: Permission denied"),
        ("{ro}/reel.mp4", "--concat", "--concat {ro}: cannot write there: Permission denied"),
    ],
)
def test_unwritable_output_is_one_error_line(source_video, tmp_path, read_only, where, flag, message):
    drop = _without_dac_override()
    results = _moments(tmp_path / "moments.parquet", source_video)
    target = where.format(ro=read_only)
    result = subprocess.run(
        [*drop, sys.executable, "-m", "r2cli.cli.main", "cut", str(results), flag, target,
         "--workspace", str(tmp_path / "ws")],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {message.format(ro=read_only)}"]
    assert list(read_only.iterdir()) == []


def test_reel_of_summarize_into_a_read_only_folder_is_one_error_line(source_video, read_only):
    """``summarize --reel`` renders with ``make_reel(..., flag="--reel")`` under the CLI's error handler."""
    drop = _without_dac_override()
    script = textwrap.dedent(f"""
        from r2cli.cli._common import handle_errors
        from r2cli.media.reels import make_reel
        from r2cli.media.segments import Segment
        with handle_errors():
            make_reel([Segment({str(source_video)!r}, 1.0, 2.0)], {str(read_only / "reel.mp4")!r}, flag="--reel")
    """)
    result = subprocess.run([*drop, sys.executable, "-c", script], capture_output=True, text=True, env=_env(),
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: --reel {read_only}: cannot write there: Permission denied"]


def test_timeout_stops_ffmpeg_and_says_so(ffmpeg):
    from r2cli.media._process import run_ffmpeg

    began = time.monotonic()
    code, message = run_ffmpeg([ffmpeg, "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=d=3600", "-f", "null", "-"],
                               timeout=0.5)
    assert code == 124 and message == "ffmpeg did not finish within 0.5 s and was stopped"
    assert time.monotonic() - began < 10
    assert not [c for c in _children(os.getpid()) if c[1] == "ffmpeg"]
