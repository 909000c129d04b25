"""The feature file's format constants and what a commit returns, shared by the store (which reads and
names the files) and the writer (which writes them); the format itself is described in
``r2cli.features.store``. A module of their own, so that the writer needs nothing of the store (#23)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT_NAME = "r2cli.features"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
TEMP_SUFFIX = ".tmp"
CHECKSUM_ALGO = "blake2b-128"  # metadata "checksum": "<algo>:<hex>" of every byte after the header
CHECKSUM_BYTES = 16
LAYER_SCALES = "layer_scales"  # the tensor of int8 files' scales, float16 [T, k, Cv]


@dataclass(frozen=True)
class StoredFeatureSet:
    """What a commit wrote: enough to fill a catalog ``FeatureSet`` row."""

    fingerprint: str
    settings_key: str
    settings: dict[str, Any]
    relpath: str  # relative to the store root, "/"-separated
    num_clips: int
    shape: dict[str, list[int]]  # {"layers": [T, k, P, Cv], "embed": [T, D], "timestamps": [T]}
    dtype: str  # storage dtype of layers/embed
    bytes: int  # file size


def temp_name(final: Path) -> str:
    """The hidden temporary name a writer uses next to ``final``: it names this host and process, so
    ``FeatureStore.remove_stale_temporaries`` can tell whether its writer is gone."""
    return f".{final.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
