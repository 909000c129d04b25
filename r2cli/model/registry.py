"""Pretrained weights by name: the official R2-Tuning model zoo and the CLIP weights it needs.

The manifest is ``models/pretrained.json`` (data, not code). Each checkpoint entry has the file
name published by the official repository (``r2_tuning_<config>-<8 hex>.pth``, where the hex is
the first 8 digits of the file's SHA-256), its URL, the preset it was trained with and the CLIP
weights it needs. Each CLIP entry has its URL and full SHA-256.

Files live in the weights cache (``r2cli.paths.weights_cache_dir()``, i.e. ``$R2CLI_CACHE`` or
``~/.cache/r2cli``)::

    <cache>/checkpoints/r2_tuning_qvhighlights-ed516355.pth
    <cache>/clip/ViT-B-32.pt

A user without network access can fill those folders by hand (``r2cli models path NAME`` prints
the exact path), or pass a file explicitly (``--checkpoint PATH``, ``--clip-weights PATH``).
Downloads go to ``<file>.part`` (resumed with an HTTP Range request when one is left over), are
verified against the SHA-256 (full digest or prefix), and are renamed into place atomically.
``R2CLI_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` forbid any network access; without them a failed
connection still gives up within seconds, never retrying in a loop. A missing file is always an
error (``MissingWeightsError``, one line saying what is missing and how to provide it): r2cli never
falls back to random or other weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from r2cli.errors import InputError, MissingWeightsError, R2Error, UsageError
from r2cli.paths import models_dir, weights_cache_dir
from r2cli.progress import NULL_REPORTER, Reporter

MANIFEST_FILE = "pretrained.json"
MANIFEST_FORMAT = "r2cli-pretrained-v1"
CHECKPOINT_ENV = "R2CLI_CHECKPOINT"
CLIP_WEIGHTS_ENV = "R2CLI_CLIP_WEIGHTS"
OFFLINE_ENVS = ("R2CLI_OFFLINE", "HF_HUB_OFFLINE")
CHECKPOINTS_SUBDIR = "checkpoints"
CLIP_SUBDIR = "clip"
CONNECT_TIMEOUT_S = 8.0  # name lookup and TCP connect, each; keeps an offline failure well under 30 s
READ_TIMEOUT_S = 60.0  # a stalled transfer is abandoned after this long without data
CHUNK_BYTES = 1 << 20
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".tar")
_PUBLISHED_NAME = re.compile(r"^(?P<stem>.+)-(?P<hash>[0-9a-f]{8})\.pth$")
_HEX = re.compile(r"^[0-9a-f]{8,64}$")


class WeightsChecksumError(MissingWeightsError):
    """A weights file's SHA-256 does not match the registry (corrupt or wrong file)."""


# ----------------------------------------------------------------------------------------------
# Manifest


@dataclass(frozen=True)
class CheckpointEntry:
    """One released R2-Tuning checkpoint."""

    name: str  # registry name, the official config name without "r2_tuning_" ("qvhighlights")
    filename: str  # published file name ("r2_tuning_qvhighlights-ed516355.pth")
    url: str  # download URL
    sha256: str  # SHA-256 prefix from the file name (8 hex digits) or a full digest
    preset: str  # r2cli preset the checkpoint was trained with
    clip: str  # CLIP weights tag it needs ("ViT-B-32/openai")
    dataset: str = ""  # training data set, for people
    task: str = ""  # what it was trained for, for people
    metrics: dict = field(default_factory=dict)  # published validation numbers

    kind = "checkpoint"


@dataclass(frozen=True)
class ClipWeightsEntry:
    """CLIP weights known by tag."""

    tag: str  # "<open_clip model>/<pretrained tag>", e.g. "ViT-B-32/openai"
    model: str  # open_clip architecture name ("ViT-B-32")
    filename: str  # file name in the cache's clip/ folder ("ViT-B-32.pt")
    url: str  # download URL ("" when unknown)
    sha256: str  # full digest or prefix; "" when the publisher gives none
    layout: str = "openai"  # "openai": OpenAI key names (TorchScript or state dict); "open_clip": open_clip file
    quick_gelu: bool = True  # activation the weights were trained with

    kind = "clip"

    @property
    def name(self) -> str:
        return self.tag


@dataclass(frozen=True)
class Manifest:
    """The parsed ``models/pretrained.json``."""

    path: Path
    checkpoints: dict[str, CheckpointEntry]
    clip: dict[str, ClipWeightsEntry]
    clip_aliases: dict[str, str]
    default_checkpoint: str
    default_clip: str


_manifest_memo: dict[tuple[str, int], Manifest] = {}


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Read and check the pretrained manifest (default ``models/pretrained.json``).

    Raises:
        InputError: the manifest is missing a field or is not valid JSON.
    """
    manifest_path = Path(path) if path is not None else models_dir() / MANIFEST_FILE
    try:
        stamp = manifest_path.stat().st_mtime_ns
    except OSError as exc:
        raise InputError(f"{manifest_path}: pretrained manifest not found ({exc.strerror})") from exc
    memo_key = (str(manifest_path), stamp)
    if memo_key in _manifest_memo:
        return _manifest_memo[memo_key]
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{manifest_path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    if raw.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{manifest_path}: 'format' must be {MANIFEST_FORMAT!r}, got {raw.get('format')!r}")
    checkpoints: dict[str, CheckpointEntry] = {}
    for name, item in raw.get("checkpoints", {}).items():
        try:
            checkpoints[name] = CheckpointEntry(
                name=name,
                filename=item["filename"],
                url=item["url"],
                sha256=item["sha256"].lower(),
                preset=item["preset"],
                clip=item["clip"],
                dataset=item.get("dataset", ""),
                task=item.get("task", ""),
                metrics=dict(item.get("metrics", {})),
            )
        except KeyError as exc:
            raise InputError(f"{manifest_path}: checkpoint '{name}' lacks the field {exc.args[0]!r}") from exc
        _check_digest(checkpoints[name].sha256, f"{manifest_path}: checkpoint '{name}'")
    clip: dict[str, ClipWeightsEntry] = {}
    for tag, item in raw.get("clip", {}).items():
        try:
            clip[tag] = ClipWeightsEntry(
                tag=tag,
                model=item["model"],
                filename=item["filename"],
                url=item.get("url", ""),
                sha256=item.get("sha256", "").lower(),
                layout=item.get("layout", "openai"),
                quick_gelu=bool(item.get("quick_gelu", True)),
            )
        except KeyError as exc:
            raise InputError(f"{manifest_path}: CLIP weights '{tag}' lack the field {exc.args[0]!r}") from exc
        if clip[tag].sha256:
            _check_digest(clip[tag].sha256, f"{manifest_path}: CLIP weights '{tag}'")
    manifest = Manifest(
        path=manifest_path,
        checkpoints=checkpoints,
        clip=clip,
        clip_aliases=dict(raw.get("clip_aliases", {})),
        default_checkpoint=raw.get("default_checkpoint", next(iter(checkpoints), "")),
        default_clip=raw.get("default_clip", next(iter(clip), "")),
    )
    _manifest_memo[memo_key] = manifest
    return manifest


def _check_digest(digest: str, where: str) -> None:
    if not _HEX.match(digest):
        raise InputError(f"{where}: sha256 must be 8 to 64 lower-case hex digits, got {digest!r}")


def checkpoint_entries() -> list[CheckpointEntry]:
    """Every checkpoint in the manifest, in manifest order."""
    return list(load_manifest().checkpoints.values())


def clip_entries() -> list[ClipWeightsEntry]:
    """Every CLIP weights entry in the manifest, in manifest order."""
    return list(load_manifest().clip.values())


def get_checkpoint(name: str) -> CheckpointEntry:
    """Look up a checkpoint by registry name, published file name, or file name without ``.pth``.

    Raises:
        UsageError: no checkpoint has that name (the known names are listed).
    """
    manifest = load_manifest()
    if name in manifest.checkpoints:
        return manifest.checkpoints[name]
    for entry in manifest.checkpoints.values():
        if name in (entry.filename, entry.filename.removesuffix(".pth"), f"r2_tuning_{entry.name}"):
            return entry
    raise UsageError(
        f"unknown checkpoint {name!r}; known: {', '.join(manifest.checkpoints)} (see `r2cli models list`)"
    )


def clip_weights_entry(tag: str, model: str | None = None) -> ClipWeightsEntry:
    """Look up CLIP weights by tag: ``"ViT-B-32/openai"``, an alias (``"openai"``, ``"ViT-B/32"``),
    ``model`` + bare tag, or any open_clip pretrained tag (``"ViT-B-16/laion2b_s34b_b88k"``).

    Raises:
        UsageError: neither the manifest nor open_clip knows the tag.
    """
    manifest = load_manifest()
    if model and "/" not in tag:
        full = f"{model.removesuffix('-quickgelu')}/{tag}"
    else:
        full = manifest.clip_aliases.get(tag, tag)
    if full in manifest.clip:
        return manifest.clip[full]
    if "/" not in full:
        raise UsageError(
            f"unknown CLIP weights {tag!r}; use a tag such as {manifest.default_clip} "
            f"(known: {', '.join(manifest.clip)}) or a path to an OpenAI-format .pt file"
        )
    return _open_clip_entry(full)


def _open_clip_entry(tag: str) -> ClipWeightsEntry:
    """Build an entry for an open_clip pretrained tag the manifest does not list."""
    model, _, pretrained = tag.partition("/")
    try:
        from open_clip.pretrained import get_pretrained_cfg
    except ImportError as exc:  # pragma: no cover - open_clip is a hard dependency
        raise UsageError(f"unknown CLIP weights {tag!r} (open_clip is not installed to look it up)") from exc
    config = get_pretrained_cfg(model, pretrained)
    if not config:
        raise UsageError(
            f"unknown CLIP weights {tag!r}: open_clip has no pretrained tag {pretrained!r} for {model!r}"
        )
    url = config.get("url") or ""
    digest = ""
    match = re.search(r"/([0-9a-f]{64})/", url)
    if match:
        digest = match.group(1)
    hub = (config.get("hf_hub") or "").strip("/")
    if hub and not digest:
        parts = hub.split("/")  # "<org>/<repo>[/<file>]"
        repo, hub_file = "/".join(parts[:2]), "/".join(parts[2:])
        url = f"https://huggingface.co/{repo}/resolve/main/{hub_file or 'open_clip_pytorch_model.bin'}"
    if not url:
        raise UsageError(f"CLIP weights {tag!r} have no download location in open_clip")
    basename = url.rstrip("/").rsplit("/", 1)[-1]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model}__{pretrained}")
    return ClipWeightsEntry(
        tag=tag,
        model=model,
        filename=basename if pretrained == "openai" else f"{safe}{Path(basename).suffix or '.bin'}",
        url=url,
        sha256=digest,
        layout="openai" if pretrained == "openai" else "open_clip",
        quick_gelu=bool(config.get("quick_gelu", False)),
    )


# ----------------------------------------------------------------------------------------------
# Cache layout and hashing


def is_offline(offline: bool | None = None) -> bool:
    """True when the network must not be used: ``offline`` if given, else ``$R2CLI_OFFLINE``/``$HF_HUB_OFFLINE``."""
    if offline is not None:
        return offline
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on") for var in OFFLINE_ENVS)


def _offline_reason() -> str:
    for var in OFFLINE_ENVS:
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"offline mode: {var}={os.environ[var]}"
    return "offline mode"


def cache_path(entry: CheckpointEntry | ClipWeightsEntry, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``entry``'s file lives in the weights cache (the path to fill by hand when offline)."""
    subdir = CHECKPOINTS_SUBDIR if entry.kind == "checkpoint" else CLIP_SUBDIR
    return weights_cache_dir(cache_dir) / subdir / entry.filename


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


_hash_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Full SHA-256 (hex) of a file; memoised per (path, size, mtime) within the process.

    Raises:
        MissingWeightsError: the file cannot be read.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise MissingWeightsError(f"cannot read {path} ({exc.strerror})") from exc
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_memo:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
                digest.update(block)
        _hash_memo[key] = digest.hexdigest()
    return _hash_memo[key]


def _digest_matches(actual: str, expected: str) -> bool:
    return bool(expected) and actual.startswith(expected.lower())


def verify_file(path: str | os.PathLike, sha256: str, *, what: str = "") -> str:
    """Check a file's SHA-256 against a full digest or a prefix; return the full digest.

    A verified file gets a ``<file>.sha256`` note (digest, size, mtime) so that later runs skip
    re-hashing it until the file changes.

    Raises:
        WeightsChecksumError: the digest does not match (the message says to delete or replace the file).
    """
    path = Path(path)
    stat = path.stat()
    note = _sidecar(path)
    with contextlib.suppress(OSError, ValueError):
        digest, size, mtime = note.read_text(encoding="utf-8").split()
        if int(size) == stat.st_size and int(mtime) == stat.st_mtime_ns and _digest_matches(digest, sha256):
            return digest
    actual = file_sha256(path)
    if not _digest_matches(actual, sha256):
        raise WeightsChecksumError(
            f"{what or path.name}: {path} has sha256 {actual[:16]}..., expected {sha256[:16]}...; "
            "the file is corrupt or not the published one: delete it and download it again"
        )
    with contextlib.suppress(OSError):
        note.write_text(f"{actual} {stat.st_size} {stat.st_mtime_ns}\n", encoding="utf-8")
    return actual


# ----------------------------------------------------------------------------------------------
# Downloading


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise downloads of one file across processes (POSIX advisory lock; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _check_reachable(url: str, timeout: float) -> None:
    """Resolve and connect to the URL's host (or its proxy) within ``timeout`` seconds each, or raise OSError.

    ``urlopen``'s timeout does not cover the name lookup, which can hang far longer on a machine
    without network; the lookup therefore runs in a daemon thread that is abandoned on timeout.
    A short TCP connect then proves the host answers before the real request starts.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OSError(f"unsupported URL {url!r}")
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or host, proxy_parts.port or 80
    result: dict[str, object] = {}

    def lookup() -> None:
        try:
            result["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result["error"] = exc

    worker = threading.Thread(target=lookup, name="r2cli-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise OSError(f"no answer resolving {host} within {timeout:.0f} s")
    if "error" in result:
        raise OSError(f"cannot resolve {host}: {_one_line(result['error'])}")
    family, kind, proto, _, address = result["addresses"][0]  # type: ignore[index]
    with socket.socket(family, kind, proto) as probe:
        probe.settimeout(timeout)
        probe.connect(address)


def _open(url: str, offset: int, read_timeout: float):
    """Open ``url`` for reading from byte ``offset``; returns (response, resumed)."""
    from r2cli import __version__

    headers = {"User-Agent": f"r2cli/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    opener = urllib.request.build_opener()  # reads the proxy settings now, not at first import
    response = opener.open(urllib.request.Request(url, headers=headers), timeout=read_timeout)
    return response, offset > 0 and response.status == 206


def download_url(
    url: str,
    destination: str | os.PathLike,
    *,
    sha256: str = "",
    what: str = "",
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> Path:
    """Download ``url`` to ``destination`` atomically, resuming a left-over ``.part`` file.

    The bytes go to ``<destination>.part``; when a ``.part`` exists the transfer resumes with an
    HTTP Range request (a server that ignores the range restarts it from zero). The finished file
    is checked against ``sha256`` (full digest or prefix, when given) and only then renamed to
    ``destination``. One attempt, no retry loop; the host must answer within ``connect_timeout``.

    Raises:
        OSError / URLError / http.client.HTTPException: the transfer failed (callers turn this into MissingWeightsError).
        WeightsChecksumError: the downloaded bytes do not match ``sha256`` (the partial file is deleted).
    """
    connect_timeout = CONNECT_TIMEOUT_S if connect_timeout is None else connect_timeout
    read_timeout = READ_TIMEOUT_S if read_timeout is None else read_timeout
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    with _file_lock(destination.with_name(destination.name + ".lock")):
        if destination.is_file() and (not sha256 or _digest_matches(file_sha256(destination), sha256)):
            return destination  # another process finished it while this one waited for the lock
        _check_reachable(url, connect_timeout)
        offset = partial.stat().st_size if partial.is_file() else 0
        try:
            response, resumed = _open(url, offset, read_timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or not offset:
                raise
            partial.unlink(missing_ok=True)  # the range starts past the end: the .part is stale
            offset = 0
            response, resumed = _open(url, 0, read_timeout)
        with response:
            if not resumed:
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            stage = f"download {what or destination.name}"
            reporter.begin(stage, total, unit="bytes")
            if offset:
                reporter.advance(stage, offset)
            with open(partial, "ab" if resumed else "wb") as handle:
                while True:
                    block = response.read(CHUNK_BYTES)
                    if not block:
                        break
                    handle.write(block)
                    reporter.advance(stage, len(block))
                handle.flush()
                os.fsync(handle.fileno())
            reporter.end(stage)
        size = partial.stat().st_size
        if total is not None and size != total:
            raise OSError(f"transfer ended after {size} of {total} bytes (run again to resume)")
        if sha256:
            actual = file_sha256(partial)
            if not _digest_matches(actual, sha256):
                partial.unlink(missing_ok=True)
                raise WeightsChecksumError(
                    f"{what or destination.name}: the download from {url} has sha256 {actual[:16]}..., "
                    f"expected {sha256[:16]}...; it was deleted, nothing was installed"
                )
        os.replace(partial, destination)
        if sha256:
            stat = destination.stat()
            with contextlib.suppress(OSError):
                _sidecar(destination).write_text(
                    f"{file_sha256(destination)} {stat.st_size} {stat.st_mtime_ns}\n", encoding="utf-8"
                )
    return destination


def _how_to_provide(entry: CheckpointEntry | ClipWeightsEntry, target: Path) -> str:
    flag = "--checkpoint" if entry.kind == "checkpoint" else "--clip-weights"
    env = CHECKPOINT_ENV if entry.kind == "checkpoint" else CLIP_WEIGHTS_ENV
    source = f"download {entry.url} to {target}" if entry.url else f"put the file at {target}"
    return f"{source}, or pass {flag} /path/to/{entry.filename} (or set ${env})"


def _describe(entry: CheckpointEntry | ClipWeightsEntry) -> str:
    return f"checkpoint '{entry.name}'" if entry.kind == "checkpoint" else f"CLIP weights '{entry.tag}'"


def _verb(entry: CheckpointEntry | ClipWeightsEntry) -> str:
    return "is" if entry.kind == "checkpoint" else "are"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def fetch(
    entry: CheckpointEntry | ClipWeightsEntry,
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    force: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> Path:
    """Return the cached file of ``entry``, downloading it first when needed (and allowed).

    A cached file is verified against the registry's SHA-256 (once; see ``verify_file``).

    Raises:
        MissingWeightsError: not cached and the download is impossible (offline, no network,
            HTTP error); one line with the URL and the cache path to fill by hand.
        WeightsChecksumError: the cached or downloaded file does not match the registry.
    """
    target = cache_path(entry, cache_dir)
    what = _describe(entry)
    if target.is_file() and not force:
        if entry.sha256:
            verify_file(target, entry.sha256, what=what)
        return target
    if not entry.url:
        raise MissingWeightsError(f"{what} {_verb(entry)} not cached and {'has' if entry.kind == 'checkpoint' else 'have'} no download URL; {_how_to_provide(entry, target)}")
    if is_offline(offline):
        raise MissingWeightsError(
            f"{what} {_verb(entry)} not cached and cannot be downloaded ({_offline_reason()}); {_how_to_provide(entry, target)}"
        )
    if force:
        target.unlink(missing_ok=True)
        _sidecar(target).unlink(missing_ok=True)
    started = time.monotonic()
    try:
        return download_url(entry.url, target, sha256=entry.sha256, what=what, reporter=reporter)
    except R2Error:
        raise
    except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            reason: object = f"HTTP {exc.code} {exc.reason}"
        else:
            reason = getattr(exc, "reason", None) or exc
        raise MissingWeightsError(
            f"{what} {_verb(entry)} not cached and cannot be downloaded ({_one_line(reason)}, after "
            f"{time.monotonic() - started:.0f} s); {_how_to_provide(entry, target)}"
        ) from exc


def download(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    force: bool = False,
    offline: bool | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> Path:
    """Download a checkpoint (by registry name) or CLIP weights (by tag) into the cache.

    For a checkpoint, the CLIP weights it needs are not fetched here; ``download_all`` does both.

    Raises:
        UsageError: unknown name.
        MissingWeightsError: the download failed (one line saying how to provide the file by hand).
    """
    return fetch(find_entry(name), cache_dir=cache_dir, offline=offline, force=force, reporter=reporter)


def download_many(
    names: list[str],
    *,
    with_clip: bool = True,
    cache_dir: str | os.PathLike | None = None,
    force: bool = False,
    offline: bool | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> list[ModelStatus]:
    """Download several checkpoints/CLIP weights (and, with ``with_clip``, the CLIP each checkpoint needs).

    Every name is checked before anything is downloaded; each file is fetched once.

    Returns:
        The status of every file now in the cache, in the order fetched.

    Raises:
        UsageError: an unknown name (nothing is downloaded).
        MissingWeightsError: a download failed (files fetched before it stay in the cache).
    """
    if not names:
        raise UsageError("name at least one checkpoint or CLIP tag to download (see `r2cli models list`)")
    wanted: list[CheckpointEntry | ClipWeightsEntry] = []
    for name in names:
        entry = find_entry(name)
        extra = [clip_weights_entry(entry.clip)] if with_clip and entry.kind == "checkpoint" else []
        for item in (entry, *extra):
            if all((item.kind, item.name) != (seen.kind, seen.name) for seen in wanted):
                wanted.append(item)
    results = []
    for entry in wanted:
        fetch(entry, cache_dir=cache_dir, offline=offline, force=force, reporter=reporter)
        results.append(_status(entry, cache_dir, verify=True))
    return results


def find_entry(name: str) -> CheckpointEntry | ClipWeightsEntry:
    """A checkpoint by name, else CLIP weights by tag.

    Raises:
        UsageError: neither a checkpoint nor CLIP weights have that name.
    """
    manifest = load_manifest()
    try:
        return get_checkpoint(name)
    except UsageError:
        pass
    if name in manifest.clip or name in manifest.clip_aliases or "/" in name:
        return clip_weights_entry(name)
    raise UsageError(
        f"unknown model {name!r}; checkpoints: {', '.join(manifest.checkpoints)}; "
        f"CLIP weights: {', '.join(manifest.clip)} (see `r2cli models list`)"
    )


# ----------------------------------------------------------------------------------------------
# Resolution used by the loaders


def _path_like(spec: str) -> bool:
    """Does a string name a file rather than a registry name/tag?"""
    return (
        spec.lower().endswith(_WEIGHT_SUFFIXES)
        or spec.startswith(("/", "./", "../", "~", "\\"))
        or spec.count("/") > 1
        or "\\" in spec
        or (len(spec) > 1 and spec[1] == ":")
    )


def _local_file(spec: str | os.PathLike, what: str, flag: str) -> Path | None:
    """The file ``spec`` names, None when it is a registry name.

    Raises:
        MissingWeightsError: ``spec`` looks like a path but no file is there.
    """
    if isinstance(spec, os.PathLike):
        path = Path(spec).expanduser()
    else:
        path = Path(spec).expanduser()
        if not path.is_file() and not _path_like(spec):
            return None
    if path.is_dir():
        raise MissingWeightsError(f"{flag} {path} is a folder; pass the {what} file itself")
    if not path.is_file():
        raise MissingWeightsError(f"{what} file {path} does not exist ({flag})")
    return path.resolve()


def resolve_checkpoint(
    name_or_path: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    verify: bool = True,
    reporter: Reporter = NULL_REPORTER,
) -> Path:
    """Path of a checkpoint: a local file, or a registry name fetched into the cache.

    ``None`` means ``$R2CLI_CHECKPOINT``, else the manifest's default (``qvhighlights``). A local
    file whose name follows the published pattern (``<name>-<8 hex>.pth``) is checked against the
    hash in its name when ``verify`` is set.

    Raises:
        MissingWeightsError: the file is missing and cannot be downloaded (one line: how to provide it).
        WeightsChecksumError: a file does not match its published hash.
        UsageError: unknown registry name.
    """
    spec = name_or_path if name_or_path not in (None, "") else (
        os.environ.get(CHECKPOINT_ENV) or load_manifest().default_checkpoint
    )
    local = _local_file(spec, "checkpoint", "--checkpoint")
    if local is not None:
        match = _PUBLISHED_NAME.match(local.name)
        if verify and match:
            verify_file(local, match.group("hash"), what=f"checkpoint {local.name}")
        return local
    return fetch(get_checkpoint(str(spec)), cache_dir=cache_dir, offline=offline, reporter=reporter)


@dataclass(frozen=True)
class ResolvedClipWeights:
    """Where CLIP weights come from and how to build the model for them."""

    path: Path  # the weights file
    weights_id: str  # the tag, or "sha256:<16 hex>" of a local file
    model_name: str | None  # open_clip architecture, None when it must be read from the file
    quick_gelu: bool  # activation to build the model with
    layout: str  # "openai" or "open_clip"
    entry: ClipWeightsEntry | None = None  # registry entry when resolved by tag


def resolve_clip(
    tag_or_path: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> ResolvedClipWeights:
    """Resolve CLIP weights (tag or local file) to a file plus how to build the model.

    ``None`` means ``$R2CLI_CLIP_WEIGHTS``, else the manifest's default (``ViT-B-32/openai``).
    A local file is taken to be in OpenAI format (architecture read from its shapes, QuickGELU).

    Raises:
        MissingWeightsError: not cached and not downloadable (one line: URL, cache path, flag).
        WeightsChecksumError: the cached file does not match the registry.
        UsageError: unknown tag.
    """
    spec = tag_or_path if tag_or_path not in (None, "") else (
        os.environ.get(CLIP_WEIGHTS_ENV) or load_manifest().default_clip
    )
    local = _local_file(spec, "CLIP weights", "--clip-weights")
    if local is not None:
        return ResolvedClipWeights(
            path=local,
            weights_id=f"sha256:{file_sha256(local)[:16]}",
            model_name=None,
            quick_gelu=True,
            layout="openai",
        )
    entry = clip_weights_entry(str(spec), model=model)
    path = fetch(entry, cache_dir=cache_dir, offline=offline, reporter=reporter)
    return ResolvedClipWeights(
        path=path,
        weights_id=entry.tag,
        model_name=entry.model,
        quick_gelu=entry.quick_gelu,
        layout=entry.layout,
        entry=entry,
    )


def resolve_clip_weights(
    tag_or_path: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> Path:
    """Path of CLIP weights: a local file, or a tag fetched into the cache (see ``resolve_clip``).

    Raises:
        MissingWeightsError: not cached and not downloadable (one line saying how to provide them).
        UsageError: unknown tag.
    """
    return resolve_clip(tag_or_path, model=model, cache_dir=cache_dir, offline=offline, reporter=reporter).path


# ----------------------------------------------------------------------------------------------
# Listing


@dataclass(frozen=True)
class ModelStatus:
    """One registry entry and whether its file is in the cache."""

    kind: str  # "checkpoint" or "clip"
    name: str  # registry name or CLIP tag
    filename: str  # file name in the cache
    path: Path  # where the file is (or must be put)
    cached: bool  # the file exists
    verified: bool | None  # True/False after a hash check, None when not checked (or not cached)
    bytes: int | None  # size of the cached file
    url: str  # download URL
    sha256: str  # expected digest or prefix
    preset: str | None  # checkpoint preset (None for CLIP weights)
    clip: str | None  # CLIP weights a checkpoint needs (None for CLIP weights)
    dataset: str = ""  # training data (checkpoints)
    preset_available: bool | None = None  # the preset exists in r2cli.model (None: not checked/unknown)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "kind": self.kind,
            "name": self.name,
            "filename": self.filename,
            "path": str(self.path),
            "cached": self.cached,
            "verified": self.verified,
            "bytes": self.bytes,
            "url": self.url,
            "sha256": self.sha256,
            "preset": self.preset,
            "clip": self.clip,
            "dataset": self.dataset,
            "preset_available": self.preset_available,
        }


def _status(entry: CheckpointEntry | ClipWeightsEntry, cache_dir, verify: bool) -> ModelStatus:
    path = cache_path(entry, cache_dir)
    cached = path.is_file()
    verified: bool | None = None
    if cached and verify and entry.sha256:
        try:
            verify_file(path, entry.sha256, what=_describe(entry))
            verified = True
        except WeightsChecksumError:
            verified = False
    is_checkpoint = entry.kind == "checkpoint"
    return ModelStatus(
        kind=entry.kind,
        name=entry.name,
        filename=entry.filename,
        path=path,
        cached=cached,
        verified=verified,
        bytes=path.stat().st_size if cached else None,
        url=entry.url,
        sha256=entry.sha256,
        preset=entry.preset if is_checkpoint else None,
        clip=entry.clip if is_checkpoint else None,
        dataset=entry.dataset if is_checkpoint else "",
    )


def available_presets() -> set[str] | None:
    """Names of the head presets ``r2cli.model.list_presets()`` knows, or None when that is not available."""
    import logging

    try:
        from r2cli.model import list_presets  # type: ignore[attr-defined]

        presets = list_presets()
    except Exception as exc:  # the head package is optional for the registry
        logging.getLogger("r2cli").debug("presets unavailable: %s", exc)
        return None
    return {item if isinstance(item, str) else str(getattr(item, "name", item)) for item in presets}


def list_models(
    *, cache_dir: str | os.PathLike | None = None, verify: bool = False, check_presets: bool = False
) -> list[ModelStatus]:
    """Every registry entry (CLIP weights first, then checkpoints) with its cache status.

    ``verify`` hashes cached files (slow for large files the first time; remembered afterwards).
    ``check_presets`` looks each checkpoint's preset up in ``r2cli.model`` (when it is installed).
    """
    from dataclasses import replace

    manifest = load_manifest()
    entries: list[CheckpointEntry | ClipWeightsEntry] = [*manifest.clip.values(), *manifest.checkpoints.values()]
    statuses = [_status(entry, cache_dir, verify) for entry in entries]
    presets = available_presets() if check_presets else None
    if presets is not None:
        statuses = [
            replace(status, preset_available=status.preset in presets) if status.preset else status
            for status in statuses
        ]
    return statuses


def cached(*, cache_dir: str | os.PathLike | None = None, verify: bool = False) -> list[ModelStatus]:
    """The registry entries whose files are in the cache."""
    return [status for status in list_models(cache_dir=cache_dir, verify=verify) if status.cached]


def expected_path(name: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache path a checkpoint or CLIP weights file must have (to fill the cache by hand).

    Raises:
        UsageError: unknown name.
    """
    return cache_path(find_entry(name), cache_dir)


def describe(name: str, *, cache_dir: str | os.PathLike | None = None) -> ModelStatus:
    """The cache status of one checkpoint or CLIP weights file (path, URL, cached or not); no hashing.

    Raises:
        UsageError: unknown name.
    """
    return _status(find_entry(name), cache_dir, verify=False)


def checkpoint_preset(name_or_path: str | os.PathLike) -> str | None:
    """The preset of a registry checkpoint, given its name or a file carrying a published file name.

    Returns None for other files (the caller must then be told the preset, e.g. ``--preset``).
    """
    text = str(name_or_path)
    if not isinstance(name_or_path, os.PathLike) and not _path_like(text):
        with contextlib.suppress(UsageError):
            return get_checkpoint(text).preset
        return None
    file_name = Path(text).name
    for entry in load_manifest().checkpoints.values():
        if entry.filename == file_name:
            return entry.preset
    return None
