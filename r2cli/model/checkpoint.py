"""Read official R2-Tuning checkpoints, infer the head's shape from them, and save/load r2cli's format.

Formats:

* official ``.pth`` (what nncore writes): a torch pickle holding ``{'state_dict': ..., 'meta': ...}``
  (or a bare state dict), keys possibly prefixed with ``module.``; loaded with ``weights_only=True``.
* r2cli: ``<name>.safetensors`` (the state dict) plus ``<name>.json`` next to it (format tag, model
  config, CLIP tag, preset name, provenance).

Widths are inferred from shapes: ``dims`` from ``adapter.video_map.2.weight``, the CLIP widths from
``adapter.video_map.0.weight`` ([Cv+2] with TEF, else [Cv]) and ``adapter.query_map.0.weight`` ([Cq]),
``k`` from ``adapter.scale``, the strides from ``coef`` and the ``pyramid.blocks`` keys, the coord
head from the presence of ``coord_head.*``. The visual token count is not in the head's weights: it
comes from the caller (the CLIP tower) or from the architecture table.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from r2cli._atomic import atomic_output, write_json_atomic
from r2cli.errors import CheckpointError, InputError, UsageError
from r2cli.model.config import CLIP_ARCH_WIDTHS, LossConfig, ModelConfig, Preset, choose_preset, list_presets
from r2cli.model.r2tuning import R2Tuning

CHECKPOINT_ENV = "R2CLI_CHECKPOINT"
R2CLI_FORMAT = "r2cli-head-v1"
SALIENCY_SCALE_KEY = "loss._loss_sal.scale"
_OFFICIAL_NAME = re.compile(r"^r2_tuning_(?P<config>[a-z0-9_]+?)(?:-[0-9a-f]{8})?$")


@dataclass
class LoadedModel:
    """A head ready for inference (eval mode) and where it came from."""

    model: R2Tuning  # the head, in eval mode
    config: ModelConfig  # its architecture (widths inferred from the checkpoint)
    preset: Preset | None  # dataset preset (fps, unit, NMS, recipe) when known
    source: str  # "<path> (official|r2cli)"
    clip: str | None = None  # CLIP weights tag recorded with the checkpoint (r2cli format), if any


def read_official_state_dict(source: str | os.PathLike | dict) -> dict[str, torch.Tensor]:
    """Load an official checkpoint (path or already-loaded object) into a plain state dict.

    Accepts ``{'state_dict': ..., 'meta': ...}`` or a bare state dict; strips a ``module.`` prefix;
    drops ``clip.*`` keys (CLIP weights belong to the tower, not the head).

    Raises:
        CheckpointError: when the file cannot be read safely or holds no tensors.
    """
    if isinstance(source, dict):
        obj = source
        where = "checkpoint object"
    else:
        where = str(source)
        try:
            obj = torch.load(source, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"{where}: file not found") from None
        except Exception as exc:  # pickle errors, unsafe globals, truncated files
            first = str(exc).splitlines()[0] if str(exc) else ""
            if first.startswith("Weights only load failed"):
                # torch's own text here is a paragraph about trusting the file; say what r2cli expects instead.
                first = "not a torch.save file of tensors; r2cli reads official .pth files and r2cli .safetensors"
            raise CheckpointError(f"{where}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{where}: expected a state dict of tensors (or a dict with 'state_dict')")
    keys = list(obj)
    if keys[0].startswith("module."):
        obj = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    return {k: v for k, v in obj.items() if not k.startswith("clip.")}


def infer_model_config(state_dict: dict[str, torch.Tensor], *, base: ModelConfig | None = None,
                       num_tokens: int | None = None, video_width: int | None = None) -> ModelConfig:
    """Infer the head's architecture from a state dict's shapes.

    Args:
        state_dict: official key names.
        base: config supplying what shapes cannot tell (heads, dropout, losses, merge_cls_sal);
            default: the QVHighlights architecture with a coord head, else the TVSum one.
        num_tokens: visual tokens per frame of the CLIP tower; default from the architecture table
            (ViT-B/32 for widths 768/512).
        video_width: the CLIP visual width, to decide whether the first LayerNorm includes 2 TEF channels.

    Raises:
        CheckpointError: when a key needed for the inference is missing or the shapes contradict each other.
    """
    def shape(key: str) -> tuple[int, ...]:
        if key not in state_dict:
            raise CheckpointError(f"checkpoint lacks key {key!r}: not an R2-Tuning head")
        return tuple(state_dict[key].shape)

    dims = shape("adapter.video_map.2.weight")[0]
    video_in = shape("adapter.video_map.0.weight")[0]
    query_width = shape("adapter.query_map.0.weight")[0]
    k = shape("adapter.scale")[0]
    levels = shape("coef")[0]
    strides = tuple(2**i for i in range(levels))
    has_coord = any(key.startswith("coord_head.") for key in state_dict)
    ffn_hidden = shape("adapter.tem.ffn.mapping.0.weight")[0]
    kernel = shape("class_head.module.1.weight")[2]
    if ffn_hidden % dims:
        raise CheckpointError(f"adapter.tem.ffn.mapping.0.weight {ffn_hidden} rows is not a multiple of dims {dims}")

    if video_width is not None:
        if video_in not in (video_width, video_width + 2):
            raise CheckpointError(f"adapter.video_map.0.weight has width {video_in}, which fits neither the CLIP "
                                  f"visual width {video_width} nor {video_width} + 2 (TEF)")
        use_tef = video_in == video_width + 2
    elif base is not None:
        use_tef = base.use_tef
    else:
        known = {w[0] for w in CLIP_ARCH_WIDTHS.values()}
        with_tef, without_tef = (video_in - 2) in known, video_in in known
        # a known CLIP width settles it; otherwise grounding heads (with a coord head) use TEF
        use_tef = with_tef if with_tef != without_tef else has_coord
    cv = video_in - 2 if use_tef else video_in

    if base is None:
        base = ModelConfig() if has_coord else ModelConfig(
            strides=(1,), use_tef=False, merge_cls_sal=False, coord_head=False,
            loss=LossConfig(cls_type="dynamic_bce", reg_weight=None, sal_directions=("row",)))
    arch = next((name for name, w in CLIP_ARCH_WIDTHS.items() if w[:2] == (cv, query_width)), None)
    if num_tokens is None:
        if arch is None:
            raise CheckpointError(f"cannot tell the CLIP token count for widths {cv}/{query_width}: "
                                  "pass num_tokens (it comes from the CLIP weights)")
        num_tokens = CLIP_ARCH_WIDTHS[arch][2]
    loss = base.loss
    if not has_coord and loss.reg_weight is not None:
        loss = replace(loss, reg_weight=None)
    config = replace(base, video_width=cv, query_width=query_width, num_tokens=int(num_tokens),
                     clip_arch=arch or "custom", dims=dims, k=k, use_tef=use_tef, strides=strides,
                     ffn_ratio=ffn_hidden // dims, head_kernel=kernel, coord_head=has_coord, loss=loss)
    if dims % config.heads:
        config = replace(config, heads=next(h for h in (8, 4, 2, 1) if dims % h == 0))
    try:
        config.validate()
    except UsageError as exc:
        raise CheckpointError(f"inferred head config is invalid: {exc}") from None
    return config


def load_state_dict_strict(model: R2Tuning, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """Load weights, refusing the first missing, unexpected or mis-shaped key (in model order).

    ``loss._loss_sal.scale`` may be absent (the default is kept) or present without a saliency loss (dropped).

    Raises:
        CheckpointError: naming the first key that does not fit.
    """
    expected = model.state_dict()
    given = dict(state_dict)
    if SALIENCY_SCALE_KEY not in expected:
        given.pop(SALIENCY_SCALE_KEY, None)
    elif SALIENCY_SCALE_KEY not in given:
        given[SALIENCY_SCALE_KEY] = expected[SALIENCY_SCALE_KEY]
    for key, tensor in expected.items():
        if key not in given:
            raise CheckpointError(f"{where}: missing key {key!r} (expected shape {list(tensor.shape)})")
        if tuple(given[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{where}: key {key!r} has shape {list(given[key].shape)}, "
                                  f"the model expects {list(tensor.shape)}")
    for key in given:
        if key not in expected:
            raise CheckpointError(f"{where}: unexpected key {key!r} (not part of this head)")
    for key, tensor in given.items():
        if not torch.is_floating_point(tensor) or not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{where}: key {key!r} holds non-finite or non-float values")
    model.load_state_dict({k: v.to(torch.float32) for k, v in given.items()}, strict=True)


def preset_for_official_file(path: str | os.PathLike) -> str | None:
    """Preset name implied by an official file name (``r2_tuning_youtube_dog-702bd293.pth`` -> youtube_dog)."""
    match = _OFFICIAL_NAME.match(Path(path).stem)
    if match and match.group("config") in list_presets():
        return match.group("config")
    return None


def load_official_checkpoint(source: str | os.PathLike | dict, *, preset: str | Preset | None = None,
                             num_tokens: int | None = None, video_width: int | None = None) -> LoadedModel:
    """Build a head from an official checkpoint with widths inferred from its shapes.

    Raises:
        CheckpointError: when the checkpoint cannot be read or does not fit an R2-Tuning head.
        UsageError: when ``preset`` names no preset.
    """
    state_dict = read_official_state_dict(source)
    where = "checkpoint object" if isinstance(source, dict) else str(source)
    preset_obj = choose_preset(preset, None if isinstance(source, dict) else preset_for_official_file(source))
    base = preset_obj.model if preset_obj is not None else None
    try:
        config = infer_model_config(state_dict, base=base, num_tokens=num_tokens, video_width=video_width)
    except CheckpointError as exc:  # the shape rules do not know the file; the user needs it named
        raise CheckpointError(f"{where}: {exc}") from None
    if base is not None:
        for name in ("strides", "coord_head", "use_tef"):
            if getattr(base, name) != getattr(config, name):
                raise CheckpointError(f"{where}: the checkpoint has {name}={getattr(config, name)!r} but preset "
                                      f"{preset_obj.name!r} says {getattr(base, name)!r}")
    model = R2Tuning(config)
    load_state_dict_strict(model, state_dict, where)
    model.eval()
    return LoadedModel(model=model, config=config, preset=preset_obj, source=f"{where} (official)")


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of an r2cli ``.safetensors`` checkpoint."""
    return Path(path).with_suffix(".json")


def save_checkpoint(model: R2Tuning, path: str | os.PathLike, *, clip: str | None = None,
                    preset: str | None = None, provenance: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar atomically; return the safetensors path.

    Raises:
        UsageError: when ``path`` does not end in ``.safetensors``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise UsageError(f"checkpoint path must end in .safetensors, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": R2CLI_FORMAT})
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        sidecar = {
            "format": R2CLI_FORMAT,
            "config": model.config.to_dict(),
            "clip": clip,
            "preset": preset,
            "sha256": digest,
            "provenance": {"created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           **(provenance or {})},
        }
        # the sidecar goes first: a weights file never exists without its description
        write_json_atomic(sidecar_path(path), sidecar, sort_keys=True)
    return path


def load_r2cli_checkpoint(path: str | os.PathLike, *, preset: str | Preset | None = None) -> LoadedModel:
    """Load an r2cli checkpoint (``.safetensors`` + JSON sidecar).

    Raises:
        CheckpointError: when the sidecar is missing or malformed, the hash differs, or the weights do not fit.
    """
    from safetensors.torch import load_file

    path = Path(path)
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{path}: sidecar {side.name} is missing (it holds the model config)")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{side}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != R2CLI_FORMAT:
        raise CheckpointError(f"{side}: field 'format' must be {R2CLI_FORMAT!r}")
    if meta.get("sha256") and hashlib.sha256(path.read_bytes()).hexdigest() != meta["sha256"]:
        raise CheckpointError(f"{path}: sha256 differs from the one in {side.name} (file changed or truncated)")
    try:
        config = ModelConfig.from_dict(meta.get("config") or {}, where=f"{side}: config")
    except InputError as exc:
        raise CheckpointError(str(exc)) from None
    preset_obj = choose_preset(preset, meta.get("preset"))
    try:
        state_dict = load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    model = R2Tuning(config)
    load_state_dict_strict(model, state_dict, str(path))
    model.eval()
    return LoadedModel(model=model, config=config, preset=preset_obj, source=f"{path} (r2cli)", clip=meta.get("clip"))


def load_checkpoint(path_or_name: str | os.PathLike | None = None, *, preset: str | Preset | None = None,
                    num_tokens: int | None = None, video_width: int | None = None) -> LoadedModel:
    """Load a head from a file (official ``.pth`` or r2cli ``.safetensors``) or a pretrained-registry name.

    Args:
        path_or_name: a file path, a registry name, or None for ``$R2CLI_CHECKPOINT`` (else the
            registry's default checkpoint).
        preset: dataset preset (name or Preset) for what shapes cannot tell; official file names imply one.
        num_tokens: visual tokens per frame of the CLIP tower (from the CLIP weights).
        video_width: CLIP visual width (resolves whether the head uses TEF when widths are unusual).

    Raises:
        UsageError: when the preset (or a registry name) is unknown.
        CheckpointError: when the checkpoint does not fit, or a name cannot be resolved.
        MissingWeightsError: raised by the registry when a named checkpoint is not available offline.
    """
    if path_or_name is None or str(path_or_name) == "":
        path_or_name = os.environ.get(CHECKPOINT_ENV) or None
    path = Path(path_or_name).expanduser() if path_or_name is not None else None
    registry_preset = None
    if path is None or not path.is_file():
        if path is not None and (path.suffix in (".pth", ".pt", ".safetensors") or os.sep in str(path_or_name)):
            raise CheckpointError(f"checkpoint file {path} does not exist")
        from r2cli.model import registry

        path = Path(registry.resolve_checkpoint(None if path_or_name is None else str(path_or_name)))
        registry_preset = registry.checkpoint_preset(path)
    preset = choose_preset(preset, registry_preset)  # the registry entry's, before what the file records
    if path.suffix == ".safetensors":
        return load_r2cli_checkpoint(path, preset=preset)
    return load_official_checkpoint(path, preset=preset, num_tokens=num_tokens, video_width=video_width)
