"""Finding and reading parity files: the official-format dicts described in the parity README.

A parity folder holds ``r2_head_*.pt`` and ``clip_tower_*.pt`` files (the shared, full set) and/or the
same files compressed with xz (``*.pt.xz``, the compact golden set committed in this folder). Both load
into the same dict with :func:`load_parity`, so one test reads either source with the same code.
"""

from __future__ import annotations

import io
import lzma
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent
KINDS = ("r2_head", "clip_tower")


def parity_files(folder: Path, kind: str) -> list[Path]:
    """Every ``{kind}_*.pt`` and ``{kind}_*.pt.xz`` file in ``folder``, sorted by name."""
    if kind not in KINDS:
        raise ValueError(f"unknown parity file kind {kind!r} (known: {', '.join(KINDS)})")
    folder = Path(folder)
    return sorted({*folder.glob(f"{kind}_*.pt"), *folder.glob(f"{kind}_*.pt.xz")})


def load_parity(path: Path) -> dict:
    """One parity file as a dict of tensors and plain containers (``weights_only``: no code runs)."""
    import torch

    path = Path(path)
    if path.name.endswith(".xz"):
        with lzma.open(path, "rb") as handle:
            return torch.load(io.BytesIO(handle.read()), map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=True)


def head_weights_complete(data: dict) -> bool:
    """True when a head file holds every weight of its head (the forward can run from its inputs).

    A compact golden head file keeps only the few weights that the post-head stages read, and lists
    every key with its shape under ``state_dict_shapes``.
    """
    shapes = data.get("state_dict_shapes")
    return shapes is None or list(shapes) == list(data["state_dict"])
