"""Issue #14 on the summarize side: a reel never replaces a source video, and an unwritable reel
folder is one error line before any work."""

from __future__ import annotations

import os
import subprocess

import pytest


@pytest.fixture
def model_args(head_path, tiny_clip_path):
    return ["--checkpoint", str(head_path), "--clip-weights", str(tiny_clip_path), "--device", "cpu"]


@pytest.mark.parametrize("spelling", ["symlink", "hardlink", "relative"])
def test_reel_never_replaces_a_source_video_even_with_force(cli, archive, model_args, tmp_path, monkeypatch, spelling):
    before = archive.scenes.read_bytes()
    if spelling == "symlink":
        target = tmp_path / "alias.mp4"
        target.symlink_to(archive.scenes)
    elif spelling == "hardlink":
        target = tmp_path / "same_inode.mp4"
        os.link(archive.scenes, target)
    else:
        monkeypatch.chdir(archive.scenes.parent)
        target = archive.scenes.name
    code, out, err = cli("summarize", "scenes.mp4", "--ratio", "0.3", "--reel", target, "--force", *model_args,
                         "--workspace", archive.workspace.root)
    assert code == 2 and "Traceback" not in err
    assert "is a source video of the catalog" in " ".join(err.split())
    assert archive.scenes.read_bytes() == before


def test_is_source_video(archive, tmp_path):
    from r2cli.catalog.guards import source_video_paths

    def is_source_video(workspace, path):
        return bool(source_video_paths(workspace, [path]))

    assert is_source_video(archive.workspace, archive.scenes)
    assert is_source_video(archive.workspace, archive.unextracted)  # catalogued without features: still a source
    assert not is_source_video(archive.workspace, tmp_path / "new.mp4")


def test_reel_into_a_read_only_folder_is_one_error_line(cli, archive, model_args, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        code, out, err = cli("summarize", "scenes.mp4", "--ratio", "0.3", "--reel", folder / "reel.mp4",
                             "--out", tmp_path / "run", *model_args, "--workspace", archive.workspace.root)
    finally:
        subprocess.run(["umount", str(folder)], check=False)
    assert code != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "is not writable" in lines[0], err
    assert not (tmp_path / "run" / "run.json").exists()  # refused before any work
