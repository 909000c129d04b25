"""Fine-tuning of the R2-Tuning head with the official recipes (``r2cli finetune``).

Importing this package is cheap; torch-backed names load on first use.

- ``r2cli.train.schedule``: the warm-up + step learning-rate schedule (pure arithmetic).
- ``r2cli.train.data``: training items, the official feature layout, labels, data order, the official collate.
- ``r2cli.train.sources``: features from the r2cli catalog and feature store, cached query features.
- ``r2cli.train.loop``: seeding, the AMP training step, validation, resumable state.
- ``r2cli.train.finetune``: ``finetune(workspace, FinetuneOptions(...))`` -> ``FinetuneResult`` (the options
  class is the use case's: ``r2cli.app.finetune.FinetuneOptions``).
"""

from __future__ import annotations

from typing import Any

from r2cli.train.schedule import StepSchedule

_LAZY = {
    "FinetuneResult": "r2cli.train.finetune",
    "finetune": "r2cli.train.finetune",
    "resolve_preset": "r2cli.train.finetune",
    "read_annotations": "r2cli.train.finetune",
    "TrainItem": "r2cli.train.data",
    "PairDataset": "r2cli.train.data",
    "OfficialFeatureDir": "r2cli.train.data",
    "MappedFeatures": "r2cli.train.data",
    "Batch": "r2cli.train.data",
    "collate": "r2cli.train.data",
    "epoch_order": "r2cli.train.data",
    "batches": "r2cli.train.data",
    "QueryFeatureCache": "r2cli.train.sources",
    "store_features": "r2cli.train.sources",
    "train_step": "r2cli.train.loop",
    "validate": "r2cli.train.loop",
    "seed_everything": "r2cli.train.loop",
}

__all__ = ["StepSchedule", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'r2cli.train' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
