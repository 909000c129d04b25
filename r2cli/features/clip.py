"""Frozen CLIP towers that return per-layer token features, as R2-Tuning consumes them.

``load_clip`` builds an open_clip ``CLIP`` model from OpenAI-format weights (a local ``.pt`` file,
either a TorchScript archive as OpenAI publishes them or a plain state dict) or from a registry tag
(``"openai"``, ``"ViT-B-32/openai"``, other open_clip pretrained tags), and wraps it in a
``ClipTower``. The tower runs in float32 by default, like the official feature extractor, and
returns:

- video side: the residual stream of the image transformer. Layer 0 is the embedding after
  ``ln_pre``; layer j (1..n) is the output of block j. All tokens (CLS first) are kept; ``ln_post``
  and the projection are not applied. The last ``k`` layers are returned, oldest first.
- query side: layer 0 is token + positional embedding; layer j is the output of text block j run
  with CLIP's causal mask; ``ln_final`` is not applied. Only the positions whose token id is
  non-zero (start-of-text .. end-of-text) are returned.
- embeddings: the ordinary, L2-normalised CLIP image and text embeddings.

Reading OpenAI's files and building the model from them is ``r2cli.features._openai_weights``.
torch and open_clip are imported inside functions so importing this module stays cheap.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.errors import InputError, UsageError
from r2cli.features._openai_weights import (  # re-exported: the public names live here
    _KNOWN_ARCHITECTURES,
    ClipArchitecture,
    _open_clip,
    _PendingText,
    _torch,
    build_from_openai_state_dict,
    infer_architecture,
    read_state_dict,
)
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "ClipArchitecture",
    "ClipTower",
    "PRECISIONS",
    "build_from_openai_state_dict",
    "infer_architecture",
    "load_clip",
    "read_state_dict",
    "resolve_device",
]

CLIP_WEIGHTS_ENV = "R2CLI_CLIP_WEIGHTS"
DEFAULT_CLIP_WEIGHTS = "ViT-B-32/openai"  # the CLIP every official R2-Tuning checkpoint was trained on

# CLIP's pixel normalisation constants (OpenAI's training statistics; the official extractor uses these).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

PRECISIONS = ("fp32", "bf16", "fp16")
# 16 on the CPU: as fast as 32 or faster (one thread, ViT-B/32: 9.7-10.3 s vs 10.7-10.8 s per 96 frames)
# and about 160-190 MB less resident memory while indexing (benchmarks/RESULTS-index.md).
_DEFAULT_BATCH_SIZE = {"cpu": 16, "cuda": 256}


# ----------------------------------------------------------------------------------------------
# Devices


def resolve_device(device: str | None) -> str:
    """Turn ``"auto"``/``None`` into ``"cuda"`` when a GPU is visible (else ``"cpu"``) and check the rest.

    Raises:
        UsageError: the device string is not understood, or names CUDA when no GPU is available.
    """
    torch = _torch()
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device} needs a CUDA GPU, but torch sees none; use --device cpu or auto")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return str(parsed)


def _check_supported(model, source: str) -> None:
    """Refuse open_clip models whose towers are not plain ViT / causal text transformers."""
    from open_clip.transformer import VisionTransformer

    visual = model.visual
    if not isinstance(visual, VisionTransformer):
        raise InputError(f"{source}: only ViT CLIP image towers are supported, got {type(visual).__name__}")
    if getattr(visual, "attn_pool", None) is not None or visual.pool_type != "tok" or visual.final_ln_after_pool:
        raise InputError(f"{source}: the image embedding must be ln_post of the CLS token (OpenAI-style ViT)")
    text = getattr(model, "text", model)
    if not hasattr(text, "token_embedding") or getattr(text, "cls_emb", None) is not None:
        raise InputError(f"{source}: only OpenAI-style causal text transformers are supported")
    if getattr(text, "attn_mask", None) is None:
        raise InputError(f"{source}: the text tower has no causal mask")
    if getattr(text, "text_pool_type", getattr(text, "pool_type", "argmax")) != "argmax":
        raise InputError(f"{source}: the text embedding must be taken at the end-of-text token")




# ----------------------------------------------------------------------------------------------
# The tower


@dataclass
class ClipTower:
    """A frozen CLIP that returns per-layer token features and embeddings.

    Build one with ``load_clip``. Outputs are float32 tensors on the CPU, whatever ``device`` runs
    the model; inputs are processed in batches of ``batch_size`` to bound memory. A tower loaded
    with ``lazy_text=True`` reads its text tower from ``weights_path`` on first use (a text call
    or ``model``); until then only the image tower takes memory.
    """

    _model: Any = field(repr=False)  # the open_clip CLIP module; read it through ``model``
    model_name: str  # open_clip architecture name ("ViT-B-32") or a descriptive name for custom shapes
    weights_id: str  # registry tag ("ViT-B-32/openai") or "sha256:<16 hex>" of a local weights file
    image_size: int  # input side S in pixels (224 for ViT-B/32)
    video_width: int  # Cv: channels of the image tokens (768 for ViT-B/32)
    text_width: int  # Cq: channels of the text tokens (512 for ViT-B/32)
    num_tokens: int  # P: tokens per frame, CLS first (50 for ViT-B/32)
    num_layers: int  # residual blocks per tower (the smaller count when the towers differ)
    vision_layers: int  # residual blocks of the image transformer
    text_layers: int  # residual blocks of the text transformer
    embed_dim: int  # D: width of the joint embedding (512 for ViT-B/32)
    device: str  # where the model runs ("cpu", "cuda", "cuda:1")
    context_length: int = 77  # text positions
    precision: str = "fp32"  # "fp32" (default, as the official extractor), or opt-in "bf16"/"fp16"
    batch_size: int = 32  # frames or texts per forward pass
    weights_path: Path | None = None  # the file the weights came from
    quick_gelu: bool = True  # activation the model was built with
    _mean: Any = field(default=None, repr=False)
    _std: Any = field(default=None, repr=False)
    _pending_text: Any = field(default=None, repr=False)  # _PendingText while the text tower is not loaded
    _text_lock: Any = field(default_factory=threading.Lock, repr=False)

    # -- helpers -----------------------------------------------------------------------------

    @property
    def model(self):
        """The open_clip CLIP module (float32 unless precision says otherwise, eval, frozen), both towers loaded.

        Raises:
            InputError: a lazily loaded text tower cannot be read any more (see ``load_text_tower``).
        """
        self.load_text_tower()
        return self._model

    @property
    def text_tower_loaded(self) -> bool:
        """False while a ``lazy_text`` tower has not read its text weights yet."""
        return self._pending_text is None

    def load_text_tower(self) -> None:
        """Read the text tower's weights now if they were deferred (``load_clip(lazy_text=True)``).

        Raises:
            InputError: the weights file changed or vanished since ``load_clip`` read it (its
                text tower would not belong to the loaded image tower).
        """
        if self._pending_text is None:
            return
        with self._text_lock:
            pending = self._pending_text
            if pending is not None:
                pending.fill(self._model)
                self._pending_text = None

    @property
    def _text(self):
        self.load_text_tower()
        return getattr(self._model, "text", self._model)

    @property
    def _dtype(self):
        torch = _torch()
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]

    def max_layers(self) -> int:
        """Largest ``k`` both towers can provide (their block count + the embedding layer)."""
        return self.num_layers + 1

    def _check_k(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.max_layers():
            raise UsageError(f"k must be an integer in [1, {self.max_layers()}] for {self.model_name}, got {k!r}")
        return k

    # -- pixels ------------------------------------------------------------------------------

    def normalize(self, frames_uint8: "torch.Tensor") -> "torch.Tensor":
        """Scale uint8 frames ``[N, 3, S, S]`` to [0, 1] and normalise with CLIP's mean/std (float32).

        Raises:
            InputError: the tensor is not ``[N, 3, H, W]`` uint8.
        """
        torch = _torch()
        if not isinstance(frames_uint8, torch.Tensor) or frames_uint8.dtype != torch.uint8:
            raise InputError(f"frames must be a uint8 tensor [N, 3, S, S], got {_describe(frames_uint8)}")
        if frames_uint8.ndim != 4 or frames_uint8.shape[1] != 3:
            raise InputError(f"frames must have shape [N, 3, S, S], got {list(frames_uint8.shape)}")
        mean = torch.tensor(CLIP_MEAN, dtype=torch.float32, device=frames_uint8.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, dtype=torch.float32, device=frames_uint8.device).view(1, 3, 1, 1)
        # in place on the one float copy: the same operations in the same order, a third of the temporaries
        pixels = frames_uint8.to(torch.float32)  # [N, 3, S, S]
        return pixels.div_(255.0).sub_(mean).div_(std)

    # -- video -------------------------------------------------------------------------------

    def video_features(
        self,
        pixels: "torch.Tensor",
        k: int = 4,
        *,
        batch_size: int | None = None,
        output_device: str | None = "cpu",
        output_dtype: "torch.dtype | None" = None,
        reporter: Reporter = NULL_REPORTER,
    ) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Per-layer image tokens of the last ``k`` layers and the normalised image embedding.

        ``pixels`` are normalised frames ``[N, 3, S, S]`` (float), or uint8 frames, which are
        normalised batch by batch on the model's device (as ``normalize`` does; moving uint8 is 4x
        cheaper than moving floats). Layer 0 is the embedding after ``ln_pre`` and layer j the
        output of block j; the last ``k`` are returned oldest first, before ``ln_post``, all tokens
        (CLS first). ``reporter`` advances the stage ``"clip"`` by the frames of each batch.

        Returns:
            ``(layers [N, k, P, Cv] float32, embed [N, D] float32 L2-normalised)`` on
            ``output_device`` (the CPU by default; None keeps them on the model's device).
            ``output_dtype=torch.float16`` casts on the model's device before the copy (what the
            feature store keeps, at half the transfer; measured on an H200: fp32 ViT-B/32 went
            from 2.7k to 4.3k frames/s when the outputs stayed on the GPU).

        Raises:
            UsageError: ``k`` or ``batch_size`` is out of range.
            InputError: ``pixels`` has the wrong shape or dtype for this model.
        """
        torch = _torch()
        k = self._check_k(k)
        size = self.image_size
        if not isinstance(pixels, torch.Tensor) or not (pixels.is_floating_point() or pixels.dtype == torch.uint8):
            raise InputError(f"pixels must be a float or uint8 tensor [N, 3, {size}, {size}], got {_describe(pixels)}")
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (3, size, size):
            raise InputError(f"pixels must have shape [N, 3, {size}, {size}] for {self.model_name}, got {list(pixels.shape)}")
        step = self._batch(batch_size)
        target = torch.device(self.device if output_device is None else output_device)
        count = pixels.shape[0]
        dtype = torch.float32 if output_dtype is None else output_dtype
        layers = torch.empty(count, k, self.num_tokens, self.video_width, dtype=dtype, device=target)
        embed = torch.empty(count, self.embed_dim, dtype=dtype, device=target)  # [N, D]
        with torch.no_grad():
            for start in range(0, count, step):
                chunk = pixels[start : start + step].to(self.device, non_blocking=True)  # [b, 3, S, S]
                if chunk.dtype == torch.uint8:
                    chunk = self.normalize(chunk)
                rows = slice(start, start + chunk.shape[0])

                def keep(index: int, x: "torch.Tensor", rows: slice = rows) -> None:
                    # cast on the model's device first, then copy: fewer bytes cross the bus
                    layers[rows, index] = x.to(dtype).to(target)  # [b, P, Cv]

                chunk_embed = self._run_vision(chunk.to(self._dtype), k, keep)  # [b, D]
                embed[rows] = chunk_embed.to(dtype).to(target)
                reporter.advance("clip", chunk.shape[0])
        return layers, embed

    def _run_vision(self, pixels: "torch.Tensor", k: int, keep) -> "torch.Tensor":
        """Run the image tower, handing each of the last ``k`` layers to ``keep(index, x [b, P, Cv])``
        as soon as it is computed (oldest first), so that no more than one layer is held at a time."""
        torch = _torch()
        visual = self._model.visual
        x = visual.conv1(pixels)  # [b, Cv, grid, grid]
        x = x.flatten(2).transpose(1, 2)  # [b, grid*grid, Cv]
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], 1, -1)  # [b, 1, Cv]
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)  # [b, P, Cv]
        x = visual.ln_pre(x)  # layer 0
        first_kept = self.vision_layers + 1 - k  # index of the oldest layer returned
        if first_kept == 0:
            keep(0, x)
        batch_first = getattr(visual.transformer, "batch_first", True)
        for index, block in enumerate(visual.transformer.resblocks, start=1):
            if batch_first:
                x = block(x)
            else:  # older open_clip: sequence-first blocks
                x = block(x.transpose(0, 1)).transpose(0, 1)
            if index >= first_kept:
                keep(index - first_kept, x)  # [b, P, Cv]
        pooled = visual.ln_post(x[:, 0]) @ visual.proj  # [b, D]
        return torch.nn.functional.normalize(pooled.float(), dim=-1)

    # -- text --------------------------------------------------------------------------------

    def tokenize(self, texts: list[str]) -> tuple["torch.Tensor", list[bool]]:
        """OpenAI CLIP ids (``clip.tokenize(truncate=True)``) and which texts were truncated.

        Returns:
            ``(ids LongTensor [n, context_length], truncated list[bool])``.

        Raises:
            UsageError: ``texts`` is not a list of strings.
        """
        from r2cli.features.tokenizer import tokenize

        return tokenize(texts, self.context_length)

    def query_features(
        self,
        texts: list[str],
        k: int = 4,
        *,
        batch_size: int | None = None,
    ) -> tuple[list["torch.Tensor"], "torch.Tensor", list[bool]]:
        """Per-layer text tokens of the last ``k`` layers (real tokens only) and the normalised text embedding.

        Returns:
            ``(layers, embed, truncated)``: ``layers[i]`` is ``[L_i, k, Cq]`` float32 for the
            ``L_i`` positions of text ``i`` with non-zero ids (start .. end of text), oldest layer
            first; ``embed`` is ``[n, D]`` L2-normalised; ``truncated[i]`` says text ``i`` was cut
            to the context length.

        Raises:
            UsageError: ``texts`` is not a list of strings or ``k`` is out of range.
        """
        ids, truncated = self.tokenize(texts)
        layers, embed = self.token_features(ids, k, batch_size=batch_size)
        lengths = (ids != 0).sum(dim=1).tolist()
        per_query = [layers[i, :, : lengths[i]].permute(1, 0, 2).contiguous() for i in range(len(lengths))]
        return per_query, embed, truncated

    def token_features(
        self, ids: "torch.Tensor", k: int = 4, *, batch_size: int | None = None
    ) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Per-layer text features of all positions of token ids ``[n, context_length]``.

        Returns:
            ``(layers [n, k, context_length, Cq] float32, embed [n, D] float32 L2-normalised)`` on the CPU.

        Raises:
            UsageError: ``k`` is out of range.
            InputError: ``ids`` is not an integer tensor ``[n, context_length]``.
        """
        torch = _torch()
        k = self._check_k(k)
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
            raise InputError(f"token ids must be an int64 tensor [n, {self.context_length}], got {_describe(ids)}")
        if ids.ndim != 2 or ids.shape[1] != self.context_length:
            raise InputError(f"token ids must have shape [n, {self.context_length}], got {list(ids.shape)}")
        step = self._batch(batch_size)
        count = ids.shape[0]
        layers = torch.empty(count, k, self.context_length, self.text_width, dtype=torch.float32)
        embed = torch.empty(count, self.embed_dim, dtype=torch.float32)
        with torch.no_grad():
            for start in range(0, count, step):
                chunk = ids[start : start + step].to(self.device, torch.long)  # [b, 77]
                chunk_layers, chunk_embed = self._run_text(chunk, k)
                layers[start : start + chunk.shape[0]] = chunk_layers.float().cpu()
                embed[start : start + chunk.shape[0]] = chunk_embed.float().cpu()
        return layers, embed

    def _run_text(self, ids: "torch.Tensor", k: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        torch = _torch()
        text = self._text
        x = text.token_embedding(ids).to(self._dtype)  # [b, 77, Cq]
        x = x + text.positional_embedding.to(x.dtype)  # layer 0
        mask = text.attn_mask.to(device=x.device, dtype=x.dtype)  # [77, 77] causal, -inf above the diagonal
        first_kept = self.text_layers + 1 - k
        kept = [x] if first_kept == 0 else []
        batch_first = getattr(text.transformer, "batch_first", True)
        for index, block in enumerate(text.transformer.resblocks, start=1):
            if batch_first:
                x = block(x, attn_mask=mask)
            else:
                x = block(x.transpose(0, 1), attn_mask=mask).transpose(0, 1)
            if index >= first_kept:
                kept.append(x)
        layers = torch.stack(kept, dim=1)  # [b, k, 77, Cq]
        final = text.ln_final(x)  # [b, 77, Cq]
        pooled = final[torch.arange(final.shape[0], device=final.device), ids.argmax(dim=-1)]  # [b, Cq] at EOT
        projection = text.text_projection
        pooled = projection(pooled) if isinstance(projection, torch.nn.Module) else pooled @ projection  # [b, D]
        return layers, torch.nn.functional.normalize(pooled.float(), dim=-1)

    def _batch(self, batch_size: int | None) -> int:
        size = self.batch_size if batch_size is None else batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise UsageError(f"--batch-size must be a positive integer, got {size!r}")
        return size


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None:
        return f"{type(value).__name__} {list(shape)} {dtype}"
    return type(value).__name__


# ----------------------------------------------------------------------------------------------
# Factory


def load_clip(
    weights: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    device: str = "cpu",
    cache_dir: str | os.PathLike | None = None,
    precision: str = "fp32",
    quick_gelu: bool | None = None,
    batch_size: int | None = None,
    offline: bool | None = None,
    lazy_text: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> ClipTower:
    """Load a frozen CLIP tower.

    Weights are converted tensor by tensor straight into the model's precision and device, and
    the file's tensors are released as they are converted, so loading never holds the weights
    twice (plus one tensor).

    Args:
        weights: ``None`` (``$R2CLI_CLIP_WEIGHTS``, else OpenAI ViT-B/32 from the weights cache,
            downloaded on first use); a registry or open_clip tag (``"openai"``,
            ``"ViT-B-32/openai"``); or a local weights file in OpenAI format (TorchScript archive or
            state dict; the architecture is read from the shapes).
        model: open_clip architecture for a bare tag (``model="ViT-B-16", weights="openai"``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available).
        cache_dir: weights cache (default ``r2cli.paths.weights_cache_dir()``).
        precision: ``"fp32"`` (default, as the official extractor) or opt-in ``"bf16"``/``"fp16"``.
        quick_gelu: activation override; default True for OpenAI weights, the tag's setting otherwise.
        batch_size: frames/texts per forward pass (default 16 on CPU, 256 on CUDA).
        offline: never use the network (default: ``$R2CLI_OFFLINE`` / ``$HF_HUB_OFFLINE``).
        lazy_text: leave the text tower unread until a text call (or ``tower.model``) needs it,
            reading the weights file again then; ``r2cli index`` saves the text tower's memory
            (250 MB for ViT-B/32 in fp32) this way. Only for OpenAI-format weights; other
            layouts load both towers.

    Raises:
        MissingWeightsError: the weights are neither local nor downloadable (one line saying how to provide them).
        InputError: the weights file is not a usable ViT CLIP.
        UsageError: bad device, precision, tag or batch size.
    """
    from r2cli.model import registry

    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    resolved_device = resolve_device(device)
    if precision == "fp16" and not resolved_device.startswith("cuda"):
        raise UsageError("precision fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
    spec: str | os.PathLike = weights if weights not in (None, "") else (
        os.environ.get(CLIP_WEIGHTS_ENV) or DEFAULT_CLIP_WEIGHTS
    )
    resolved = registry.resolve_clip(spec, model=model, cache_dir=cache_dir, offline=offline, reporter=reporter)
    source = str(resolved.path)
    torch = _torch()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if resolved.layout == "openai":
        clip_model, model_name, use_quick_gelu, pending_text = _build_openai(
            resolved, model=model, quick_gelu=quick_gelu, dtype=dtype, device=resolved_device, lazy_text=lazy_text)
    else:
        clip_model, model_name, use_quick_gelu = _build_open_clip(resolved, quick_gelu=quick_gelu, dtype=dtype,
                                                                  device=resolved_device)
        pending_text = None
    _check_supported(clip_model, source)
    return _tower(clip_model, resolved, model_name=model_name, device=resolved_device, precision=precision,
                  batch_size=batch_size, quick_gelu=use_quick_gelu, pending_text=pending_text)


def _build_openai(resolved: Any, *, model: str | None, quick_gelu: bool | None, dtype: Any, device: str,
                  lazy_text: bool) -> tuple[Any, str, bool, "_PendingText | None"]:
    """The model of an OpenAI-format file, converted tensor by tensor (the text tower left unread when
    ``lazy_text``): (model, its name, quick_gelu, what reads the text tower later)."""
    source = str(resolved.path)
    path = Path(resolved.path)
    identity = path.stat() if lazy_text else None
    state = read_state_dict(path)
    if model is not None and resolved.model_name is None:
        _check_model_matches(model, infer_architecture(state, source), source)
    use_quick_gelu = quick_gelu if quick_gelu is not None else resolved.quick_gelu
    clip_model, arch = build_from_openai_state_dict(
        state,
        quick_gelu=use_quick_gelu,
        source=source,
        dtype=dtype,
        device=device,
        text=not lazy_text,
        consume=True,
    )
    del state  # emptied by consume=True; nothing else refers to the file's tensors
    model_name = resolved.model_name or arch.name()
    pending_text = None
    if lazy_text:
        pending_text = _PendingText(
            path=path, size=identity.st_size, mtime_ns=identity.st_mtime_ns, dtype=dtype, device=device
        )
    return clip_model, model_name, use_quick_gelu, pending_text


def _build_open_clip(resolved: Any, *, quick_gelu: bool | None, dtype: Any, device: str) -> tuple[Any, str, bool]:
    """The model of weights open_clip reads itself: (model, its name, quick_gelu).

    Raises:
        InputError: open_clip cannot load them as the resolved architecture.
    """
    source = str(resolved.path)
    open_clip = _open_clip()
    use_quick_gelu = quick_gelu if quick_gelu is not None else resolved.quick_gelu
    try:
        clip_model = open_clip.create_model(
            resolved.model_name,
            pretrained=str(resolved.path),
            force_quick_gelu=use_quick_gelu,
            device="cpu",
            precision="fp32",
        )
    except Exception as exc:
        raise InputError(f"{source}: open_clip cannot load these weights as {resolved.model_name} ({exc})") from exc
    # Module.to converts parameter by parameter, releasing each old tensor as it goes.
    clip_model = clip_model.eval().requires_grad_(False).to(device).to(dtype)
    return clip_model, resolved.model_name, use_quick_gelu


def _tower(clip_model: Any, resolved: Any, *, model_name: str, device: str, precision: str, batch_size: int | None,
           quick_gelu: bool, pending_text: "_PendingText | None") -> ClipTower:
    """The ``ClipTower`` of a loaded model: its sizes read from the model itself."""
    visual = clip_model.visual
    text = getattr(clip_model, "text", clip_model)
    vision_layers = len(visual.transformer.resblocks)
    text_layers = len(text.transformer.resblocks)
    grid = visual.grid_size if isinstance(visual.grid_size, tuple) else (visual.grid_size, visual.grid_size)
    image_size = visual.image_size if isinstance(visual.image_size, tuple) else (visual.image_size,) * 2
    device_kind = "cuda" if device.startswith("cuda") else "cpu"
    return ClipTower(
        _model=clip_model,
        model_name=model_name,
        weights_id=resolved.weights_id,
        image_size=int(image_size[0]),
        video_width=int(visual.transformer.width),
        text_width=int(text.transformer.width),
        num_tokens=int(grid[0] * grid[1] + 1),
        num_layers=min(vision_layers, text_layers),
        vision_layers=vision_layers,
        text_layers=text_layers,
        embed_dim=int(visual.proj.shape[1]),
        device=device,
        context_length=int(text.context_length),
        precision=precision,
        batch_size=batch_size if batch_size is not None else _DEFAULT_BATCH_SIZE[device_kind],
        weights_path=resolved.path,
        quick_gelu=bool(quick_gelu),
        _pending_text=pending_text,
    )


def _check_model_matches(model: str, arch: ClipArchitecture, source: str) -> None:
    expected = _KNOWN_ARCHITECTURES.get(model.removesuffix("-quickgelu"))
    if expected is None:
        return
    inferred = arch.name()
    if inferred != model.removesuffix("-quickgelu"):
        raise UsageError(f"--clip-model {model} does not match {source}, which holds a {inferred} CLIP")
