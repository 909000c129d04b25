"""The pretrained manifest ``models/pretrained.json`` and the cache layout (private plumbing of
``r2cli.model.registry``): entries, look-ups by name, tag or alias, and where each file lives."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from r2cli.errors import InputError, UsageError
from r2cli.model._hashing import check_digest
from r2cli.paths import models_dir, weights_cache_dir

MANIFEST_FILE = "pretrained.json"
MANIFEST_FORMAT = "r2cli-pretrained-v1"
CHECKPOINT_ENV = "R2CLI_CHECKPOINT"
CLIP_WEIGHTS_ENV = "R2CLI_CLIP_WEIGHTS"
CHECKPOINTS_SUBDIR = "checkpoints"
CLIP_SUBDIR = "clip"


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
        check_digest(checkpoints[name].sha256, f"{manifest_path}: checkpoint '{name}'")
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
            check_digest(clip[tag].sha256, f"{manifest_path}: CLIP weights '{tag}'")
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




def cache_path(entry: CheckpointEntry | ClipWeightsEntry, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``entry``'s file lives in the weights cache (the path to fill by hand when offline)."""
    subdir = CHECKPOINTS_SUBDIR if entry.kind == "checkpoint" else CLIP_SUBDIR
    return weights_cache_dir(cache_dir) / subdir / entry.filename
