"""Offline behaviour: fail fast with one line, verify checksums, find hand-filled cache files, local paths."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import hashlib

import pytest

from r2cli.errors import MissingWeightsError
from r2cli.model import _download, _hashing, registry
from r2cli.paths import weights_cache_dir


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fill(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("offline_env", ["HF_HUB_OFFLINE", "R2CLI_OFFLINE"])
def test_registry_offline_nothing_cached_fails_fast_in_one_line(monkeypatch, offline_env):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(offline_env, "1")
    started = time.monotonic()
    with pytest.raises(MissingWeightsError) as caught:
        registry.resolve_checkpoint("qvhighlights")
    assert time.monotonic() - started < 2
    message = str(caught.value)
    target = weights_cache_dir() / "checkpoints" / "r2_tuning_qvhighlights-ed516355.pth"
    assert "\n" not in message
    assert message.startswith("checkpoint 'qvhighlights' is not cached and cannot be downloaded")
    assert f"offline mode: {offline_env}=1" in message
    assert "download https://huggingface.co/yeliudev/R2-Tuning/resolve/main/checkpoints/" in message
    assert f" to {target}" in message
    assert "--checkpoint /path/to/r2_tuning_qvhighlights-ed516355.pth" in message
    with pytest.raises(MissingWeightsError, match=r"CLIP weights 'ViT-B-32/openai' are not cached .* --clip-weights"):
        registry.resolve_clip_weights(None)
    assert not target.exists() and not target.parent.exists() or not any(target.parent.iterdir())


def test_registry_unreachable_host_fails_within_the_connect_timeout(monkeypatch, private_manifest):
    """Not offline, but the host does not answer: one attempt bounded by the connect timeout, no retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(_download, "CONNECT_TIMEOUT_S", 1.0)
    # 10.255.255.1 is a non-routable address (connect hangs or fails at once); port 9 on 127.0.0.1 refuses.
    private_manifest(checkpoints={
        "blackhole": {"filename": "b-00000000.pth", "url": "http://10.255.255.1:81/b.pth", "sha256": "00000000",
                      "preset": "p", "clip": "c"},
        "refused": {"filename": "r-00000000.pth", "url": "http://127.0.0.1:9/r.pth", "sha256": "00000000",
                    "preset": "p", "clip": "c"},
    })
    for name in ("blackhole", "refused"):
        started = time.monotonic()
        with pytest.raises(MissingWeightsError, match=f"checkpoint '{name}' is not cached and cannot be downloaded"):
            registry.resolve_checkpoint(name)
        assert time.monotonic() - started < 5, name


def test_registry_cli_offline_exit_code_and_single_line():
    """The real command in a fresh process: exit code 4, one line on stderr, well under 30 s."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "400"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "r2cli.cli.main", "models", "download", "qvhighlights"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 4, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "checkpoint 'qvhighlights' is not cached" in lines[0]


def test_registry_checksum_mismatch_is_refused():
    entry = registry.get_checkpoint("charades")
    target = _fill(registry.cache_path(entry), b"not the published checkpoint")
    with pytest.raises(registry.WeightsChecksumError, match=r"expected 1de02112.*delete it and download it again") as caught:
        registry.resolve_checkpoint("charades")
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, MissingWeightsError)
    # an explicit local file whose name carries the published hash is checked as well
    copy = _fill(target.parent.parent / "elsewhere" / entry.filename, b"also wrong")
    with pytest.raises(registry.WeightsChecksumError):
        registry.resolve_checkpoint(str(copy))
    # ... unless it is the user's own file with any other name
    own = _fill(target.parent.parent / "elsewhere" / "my_finetune.pth", b"weights")
    assert registry.resolve_checkpoint(str(own)) == own.resolve()


def test_registry_hand_filled_cache_is_found_offline_and_verified_once(private_manifest, monkeypatch):
    checkpoint_bytes = b"pretend checkpoint " * 100
    clip_bytes = b"pretend clip weights " * 100
    digest = sha256_hex(checkpoint_bytes)
    private_manifest(
        checkpoints={"demo": {"filename": f"r2_tuning_demo-{digest[:8]}.pth", "url": "http://127.0.0.1:9/x",
                              "sha256": digest[:8], "preset": "demo", "clip": "Tiny/test"}},
        clip={"Tiny/test": {"model": "Tiny", "filename": "tiny.pt", "url": "", "sha256": sha256_hex(clip_bytes)}},
    )
    assert registry.describe("demo").cached is False
    path = _fill(registry.expected_path("demo"), checkpoint_bytes)
    assert path == weights_cache_dir() / "checkpoints" / f"r2_tuning_demo-{digest[:8]}.pth"
    assert registry.resolve_checkpoint("demo") == path
    assert (path.parent / (path.name + ".sha256")).read_text().split()[0] == digest
    # second resolution trusts the note and does not hash the file again
    with monkeypatch.context() as patched:
        patched.setattr(_hashing, "file_sha256", lambda *_: pytest.fail("re-hashed a verified file"))
        assert registry.resolve_checkpoint("demo") == path
    clip_path = _fill(registry.expected_path("Tiny/test"), clip_bytes)
    assert clip_path == weights_cache_dir() / "clip" / "tiny.pt"
    assert registry.resolve_clip_weights("Tiny/test") == clip_path
    assert [status.name for status in registry.cached()] == ["Tiny/test", "demo"]
    statuses = {status.name: status for status in registry.list_models(verify=True)}
    assert statuses["demo"].verified is True and statuses["demo"].bytes == len(checkpoint_bytes)
    # a changed file is hashed again and refused
    path.write_bytes(b"tampered")
    with pytest.raises(registry.WeightsChecksumError):
        registry.resolve_checkpoint("demo")


def test_registry_hand_filled_clip_loads_through_load_clip(private_manifest, tiny_clip_path):
    pytest.importorskip("torch")
    from r2cli.features.clip import load_clip

    data = tiny_clip_path.read_bytes()
    private_manifest(clip={"Tiny/test": {"model": "Tiny", "filename": "tiny-openai.pt", "url": "",
                                          "sha256": sha256_hex(data), "layout": "openai", "quick_gelu": True}})
    with pytest.raises(MissingWeightsError, match=r"CLIP weights 'Tiny/test' are not cached and have no download URL"):
        load_clip("Tiny/test")
    _fill(registry.expected_path("Tiny/test"), data)
    tower = load_clip("Tiny/test")
    assert tower.weights_id == "Tiny/test" and tower.model_name == "Tiny" and tower.num_tokens == 5


def test_registry_paths_and_environment_defaults(monkeypatch, tmp_path):
    own = _fill(tmp_path / "weights" / "model.pth", b"x")
    monkeypatch.setenv("R2CLI_CHECKPOINT", str(own))
    assert registry.resolve_checkpoint() == own.resolve()
    with pytest.raises(MissingWeightsError, match=r"checkpoint file .*absent.pth does not exist \(--checkpoint\)"):
        registry.resolve_checkpoint(str(tmp_path / "absent.pth"))
    with pytest.raises(MissingWeightsError, match="is a folder"):
        registry.resolve_checkpoint(tmp_path / "weights")
    clip_file = _fill(tmp_path / "clip" / "ViT-B-32.pt", b"clip")
    monkeypatch.setenv("R2CLI_CLIP_WEIGHTS", str(clip_file))
    resolved = registry.resolve_clip(None)
    assert resolved.path == clip_file.resolve() and resolved.weights_id == f"sha256:{sha256_hex(b'clip')[:16]}"
    assert registry.cache_path(registry.get_checkpoint("tacos"), tmp_path / "c") == (
        tmp_path / "c" / "checkpoints" / "r2_tuning_tacos-81759b55.pth"
    )
