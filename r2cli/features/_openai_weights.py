"""OpenAI-format CLIP weights to an open_clip model (private plumbing of ``r2cli.features.clip``).

OpenAI publishes CLIP as TorchScript archives whose state dict uses OpenAI's key names, which
open_clip's ``CLIP`` module shares. This module reads such files (TorchScript, ``torch.save``d state
dicts, ``.safetensors``), reads the architecture from the tensor shapes, and fills an open_clip model
built on the ``meta`` device tensor by tensor, converting each tensor once to the target dtype and
device. Written here rather than taken from open_clip because ``build_model_from_openai_state_dict``
first builds a randomly initialised model and then copies the file into it (the weights twice in
memory, and an fp16 round trip), which the indexer's memory budget does not allow.

torch and open_clip are imported inside functions so importing this module stays cheap.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.errors import InputError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    import torch

# Scalars OpenAI's files carry next to the weights; the model has no such parameters.
_OPENAI_SCALAR_KEYS = ("input_resolution", "context_length", "vocab_size")
# Buffers a model recomputes itself; TorchScript archives of open_clip models carry them.
_DERIVED_KEYS = ("attn_mask",)

# Known open_clip architectures an OpenAI-layout state dict may match: name -> (vision width, vision
# layers, patch size, image size, text width, text layers, embed dim).
_KNOWN_ARCHITECTURES = {
    "ViT-B-32": (768, 12, 32, 224, 512, 12, 512),
    "ViT-B-16": (768, 12, 16, 224, 512, 12, 512),
    "ViT-L-14": (1024, 24, 14, 224, 768, 12, 768),
    "ViT-L-14-336": (1024, 24, 14, 336, 768, 12, 768),
}


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a hard dependency
        raise MissingDependencyError("PyTorch is not installed; install r2cli with `pip install r2cli`") from exc
    return torch


def _open_clip():
    try:
        import open_clip
    except ImportError as exc:  # pragma: no cover - open_clip is a hard dependency
        raise MissingDependencyError(
            "open_clip is not installed; run `pip install open_clip_torch` (r2cli needs it for the CLIP towers)"
        ) from exc
    return open_clip


# ----------------------------------------------------------------------------------------------
# Reading weight files


def _is_torchscript_archive(path: Path) -> bool:
    """TorchScript zips hold ``code/`` and ``constants.pkl``; plain ``torch.save`` zips do not."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(name.endswith("/constants.pkl") or "/code/" in name for name in names)


def read_state_dict(path: str | os.PathLike) -> dict[str, "torch.Tensor"]:
    """Read CLIP weights from a file into a flat ``{name: tensor}`` dict on the CPU.

    Accepted: OpenAI's TorchScript archives (``ViT-B-32.pt`` as published), a ``torch.save``d state
    dict (optionally wrapped as ``{"state_dict": ...}`` with ``module.`` prefixes, as training
    scripts save it), and ``.safetensors`` files. Plain pickles are read with
    ``weights_only=True``; TorchScript archives are read as data (their tensors only, never
    ``torch.jit.load``), and one whose classes restore themselves with code is refused. Nothing in
    a weights file is executed.

    Raises:
        MissingWeightsError: the file does not exist.
        InputError: the file cannot be read as weights.
    """
    from r2cli.errors import MissingWeightsError

    torch = _torch()
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(f"CLIP weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: Any = load_file(str(path), device="cpu")
        elif _is_torchscript_archive(path):
            loaded = _read_torchscript_archive(path)  # read as data: torch.jit.load would run its code
        else:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except _RefusedArchive as exc:
        raise InputError(
            f"{path}: cannot read CLIP weights (a TorchScript archive whose loading would run code: {exc}; "
            "r2cli runs nothing from a weights file: pass a state dict of tensors or a .safetensors file)"
        ) from None
    except Exception as exc:  # torch raises many unrelated types for unreadable files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
            # torch's text advises retrying with weights_only=False, i.e. running code from the file;
            # r2cli never does that, so say what the file is and what r2cli reads instead.
            found = (
                "it holds Python objects besides tensors, which r2cli does not unpickle"
                if "global" in str(exc)
                else "not a PyTorch weights file"
            )
            first_line = f"{found}; pass OpenAI's .pt file, a torch.save'd state dict of tensors or a .safetensors file"
        raise InputError(f"{path}: cannot read CLIP weights ({first_line})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not loaded:
        raise InputError(f"{path}: not a CLIP state dict (expected a mapping of parameter names to tensors)")
    state = {str(name): value for name, value in loaded.items() if isinstance(value, torch.Tensor)}
    if state and all(name.startswith("module.") for name in state):
        state = {name[len("module.") :]: value for name, value in state.items()}
    return state


# ----------------------------------------------------------------------------------------------
# Building the model


@dataclass(frozen=True)
class ClipArchitecture:
    """A ViT CLIP's shape, read from an OpenAI-layout state dict."""

    vision_width: int  # channels of the image transformer (Cv)
    vision_layers: int  # residual blocks of the image transformer
    patch_size: int  # pixels per patch side
    image_size: int  # input side S in pixels
    text_width: int  # channels of the text transformer (Cq)
    text_layers: int  # residual blocks of the text transformer
    embed_dim: int  # joint embedding width D
    context_length: int  # text positions (77 for every OpenAI model)
    vocab_size: int  # BPE vocabulary size (49408)

    @property
    def num_tokens(self) -> int:
        """Image tokens per frame: CLS plus one per patch."""
        return (self.image_size // self.patch_size) ** 2 + 1

    def name(self) -> str:
        """The open_clip model name when the shape matches one, else a descriptive name."""
        key = (
            self.vision_width,
            self.vision_layers,
            self.patch_size,
            self.image_size,
            self.text_width,
            self.text_layers,
            self.embed_dim,
        )
        for name, shape in _KNOWN_ARCHITECTURES.items():
            if shape == key:
                return name
        return (
            f"ViT-custom-w{self.vision_width}-l{self.vision_layers}-p{self.patch_size}-i{self.image_size}"
            f"-t{self.text_width}x{self.text_layers}-e{self.embed_dim}"
        )


def _count_blocks(state: dict, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for name in state if (m := pattern.match(name))}
    return max(indices) + 1 if indices else 0


def infer_architecture(state: dict, source: str = "state dict") -> ClipArchitecture:
    """Read a ViT CLIP's shape from OpenAI key names (``visual.conv1.weight``, ``text_projection``, ...).

    Raises:
        InputError: the keys are not those of an OpenAI-layout ViT CLIP (ResNet CLIPs are refused:
            R2-Tuning needs per-token transformer features).
    """
    if "visual.attnpool.positional_embedding" in state or "visual.layer1.0.conv1.weight" in state:
        raise InputError(f"{source}: ResNet CLIP models are not supported; R2-Tuning needs a ViT CLIP")
    required = (
        "visual.conv1.weight",
        "visual.positional_embedding",
        "visual.proj",
        "text_projection",
        "positional_embedding",
        "token_embedding.weight",
        "ln_final.weight",
    )
    missing = [name for name in required if name not in state]
    if missing:
        raise InputError(
            f"{source}: not an OpenAI-format ViT CLIP state dict (missing key '{missing[0]}'); "
            "pass the OpenAI .pt file (e.g. ViT-B-32.pt) or a registry tag such as ViT-B-32/openai"
        )
    conv = state["visual.conv1.weight"]  # [width, 3, patch, patch]
    num_positions = state["visual.positional_embedding"].shape[0]
    grid = round(math.sqrt(num_positions - 1))
    if grid * grid + 1 != num_positions:
        raise InputError(f"{source}: visual.positional_embedding has {num_positions} rows, not a square grid + 1")
    return ClipArchitecture(
        vision_width=int(conv.shape[0]),
        vision_layers=_count_blocks(state, "visual.transformer.resblocks."),
        patch_size=int(conv.shape[-1]),
        image_size=int(conv.shape[-1]) * grid,
        text_width=int(state["ln_final.weight"].shape[0]),
        text_layers=_count_blocks(state, "transformer.resblocks."),
        embed_dim=int(state["text_projection"].shape[1]),
        context_length=int(state["positional_embedding"].shape[0]),
        vocab_size=int(state["token_embedding.weight"].shape[0]),
    )


# Parameters of the text tower in OpenAI's layout (everything else but ``logit_scale`` is ``visual.*``).
_TEXT_PREFIXES = ("transformer.", "token_embedding.", "positional_embedding", "ln_final.", "text_projection")


def _is_text_key(name: str) -> bool:
    return name.startswith(_TEXT_PREFIXES)


def build_from_openai_state_dict(
    state: dict,
    *,
    quick_gelu: bool = True,
    source: str = "state dict",
    dtype: "torch.dtype | None" = None,
    device: str = "cpu",
    text: bool = True,
    consume: bool = False,
):
    """Build an open_clip ``CLIP`` (eval, frozen) from an OpenAI-layout ViT state dict.

    Heads are width/64 in both towers, as in every OpenAI model. ``quick_gelu`` must be True for
    OpenAI's weights (they were trained with x·σ(1.702x)); a model built with exact GELU computes a
    different function. The three integer scalars OpenAI files carry are dropped.

    The model is created without storage (on the ``meta`` device) and each parameter is then made
    from its state-dict tensor, converted once to ``dtype`` (default float32) on ``device``: no
    randomly initialised copy, no float32 detour for a bf16 model, no second full copy. A tensor
    already in the target dtype and device is used as is (an fp32 checkpoint is neither copied nor
    rounded through fp16). With ``consume=True`` each entry is removed from ``state`` as soon as
    it is converted, so the caller's dict does not keep a second copy alive. With ``text=False``
    the text tower's parameters stay on the ``meta`` device (no memory) and are dropped from
    ``state`` (``ClipTower.load_text_tower`` reads them later).

    Raises:
        InputError: the keys or shapes do not fit the inferred architecture (the first mismatch is named).
    """
    torch = _torch()
    _open_clip()  # a clear error when open_clip is missing
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    arch = infer_architecture(state, source)
    for width, what in ((arch.vision_width, "vision"), (arch.text_width, "text")):
        if width % 64:
            raise InputError(f"{source}: {what} width {width} is not a multiple of 64 (CLIP uses 64-wide heads)")
    vision_cfg = CLIPVisionCfg(
        layers=arch.vision_layers,
        width=arch.vision_width,
        head_width=64,
        patch_size=arch.patch_size,
        image_size=arch.image_size,
    )
    text_cfg = CLIPTextCfg(
        context_length=arch.context_length,
        vocab_size=arch.vocab_size,
        width=arch.text_width,
        heads=arch.text_width // 64,
        layers=arch.text_layers,
    )
    with torch.device("meta"):  # shapes only: every tensor is replaced below
        model = CLIP(arch.embed_dim, vision_cfg=vision_cfg, text_cfg=text_cfg, quick_gelu=quick_gelu, cast_dtype=None)
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    names = [name for name in state if name not in _OPENAI_SCALAR_KEYS + _DERIVED_KEYS]
    for name in names:
        if name not in expected:
            raise InputError(f"{source}: unexpected key '{name}' for a {arch.name()} CLIP")
        if expected[name] != tuple(state[name].shape):
            raise InputError(
                f"{source}: '{name}' has shape {tuple(state[name].shape)}, "
                f"but a {arch.name()} CLIP needs {expected[name]}"
            )
    for name in expected:
        if name not in state:
            raise InputError(f"{source}: missing key '{name}' for a {arch.name()} CLIP")
    target = torch.float32 if dtype is None else dtype
    if consume:
        for name in [name for name in state if name not in names or (not text and _is_text_key(name))]:
            del state[name]
    _assign_tensors(model, state, [n for n in names if text or not _is_text_key(n)], target, device, consume)
    # The causal mask is a non-persistent buffer (not in any file): rebuild it as open_clip does.
    mask = torch.full((arch.context_length, arch.context_length), float("-inf"), device=device).triu_(1)
    model.attn_mask = mask.to(target)  # [77, 77]: -inf above the diagonal
    leftover = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if text:
        if leftover:
            raise InputError(f"{source}: '{leftover[0]}' was not filled in for a {arch.name()} CLIP")
    elif [name for name in leftover if not _is_text_key(name)]:
        missing = next(name for name in leftover if not _is_text_key(name))
        raise InputError(f"{source}: '{missing}' was not filled in for a {arch.name()} CLIP")
    return model.eval().requires_grad_(False), arch


def _assign_tensors(model, state: dict, names: list[str], dtype, device: str, consume: bool) -> None:
    """Make ``model``'s parameters named ``names`` from ``state`` (one conversion each, no other copy)."""
    torch = _torch()
    for name in names:
        value = state.pop(name) if consume else state[name]
        converted = value.to(device=device, dtype=dtype)  # ``value`` itself when nothing changes
        del value
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        if leaf in owner._parameters:
            owner._parameters[leaf] = torch.nn.Parameter(converted, requires_grad=False)
        else:
            owner._buffers[leaf] = converted
        del converted




@dataclass
class _PendingText:
    """What is needed to read a deferred text tower: the file, its identity when first read, the layout."""

    path: Path  # the OpenAI-format weights file
    size: int  # its size when load_clip read it
    mtime_ns: int  # its modification time then
    dtype: Any  # torch dtype of the model
    device: str  # where the model runs

    def fill(self, model) -> None:
        """Read the file again and fill in the text tower's parameters (the image tower is not touched).

        Raises:
            InputError: the file is gone or changed since ``load_clip`` read it.
        """
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read the text tower's weights any more ({exc.strerror or exc})") from None
        if (stat.st_size, stat.st_mtime_ns) != (self.size, self.mtime_ns):
            raise InputError(
                f"{self.path}: the weights file changed after the CLIP tower was loaded; load it again with load_clip"
            )
        state = read_state_dict(self.path)
        names = [name for name in state if _is_text_key(name)]
        for name in [name for name in state if not _is_text_key(name)]:
            del state[name]
        _assign_tensors(model, state, names, self.dtype, self.device, consume=True)
        leftover = [name for name, tensor in model.named_parameters() if tensor.is_meta]
        if leftover:
            raise InputError(f"{self.path}: '{leftover[0]}' is missing from the text tower's weights")
        model.requires_grad_(False)


# ----------------------------------------------------------------------------------------------
# TorchScript archives, read as data


_TORCHSCRIPT_STORAGE_TYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


class _ScriptObject:
    """An inert record standing for one ``__torch__.*`` object of a TorchScript archive.

    The class named in the archive is never imported or compiled: the record keeps the name and
    the attribute dict the pickle hands to ``BUILD``. TorchScript objects whose classes define
    ``__setstate__`` pickle something else than a dict (whatever their ``__getstate__`` returned);
    restoring them would mean running the archive's code, so such state is refused.
    """

    class_name = "__torch__"  # set on the per-class subclass made by the archive reader
    attributes: dict = {}  # replaced, never mutated, by __setstate__

    def __init__(self, *args: object) -> None:  # arguments of a REDUCE are ignored: nothing is run
        del args

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
            raise _RefusedArchive(
                f"its {self.class_name} restores itself with code (__setstate__), which r2cli does not run"
            )
        self.attributes = state


class _RefusedArchive(Exception):
    """A TorchScript archive holds something that only running its code could restore."""


def _read_torchscript_archive(path: Path) -> dict[str, "torch.Tensor"]:
    """Read the tensors of a TorchScript archive without running anything in it.

    ``data.pkl`` is unpickled with a reader that allows exactly four kinds of global: torch's
    tensor rebuild function (answered by a local rebuild), the ``torch.*Storage`` dtype tags,
    ``collections.OrderedDict``, and ``__torch__.*`` classes (answered by inert records, never
    imported). Storages are read from the zip's ``data/`` entries. ``torch.jit.load`` is never
    called: it would run the archive's TorchScript (a scripted ``__setstate__`` runs at load).

    Raises:
        _RefusedArchive: the archive needs its code to be restored (any other global, or
            ``__setstate__`` in its code or its pickled state).
        ValueError, KeyError, zipfile.BadZipFile, pickle.UnpicklingError: the archive is malformed.
    """
    import collections
    import io

    torch = _torch()
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError("no data.pkl at the top of the archive")
        root = pickles[0][: -len("data.pkl")]
        for name in names:  # a class that restores itself with code: refuse before unpickling anything
            if name.startswith(root + "code/") and name.endswith(".py"):
                if re.search(rb"\bdef __setstate__\s*\(", archive.read(name)):
                    class_file = name[len(root + "code/") :]
                    raise _RefusedArchive(
                        f"its code ({class_file}) defines __setstate__, which runs when the archive is loaded"
                    )
        storages: dict[str, Any] = {}

        def storage(key: str, dtype_name: str, numel: int):
            if key not in storages:
                raw = bytearray(archive.read(f"{root}data/{key}"))
                dtype = getattr(torch, dtype_name)
                element = torch.empty((), dtype=dtype).element_size()
                if len(raw) < numel * element:
                    raise ValueError(f"storage {key} holds {len(raw)} bytes, {numel * element} expected")
                flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
                storages[key] = flat[: numel * element].view(dtype) if numel else torch.empty(0, dtype=dtype)
            return storages[key]

        def rebuild_tensor(flat, offset, size, stride, requires_grad=False, hooks=None, *rest):
            del requires_grad, hooks, rest
            return torch.as_strided(flat, tuple(size), tuple(stride), int(offset))

        class Reader(pickle.Unpickler):
            def find_class(self, module: str, name: str):
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return rebuild_tensor
                if (module, name) == ("collections", "OrderedDict"):
                    return collections.OrderedDict
                if module == "torch" and name in _TORCHSCRIPT_STORAGE_TYPES:
                    return _TORCHSCRIPT_STORAGE_TYPES[name]
                if module == "__torch__" or module.startswith("__torch__."):
                    return type("ScriptObject", (_ScriptObject,), {"class_name": f"{module}.{name}"})
                raise _RefusedArchive(f"its data.pkl names {module}.{name}, which r2cli does not unpickle")

            def persistent_load(self, pid):
                if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                    raise ValueError("unknown persistent id in data.pkl")
                _, dtype_name, key, _location, numel = pid
                if dtype_name not in _TORCHSCRIPT_STORAGE_TYPES.values() or not isinstance(key, str) or "/" in key:
                    raise ValueError("malformed storage reference in data.pkl")
                return storage(key, dtype_name, int(numel))

        top = Reader(io.BytesIO(archive.read(pickles[0]))).load()
    state: dict[str, Any] = {}

    def collect(record: _ScriptObject, prefix: str, seen: set[int]) -> None:
        if id(record) in seen:
            return
        seen.add(id(record))
        for attribute, value in record.attributes.items():
            if isinstance(value, torch.Tensor):
                state[prefix + attribute] = value
            elif isinstance(value, _ScriptObject):
                collect(value, f"{prefix}{attribute}.", seen)

    if not isinstance(top, _ScriptObject):
        raise ValueError("data.pkl does not hold a scripted module")
    collect(top, "", set())
    return state
