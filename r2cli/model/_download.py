"""Getting a registry file into the weights cache (private plumbing of ``r2cli.model.registry``).

The transfer itself is done by libraries:

- files on the Hugging Face Hub (``<endpoint>/<org>/<repo>/resolve/<revision>/<path>``, i.e. the
  R2-Tuning checkpoints) by ``huggingface_hub.hf_hub_download``: per-file lock, time-outs, a dropped
  connection resumed with an HTTP Range request, a temporary file moved into place, ``HF_ENDPOINT``
  mirrors and ``HF_TOKEN``;
- any other URL (OpenAI's CLIP files) by open_clip's ``download_pretrained_from_url``, the code open_clip
  uses for the same files.

Both download into a hidden staging folder next to the cache file (``<cache>/<kind>/.downloads/``);
r2cli then checks the SHA-256 and renames the file into place, so a cache path only ever holds a
verified file, under r2cli's own file name. What is written here, and why:

- offline switches and the one-line errors are r2cli's contract (``R2CLI_OFFLINE`` as well as
  ``HF_HUB_OFFLINE``, read at each call rather than when huggingface_hub is imported);
- ``check_reachable``: neither library bounds the host name lookup, which can hang for minutes
  on a machine without network;
- the SHA-256 check (``_hashing``): huggingface_hub checks only the ETag, open_clip only OpenAI URLs;
- staging and rename: open_clip writes straight to its target, and hf_hub_download's target
  is its own layout, not r2cli's file names;
- ``_ReporterBar``: both libraries report progress only through a tqdm class, and library code in
  r2cli must not print; the bar forwards bytes to r2cli's ``Reporter`` instead (open_clip takes no
  class, so its module's ``tqdm`` and the socket time-out are swapped while it runs).

A failed transfer starts from zero on the next run: huggingface_hub keeps no partial file between
calls (it resumes only within one), and open_clip never resumes. A Hub file already in
huggingface_hub's own cache is copied from there instead of downloaded (``hub_cache_file``).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from r2cli.errors import MissingWeightsError, R2Error
from r2cli.model._hashing import WeightsChecksumError, digest_matches, file_sha256, remember, sidecar
from r2cli.model._manifest import (
    CHECKPOINT_ENV,
    CLIP_WEIGHTS_ENV,
    CheckpointEntry,
    ClipWeightsEntry,
    cache_path,
)
from r2cli.progress import NULL_REPORTER, Reporter

OFFLINE_ENVS = ("R2CLI_OFFLINE", "HF_HUB_OFFLINE")
STAGING_DIR = ".downloads"  # hidden folder next to the cached files: downloads in progress, library metadata
CONNECT_TIMEOUT_S = 8.0  # name lookup and TCP connect, each; keeps an offline failure well under 30 s
READ_TIMEOUT_S = 60.0  # open_clip's transfer: a stalled connection is abandoned after this long without data
_HUB_URL = re.compile(r"^(?P<endpoint>https?://[^/]+)/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")
_TRUE = ("1", "true", "yes", "on")


def is_offline(offline: bool | None = None) -> bool:
    """True when the network must not be used: ``offline`` if given, else ``$R2CLI_OFFLINE``/``$HF_HUB_OFFLINE``."""
    if offline is not None:
        return offline
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in OFFLINE_ENVS)


def offline_reason() -> str:
    for var in OFFLINE_ENVS:
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"offline mode: {var}={os.environ[var]}"
    return "offline mode"


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def hub_location(url: str) -> tuple[str, str, str, str] | None:
    """``(endpoint, repo_id, revision, path in repo)`` of a Hub ``resolve`` URL, else None.

    ``$HF_ENDPOINT`` (a Hub mirror) replaces the endpoint of huggingface.co URLs.
    """
    match = _HUB_URL.match(url)
    if not match:
        return None
    endpoint = match.group("endpoint")
    mirror = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    if mirror and urllib.parse.urlsplit(endpoint).hostname == "huggingface.co":
        endpoint = mirror
    path = urllib.parse.unquote(match.group("path"))
    return endpoint, match.group("repo"), urllib.parse.unquote(match.group("revision")), path


def check_reachable(url: str, timeout: float) -> None:
    """Resolve and connect to the URL's host (or its proxy) within ``timeout`` seconds each, or raise OSError.

    The name lookup runs in a daemon thread that is abandoned on time-out: neither urllib nor httpx
    bounds it. A short TCP connect then proves the host answers before a library starts the transfer.
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
        raise OSError(f"cannot resolve {host}: {one_line(result['error'])}")
    family, kind, proto, _, address = result["addresses"][0]  # type: ignore[index]
    with socket.socket(family, kind, proto) as probe:
        probe.settimeout(timeout)
        probe.connect(address)


def _reporter_bar(reporter: Reporter, stage: str):
    """A tqdm stand-in for huggingface_hub and open_clip that feeds ``reporter`` and prints nothing."""

    class _ReporterBar:
        def __init__(self, *args, total=None, initial=0, **kwargs) -> None:
            self.n = initial
            reporter.begin(stage, total, unit="bytes")
            if initial:
                reporter.advance(stage, initial)

        def update(self, n: float | None = 1) -> None:
            if n:
                self.n += n
                reporter.advance(stage, n)

        def close(self) -> None:
            reporter.end(stage)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info) -> None:
            self.close()

    return _ReporterBar


def _from_hub(location: tuple[str, str, str, str], staging: Path, bar, force: bool, timeout: float) -> Path:
    from huggingface_hub import hf_hub_download

    endpoint, repo_id, revision, path_in_repo = location
    return Path(
        hf_hub_download(
            repo_id,
            path_in_repo,
            revision=revision,
            endpoint=endpoint,
            local_dir=staging,
            force_download=force,
            etag_timeout=timeout,
            tqdm_class=bar,
            library_name="r2cli",
        )
    )


# open_clip's downloader has no progress hook or time-out parameter: while it runs, its module's tqdm
# is r2cli's bar and new sockets time out after READ_TIMEOUT_S (one download at a time per process).
_OPEN_CLIP_LOCK = threading.Lock()


def _from_url(url: str, staging: Path, bar) -> Path:
    from open_clip import pretrained

    staged = staging / os.path.basename(url)
    staged.unlink(missing_ok=True)  # a stale file from a killed run would be returned as it is
    with _OPEN_CLIP_LOCK:
        saved_bar, saved_timeout = pretrained.tqdm, socket.getdefaulttimeout()
        pretrained.tqdm = bar
        socket.setdefaulttimeout(READ_TIMEOUT_S)
        try:
            return Path(pretrained.download_pretrained_from_url(url, cache_dir=str(staging)))
        except BaseException:
            # it writes straight to its target: never leave a partial file for the next run to trust
            staged.unlink(missing_ok=True)
            raise
        finally:
            pretrained.tqdm = saved_bar
            socket.setdefaulttimeout(saved_timeout)


def download_url(
    url: str,
    destination: str | os.PathLike,
    *,
    sha256: str = "",
    what: str = "",
    force: bool = False,
    connect_timeout: float | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> Path:
    """Download ``url`` to ``destination`` through huggingface_hub (Hub URLs) or open_clip (others).

    The library downloads into ``<destination folder>/.downloads/``; the file is checked against
    ``sha256`` (full digest or prefix, when given) and only then renamed to ``destination``. One
    attempt: the host must answer within ``connect_timeout`` (a dropped Hub transfer is resumed by
    huggingface_hub within the same call).

    Raises:
        WeightsChecksumError: the downloaded bytes do not match ``sha256`` (nothing is installed).
        Exception: whatever the library raised for a failed transfer (``fetch`` makes it one line).
    """
    from filelock import FileLock

    destination = Path(destination)
    staging = destination.parent / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    timeout = CONNECT_TIMEOUT_S if connect_timeout is None else connect_timeout
    with FileLock(str(staging / f"{destination.name}.lock")):
        if not force and destination.is_file() and (not sha256 or digest_matches(file_sha256(destination), sha256)):
            return destination  # another process finished it while this one waited for the lock
        location = hub_location(url)
        check_reachable(f"{location[0]}/" if location else url, timeout)
        bar = _reporter_bar(reporter, f"download {what or destination.name}")
        staged = _from_hub(location, staging, bar, force, timeout) if location else _from_url(url, staging, bar)
        digest = file_sha256(staged)
        if sha256 and not digest_matches(digest, sha256):
            staged.unlink(missing_ok=True)
            raise WeightsChecksumError(
                f"{what or destination.name}: the download from {url} has sha256 {digest[:16]}..., "
                f"expected {sha256[:16]}...; it was deleted, nothing was installed"
            )
        os.replace(staged, destination)
        if sha256:
            remember(destination, digest)
    return destination


def hub_cache_file(url: str) -> Path | None:
    """The file of a Hub URL in huggingface_hub's own cache (``$HF_HUB_CACHE``), when an earlier
    ``hf download`` or ``hf_hub_download`` put it there; None otherwise. No network access."""
    location = hub_location(url)
    if location is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    _, repo_id, revision, path_in_repo = location
    found = try_to_load_from_cache(repo_id, path_in_repo, revision=revision)
    return Path(found) if isinstance(found, str) else None


def install_copy(source: Path, destination: Path, *, sha256: str, what: str) -> Path:
    """Copy a local file into the cache: staged, checked against ``sha256``, renamed into place.

    Raises:
        WeightsChecksumError: ``source`` does not match (nothing is installed; ``source`` is left alone).
    """
    import shutil

    digest = file_sha256(source)
    if sha256 and not digest_matches(digest, sha256):
        raise WeightsChecksumError(
            f"{what}: {source} has sha256 {digest[:16]}..., expected {sha256[:16]}...; nothing was installed"
        )
    staging = destination.parent / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    staged = staging / f"{destination.name}.{os.getpid()}.copy"  # one per process: no lock needed
    shutil.copyfile(source, staged)
    os.replace(staged, destination)
    if sha256:
        remember(destination, digest)
    return destination


def describe(entry: CheckpointEntry | ClipWeightsEntry) -> str:
    return f"checkpoint '{entry.name}'" if entry.kind == "checkpoint" else f"CLIP weights '{entry.tag}'"


def _verb(entry: CheckpointEntry | ClipWeightsEntry) -> str:
    return "is" if entry.kind == "checkpoint" else "are"


def _how_to_provide(entry: CheckpointEntry | ClipWeightsEntry, target: Path, hint: str) -> str:
    """How a user gets the file. ``hint`` says which other ways the caller really has: ``"flag_env"``
    (a command whose flag and variable both apply), ``"flag"`` (the weights were named explicitly, e.g.
    by ``--preset``, so the variable is ignored), ``"none"`` (``models download``: no such flag)."""
    flag = "--checkpoint" if entry.kind == "checkpoint" else "--clip-weights"
    env = CHECKPOINT_ENV if entry.kind == "checkpoint" else CLIP_WEIGHTS_ENV
    source = f"download {entry.url} to {target}" if entry.url else f"put the file at {target}"
    if hint == "none":
        return source
    if hint == "flag":
        return f"{source}, or pass {flag} /path/to/{entry.filename}"
    return f"{source}, or pass {flag} /path/to/{entry.filename} (or set ${env})"


def _failure(exc: BaseException) -> str:
    """One line saying why a library's transfer failed (HTTP status, else the innermost message)."""
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None):
        phrase = getattr(response, "reason_phrase", None) or getattr(response, "reason", None) or ""
        return f"HTTP {response.status_code} {phrase}".strip()
    if getattr(exc, "code", None) and getattr(exc, "reason", None):  # urllib's HTTPError (open_clip)
        return f"HTTP {exc.code} {exc.reason}"  # type: ignore[attr-defined]
    cause = exc.__cause__ or exc.__context__
    if cause is not None and type(exc).__name__ == "LocalEntryNotFoundError":
        return _failure(cause)  # huggingface_hub's wrapper for a failed HEAD: the cause says what failed
    return one_line(getattr(exc, "reason", None) or exc or type(exc).__name__)


def fetch(
    entry: CheckpointEntry | ClipWeightsEntry,
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    force: bool = False,
    reporter: Reporter = NULL_REPORTER,
    hint: str = "flag_env",
) -> Path:
    """Return the cached file of ``entry``, downloading it first when needed (and allowed).

    ``hint`` picks the alternatives an error names (see ``_how_to_provide``).

    A cached file is verified against the registry's SHA-256 (once; see ``verify_file``). A Hub
    file missing from r2cli's cache but present in huggingface_hub's (``$HF_HUB_CACHE``) is copied
    from there, offline too.

    Raises:
        MissingWeightsError: not cached and the download is impossible (offline, no network,
            HTTP error); one line with the URL and the cache path to fill by hand.
        WeightsChecksumError: the cached or downloaded file does not match the registry.
    """
    from r2cli.model._hashing import verify_file

    target = cache_path(entry, cache_dir)
    what = describe(entry)
    if target.is_file() and not force:
        if entry.sha256:
            verify_file(target, entry.sha256, what=what)
        return target
    shared = hub_cache_file(entry.url) if not force else None
    if shared is not None:  # already in huggingface_hub's cache: a copy, even offline
        return install_copy(shared, target, sha256=entry.sha256, what=what)
    has = "has" if entry.kind == "checkpoint" else "have"
    if not entry.url:
        raise MissingWeightsError(f"{what} {_verb(entry)} not cached and {has} no download URL; {_how_to_provide(entry, target, hint)}")
    if is_offline(offline):
        raise MissingWeightsError(
            f"{what} {_verb(entry)} not cached and cannot be downloaded ({offline_reason()}); {_how_to_provide(entry, target, hint)}"
        )
    if force:
        target.unlink(missing_ok=True)
        sidecar(target).unlink(missing_ok=True)
    started = time.monotonic()
    try:
        return download_url(entry.url, target, sha256=entry.sha256, what=what, force=force, reporter=reporter)
    except R2Error:
        raise
    except Exception as exc:  # urllib, httpx and huggingface_hub raise many unrelated types
        raise MissingWeightsError(
            f"{what} {_verb(entry)} not cached and cannot be downloaded ({_failure(exc)}, after "
            f"{time.monotonic() - started:.0f} s); {_how_to_provide(entry, target, hint)}"
        ) from exc

