"""benchmarks/archive_index.py's drawn-archive steps stay runnable (#19): a 40-video archive drawn on the fly,
indexed by the real update_index with the 100,000-hour codes, queried, grown, and cleaned up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("faiss")

REPO = Path(__file__).resolve().parents[2]


def _step(*args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "archive_index.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_drawn_archive_build_query_add_and_clean(tmp_path):
    store = str(tmp_path / "drawn")
    built = _step("build-virtual", "--hours", "40", "--codes", "PQ64x4fs", "--store", store)
    assert built["report"]["factory"].endswith(",PQ64x4fs") and built["report"]["vectors"] == 40 * 1800
    assert {p.name for p in Path(built["report"]["path"]).rglob("*") if p.is_file()} >= {"index.faiss", "manifest.json"}
    queried = _step("query-virtual", "--hours", "40", "--query-count", "10", "--store", store)
    (run,) = queried["runs"]
    assert run["stage"]["path"] == "index" and run["stage"]["clips_per_query"] == 100 * 40
    assert run["planted_found_index"] >= 9  # of 10 planted moments, nprobe = an eighth of the lists
    added = _step("add-virtual", "--hours", "40", "--add-hours", "5", "--codes", "PQ64x4fs", "--store", store)
    assert (added["report"]["action"], added["report"]["added_videos"], added["report"]["retrained"]) == ("updated", 5, False)
    assert _step("clean", "--store", store)["deleted_bytes"] > 0 and not Path(store).exists()
