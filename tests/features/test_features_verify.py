"""`r2cli index --verify`: damaged feature files are found by their checksum and shapes and extracted again (#14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import make_video

from r2cli.catalog.scan import scan_archive
from r2cli.features.extract import extract_features
from r2cli.features.store import read_header
from r2cli.features.verify import check_file
from r2cli.paths import resolve_workspace


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def damage_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[10:14] = b"@@@@"  # inside the JSON header, same size
    path.write_bytes(bytes(data))


def flip_data(path: Path) -> None:
    _, start = read_header(path)
    data = bytearray(path.read_bytes())
    data[start + 1000] ^= 0x40  # one bit of one fp16 value in `layers`, same size, header intact
    path.write_bytes(bytes(data))


@pytest.fixture()
def extracted(ffmpeg, tmp_path, tiny_tower_small_batch):
    archive = tmp_path / "archive"
    make_video(archive / "a.mp4", seconds=7, width=64, height=48)
    make_video(archive / "b.mp4", seconds=5, width=64, height=48, colors=("green", "yellow"))
    workspace = resolve_workspace(tmp_path / "ws")
    scan_archive([archive], workspace)
    report = extract_features(workspace, tower=tiny_tower_small_batch)
    assert report.videos_extracted == 2
    files = sorted(workspace.features_dir.rglob("*.safetensors"))
    originals = {path: path.read_bytes() for path in files}
    assert all(check_file(path, None) is None for path in files)
    return workspace, files, originals


@pytest.mark.parametrize("damage, found_without_verify, problem", [
    (truncate, True, "were written (truncated"),
    (empty, True, "file is empty (0 bytes)"),
    (damage_header, False, "damaged header"),
    (flip_data, False, "data does not match its checksum"),
])
def test_verify_finds_and_repairs_damaged_files(extracted, tiny_tower_small_batch, damage, found_without_verify, problem):
    workspace, files, originals = extracted
    target = files[0]
    damage(target)
    assert check_file(target, None) is not None
    plain = extract_features(workspace, tower=tiny_tower_small_batch)  # a plain re-run checks sizes only (one stat)
    if found_without_verify:
        assert (plain.videos_extracted, plain.videos_skipped) == (1, 1)
        assert target.read_bytes() == originals[target]
        damage(target)
    else:
        assert (plain.videos_extracted, plain.videos_skipped) == (0, 2)  # same size: only --verify sees it
    report = extract_features(workspace, tower=tiny_tower_small_batch, verify=True)
    assert (report.videos_verified, report.videos_repaired, report.videos_extracted) == (2, 1, 1)
    assert problem in report.repaired[0].error
    assert {path: path.read_bytes() for path in files} == originals  # the same bytes as the first extraction
    clean = extract_features(workspace, tower=tiny_tower_small_batch, verify=True)
    assert (clean.videos_verified, clean.videos_repaired, clean.videos_extracted) == (2, 0, 0)
