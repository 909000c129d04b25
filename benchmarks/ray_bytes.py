"""Bytes written per video-hour by the Ray index's write path: the old staged path (whole clips as part
files, then copied into the store's writer) against the placed path (layers written once into the
feature file by the actors, ``store_clips`` + ``assemble``). Issue #19 item 4.

Usage:  python benchmarks/ray_bytes.py [--clips 360]

Runs the write functions the cluster runs (in this process, no Ray: the bytes are the same) on
ViT-B/32-shaped features (k=4, 50 tokens, 768 channels, 512-d embeddings) in actor batches of 16
clips, and counts the bytes passed to write()/pwrite() (``wchar`` of /proc/self/io). The staged
path is rebuilt from the functions that still exist (``write_part`` with the layers, then
``open_writer``/``write_chunk``/``commit_features``), byte for byte what r2cli did before.
A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def wchar() -> int:
    with open("/proc/self/io") as handle:
        return next(int(line.split(":")[1]) for line in handle if line.startswith("wchar"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=360, help="clips of the video (1,800 = one hour at 0.5 fps)")
    args = parser.parse_args()

    import numpy as np

    import r2cli.features.stages as stages
    from r2cli.distributed.index import assemble, plan_target, staging_folder, store_clips, write_part
    from r2cli.features.stages import WorkItem
    from r2cli.features.store import FeatureSettings, FeatureStore

    stages.file_changed = lambda item: None  # no video file behind the synthetic item
    clips, batch = args.clips, 16
    rng = np.random.default_rng(0)
    layers = rng.standard_normal((clips, 4, 50, 768)).astype(np.float16)
    embed = rng.standard_normal((clips, 512)).astype(np.float16)
    stamps = np.arange(clips) * 2.0
    item = WorkItem(fingerprint="blake2b:" + "ab" * 32, path="/synthetic.mp4", size=None, mtime=None,
                    duration=clips * 2.0, video_ids=(1,))
    hours = clips / 1800
    print(f"## Ray write path: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.machine()}, {os.cpu_count()} cores, {clips} clips\n")
    print("| path | stored as | file MB / video-hour | written MB / video-hour | written / file |")
    print("|---|---|---|---|---|")
    root = Path(tempfile.mkdtemp(prefix="r2cli-raybytes-"))
    try:
        base = FeatureSettings(clip_model="ViT-B-32", weights_id="ViT-B-32/openai")
        for dtype in ("float16", "int8"):
            settings = dataclasses.replace(base, dtype=dtype)
            if dtype == "float16":  # the staged path (before): whole parts, then a second full copy
                store = FeatureStore(root / "staged")
                folder = staging_folder(store, item, settings)
                before = wchar()
                for first in range(0, clips, batch):
                    last = min(first + batch, clips) - 1
                    write_part(folder, first, last, layers=layers[first:last + 1], embed=embed[first:last + 1],
                               timestamps=stamps[first:last + 1])
                writer = stages.open_writer(store, item, settings, {})
                for path in sorted(folder.glob("part-*.npz")):
                    with np.load(path) as part:
                        stages.write_chunk(writer, stages.Embedded(layers=part["layers"], embed=part["embed"]),
                                           part["timestamps"])
                stored = stages.commit_features(writer, item, {})
                written = wchar() - before
                shutil.rmtree(folder)
                print(f"| staged (before) | {dtype} | {stored.bytes / hours / 1e6:,.0f} | {written / hours / 1e6:,.0f} | "
                      f"{written / stored.bytes:.2f} |")
            store = FeatureStore(root / f"placed-{dtype}")
            before = wchar()
            target = plan_target(store, item, settings, {})
            for first in range(0, clips, batch):
                last = min(first + batch, clips) - 1
                store_clips(target, first, last, layers[first:last + 1], embed[first:last + 1],
                            stamps[first:last + 1], dtype)
            stored = assemble(store, item, settings, target, clips, {}, {})
            written = wchar() - before
            print(f"| placed (now) | {dtype} | {stored.bytes / hours / 1e6:,.0f} | {written / hours / 1e6:,.0f} | "
                  f"{written / stored.bytes:.2f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
