"""Crash-safe writes: the target is replaced whole or not at all."""

from __future__ import annotations

import pytest

from r2cli._atomic import atomic_output, pid_alive, write_json_atomic, write_text_atomic


def test_atomic_output_replaces_the_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "old\n")
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.txt.tmp-")
        tmp.write_text("new\n")
        assert target.read_text() == "old\n"  # not visible before the block ends
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_an_error_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("disk full")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_pid_alive():
    import os
    import subprocess
    import sys

    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
