"""Cost of the write-time NaN/inf check of feature files (#18.4), as a ratio to the write it guards.

Appends the chunks a ViT-B/32 index writes (k=4 layers, 50 tokens, 768 channels, fp16; 32 clips per
chunk) through ``FeatureWriter`` with the check and with it replaced by a no-op, into a temporary
folder, and times the check alone in memory. Reports medians and the ratio check / append (the two
append timings include disk writes and are noisy on a shared machine; the check alone is not). The CLIP forward
pass that produces a chunk (tens of milliseconds on a GPU, seconds on a CPU) is not included, so
the ratio is an upper bound of the check's share of an index run.

    PYTHONPATH=$PWD python benchmarks/finite_check.py [--chunks 200]

Results are appended to benchmarks/RESULTS-finite-check.md with the machine and date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import r2cli.features.writer as writer_module
from r2cli.features.store import FeatureSettings, FeatureStore


def _time_chunks(root: Path, chunks: int, layers, embed, stamps) -> list[float]:
    store = FeatureStore(root)
    settings = FeatureSettings(clip_model="ViT-B-32", weights_id="ViT-B-32/openai", fps=0.5, k=4)
    times = []
    with writer_module.FeatureWriter(store, "f" * 32, settings, duration=None, extra={}) as writer:
        for _ in range(chunks):
            started = time.perf_counter()
            writer.append(layers, embed, stamps)
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    layers = rng.standard_normal((32, 4, 50, 768)).astype(np.float16)  # [n, k, P, Cv]
    embed = rng.standard_normal((32, 512)).astype(np.float16)  # [n, D]
    stamps = np.arange(32, dtype=np.float64) * 2.0  # [n]
    checked = writer_module.count_non_finite
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(2):  # alternate, so disk cache warm-up does not favour one side
            for name, check in (("without", lambda values: 0), ("with", checked)):
                writer_module.count_non_finite = check
                try:
                    results.setdefault(name, []).extend(
                        _time_chunks(Path(folder) / f"{name}{round_}", args.chunks, layers, embed, stamps))
                finally:
                    writer_module.count_non_finite = checked
    without = statistics.median(results["without"])
    with_check = statistics.median(results["with"])
    check_times = []
    for _ in range(args.chunks):  # the check alone, in memory: the part the writer adds
        started = time.perf_counter()
        for values in (layers, embed, stamps):
            checked(values)
        check_times.append(time.perf_counter() - started)
    check = statistics.median(check_times)
    plain_times = []
    for _ in range(args.chunks):  # the obvious alternative, for the comment in writer.count_non_finite
        started = time.perf_counter()
        for values in (layers, embed, stamps):
            np.isfinite(values).all()
        plain_times.append(time.perf_counter() - started)
    plain = statistics.median(plain_times)
    line = (f"| {datetime.date.today().isoformat()} | {_cpu_name()}, {os.cpu_count()} cores (shared) "
            f"| {args.chunks * 2} chunks of 32x4x50x768 fp16 | {without * 1e3:.2f} ms | {with_check * 1e3:.2f} ms "
            f"| {check * 1e3:.2f} ms | {plain * 1e3:.2f} ms | {check / without:.3f} |")
    print(line)
    results_file = Path(__file__).with_name("RESULTS-finite-check.md")
    if not results_file.exists():
        results_file.write_text(
            "# Write-time NaN/inf check of feature files (benchmarks/finite_check.py)\n\n"
            "Median wall time of one `FeatureWriter.append` of a ViT-B/32 chunk (9.8 MB) without and with the\n"
            "check, and of the check alone in memory; ratio = check alone / append without. The CLIP forward pass\n"
            "that produces the chunk is not included, so the ratio is an upper bound of the check's share.\n\n"
            "`np.isfinite(x).all()` alone is timed too (the check tests fp16 exponent bits instead).\n\n"
            "| date | machine | chunks | append without | append with | check alone | np.isfinite alone | ratio |\n"
            "|---|---|---|---|---|---|---|---|\n")
    with results_file.open("a") as handle:
        handle.write(line + "\n")


def _cpu_name() -> str:
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


if __name__ == "__main__":
    main()
