"""The models of an inference run (CLIP text tower and R2-Tuning head) and the preset's defaults.

``check_weights`` resolves every weights file a run needs before any work and reports all
missing ones in one error; ``load_models`` loads them; ``preset_defaults`` is the one place where
what a run takes from the checkpoint's preset (fps, rounding unit, NMS, whole-video length and
windows) is decided, for the command line and job files alike.
"""

from __future__ import annotations

from collections.abc import Iterable

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r2cli.errors import InputError, MissingWeightsError, UsageError
from r2cli.progress import NULL_REPORTER, Reporter


@dataclass(frozen=True)
class PresetDefaults:
    """What a run takes from its preset, after the options that override it."""

    preset: str  # preset name
    fps: float  # clips per second of the features searched
    unit: float | None  # rounding unit of moments in seconds (None: none)
    nms_type: str | None  # "normal" | "linear" | "gaussian" | None
    nms_threshold: float
    nms_sigma: float
    window_s: float  # videos up to this are grounded whole; longer ones in windows this long
    stride_s: float  # distance between window starts
    window_source: str  # where window_s/stride_s come from: "preset <name>", "options" or "fallback"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def preset_defaults(preset: Any, *, window_s: float | None = None, stride_s: float | None = None) -> PresetDefaults:
    """The run settings a preset decides, with ``window_s``/``stride_s`` overriding its windows.

    Only ``window_s`` given: the stride is half of it. Only ``stride_s``: the preset's window.

    Raises:
        UsageError: the stride exceeds the window.
    """
    from r2cli.model.config import DEFAULT_FPS, NMS_SIGMA, NMS_THRESHOLD, preset_windows

    data = preset.data
    # a preset with a per-video rate (YouTube Highlights, fps null) is run on the index's default features
    fps = float(data.fps) if data.fps else DEFAULT_FPS
    preset_window, preset_stride, source = preset_windows(preset)
    if window_s is not None or stride_s is not None:
        source = "options"
    window = float(window_s) if window_s is not None else float(preset_window)
    if stride_s is not None:
        stride = float(stride_s)
    elif window_s is not None:
        stride = window / 2.0
    else:
        stride = float(preset_stride)
    if stride > window:
        raise UsageError(f"--stride ({stride:g} s) must not exceed --window ({window:g} s)")
    nms = data.nms
    return PresetDefaults(
        preset=preset.name,
        fps=fps,
        unit=data.unit,
        nms_type=nms.type if nms is not None else None,
        nms_threshold=nms.threshold if nms is not None else NMS_THRESHOLD,
        nms_sigma=nms.sigma if nms is not None else NMS_SIGMA,
        window_s=window,
        stride_s=stride,
        window_source=source,
    )


def check_weights(clip_weights: str | None, checkpoint: str | None) -> None:
    """Resolve the CLIP weights and the checkpoint before any work; report every missing file at once.

    Raises:
        MissingWeightsError: one or both are missing (one message naming each, with how to provide it).
        UsageError: an unknown registry name.
    """
    check_all_weights([("clip", clip_weights), ("checkpoint", checkpoint)])


def check_all_weights(needed: "Iterable[tuple[str, str | None]]") -> None:
    """Resolve every ``(kind, spec)`` (kind ``"clip"`` or ``"checkpoint"``; spec ``None`` is the
    default) once; report every missing file in one message (a job's steps, #22.6).

    Raises:
        MissingWeightsError: some are missing (one message naming each, with how to provide it).
        UsageError: an unknown registry name.
    """
    from r2cli.model import registry

    resolvers = {"clip": registry.resolve_clip, "checkpoint": registry.resolve_checkpoint}
    problems: list[str] = []
    seen: set[tuple[str, str | None]] = set()
    for kind, spec in needed:
        spec = None if spec in (None, "") else str(spec)
        if (kind, spec) in seen:
            continue
        seen.add((kind, spec))
        try:
            resolvers[kind](spec)
        except MissingWeightsError as exc:
            if str(exc) not in problems:  # a name and the default may be the same file
                problems.append(str(exc))
    if problems:
        raise MissingWeightsError("; ".join(problems) if len(problems) == 1 else
                                  f"{len(problems)} weights files are missing: " + "; ".join(problems))


@dataclass
class Models:
    """The loaded models of a run."""

    tower: Any  # r2cli.features.clip.ClipTower (its text side is used)
    model: Any  # the R2-Tuning head, in eval mode on ``device``
    preset: Any  # r2cli.model.config.Preset of the checkpoint (or the one asked for)
    info: dict[str, Any]  # checkpoint, checkpoint_id, preset, CLIP weights, widths, device


def load_models(*, clip_weights: str | None, checkpoint: str | None, preset: str | None, device: str,
                reporter: Reporter = NULL_REPORTER) -> Models:
    """Load the CLIP tower (text side) and the head.

    The preset is the checkpoint's own (a registry name or a saved head records it); ``preset``
    overrides it; a bare official file without either is taken as the registry default's preset.

    Raises:
        MissingWeightsError: weights are neither local nor downloadable (one line, from the registry).
        CheckpointError: the checkpoint does not fit.
        UsageError: unknown preset or device.
        InputError: the checkpoint's text width differs from the CLIP weights'.
    """
    from r2cli.features.clip import load_clip, resolve_device
    from r2cli.model import load_checkpoint
    from r2cli.model.config import choose_preset

    resolved_device = resolve_device(device)
    tower = load_clip(clip_weights, device=resolved_device, reporter=reporter)
    loaded = load_checkpoint(checkpoint, preset=preset, num_tokens=tower.num_tokens, video_width=tower.video_width)
    chosen = choose_preset(loaded.preset, default=True)  # load_checkpoint already chose ``preset`` when given
    if loaded.clip and loaded.clip != tower.weights_id:
        reporter.warn(
            f"the checkpoint was trained with CLIP {loaded.clip} but the text tower is {tower.weights_id}; "
            "results will be poor unless the features match the checkpoint"
        )
    model = loaded.model.to(resolved_device).eval()
    config = loaded.config
    if config.query_width != tower.text_width:
        raise InputError(
            f"the checkpoint expects CLIP text width {config.query_width}, the CLIP weights give {tower.text_width}; "
            "pass the --clip-weights the checkpoint was trained with"
        )
    info = {
        "checkpoint": loaded.source,
        "checkpoint_id": checkpoint_id(loaded.source),
        "preset": chosen.name,
        "clip_weights": tower.weights_id,
        "clip_model": tower.model_name,
        "dims": config.dims,
        "k": config.k,
        "video_width": config.video_width,
        "query_width": config.query_width,
        "num_tokens": config.num_tokens,
        "device": resolved_device,
    }
    return Models(tower=tower, model=model, preset=chosen, info=info)


def _default_preset_name() -> str:
    """The preset of the registry's default checkpoint (kept for callers; r2cli.model.config decides it)."""
    from r2cli.model.config import default_preset_name

    return default_preset_name()


def checkpoint_id(source: str) -> str:
    """Registry file name or ``<file name> sha256:<16 hex>`` of the checkpoint file."""
    path = Path(source.rsplit(" (", 1)[0])
    if not path.is_file():
        return source
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{path.name} sha256:{digest.hexdigest()[:16]}"
