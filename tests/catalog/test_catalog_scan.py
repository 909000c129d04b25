"""scan_archive: bad inputs, incremental re-runs, moves, deletions, dry runs, filters (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from catalogkit import BACKENDS, catalog_rows, cli_command, cli_env, distinct_copy, is_sqlite, sqlite_rows


from r2cli.catalog import Catalog
from r2cli.catalog.scan import ScanFailedError, scan_archive
from r2cli.catalog.schema import Video
from r2cli.errors import MissingDependencyError, UsageError
from r2cli.paths import resolve_workspace


def rows(workspace) -> dict[str, Video]:
    from sqlalchemy import select

    with Catalog.open(workspace, create=False) as catalog, catalog.session() as session:
        return {v.path: v.to_record() for v in session.scalars(select(Video))}


# -- every kind of bad input, one scan -----------------------------------------------------------

BAD_INPUTS = {
    # name in the archive -> what the recorded error says
    "zero bytes.mp4": "file is empty (0 bytes)",
    "truncated.mp4": "moov atom not found",
    "notes.mp4": "ffprobe cannot read it",
    "voice only.mp4": "no video stream (audio: aac)",
    "folder.mp4": "is a directory, not a video file",
    "self.mp4": "symlink loop",
    "sub/loop": "symlink loop",
    "dangling.mp4": "broken symlink",
    "pipe.mp4": "is a named pipe",
}
GOOD_INPUTS = ["good.mp4", "sub/ünïcode — name with  spaces.mp4", "folder.mp4/inside.MP4", "日本語/クリップ.mkv"]


@pytest.fixture(scope="module", params=BACKENDS)
def bad_archive(request, ffmpeg, base_clip, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad archive")
    distinct_copy(base_clip, root / "good.mp4", "good")
    distinct_copy(base_clip, root / "sub" / "ünïcode — name with  spaces.mp4", "unicode")
    distinct_copy(base_clip, root / "folder.mp4" / "inside.MP4", "inside")
    (root / "日本語").mkdir()
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(base_clip), "-c", "copy", str(root / "日本語" / "クリップ.mkv")],
                   check=True)
    (root / "zero bytes.mp4").write_bytes(b"")
    (root / "truncated.mp4").write_bytes(base_clip.read_bytes()[:600])
    (root / "notes.mp4").write_text("shopping list: milk, eggs\n" * 10)
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", str(root / "voice only.mp4")],
                   check=True)
    os.symlink("self.mp4", root / "self.mp4")
    os.symlink("..", root / "sub" / "loop")
    os.symlink("gone.mp4", root / "dangling.mp4")
    os.mkfifo(root / "pipe.mp4")
    (root / "readme.txt").write_text("not indexed: wrong extension")
    server = request.getfixturevalue("pg_server") if request.param == "postgresql" else None
    url = server.new_database() if server else None
    workspace = resolve_workspace(tmp_path_factory.mktemp("ws") / "ws", url)
    report = scan_archive([root], workspace)
    yield root, workspace, report
    if server:
        server.drop_database(url)


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_each_bad_input_is_recorded_and_the_run_goes_on(bad_archive, name):
    root, workspace, report = bad_archive
    path = str(root / name)
    recorded = rows(workspace)[path]
    assert recorded.status == "error"
    assert BAD_INPUTS[name] in recorded.error
    assert [e.error for e in report.file_errors if e.path == path] == [recorded.error]


@pytest.mark.parametrize("name", GOOD_INPUTS)
def test_good_files_next_to_bad_ones_are_indexed(bad_archive, name):
    root, workspace, report = bad_archive
    recorded = rows(workspace)[os.path.realpath(root / name)]
    assert recorded.status == "ok" and recorded.error is None
    assert (recorded.width, recorded.height, recorded.frame_count, recorded.fps) == (64, 48, 10, 10)
    assert recorded.fingerprint.startswith("blake2b:") and len(recorded.fingerprint) == len("blake2b:") + 128


def test_bad_archive_counts(bad_archive):
    root, workspace, report = bad_archive
    assert (report.new, report.errors, report.updated, report.moved, report.missing) == (4, len(BAD_INPUTS), 0, 0, 0)
    assert str(root / "readme.txt") not in rows(workspace)
    assert not any(str(root / "sub" / "loop") in p and p != str(root / "sub" / "loop") for p in rows(workspace))


def test_unreadable_file_is_recorded(ffmpeg, base_clip, tmp_path):
    """chmod 000 does not stop root; as root the scan runs under setpriv without the DAC capabilities."""
    archive = tmp_path / "archive"
    distinct_copy(base_clip, archive / "locked.mp4", "locked")
    distinct_copy(base_clip, archive / "open.mp4", "open")
    os.chmod(archive / "locked.mp4", 0)
    workspace = tmp_path / "ws"
    if os.geteuid() != 0:
        report = scan_archive([archive], resolve_workspace(workspace)).to_dict()
    else:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root, where chmod 000 does not bite, and setpriv (util-linux) is absent")
        drop = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
        probe = subprocess.run([*drop, "cat", str(archive / "locked.mp4")], capture_output=True)
        if probe.returncode == 0 or b"Permission denied" not in probe.stderr:
            pytest.skip(f"running as root and cannot drop CAP_DAC_OVERRIDE here: {probe.stderr[-200:]!r}")
        result = subprocess.run(
            [*drop, *cli_command("index", str(archive), "--workspace", str(workspace), "--no-features", "--json")],
            capture_output=True, text=True, env=cli_env(), timeout=120,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
    assert report["new"] == 1 and report["errors"] == 1
    [error] = report["file_errors"]
    assert error["path"] == str(archive / "locked.mp4") and "cannot read it: Permission denied" in error["error"]
    status = sqlite_rows(workspace / "catalog.sqlite", "SELECT status, error FROM videos WHERE path = ?",
                         (str(archive / "locked.mp4"),))
    assert status[0][0] == "error" and "Permission denied" in status[0][1]


# -- incremental, moves, deletions ---------------------------------------------------------------


@pytest.fixture
def probe_counter(monkeypatch):
    import r2cli.media.probe as probe_module

    calls: list[str] = []
    real = probe_module.probe

    def counting(path, **kwargs):
        calls.append(os.fspath(path))
        return real(path, **kwargs)

    monkeypatch.setattr(probe_module, "probe", counting)
    return calls


@pytest.fixture
def archive(tmp_path, make_copy):
    root = tmp_path / "archive"
    for i in range(4):
        make_copy(root / f"clip{i}.mp4", i)
    make_copy(root / "nested" / "deeper" / "clip4.mkv", 4)
    return root


def test_unchanged_files_are_not_probed_again(archive, workspace, probe_counter):
    first = scan_archive([archive], workspace)
    assert (first.new, first.probed, len(probe_counter)) == (5, 5, 5)
    before = rows(workspace)
    probe_counter.clear()
    second = scan_archive([archive], workspace)
    assert (second.unchanged, second.new, second.updated, second.probed, probe_counter) == (5, 0, 0, 0, [])
    after = rows(workspace)
    assert {p: r.probed_at for p, r in after.items()} == {p: r.probed_at for p, r in before.items()}
    assert all(after[p].last_seen >= before[p].last_seen for p in after)


def test_touched_file_is_refingerprinted_but_not_probed(archive, workspace, probe_counter):
    scan_archive([archive], workspace)
    probe_counter.clear()
    target = archive / "clip1.mp4"
    os.utime(target, (1_000_000_000, 1_000_000_000))
    report = scan_archive([archive], workspace)
    assert (report.unchanged, report.updated, probe_counter) == (5, 0, [])
    assert rows(workspace)[str(target)].mtime == 1_000_000_000


def test_changed_file_is_probed_again_and_loses_its_features(archive, workspace, base_clip, probe_counter):
    scan_archive([archive], workspace)
    target = archive / "clip2.mp4"
    _set_features_ok(workspace, str(target))
    old = rows(workspace)[str(target)]
    probe_counter.clear()
    distinct_copy(base_clip, target, "edited")
    report = scan_archive([archive], workspace)
    assert (report.updated, report.unchanged, probe_counter) == (1, 4, [str(target)])
    new = rows(workspace)[str(target)]
    assert new.id == old.id and new.fingerprint != old.fingerprint and new.features_status == "none"


def _set_features_ok(workspace, path: str) -> None:
    from sqlalchemy import update

    with Catalog.open(workspace) as catalog, catalog.session() as session:
        session.execute(update(Video).where(Video.path == path).values(features_status="ok"))


def test_moved_and_renamed_files_keep_their_row(archive, workspace, probe_counter):
    scan_archive([archive], workspace)
    _set_features_ok(workspace, str(archive / "clip0.mp4"))
    before = rows(workspace)
    probe_counter.clear()
    (archive / "renamed").mkdir()
    os.rename(archive / "clip0.mp4", archive / "renamed" / "clip zero (final).mp4")
    os.rename(archive / "nested" / "deeper" / "clip4.mkv", archive / "clip4.mkv")
    report = scan_archive([archive], workspace)
    assert (report.moved, report.new, report.missing, report.unchanged, probe_counter) == (2, 0, 0, 3, [])
    after = rows(workspace)
    assert len(after) == 5
    moved = after[str(archive / "renamed" / "clip zero (final).mp4")]
    assert moved.id == before[str(archive / "clip0.mp4")].id
    assert moved.features_status == "ok" and moved.probed_at == before[str(archive / "clip0.mp4")].probed_at
    assert after[str(archive / "clip4.mkv")].id == before[str(archive / "nested" / "deeper" / "clip4.mkv")].id


def test_a_copy_is_a_second_row(archive, workspace):
    scan_archive([archive], workspace)
    shutil.copy2(archive / "clip1.mp4", archive / "copy of clip1.mp4")
    report = scan_archive([archive], workspace)
    assert (report.new, report.moved) == (1, 0)
    recorded = rows(workspace)
    assert recorded[str(archive / "copy of clip1.mp4")].fingerprint == recorded[str(archive / "clip1.mp4")].fingerprint


def test_deleted_file_is_marked_missing_then_comes_back(archive, workspace):
    scan_archive([archive], workspace)
    keep = (archive / "clip3.mp4").read_bytes()
    original = rows(workspace)[str(archive / "clip3.mp4")]
    (archive / "clip3.mp4").unlink()
    report = scan_archive([archive], workspace)
    assert (report.missing, report.unchanged) == (1, 4)
    gone = rows(workspace)[str(archive / "clip3.mp4")]
    assert gone.status == "missing" and gone.id == original.id and gone.duration == original.duration
    # files outside the scanned folder are not swept: scanning a subfolder keeps the others
    scan_archive([archive / "nested"], workspace)
    assert sum(r.status == "missing" for r in rows(workspace).values()) == 1
    (archive / "elsewhere").mkdir()
    (archive / "elsewhere" / "clip3 back.mp4").write_bytes(keep)
    report = scan_archive([archive], workspace)
    assert (report.moved, report.missing) == (1, 0)
    back = rows(workspace)[str(archive / "elsewhere" / "clip3 back.mp4")]
    assert back.id == original.id and back.status == "ok"


def test_dry_run_writes_nothing(archive, workspace, probe_counter):
    report = scan_archive([archive], workspace, dry_run=True)
    assert report.dry_run and (report.new, report.probed, probe_counter) == (5, 0, [])
    assert not workspace.root.exists()
    if not is_sqlite(workspace):  # nothing created on the server either
        assert catalog_rows(workspace, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    scan_archive([archive], workspace)
    snapshot = catalog_rows(workspace, "SELECT * FROM videos ORDER BY id")
    os.rename(archive / "clip1.mp4", archive / "clip1 moved.mp4")
    (archive / "clip2.mp4").unlink()
    (archive / "new.mp4").write_bytes(b"")
    report = scan_archive([archive], workspace, dry_run=True)
    assert (report.moved, report.missing, report.new, report.unchanged) == (1, 1, 1, 3)
    assert catalog_rows(workspace, "SELECT * FROM videos ORDER BY id") == snapshot


def test_extension_and_ignore_filters(archive, workspace, make_copy):
    make_copy(archive / "proxies" / "small.mp4", "proxy")
    make_copy(archive / "clip9.mp4.part", "partial")
    report = scan_archive([archive], workspace, extensions=[".MP4"], ignore=["proxies", "*.part"])
    assert (report.new, report.ignored) == (4, 2)  # the proxies folder and the .part file; no .mkv
    assert not any("proxies" in p or p.endswith(".mkv") for p in rows(workspace))
    report = scan_archive([archive], workspace, extensions=["mp4,mkv"], ignore=["nested/*"])
    assert (report.new, report.unchanged, report.ignored) == (1, 4, 1)
    with pytest.raises(UsageError, match="--ext takes plain extensions"):
        scan_archive([archive], workspace, extensions=["*.mp4"])


def test_single_files_can_be_named(archive, workspace):
    report = scan_archive([archive / "clip1.mp4", archive / "nested"], workspace)
    assert report.new == 2


def test_usage_errors(workspace, tmp_path):
    with pytest.raises(UsageError, match="no such file or folder"):
        scan_archive([tmp_path / "nope"], workspace)
    with pytest.raises(UsageError, match="at least one"):
        scan_archive([], workspace)
    assert not workspace.root.exists()


def test_strict_raises_after_recording_everything(archive, workspace):
    (archive / "broken.mp4").write_text("nope")
    with pytest.raises(ScanFailedError, match=r"1 of 6 paths failed \(--strict\); first: .*broken.mp4") as caught:
        scan_archive([archive], workspace, strict=True)
    assert caught.value.report.new == 5 and len(rows(workspace)) == 6


def test_missing_ffprobe_stops_the_scan(archive, workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("R2CLI_FFPROBE", str(tmp_path / "nope"))
    with pytest.raises(MissingDependencyError, match="ffprobe not found"):
        scan_archive([archive], workspace)


def test_workspace_inside_the_archive_is_skipped(archive, make_copy):
    workspace = resolve_workspace(archive / ".r2cli")
    scan_archive([archive], workspace)
    make_copy(workspace.root / "features" / "stray.mp4", "stray")
    assert scan_archive([archive], workspace).unchanged == 5


def test_media_tagged_as_r2cli_output_is_not_indexed(ffmpeg, tmp_path):
    import subprocess

    from fixtures import make_video

    from r2cli.catalog.scan import scan_archive
    from r2cli.paths import OUTPUT_COMMENT, resolve_workspace

    archive = tmp_path / "archive"
    make_video(archive / "source.mp4", seconds=2, width=64, height=48)
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(archive / "source.mp4"), "-c", "copy", "-metadata",
                    f"comment={OUTPUT_COMMENT}", str(archive / "reel.mp4")], check=True)
    report = scan_archive([archive], resolve_workspace(tmp_path / "ws"))
    assert (report.new, report.ignored, report.errors) == (1, 1, 0)
    assert [(p.path, p.error) for p in report.ignored_paths] == [
        (str(archive / "reel.mp4"), "r2cli output (comment='r2cli output'); not indexed")]
