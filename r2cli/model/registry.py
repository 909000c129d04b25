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
Checkpoints on the Hugging Face Hub are downloaded by ``huggingface_hub`` (``HF_ENDPOINT`` mirrors,
``HF_TOKEN``, a dropped transfer resumed), OpenAI's CLIP files by open_clip's downloader; either way
into ``<cache>/<kind>/.downloads/``, then verified against the SHA-256 (full digest or prefix) and
renamed into place. ``R2CLI_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` forbid any network access; without
them an unreachable host is still given up within seconds, never retried in a loop. A missing file is
always an error (``MissingWeightsError``, one line saying what is missing and how to provide it):
r2cli never falls back to random or other weights.

This module is the public face; the plumbing is in ``_manifest`` (entries, look-ups, cache layout),
``_hashing`` (SHA-256 checks), ``_download`` (fetching) and ``_resolution`` (name or path to a file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from r2cli.errors import UsageError
from r2cli.model._download import (
    CONNECT_TIMEOUT_S,
    OFFLINE_ENVS,
    READ_TIMEOUT_S,
    STAGING_DIR,
    describe as _describe,
    download_url,
    fetch,
    is_offline,
)
from r2cli.model._hashing import WeightsChecksumError, file_sha256, verify_file
from r2cli.model._manifest import (
    CHECKPOINT_ENV,
    CHECKPOINTS_SUBDIR,
    CLIP_SUBDIR,
    CLIP_WEIGHTS_ENV,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    CheckpointEntry,
    ClipWeightsEntry,
    Manifest,
    cache_path,
    checkpoint_entries,
    clip_entries,
    clip_weights_entry,
    find_entry,
    get_checkpoint,
    load_manifest,
)
from r2cli.model._resolution import (
    ResolvedClipWeights,
    WeightsInUse,
    checkpoint_preset,
    resolve_checkpoint,
    resolve_clip,
    resolve_clip_weights,
    weights_in_use,
)
from r2cli.progress import NULL_REPORTER, Reporter

__all__ = [
    "CHECKPOINTS_SUBDIR",
    "CHECKPOINT_ENV",
    "CLIP_SUBDIR",
    "CLIP_WEIGHTS_ENV",
    "CONNECT_TIMEOUT_S",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "OFFLINE_ENVS",
    "READ_TIMEOUT_S",
    "STAGING_DIR",
    "CheckpointEntry",
    "ClipWeightsEntry",
    "Manifest",
    "ModelStatus",
    "ResolvedClipWeights",
    "WeightsChecksumError",
    "available_presets",
    "cache_path",
    "cached",
    "checkpoint_entries",
    "checkpoint_preset",
    "clip_entries",
    "clip_weights_entry",
    "describe",
    "download",
    "download_many",
    "download_url",
    "expected_path",
    "fetch",
    "file_sha256",
    "find_entry",
    "get_checkpoint",
    "is_offline",
    "list_models",
    "load_manifest",
    "resolve_checkpoint",
    "resolve_clip",
    "resolve_clip_weights",
    "verify_file",
    "WeightsInUse",
    "weights_in_use",
]


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
    return fetch(find_entry(name), cache_dir=cache_dir, offline=offline, force=force, reporter=reporter, hint="none")


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
        fetch(entry, cache_dir=cache_dir, offline=offline, force=force, reporter=reporter, hint="none")
        results.append(_status(entry, cache_dir, verify=True))
    return results



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
        from r2cli.model.config import list_presets

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
