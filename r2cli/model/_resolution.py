"""From a name, tag or path to a weights file on disk (private plumbing of ``r2cli.model.registry``).

A string that looks like a path is a local file (``--checkpoint``, ``--clip-weights``); anything else
is a registry name or tag, fetched into the cache when needed.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from r2cli.errors import MissingWeightsError, UsageError
from r2cli.model._download import fetch
from r2cli.model._hashing import file_sha256, verify_file
from r2cli.model._manifest import (
    CHECKPOINT_ENV,
    CLIP_WEIGHTS_ENV,
    ClipWeightsEntry,
    clip_weights_entry,
    get_checkpoint,
    load_manifest,
)
from r2cli.progress import NULL_REPORTER, Reporter

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".tar")
_PUBLISHED_NAME = re.compile(r"^(?P<stem>.+)-(?P<hash>[0-9a-f]{8})\.pth$")




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
    # a name given explicitly (a flag, a preset) is used whatever $R2CLI_CHECKPOINT says: do not suggest it
    hint = "flag" if name_or_path not in (None, "") else "flag_env"
    return fetch(get_checkpoint(str(spec)), cache_dir=cache_dir, offline=offline, reporter=reporter, hint=hint)


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
    hint = "flag" if tag_or_path not in (None, "") else "flag_env"
    path = fetch(entry, cache_dir=cache_dir, offline=offline, reporter=reporter, hint=hint)
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


@dataclass(frozen=True)
class WeightsInUse:
    """The weights file a run would use, as ``r2cli doctor`` shows it (nothing is downloaded)."""

    kind: str  # "clip" or "checkpoint"
    spec: str  # the tag, name or path a run resolves
    source: str  # "$R2CLI_CLIP_WEIGHTS" / "$R2CLI_CHECKPOINT" when the variable is set, else "default"
    path: Path | None  # the file (local, or its place in the cache); None when the name is unknown
    state: str  # "local file", "cached", "not cached (downloaded on first use)" or "missing"
    problem: str | None  # one line when a run would fail on it (missing file, unknown name)


def weights_in_use(cache_dir: str | os.PathLike | None = None) -> list[WeightsInUse]:
    """The CLIP weights and checkpoint a run without flags would use: ``$R2CLI_CLIP_WEIGHTS`` /
    ``$R2CLI_CHECKPOINT`` when set, else the manifest's defaults; each checked without downloading."""
    from r2cli.model._manifest import cache_path

    manifest = load_manifest()
    found = []
    for kind, env, default, what, flag in (
        ("clip", CLIP_WEIGHTS_ENV, manifest.default_clip, "CLIP weights", "--clip-weights"),
        ("checkpoint", CHECKPOINT_ENV, manifest.default_checkpoint, "checkpoint", "--checkpoint"),
    ):
        value = (os.environ.get(env) or "").strip()
        spec, source = (value, f"${env}") if value else (default, "default")
        try:
            local = _local_file(spec, what, flag)
        except MissingWeightsError:
            path = Path(spec).expanduser()
            problem = (f"${env} is set to {spec}, which is a folder, not a {what} file" if path.is_dir()
                       else f"${env} is set to {spec}, which does not exist")
            found.append(WeightsInUse(kind, spec, source, path, "missing", problem))
            continue
        if local is not None:
            found.append(WeightsInUse(kind, spec, source, local, "local file", None))
            continue
        try:
            entry = clip_weights_entry(spec) if kind == "clip" else get_checkpoint(spec)
        except UsageError as exc:
            found.append(WeightsInUse(kind, spec, source, None, "missing", f"{source}: {exc}"))
            continue
        target = cache_path(entry, cache_dir)
        state = "cached" if target.is_file() else "not cached (downloaded on first use)"
        found.append(WeightsInUse(kind, spec, source, target, state, None))
    return found
