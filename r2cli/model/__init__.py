"""R2-Tuning head: configs and presets, model, losses, post-processing, checkpoints.

Importing this package is cheap: torch-backed names load on first use, so CLI modules and
preset listing never pay for torch.
"""

from __future__ import annotations

from typing import Any

from r2cli.model.config import (
    DataConfig,
    LossConfig,
    ModelConfig,
    NmsConfig,
    Preset,
    TrainConfig,
    list_presets,
    load_preset,
)

_LAZY = {
    "R2Tuning": "r2cli.model.r2tuning",
    "VideoSide": "r2cli.model.r2tuning",
    "GroundingOutput": "r2cli.model.r2tuning",
    "PairPrediction": "r2cli.model.r2tuning",
    "build_model": "r2cli.model.r2tuning",
    "masks_from_padding": "r2cli.model.r2tuning",
    "GroundingTargets": "r2cli.model.losses",
    "LossOutput": "r2cli.model.losses",
    "compute_losses": "r2cli.model.losses",
    "postprocess_boundary": "r2cli.model.postprocess",
    "LoadedModel": "r2cli.model.checkpoint",
    "load_checkpoint": "r2cli.model.checkpoint",
    "save_checkpoint": "r2cli.model.checkpoint",
    "infer_model_config": "r2cli.model.checkpoint",
}

__all__ = [
    "DataConfig", "LossConfig", "ModelConfig", "NmsConfig", "Preset", "TrainConfig", "list_presets", "load_preset",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'r2cli.model' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
