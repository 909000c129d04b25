"""The real download path against a local HTTP server on 127.0.0.1: Hub-hosted checkpoints through
huggingface_hub, other URLs (OpenAI's CLIP files) through open_clip's downloader; verification,
atomic installation under r2cli's names, resumed transfers, failures in one line."""

from __future__ import annotations

import hashlib

import pytest

from r2cli.errors import MissingWeightsError
from r2cli.model import registry
from r2cli.progress import Reporter

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB: more than one read chunk
REPO = "yeliudev/R2-Tuning"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checkpoint(server, name: str, data: bytes, digest: str | None = None) -> dict:
    """A manifest entry for a checkpoint the server hosts as a Hub file (checkpoints/<file> in REPO)."""
    prefix = (digest or _sha(data))[:8]
    filename = f"r2_tuning_{name}-{prefix}.pth"
    url = server.add_hub(REPO, f"checkpoints/{filename}", data)
    return {"filename": filename, "url": url, "sha256": prefix, "preset": name, "clip": "Tiny/test"}


def _hub_path(entry: dict) -> str:
    return f"{REPO}/resolve/main/checkpoints/{entry['filename']}"


class RecordingReporter(Reporter):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def begin(self, stage, total=None, unit="items"):
        self.events.append(("begin", stage, total, unit))

    def advance(self, stage, amount=1.0, **fields):
        self.events.append(("advance", stage, amount))

    def end(self, stage):
        self.events.append(("end", stage))


def _staging_files(target):
    folder = target.parent / registry.STAGING_DIR
    return sorted(  # files in progress; the libraries' own bookkeeping (.cache/, locks) aside
        p.name for p in folder.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(folder).parts and not p.name.endswith(".lock")
    )


def test_registry_hub_download_verifies_and_installs_under_r2cli_name(weights_server, private_manifest):
    entry = _checkpoint(weights_server, "demo", PAYLOAD)
    private_manifest(checkpoints={"demo": entry})
    reporter = RecordingReporter()
    path = registry.download("demo", reporter=reporter)
    assert path == registry.expected_path("demo") and path.read_bytes() == PAYLOAD
    assert [m for m, name, _ in weights_server.requests if name == _hub_path(entry)] == ["HEAD", "GET"]
    assert path.with_name(path.name + ".sha256").read_text().split()[0] == _sha(PAYLOAD)
    assert _staging_files(path) == []  # nothing left behind in the staging folder
    assert reporter.events[0] == ("begin", "download checkpoint 'demo'", len(PAYLOAD), "bytes")
    assert sum(e[2] for e in reporter.events if e[0] == "advance") == len(PAYLOAD)
    assert reporter.events[-1] == ("end", "download checkpoint 'demo'")
    # cached now: resolving does not touch the network again
    count = len(weights_server.requests)
    assert registry.resolve_checkpoint("demo") == path
    assert len(weights_server.requests) == count


def test_registry_hub_mirror_from_hf_endpoint(weights_server, private_manifest, monkeypatch):
    """A manifest URL on huggingface.co is fetched from $HF_ENDPOINT (a Hub mirror) when it is set."""
    entry = _checkpoint(weights_server, "demo", PAYLOAD)
    entry["url"] = entry["url"].replace(weights_server.base_url, "https://huggingface.co")
    private_manifest(checkpoints={"demo": entry})
    monkeypatch.setenv("HF_ENDPOINT", weights_server.base_url)
    assert registry.download("demo").read_bytes() == PAYLOAD
    assert weights_server.gets(_hub_path(entry)) == [None]


def test_registry_download_checksum_mismatch_installs_nothing(weights_server, private_manifest):
    entry = _checkpoint(weights_server, "bad", PAYLOAD, digest="deadbeef" + "0" * 56)
    private_manifest(checkpoints={"bad": entry})
    with pytest.raises(registry.WeightsChecksumError, match="expected deadbeef.*nothing was installed") as caught:
        registry.resolve_checkpoint("bad")
    assert "\n" not in str(caught.value)
    target = registry.expected_path("bad")
    assert not target.exists() and _staging_files(target) == []


def test_registry_hub_dropped_transfer_is_resumed_with_a_range_request(weights_server, private_manifest):
    from huggingface_hub import constants

    chunk = constants.DOWNLOAD_CHUNK_SIZE  # huggingface_hub hands the bytes on (and can resume) per chunk
    payload = PAYLOAD * (2 * chunk // len(PAYLOAD) + 1)  # a bit over two chunks
    entry = _checkpoint(weights_server, "demo", payload)
    weights_server.truncate.add(_hub_path(entry))  # the first GET stops after half the bytes
    private_manifest(checkpoints={"demo": entry})
    assert registry.download("demo").read_bytes() == payload
    assert weights_server.gets(_hub_path(entry)) == [None, f"bytes={chunk}-"]


def test_registry_hub_resume_restarts_when_the_server_ignores_ranges(weights_server, private_manifest):
    entry = _checkpoint(weights_server, "demo", PAYLOAD)
    weights_server.truncate.add(_hub_path(entry))
    weights_server.ignore_range.add(_hub_path(entry))  # the resumed request gets the whole file again
    private_manifest(checkpoints={"demo": entry})
    assert registry.download("demo").read_bytes() == PAYLOAD
    assert len(weights_server.gets(_hub_path(entry))) == 2


def test_registry_download_http_error_is_one_line(weights_server, private_manifest):
    entry = _checkpoint(weights_server, "gone", PAYLOAD)
    del weights_server.files[_hub_path(entry)]
    weights_server.add("plain-gone.pt", b"x")
    del weights_server.files["plain-gone.pt"]
    private_manifest(
        checkpoints={"gone": entry},
        clip={"Tiny/gone": {"model": "Tiny", "filename": "gone.pt", "url": weights_server.url("plain-gone.pt"),
                            "sha256": _sha(b"x")}},
    )
    for name in ("gone", "Tiny/gone"):  # through huggingface_hub, then through open_clip
        with pytest.raises(MissingWeightsError, match=r"\(HTTP 404 Not Found, after \d+ s\); download http://127") as caught:
            registry.download(name)
        assert "\n" not in str(caught.value)
        assert not registry.expected_path(name).exists()


def test_registry_clip_url_download_through_open_clip(weights_server, private_manifest):
    """A non-Hub URL (as OpenAI's CLIP files have) goes through open_clip's downloader, then r2cli's check."""
    clip_bytes = b"clip weights " * 50_000
    private_manifest(clip={"Tiny/test": {"model": "Tiny", "filename": "tiny.pt",
                                         "url": weights_server.add("clip/models/abc/tiny-openai.pt", clip_bytes),
                                         "sha256": _sha(clip_bytes)}})
    reporter = RecordingReporter()
    path = registry.download("Tiny/test", reporter=reporter)
    assert path == registry.expected_path("Tiny/test") and path.name == "tiny.pt" and path.read_bytes() == clip_bytes
    assert _staging_files(path) == []
    assert reporter.events[0] == ("begin", "download CLIP weights 'Tiny/test'", len(clip_bytes), "bytes")
    assert sum(e[2] for e in reporter.events if e[0] == "advance") == len(clip_bytes)
    assert reporter.events[-1] == ("end", "download CLIP weights 'Tiny/test'")


def test_registry_clip_url_truncated_transfer_installs_nothing(weights_server, private_manifest):
    """open_clip accepts a short body without complaint; r2cli's SHA-256 check refuses it."""
    clip_bytes = b"clip weights " * 50_000
    url = weights_server.add("tiny-openai.pt", clip_bytes)
    weights_server.truncate.add("tiny-openai.pt")
    private_manifest(clip={"Tiny/test": {"model": "Tiny", "filename": "tiny.pt", "url": url, "sha256": _sha(clip_bytes)}})
    with pytest.raises(registry.WeightsChecksumError, match="nothing was installed"):
        registry.download("Tiny/test")
    target = registry.expected_path("Tiny/test")
    assert not target.exists() and _staging_files(target) == []
    assert registry.download("Tiny/test").read_bytes() == clip_bytes  # the next run starts afresh


def test_registry_download_many_fetches_the_clip_a_checkpoint_needs(weights_server, private_manifest):
    clip_bytes = b"clip" * 1000
    private_manifest(
        checkpoints={"demo": _checkpoint(weights_server, "demo", PAYLOAD)},
        clip={"Tiny/test": {"model": "Tiny", "filename": "tiny.pt", "url": weights_server.add("tiny.pt", clip_bytes),
                            "sha256": _sha(clip_bytes)}},
    )
    statuses = registry.download_many(["demo", "demo"])
    assert [(s.kind, s.name, s.verified) for s in statuses] == [("checkpoint", "demo", True), ("clip", "Tiny/test", True)]
    assert registry.resolve_clip_weights("Tiny/test").read_bytes() == clip_bytes
    assert registry.download_many(["Tiny/test"], with_clip=False)[0].cached


def test_registry_uses_a_file_already_in_huggingface_hubs_cache_offline(weights_server, private_manifest, monkeypatch, tmp_path):
    """A checkpoint an earlier `hf download` put in huggingface_hub's cache is copied, verified, even offline."""
    from huggingface_hub import constants, hf_hub_download

    entry = _checkpoint(weights_server, "demo", PAYLOAD)
    bad = _checkpoint(weights_server, "bad", b"other bytes", digest="deadbeef" + "0" * 56)
    private_manifest(checkpoints={"demo": entry, "bad": bad})
    hub_cache = tmp_path / "hf-hub-cache"
    for item in (entry, bad):
        hf_hub_download(REPO, f"checkpoints/{item['filename']}", endpoint=weights_server.base_url, cache_dir=hub_cache)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("R2CLI_OFFLINE", "1")
    count = len(weights_server.requests)
    path = registry.resolve_checkpoint("demo")
    assert path == registry.expected_path("demo") and path.read_bytes() == PAYLOAD and not path.is_symlink()
    assert len(weights_server.requests) == count  # no network
    with pytest.raises(registry.WeightsChecksumError, match=r"hf-hub-cache.*expected deadbeef.*nothing was installed"):
        registry.resolve_checkpoint("bad")
    assert not registry.expected_path("bad").exists()
