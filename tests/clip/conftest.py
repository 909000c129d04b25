"""Fixtures for the CLIP tower tests: parity files loaded once per session through the user's path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class ParityCase:
    """One clip_tower_*.pt file, its data and a tower loaded from its state dict via a .pt file."""

    name: str
    data: dict
    tower: object
    weights_path: Path


@pytest.fixture(scope="session")
def clip_parity_cases(parity_dir, tmp_path_factory) -> list[ParityCase]:
    """Every clip_tower_*.pt(.xz) in the parity folder, its state dict saved alone and loaded with load_clip(path)."""
    import torch
    from golden.parity_files import GOLDEN_DIR, load_parity, parity_files

    from r2cli.features.clip import load_clip

    files = parity_files(parity_dir, "clip_tower")
    if not files:
        if parity_dir == GOLDEN_DIR:
            pytest.fail(f"the golden set in {parity_dir} has no clip_tower file (run tests/golden/make_golden.py)")
        pytest.skip(f"no clip_tower_*.pt files in {parity_dir}")
    cases = []
    folder = tmp_path_factory.mktemp("parity-weights")
    for file in files:
        data = load_parity(file)
        weights = folder / f"{file.name.split('.')[0]}-state-dict.pt"
        torch.save(dict(data["state_dict"]), weights)  # what a user passes with --clip-weights
        cases.append(ParityCase(file.name, data, load_clip(weights, device="cpu"), weights))
    return cases
