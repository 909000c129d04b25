"""Typed configuration of the R2-Tuning head, its losses, its data conventions and training recipe.

Presets live as JSON files in ``models/presets/<name>.json`` (the file stem is the preset name).
This module imports no heavy dependency, so listing or validating presets stays cheap.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from r2cli.errors import InputError, UsageError

# CLIP widths (video width Cv, text width Cq, visual tokens per frame P) of the architectures
# r2cli knows by name. Unlike the official table, ViT-L/14 has 257 tokens (16x16 patches + CLS).
CLIP_ARCH_WIDTHS: dict[str, tuple[int, int, int]] = {
    "ViT-B/32": (768, 512, 50),
    "ViT-B/16": (768, 512, 197),
    "ViT-L/14": (1024, 768, 257),
    "ViT-L/14-336px": (1024, 768, 577),
}

CLS_LOSS_TYPES = ("focal", "dynamic_bce")
NMS_TYPES = ("normal", "linear", "gaussian")
# The official NMS settings (every official config): the IoU at or above which "normal" NMS zeroes a
# score, and the width of the "gaussian" decay. Written here once; every default refers to them (#23).
NMS_THRESHOLD = 0.7
NMS_SIGMA = 0.5
# Clips per second unless a setting or a checkpoint's preset says otherwise: 0.5, the rate of the
# official QVHighlights features (and of r2cli's feature index). Written here once (#23);
# r2cli.features.names.FEATURE_FPS is this value.
DEFAULT_FPS = 0.5
ROUND_UNIT_S = 2.0  # the official rounding unit of predicted windows, in seconds
MAX_MOMENTS = 50  # the official max_num_moment: moments kept per (query, video)
SALIENCY_DIRECTIONS = ("row", "col")


# The window rules, written once: a preset file's data section (``DataConfig.validate``), the options'
# checks (``r2cli.app.options``), the run's window resolution (``r2cli.app.model_run``) and
# ``r2cli.inference.windows.window_sizes`` all read them.
MAX_WINDOW_CLIPS = 1024  # the official point table stops at 1,024 clips: longer windows are cut to it
MIN_WINDOW_CLIPS = 8  # the coarsest level of R2-Tuning's pyramid vanishes below 8 clips

# A broken rule as the options' checks return it: the fields it names, and the message with ``{0}``,
# ``{1}`` ... where the caller puts their names (``--stride`` on the command line, ``[search].stride``
# in a job file).
Problem = tuple[tuple[str, ...], str]


def stride_problem(window_s: float, stride_s: float, *, window_field: str = "window") -> Problem | None:
    """The rule ``stride <= window`` (a longer stride skips clips), or None when it holds.

    ``window_field`` names where the window came from when it is not the ``window`` option
    (``"the preset's window"`` is shown as is: it is no field).
    """
    if stride_s > window_s:
        if window_field == "window":
            return ("stride", "window"), f"{{0}} ({stride_s:g} s) must not exceed {{1}} ({window_s:g} s)"
        return ("stride",), f"{{0}} ({stride_s:g} s) must not exceed {window_field} ({window_s:g} s)"
    return None


@dataclass(frozen=True)
class LossConfig:
    """Loss terms of ``BundleLoss`` and their weights (a weight of ``None`` disables a term)."""

    cls_type: str = "focal"  # "focal" (grounding) or "dynamic_bce" (soft saliency targets, TVSum/YouTube)
    cls_weight: float = 1.0  # weight of the classification loss
    focal_gamma: float = 2.0  # focusing exponent of the focal loss
    focal_alpha: float = -1.0  # focal alpha; negative means no alpha weighting (the official code)
    reg_weight: float | None = 0.2  # weight of the L1 boundary regression loss; None: no regression loss
    sal_weight: float | None = 0.1  # weight of the sampled-NCE saliency loss; None: disabled
    sal_directions: tuple[str, ...] = ("row", "col")  # directions of the sampled-NCE loss
    sal_temperature: float = 0.07  # fixed temperature of the saliency loss (logit scale 1/0.07)
    video_cal_weight: float | None = 0.1  # weight of the video-level InfoNCE calibration loss
    layer_cal_weight: float | None = 0.1  # weight of the layer-level InfoNCE calibration loss
    cal_temperature: float = 0.07  # temperature of both calibration losses
    sample_radius: float = 1.5  # centre-sampling radius, in multiples of the level stride

    def validate(self) -> None:
        """Raise UsageError when a field breaks its rule."""
        if self.cls_type not in CLS_LOSS_TYPES:
            raise UsageError(f"loss.cls_type must be one of {CLS_LOSS_TYPES}, got {self.cls_type!r}")
        for name in ("cls_weight", "reg_weight", "sal_weight", "video_cal_weight", "layer_cal_weight"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise UsageError(f"loss.{name} must be a number >= 0 or null, got {value!r}")
        if not self.sal_directions or any(d not in SALIENCY_DIRECTIONS for d in self.sal_directions):
            raise UsageError(f"loss.sal_directions must be a non-empty subset of {SALIENCY_DIRECTIONS}, "
                             f"got {self.sal_directions!r}")
        if self.sal_temperature <= 0 or self.cal_temperature <= 0:
            raise UsageError("loss temperatures must be > 0")
        if self.sample_radius < 0:
            raise UsageError(f"loss.sample_radius must be >= 0, got {self.sample_radius}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the R2-Tuning head. CLIP widths are inputs, not constants."""

    video_width: int = 768  # width Cv of the CLIP visual residual stream (768 for ViT-B/32)
    query_width: int = 512  # width Cq of the CLIP text residual stream (512 for ViT-B/32)
    num_tokens: int = 50  # visual tokens per frame P (CLS + patches; 50 for ViT-B/32)
    clip_arch: str = "ViT-B/32"  # name of the CLIP architecture the widths came from (informational)
    dims: int = 256  # model width D of every head layer
    k: int = 4  # number of CLIP layers walked by the R2 block (the last k residual outputs)
    dropout: float = 0.5  # dropout inside the video/query maps (training only)
    use_tef: bool = True  # append the 2 temporal-endpoint channels (t/T, (t+1)/T) to every token
    heads: int = 8  # attention heads of the temporal decoder layer
    ffn_ratio: int = 4  # hidden width of the decoder FFN as a multiple of dims
    droppath: float = 0.1  # stochastic-depth probability on the decoder residuals (training only)
    strides: tuple[int, ...] = (1, 2, 4, 8)  # pyramid strides, powers of two starting at 1
    head_kernel: int = 3  # kernel size of the class/coord conv heads
    coord_head: bool = True  # whether a boundary regression head exists (False for TVSum/YouTube)
    merge_cls_sal: bool = True  # multiply the merged class scores by the clip/query cosine
    max_num_moment: int = MAX_MOMENTS  # boundaries kept per pair after sorting by score
    buffer_size: int = 1024  # clip count the official point table covers (r2cli generates points on the fly)
    loss: LossConfig = field(default_factory=LossConfig)  # loss terms and weights

    def validate(self) -> None:
        """Raise UsageError when a field breaks its rule."""
        for name in ("video_width", "query_width", "num_tokens", "dims", "k", "heads", "ffn_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"model.{name} must be an integer >= 1, got {value!r}")
        if self.dims % self.heads:
            raise UsageError(f"model.dims ({self.dims}) must be divisible by model.heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise UsageError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.droppath < 1.0:
            raise UsageError(f"model.droppath must be in [0, 1), got {self.droppath}")
        if not self.strides or self.strides[0] != 1:
            raise UsageError(f"model.strides must start with 1, got {list(self.strides)}")
        for a, b in zip(self.strides, self.strides[1:]):
            if b <= a or b & (b - 1):
                raise UsageError(f"model.strides must be increasing powers of two, got {list(self.strides)}")
        if self.head_kernel < 1 or self.head_kernel % 2 == 0:
            raise UsageError(f"model.head_kernel must be an odd integer >= 1, got {self.head_kernel}")
        if self.max_num_moment < 1:
            raise UsageError(f"model.max_num_moment must be >= 1, got {self.max_num_moment}")
        if not self.coord_head and self.loss.reg_weight is not None:
            raise UsageError("loss.reg_weight must be null when model.coord_head is false")
        self.loss.validate()

    def with_clip(self, video_width: int, query_width: int, num_tokens: int, clip_arch: str | None = None) -> "ModelConfig":
        """Return a copy whose input widths fit another CLIP (ViT-B/16, ViT-L/14, a tiny test model)."""
        return replace(self, video_width=int(video_width), query_width=int(query_width), num_tokens=int(num_tokens),
                       clip_arch=clip_arch or "custom")

    @property
    def video_in_width(self) -> int:
        """Input width of the video map: Cv plus the 2 TEF channels when enabled."""
        return self.video_width + (2 if self.use_tef else 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict."""
        data = asdict(self)
        data["strides"] = list(self.strides)
        data["loss"]["sal_directions"] = list(self.loss.sal_directions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "model config") -> "ModelConfig":
        """Build from a dict; unknown keys raise InputError naming ``where``."""
        data = dict(data)
        loss = _build(LossConfig, data.pop("loss", {}) or {}, f"{where}.loss")
        config = _build(cls, data, where, loss=loss)
        try:
            config.validate()
        except UsageError as exc:
            raise InputError(f"{where}: {exc}") from None
        return config


@dataclass(frozen=True)
class NmsConfig:
    """Non-maximum suppression applied by the evaluation post-processing."""

    type: str = "normal"  # "normal" (zero the score of overlaps), "linear" (x(1-IoU)) or "gaussian"
    threshold: float = NMS_THRESHOLD  # IoU at or above which "normal" NMS zeroes a score
    sigma: float = NMS_SIGMA  # width of the "gaussian" decay exp(-IoU^2/sigma)

    def validate(self) -> None:
        if self.type not in NMS_TYPES:
            raise UsageError(f"nms.type must be one of {NMS_TYPES}, got {self.type!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"nms.threshold must be in [0, 1], got {self.threshold}")
        if self.sigma <= 0:
            raise UsageError(f"nms.sigma must be > 0, got {self.sigma}")


@dataclass(frozen=True)
class DataConfig:
    """How clips, scores and windows are produced and post-processed for a dataset."""

    fps: float | None = DEFAULT_FPS  # frames (clips) per second; None: per-video rate (YouTube Highlights)
    unit: float | None = ROUND_UNIT_S  # rounding unit of predicted windows in seconds; None: no rounding
    nms: NmsConfig | None = field(default_factory=NmsConfig)  # post-processing NMS; None: no NMS
    # inference on archives: videos up to window_s are grounded whole (the length the head was
    # trained and evaluated on, at most the official 1,024 clips); longer ones in windows of
    # window_s every stride_s. None: not set by the preset (preset_windows below resolves it).
    window_s: float | None = None
    stride_s: float | None = None
    max_saliency: float = 12.0  # divisor turning summed annotator scores into [0, 1] saliency
    min_video_len: float = 5.0  # training videos shorter than this (seconds) are skipped
    query_source: str = "query"  # annotation field holding the text query ("query", "title", "info[5]")

    def validate(self) -> None:
        if self.fps is not None and not self.fps > 0:
            raise UsageError(f"data.fps must be > 0 or null, got {self.fps}")
        if self.unit is not None and not self.unit > 0:
            raise UsageError(f"data.unit must be > 0 or null, got {self.unit}")
        if self.nms is not None:
            self.nms.validate()
        for name in ("window_s", "stride_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(f"data.{name} must be > 0 or null, got {value}")
        if (self.window_s is None) != (self.stride_s is None):
            raise UsageError("data.window_s and data.stride_s must be given together")
        if self.window_s is not None:
            problem = stride_problem(self.window_s, self.stride_s)
            if problem is not None:
                names, rule = problem
                raise UsageError(rule.format(*[f"data.{name}_s" for name in names]))
        if self.window_s is not None and self.fps is not None and self.window_s * self.fps > MAX_WINDOW_CLIPS:
            raise UsageError(f"data.window_s ({self.window_s:g} s) exceeds the official limit of "
                             f"{MAX_WINDOW_CLIPS:,} clips at {self.fps:g} fps")
        if self.max_saliency <= 0:
            raise UsageError(f"data.max_saliency must be > 0, got {self.max_saliency}")


@dataclass(frozen=True)
class TrainConfig:
    """The official training recipe (spec section 4)."""

    optimizer: str = "adamw"  # optimiser (AdamW, betas 0.9/0.999, eps 1e-8)
    lr: float = 5e-4  # base learning rate
    weight_decay: float = 1e-4  # AdamW weight decay on every parameter
    epochs: int = 30  # number of epochs
    batch_size: int = 128  # training batch size
    val_batch_size: int = 1  # validation batch size
    repeat: int = 1  # passes over the training set per epoch (RepeatDataset)
    milestones: tuple[int, ...] = (20,)  # epochs (0-based count) at which lr is multiplied by gamma
    gamma: float = 0.1  # step-decay factor
    warmup_iters: int = 500  # linear warm-up length in iterations
    warmup_ratio: float = 0.001  # warm-up starts at lr * warmup_ratio
    grad_clip: float | None = 35.0  # max L2 norm of all gradients; None: no clipping
    amp: str | None = "fp16"  # autocast precision of the official launcher; None: fp32
    selection_metric: str = "MR-full-mAP"  # metric that picks the best epoch (higher is better)

    def validate(self) -> None:
        if self.optimizer != "adamw":
            raise UsageError(f"train.optimizer must be 'adamw', got {self.optimizer!r}")
        for name in ("lr", "gamma"):
            if not getattr(self, name) > 0:
                raise UsageError(f"train.{name} must be > 0, got {getattr(self, name)}")
        for name in ("epochs", "batch_size", "val_batch_size", "repeat"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"train.{name} must be an integer >= 1, got {value!r}")
        if self.weight_decay < 0 or self.warmup_iters < 0:
            raise UsageError("train.weight_decay and train.warmup_iters must be >= 0")
        if list(self.milestones) != sorted(self.milestones):
            raise UsageError(f"train.milestones must be increasing, got {list(self.milestones)}")


@dataclass(frozen=True)
class Preset:
    """A named dataset preset: head architecture, data conventions and training recipe."""

    name: str  # file stem under models/presets
    description: str  # one line for people
    dataset: str  # dataset family ("qvhighlights", "charades", "tvsum", ...)
    domain: str | None  # domain/category for TVSum and YouTube Highlights, else None
    official_config: str  # the official config file this preset mirrors
    model: ModelConfig  # head architecture (ViT-B/32 widths; see ModelConfig.with_clip)
    data: DataConfig  # fps, rounding unit, NMS, saliency scale
    train: TrainConfig  # training recipe

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (the preset file format)."""
        data = asdict(self)
        data["model"] = self.model.to_dict()
        data["train"]["milestones"] = list(self.train.milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "preset") -> "Preset":
        """Build and validate; raise InputError naming ``where`` on unknown or missing keys."""
        data = dict(data)
        model = ModelConfig.from_dict(data.pop("model", {}) or {}, where=f"{where}: model")
        raw_data = dict(data.pop("data", {}) or {})
        nms_raw = raw_data.pop("nms", NmsConfig())
        nms = None if nms_raw is None else (nms_raw if isinstance(nms_raw, NmsConfig)
                                            else _build(NmsConfig, nms_raw, f"{where}: data.nms"))
        data_cfg = _build(DataConfig, raw_data, f"{where}: data", nms=nms)
        train = _build(TrainConfig, data.pop("train", {}) or {}, f"{where}: train")
        preset = _build(cls, data, where, model=model, data=data_cfg, train=train)
        try:
            data_cfg.validate()
            train.validate()
        except UsageError as exc:
            raise InputError(f"{where}: {exc}") from None
        return preset


def _build(cls, values: dict[str, Any], where: str, **extra: Any):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    kwargs.update(extra)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}") from None


def presets_dir() -> Path:
    """The folder holding the preset JSON files (``models/presets``)."""
    from r2cli.paths import models_dir

    return models_dir() / "presets"


def list_presets() -> list[str]:
    """Names (file stems) of every preset, sorted.

    Raises:
        R2Error: when the models/ data folder cannot be found.
    """
    folder = presets_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json"))


def load_preset(name: str) -> Preset:
    """Load the preset ``name`` (a file stem under models/presets, or a path to a preset JSON file).

    Raises:
        UsageError: when no preset of that name exists (the message lists the known names).
        InputError: when the file is not valid JSON or breaks a rule of the preset format.
    """
    candidate = Path(name)
    if candidate.suffix == ".json" and candidate.is_file():
        path = candidate
    else:
        path = presets_dir() / f"{name}.json"
        if not path.is_file():
            raise UsageError(f"unknown preset {name!r}; known presets: {', '.join(list_presets()) or '(none)'}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a preset must be a JSON object")
    preset = Preset.from_dict(data, where=str(path))
    if candidate.suffix != ".json" and preset.name != name:
        raise InputError(f"{path}: field 'name' is {preset.name!r} but the file stem is {name!r}")
    return preset


# Windows of a preset that names none and has no built-in namesake (a checkpoint saved before presets
# had windows): the length QVHighlights heads were trained on, every half window.
FALLBACK_WINDOW_S = 150.0
FALLBACK_STRIDE_S = 75.0


def choose_preset(asked: "str | Preset | None", *recorded: "str | Preset | None",
                  default: bool = False) -> Preset | None:
    """The preset that applies to a checkpoint; the one place that decides it (#23).

    The preset asked for (``--preset``, a job's ``preset``) wins; else the first one the checkpoint
    records, in the order the caller gives them (its registry entry, its sidecar, its official file
    name); else, with ``default``, the preset of the registry's default checkpoint (a bare official
    file is taken for that one); else None. A name (or a preset JSON path) is loaded.

    Raises:
        UsageError: an unknown preset name.
        InputError: a preset file breaks the preset format, or the manifest cannot be read.
    """
    for candidate in (asked, *recorded):
        if candidate is not None:
            return load_preset(candidate) if isinstance(candidate, str) else candidate
    if default:
        return load_preset(default_preset_name())
    return None


def default_preset_name() -> str:
    """The preset of the registry's default checkpoint (what a bare official file is taken for)."""
    from r2cli.model._manifest import get_checkpoint, load_manifest

    return get_checkpoint(load_manifest().default_checkpoint).preset


def preset_windows(preset: Preset) -> tuple[float, float, str]:
    """``(window_s, stride_s, source)`` of a preset: its own; else its built-in namesake's; else the fallback.

    ``source`` says where they come from: ``"preset <name>"`` or ``"fallback"``. A preset saved with a
    fine-tuned checkpoint before presets had windows takes them from the built-in preset of its name.
    """
    window, stride = preset.data.window_s, preset.data.stride_s
    if window is None:
        try:
            builtin = load_preset(preset.name)
            window, stride = builtin.data.window_s, builtin.data.stride_s
        except (UsageError, InputError):
            window = None
    if window is None:
        return FALLBACK_WINDOW_S, FALLBACK_STRIDE_S, "fallback"
    return float(window), float(stride), f"preset {preset.name}"


def expected_parameter_count(config: ModelConfig) -> int:
    """Closed-form count of learnable parameters of ``build_model(config)`` (used as a cross-check)."""
    d, cv, cq = config.dims, config.video_in_width, config.query_width
    ln = lambda n: 2 * n  # noqa: E731
    lin = lambda i, o, bias=True: i * o + (o if bias else 0)  # noqa: E731
    total = len(config.strides)  # coef
    total += config.k + (config.k - 1 if config.k > 1 else 0)  # scale, gate
    total += ln(cv) + lin(cv, d) + ln(d) + lin(d, d)  # video_map
    total += ln(cq) + lin(cq, d) + ln(d) + lin(d, d)  # query_map
    total += 2 * lin(d, d)  # v_map, q_map
    total += 8 * lin(d, d) + 3 * ln(d)  # two attentions + three norms
    total += lin(d, d * config.ffn_ratio) + lin(d * config.ffn_ratio, d)  # ffn
    for stride in config.strides[1:]:
        total += int(math.log2(stride)) * (d * d * 2 + d + ln(d))
    total += d  # pooling
    kernel = config.head_kernel
    total += d * d * kernel + d + d * kernel + 1  # class head
    if config.coord_head:
        total += d * d * kernel + d + 2 * d * kernel + 2
    return total
