"""Non-finite features are an extraction failure when written and a damaged file when verified (#18.4).

A CLIP whose outputs overflow fp16 (the stored dtype) gave every video ``features_status ok`` and
``index --strict`` exit 0, after which search skipped every window. NaN written into a feature file
with its checksum recomputed passed ``index --verify``.
"""

from __future__ import annotations

import json
import struct

import pytest
from fixtures import make_video

from r2cli.catalog.scan import scan_archive
from r2cli.features.extract import extract_features
from r2cli.features.file_format import CHECKSUM_ALGO, CHECKSUM_BYTES
from r2cli.features.store import read_header
from r2cli.features.verify import check_file
from r2cli.paths import resolve_workspace

torch = pytest.importorskip("torch")


@pytest.fixture()
def overflowing_weights(tiny_clip_path, tmp_path):
    """The tiny CLIP with its last image block adding 1e5 to every channel: finite in fp32, beyond fp16's 65504."""
    state = torch.load(tiny_clip_path, map_location="cpu", weights_only=True)
    state = {name: value.float() for name, value in state.items()}
    last = max(int(name.split(".")[3]) for name in state if name.startswith("visual.transformer.resblocks."))
    bias = f"visual.transformer.resblocks.{last}.mlp.c_proj.bias"
    state[bias] = torch.full_like(state[bias], 1e5)
    path = tmp_path / "overflowing.pt"
    torch.save(state, path)
    return path


@pytest.fixture()
def archive(ffmpeg, tmp_path):
    folder = tmp_path / "archive"
    make_video(folder / "a.mp4", seconds=5, width=64, height=48)
    return folder


def test_overflowing_clip_fails_the_video_and_strict_index(archive, overflowing_weights, tmp_path, capsys):
    from r2cli.cli.main import main

    workspace = tmp_path / "ws"
    with pytest.raises(SystemExit) as caught:
        main(["index", str(archive), "--workspace", str(workspace), "--clip-weights", str(overflowing_weights),
              "--device", "cpu", "--strict", "--json"])
    assert caught.value.code not in (0, None)
    report = json.loads(capsys.readouterr().out)
    assert report["features"]["videos_failed"] == 1 and report["features"]["videos_extracted"] == 0
    error = report["features"]["failures"][0]["error"]
    assert "CLIP produced non-finite values" in error and "fp16 overflow?" in error
    assert not list(workspace.rglob("*.safetensors"))  # nothing stored


def _write_nan_with_valid_checksum(path):
    """Put NaN into the layers and recompute the checksum, as a writer without the check would have."""
    import hashlib

    header, start = read_header(path)
    data = bytearray(path.read_bytes())
    data[start + 10 : start + 12] = struct.pack("<e", float("nan"))
    digest = hashlib.blake2b(bytes(data[start:]), digest_size=CHECKSUM_BYTES).hexdigest()
    length = struct.unpack("<Q", data[:8])[0]
    text = data[8 : 8 + length].decode()
    old = header["__metadata__"]["checksum"]
    text = text.replace(old, f"{CHECKSUM_ALGO}:{digest}")
    data[8 : 8 + length] = text.encode()
    path.write_bytes(bytes(data))


def test_verify_reports_nan_stored_with_a_valid_checksum(archive, tmp_path, tiny_tower_small_batch):
    workspace = resolve_workspace(tmp_path / "ws")
    scan_archive([archive], workspace)
    assert extract_features(workspace, tower=tiny_tower_small_batch).videos_extracted == 1
    (target,) = workspace.features_dir.rglob("*.safetensors")
    original = target.read_bytes()
    _write_nan_with_valid_checksum(target)
    problem = check_file(target, None)
    assert problem is not None and "non-finite values (NaN or inf) in layers" in problem
    assert "matches its checksum" in problem
    report = extract_features(workspace, tower=tiny_tower_small_batch, verify=True)
    assert (report.videos_repaired, report.videos_extracted) == (1, 1)
    assert "non-finite" in report.repaired[0].error
    assert target.read_bytes() == original  # extracted again, finite

