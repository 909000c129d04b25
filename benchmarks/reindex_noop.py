"""Wall time of `r2cli index` on an unchanged archive (#22.14): features on vs --no-features.

Indexes sample_media/ once with the tests' tiny CLIP (tests/tiny_clip.py), then times fresh
`python -m r2cli index` processes on the unchanged archive, REPEATS times each. The no-op re-index
with features should cost what --no-features costs (it no longer imports torch or loads CLIP).

    python benchmarks/reindex_noop.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "r2cli", *args], check=True, capture_output=True, cwd=REPO)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_clip import write_tiny_openai_clip

    with tempfile.TemporaryDirectory() as scratch:
        clip = write_tiny_openai_clip(Path(scratch) / "tiny.pt")
        base = ["index", str(REPO / "sample_media"), "--workspace", str(Path(scratch) / "ws")]
        features = [*base, "--clip-weights", str(clip), "--device", "cpu"]
        first = timed(features)
        with_features = [timed(features) for _ in range(repeats)]
        catalog_only = [timed([*base, "--no-features"]) for _ in range(repeats)]
    print(f"first index (extracts): {first:.2f} s")
    print(f"re-index, features on:  median {statistics.median(with_features):.2f} s  {with_features}")
    print(f"re-index, --no-features: median {statistics.median(catalog_only):.2f} s  {catalog_only}")
    print(f"ratio: {statistics.median(with_features) / statistics.median(catalog_only):.2f}")


if __name__ == "__main__":
    main()
