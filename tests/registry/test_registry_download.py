"""The real download path against a local HTTP server: verification, atomic rename, resume, failures."""

from __future__ import annotations

import hashlib

import pytest

from r2cli.errors import MissingWeightsError
from r2cli.model import registry
from r2cli.progress import Reporter

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB: more than one read chunk


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checkpoint(server, name: str, data: bytes, digest: str | None = None) -> dict:
    prefix = (digest or _sha(data))[:8]
    filename = f"r2_tuning_{name}-{prefix}.pth"
    server.files[filename] = data
    return {"filename": filename, "url": server.url(filename), "sha256": prefix, "preset": name, "clip": "Tiny/test"}


class RecordingReporter(Reporter):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def begin(self, stage, total=None, unit="items"):
        self.events.append(("begin", stage, total, unit))

    def advance(self, stage, amount=1.0, **fields):
        self.events.append(("advance", stage, amount))

    def end(self, stage):
        self.events.append(("end", stage))


def test_registry_download_verifies_and_renames_atomically(weights_server, private_manifest):
    private_manifest(checkpoints={"demo": _checkpoint(weights_server, "demo", PAYLOAD)})
    reporter = RecordingReporter()
    path = registry.download("demo", reporter=reporter)
    assert path.read_bytes() == PAYLOAD
    assert not path.with_name(path.name + ".part").exists()
    assert path.with_name(path.name + ".sha256").read_text().split()[0] == _sha(PAYLOAD)
    assert reporter.events[0] == ("begin", "download checkpoint 'demo'", len(PAYLOAD), "bytes")
    assert sum(e[2] for e in reporter.events if e[0] == "advance") == len(PAYLOAD)
    assert reporter.events[-1] == ("end", "download checkpoint 'demo'")
    # cached now: resolving does not touch the network again
    count = len(weights_server.requests)
    assert registry.resolve_checkpoint("demo") == path
    assert len(weights_server.requests) == count


def test_registry_download_checksum_mismatch_installs_nothing(weights_server, private_manifest):
    entry = _checkpoint(weights_server, "bad", PAYLOAD, digest="deadbeef" + "0" * 56)
    private_manifest(checkpoints={"bad": entry})
    with pytest.raises(registry.WeightsChecksumError, match="expected deadbeef.*nothing was installed") as caught:
        registry.resolve_checkpoint("bad")
    assert "\n" not in str(caught.value)
    target = registry.expected_path("bad")
    assert not target.exists() and not target.with_name(target.name + ".part").exists()


def test_registry_download_resumes_a_partial_file(weights_server, private_manifest):
    private_manifest(checkpoints={"demo": _checkpoint(weights_server, "demo", PAYLOAD)})
    target = registry.expected_path("demo")
    target.parent.mkdir(parents=True)
    target.with_name(target.name + ".part").write_bytes(PAYLOAD[:300_000])
    assert registry.download("demo").read_bytes() == PAYLOAD
    assert weights_server.requests[-1][1] == "bytes=300000-"


def test_registry_download_restarts_when_the_server_ignores_ranges(weights_server, private_manifest):
    entry = _checkpoint(weights_server, "demo", PAYLOAD)
    weights_server.ignore_range.add(entry["filename"])
    private_manifest(checkpoints={"demo": entry})
    target = registry.expected_path("demo")
    target.parent.mkdir(parents=True)
    target.with_name(target.name + ".part").write_bytes(b"stale bytes from another file")
    assert registry.download("demo").read_bytes() == PAYLOAD


def test_registry_download_interrupted_then_resumed(weights_server, private_manifest):
    entry = _checkpoint(weights_server, "demo", PAYLOAD)
    weights_server.truncate.add(entry["filename"])
    private_manifest(checkpoints={"demo": entry})
    with pytest.raises(MissingWeightsError, match="checkpoint 'demo' is not cached and cannot be downloaded") as caught:
        registry.download("demo")
    assert "\n" not in str(caught.value)
    target = registry.expected_path("demo")
    assert not target.exists()
    left = target.with_name(target.name + ".part").stat().st_size
    assert 0 < left < len(PAYLOAD)
    assert registry.download("demo").read_bytes() == PAYLOAD
    assert weights_server.requests[-1][1] == f"bytes={left}-"


def test_registry_download_http_error_is_one_line(weights_server, private_manifest):
    entry = _checkpoint(weights_server, "gone", PAYLOAD)
    del weights_server.files[entry["filename"]]
    private_manifest(checkpoints={"gone": entry})
    with pytest.raises(MissingWeightsError, match=r"\(HTTP 404 Not Found, after \d+ s\); download http://127") as caught:
        registry.download("gone")
    assert "\n" not in str(caught.value)


def test_registry_download_many_fetches_the_clip_a_checkpoint_needs(weights_server, private_manifest):
    clip_bytes = b"clip" * 1000
    weights_server.files["tiny.pt"] = clip_bytes
    private_manifest(
        checkpoints={"demo": _checkpoint(weights_server, "demo", PAYLOAD)},
        clip={"Tiny/test": {"model": "Tiny", "filename": "tiny.pt", "url": weights_server.url("tiny.pt"),
                            "sha256": _sha(clip_bytes)}},
    )
    statuses = registry.download_many(["demo", "demo"])
    assert [(s.kind, s.name, s.verified) for s in statuses] == [("checkpoint", "demo", True), ("clip", "Tiny/test", True)]
    assert registry.resolve_clip_weights("Tiny/test").read_bytes() == clip_bytes
    assert registry.download_many(["Tiny/test"], with_clip=False)[0].cached
