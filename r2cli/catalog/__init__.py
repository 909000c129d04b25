"""The catalog: what is in the archive (videos), what was computed (feature sets), what was run.

Public names (imported lazily, so ``import r2cli.catalog`` stays cheap):
``Catalog``, ``catalog_exists``, ``Video``, ``FeatureSet``, ``Run``, ``VideoRecord``,
``scan_archive``, ``ScanReport``, ``fingerprint_file``, ``LATEST_VERSION``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Catalog": "r2cli.catalog.db",
    "catalog_exists": "r2cli.catalog.db",
    "Video": "r2cli.catalog.schema",
    "FeatureSet": "r2cli.catalog.schema",
    "Run": "r2cli.catalog.schema",
    "VideoRecord": "r2cli.catalog.schema",
    "scan_archive": "r2cli.catalog.scan",
    "ScanReport": "r2cli.catalog.scan",
    "fingerprint_file": "r2cli.catalog.fingerprint",
    "LATEST_VERSION": "r2cli.catalog.migrations",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'r2cli.catalog' has no attribute {name!r}")
