"""`index --watch` without processes: settling, the observer choice, the path filter, the options (#20.1)."""

from __future__ import annotations

import os
import stat as stat_module
from types import SimpleNamespace

import pytest

from r2cli.app.index import IndexOptions
from r2cli.app.watch import SettleTracker, WatchEvent, _Filter, choose_mode, file_system_type
from r2cli.cli.commands.index import watch_line
from r2cli.errors import InputError, UsageError
from r2cli.paths import OUTPUT_MARKER


class FakeFiles:
    """A stat function over a dict: path -> (size, mtime in ns); absent paths raise FileNotFoundError."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, int]] = {}

    def stat(self, path: str):
        if path not in self.files:
            raise FileNotFoundError(path)
        size, mtime = self.files[path]
        return SimpleNamespace(st_mode=stat_module.S_IFREG | 0o644, st_size=size, st_mtime_ns=mtime)


def test_a_growing_file_settles_only_after_it_stops_growing():
    files = FakeFiles()
    tracker = SettleTracker(2.0, stat=files.stat)
    files.files["/in/a.mp4"] = (100, 1)
    assert tracker.touch("/in/a.mp4", 0.0) is True
    for second in range(1, 10):  # grows every second, each step shorter than the settle time
        files.files["/in/a.mp4"] = (100 + second, 1 + second)
        assert tracker.poll(float(second)) == ([], [])
    assert tracker.poll(10.5) == ([], [])  # unchanged since 9.0: 1.5 s < 2 s
    assert tracker.poll(11.0) == (["/in/a.mp4"], [])
    assert tracker.poll(20.0) == ([], [])  # handed out once


def test_a_write_event_restarts_the_wait_even_when_size_and_mtime_look_the_same():
    files = FakeFiles()
    tracker = SettleTracker(1.0, stat=files.stat)
    files.files["/in/a.mp4"] = (5, 7)
    tracker.touch("/in/a.mp4", 0.0)
    assert tracker.touch("/in/a.mp4", 0.9) is False  # already pending: the wait starts again
    assert tracker.poll(1.5) == ([], [])
    assert tracker.poll(2.0) == (["/in/a.mp4"], [])


def test_deletions_wait_and_a_file_that_comes_back_is_pending_again():
    files = FakeFiles()
    tracker = SettleTracker(1.0, stat=files.stat)
    files.files["/in/a.mp4"] = (5, 7)
    tracker.touch("/in/a.mp4", 0.0)
    del files.files["/in/a.mp4"]
    assert tracker.poll(0.5) == ([], [])  # seen gone at 0.5
    assert tracker.poll(1.6) == ([], ["/in/a.mp4"])
    tracker.vanish("/in/old", 2.0)
    files.files["/in/old"] = (1, 1)
    tracker.touch("/in/old", 2.5)  # back before it was swept: not a deletion any more
    assert tracker.poll(3.6) == (["/in/old"], [])


def test_a_deleted_folder_drops_its_pending_files():
    files = FakeFiles()
    tracker = SettleTracker(1.0, stat=files.stat)
    for name in ("/in/d/a.mp4", "/in/d/b.mp4", "/in/dd.mp4"):
        files.files[name] = (1, 1)
        tracker.touch(name, 0.0)
    tracker.vanish("/in/d", 0.2)
    assert tracker.poll(1.5) == (["/in/dd.mp4"], ["/in/d"])


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 27 0:50 / /mnt/share rw,relatime - nfs4 server:/export rw
41 40 0:51 / /mnt/share/local rw,relatime - xfs /dev/sdb1 rw
42 27 0:52 / /mnt/with\\040space rw,relatime - cifs //nas/video rw
"""


@pytest.mark.parametrize("path, fs_type, mode", [
    ("/home/me/videos", "ext4", "inotify"),
    ("/mnt/share/incoming", "nfs4", "poll"),
    ("/mnt/share/local/x", "xfs", "inotify"),  # the deepest mount wins
    ("/mnt/sharey", "ext4", "inotify"),  # a name that only starts like a mount point
    ("/mnt/with space/in", "cifs", "poll"),  # mountinfo escapes spaces as \040
])
def test_auto_polls_network_file_systems(tmp_path, path, fs_type, mode):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    assert file_system_type(path, str(mountinfo)) == fs_type
    assert choose_mode(path, "auto", fs_type=file_system_type(path, str(mountinfo))) == mode
    assert choose_mode(path, "inotify", fs_type=fs_type) == "inotify"  # a flag overrides the file system
    assert choose_mode(path, "poll", fs_type=fs_type) == "poll"


def test_the_filter_takes_what_the_index_walk_takes(tmp_path):
    root = tmp_path / "in"
    (root / "proxies").mkdir(parents=True)
    (root / "cuts").mkdir()
    (root / "cuts" / OUTPUT_MARKER).write_text("")
    options = IndexOptions.from_flags(paths=[root], ignore=["proxies", "*.part"], extensions=["mp4", "mov"])
    keep = _Filter([str(root)], options, str(tmp_path / "ws"))
    assert keep.wants_file(str(root / "a.mp4")) and keep.wants_file(str(root / "deep" / "B.MOV"))
    assert not keep.wants_file(str(root / "a.mkv"))  # not an extension asked for
    assert not keep.wants_file(str(root / "a.mp4.part"))
    assert not keep.wants_file(str(root / "proxies" / "a.mp4"))  # an ignored folder
    assert not keep.wants_file(str(root / ".a.mp4.Xy12Zq"))  # rsync's temporary name
    assert not keep.wants_file(str(root / "cuts" / "clip.mp4"))  # r2cli's own output folder
    assert not keep.wants_file(str(tmp_path / "elsewhere" / "a.mp4"))
    inside = _Filter([str(root)], options, str(root / ".r2cli"))
    assert not inside.wants_file(str(root / ".r2cli" / "features" / "x.mp4"))  # the workspace itself


def test_watch_rules_name_the_flag_and_the_job_key(tmp_path):
    with pytest.raises(UsageError, match=r"--settle must be in \(0, 86400\], got 0"):
        IndexOptions.from_flags(paths=[tmp_path], watch=True, settle=0)
    with pytest.raises(UsageError, match=r"--watch-mode must be one of auto, inotify, poll, got 'fanotify'"):
        IndexOptions.from_flags(paths=[tmp_path], watch=True, watch_mode="fanotify")
    with pytest.raises(UsageError, match=r"--settle needs --watch"):
        IndexOptions.from_flags(paths=[tmp_path], settle=3)
    with pytest.raises(UsageError, match=r"--watch-mode needs --watch"):
        IndexOptions.from_flags(paths=[tmp_path], watch_mode="poll")
    with pytest.raises(UsageError, match=r"--dry-run cannot be combined with --watch"):
        IndexOptions.from_flags(paths=[tmp_path], watch=True, dry_run=True)
    with pytest.raises(UsageError, match=r"--strict cannot be combined with --watch"):
        IndexOptions.from_flags(paths=[tmp_path], watch=True, strict=True)
    with pytest.raises(UsageError, match=r"--poll-interval must be in \(0, 3600\], got -1"):
        IndexOptions.from_flags(paths=[tmp_path], watch=True, poll_interval=-1)
    for key in ("watch", "settle", "watch_mode", "poll_interval"):  # a job runs once; a watch is a service
        with pytest.raises(InputError, match=rf"job.toml: \[index\] has unknown key '{key}'"):
            IndexOptions.from_table({"paths": ["a"], key: True}, where="job.toml: [index]", base=tmp_path)
    assert IndexOptions.help("settle").endswith("Default: 10.0.")


def test_one_line_per_event_with_control_characters_escaped(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")  # times are local with their offset (#22.11)
    time.tzset()
    event = WatchEvent("moved", "/in/new\nname.mp4", {"previous": "/in/old\x1b[31m.mp4"}, time=0.0)
    line = watch_line(event)
    monkeypatch.undo()
    time.tzset()
    assert line == "1970-01-01T05:30:00.000+05:30 moved    /in/new\\nname.mp4 (from /in/old\\x1b[31m.mp4)"
    assert event.to_dict()["time"].endswith(("+00:00", "+05:30"))
    assert {**event.to_dict(), "time": None} == {"time": None, "event": "moved", "path": "/in/new\nname.mp4",
                               "previous": "/in/old\x1b[31m.mp4"}
    failed = watch_line(WatchEvent("error", "/in/a.mp4", {"error": "file is empty (0 bytes)"}, time=0.0))
    assert failed.endswith("error    /in/a.mp4: file is empty (0 bytes)")


def test_the_watch_mode_is_real_for_this_folder(tmp_path):
    """On this machine's own disk auto means inotify (unless the test folder is on a network file system)."""
    kind = file_system_type(str(tmp_path))
    expected = "poll" if kind in {"nfs", "nfs4", "cifs", "smb3", "fuse.sshfs"} else "inotify"
    assert choose_mode(str(tmp_path), "auto") == expected
    assert os.path.isdir(tmp_path)
