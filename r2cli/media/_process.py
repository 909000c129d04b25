"""Running ffmpeg and publishing its outputs, under our control.

ffmpeg-python builds the command lines (see ``clips`` and ``reels``); this module runs them:

* each ffmpeg runs in its own process group, and on Linux it gets ``PR_SET_PDEATHSIG`` =
  SIGKILL, so a ``kill -9`` of r2cli takes its ffmpeg children with it (no orphan keeps
  writing); a timeout or an interrupt kills the whole group;
* outputs are written under a hidden partial name that records the writer's pid
  (``naming.partial_name``) and renamed when complete; a later run removes the partial files
  whose writer is dead (``remove_stale_partials``);
* output folders r2cli creates get the ``OUTPUT_MARKER`` file, and a folder that cannot be
  written is one clear error before any ffmpeg starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from r2cli._atomic import pid_alive
from r2cli.errors import InputError
from r2cli.media.naming import OUTPUT_MARKER, partial_writer

NO_SPACE = "No space left on device"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl():
    """libc's prctl, loaded once in the parent (the child must not import or load anything)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None


_PRCTL = _load_prctl()


def _child_setup(parent: int):
    """The preexec function of ffmpeg children: die with the parent.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends; the worker threads of
    r2cli wait for their ffmpeg, so a child outlives its thread only when the process dies.
    """

    def setup() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)

    return setup


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def spawn(args: list[str], **popen: object) -> subprocess.Popen:
    """Start a child (ffmpeg, ffprobe) in its own process group that dies with this process.

    ``popen`` goes to ``subprocess.Popen`` (pipes); stdin is /dev/null unless given.

    Raises:
        OSError: the executable cannot be started.
    """
    popen.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(args, start_new_session=True, preexec_fn=_child_setup(os.getpid()), **popen)  # type: ignore[call-overload]


def kill_group(process: subprocess.Popen) -> None:
    """Kill a child started by ``spawn`` and everything it started, and reap it."""
    _kill_group(process)


class Batch:
    """The ffmpeg processes of one cut or reel, so that an interrupt stops them all at once.

    Children run in their own process group, so a Ctrl-C in the terminal reaches only r2cli;
    the thread that catches it calls ``stop()``, which kills every running child and keeps new
    ones from starting.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self.stopped = False

    def start(self, args: list[str], **popen: object) -> subprocess.Popen | None:
        """``spawn(args)`` unless the batch was stopped (then None)."""
        with self._lock:
            if self.stopped:
                return None
            process = spawn(args, **popen)
            self._running.add(process)
            return process

    def done(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._running.discard(process)

    def stop(self) -> None:
        """Kill every running child (and its group); no child starts afterwards."""
        with self._lock:
            self.stopped = True
            running = list(self._running)
        for process in running:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def run_ffmpeg(args: list[str], *, timeout: float | None = None, batch: Batch | None = None) -> tuple[int, str]:
    """Run ``args`` (the executable first); return (exit code, stderr text).

    The child runs in its own process group and dies with this process (Linux). A timeout
    kills the group and returns exit code 124 with a message; an interrupt kills the group and
    is raised again; a stopped ``batch`` starts nothing and returns 130. Tests replace this
    function to simulate failures.
    """
    batch = batch or Batch()
    try:
        process = batch.start(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        return 127, f"cannot run {args[0]}: {exc}"
    if process is None:
        return 130, "not started: the cut was interrupted"
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return 124, f"ffmpeg did not finish within {timeout:g} s and was stopped"
    except BaseException:
        _kill_group(process)
        raise
    finally:
        batch.done(process)
    return process.returncode, stderr.decode("utf-8", "replace")


def error_tail(stderr: str, lines: int = 3) -> str:
    """The last lines of ffmpeg's stderr, joined into one line."""
    kept = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return "; ".join(kept[-lines:]) or "no message"


def default_jobs() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def is_r2cli_output(path: Path) -> bool:
    """Whether ``path`` is a media file r2cli wrote (its container comment is ``OUTPUT_COMMENT``)."""
    from r2cli.errors import R2Error
    from r2cli.media.probe import probe
    from r2cli.paths import OUTPUT_COMMENT

    if path.is_symlink() or not path.is_file():
        return False
    try:
        return probe(path).comment == OUTPUT_COMMENT
    except R2Error:
        return False


def check_replaceable(final: Path, flag: str) -> None:
    """Refuse (``NotOwnedError``) when ``final`` exists and is not a media file r2cli wrote."""
    from r2cli import ownership

    ownership.check_replaceable_file(final, flag, owned=os.path.lexists(final) and is_r2cli_output(final))


def publish(tmp: Path, final: Path, force: bool, flag: str = "--out") -> None:
    """Move a finished temporary file to its final name without overwriting unless ``force``.

    With ``force`` only r2cli's own output is replaced (see ``r2cli.ownership``).

    Raises:
        FileExistsError: ``final`` exists and ``force`` is False.
        NotOwnedError: ``final`` exists and r2cli did not write it (whatever ``force``).
    """
    if force:
        from r2cli import ownership

        ownership.replace_file(tmp, final, flag, owned=os.path.lexists(final) and is_r2cli_output(final))
        return
    try:
        os.link(tmp, final)  # atomic and refuses to overwrite
    except FileExistsError:
        raise
    except OSError:  # no hard links on this filesystem
        if final.exists():
            raise FileExistsError(str(final)) from None
        os.replace(tmp, final)
        return
    remove_quietly(tmp)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (same inode), or resolve to the same path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the partial files and reel work folders in ``folder`` whose writer is dead.

    Files being written by a live process (another r2cli cutting into the same folder) are kept.
    Returns the removed paths.
    """
    import shutil

    from r2cli import ownership

    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        pid = partial_writer(entry.name)
        if pid is None or pid_alive(pid):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                if not ownership.is_staging_folder(path):  # a folder without r2cli's marker is not ours
                    continue
                shutil.rmtree(path)
            elif entry.is_file(follow_symlinks=False):
                path.unlink()
            else:
                continue
        except OSError:
            continue
        removed.append(path)
    return removed


def prepare_output_dir(folder: Path, flag: str) -> list[Path]:
    """Create ``folder`` (and its missing parents) and check that files can be written there.

    Every folder created here gets an ``OUTPUT_MARKER`` file, so a later ``r2cli index`` of a
    tree that holds it does not catalogue the outputs as new videos. Returns the created folders.

    Raises:
        InputError: the folder cannot be created or written (one line naming ``flag``).
    """
    missing: list[Path] = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for created in reversed(missing):
            (created / OUTPUT_MARKER).write_text("written by r2cli; `r2cli index` skips this folder\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{flag} {folder}: cannot create the folder: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise InputError(f"{flag} {folder} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".r2cli-write-test-"):
            pass
    except OSError as exc:
        raise InputError(f"{flag} {folder}: cannot write there: {exc.strerror or exc}") from None
    return list(reversed(missing))
