"""Ray scale-out on this machine: single-process index vs ``--ray local`` with 1 and 2 CLIP actors.

Usage:  nice python benchmarks/ray_scale.py [--clips 2] [--seconds 120] [--size 1280x720] [--rounds 2]
                                            [--segment-seconds 60] [--catalog-records 200]

One run, interleaved rounds (single, ray-1, ray-2, single, ray-1, ray-2, ...), each on a fresh
workspace over the same generated clips (testsrc2 SIZE 30 fps x264 veryfast, in benchmarks/_work/,
ignored by git). CLIP: ViT-B/32-shaped *random* weights in OpenAI layout (as index_throughput.py;
no download here): same arithmetic as real weights.

Measured with timing wrappers installed by this script (the library is not edited):
  - wall time of ``extract_features`` (scan excluded: the scan runs once per workspace before);
  - Ray session start (``ray_session`` entry, a fresh local instance per round) and stop, reported
    separately; throughput is given with and without it;
  - driver + catalog overhead per video: time in ``list_work``, ``record_success`` and
    ``record_failure`` (the driver's catalog calls);
  - catalog write rate: N synthetic feature-set records through ``record_success`` on SQLite.
Prints a markdown block for benchmarks/RESULTS-scale.md. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from index_throughput import WORK, make_clip, vitb32_random_weights  # noqa: E402

TIMES: dict[str, list[float]] = {}
LAST_SUCCESS: dict[str, tuple] = {}


def timed(name: str, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES.setdefault(name, []).append(time.perf_counter() - start)
    return wrapper


def install_wrappers(actors_box: dict) -> None:
    import r2cli.distributed.index as dindex
    import r2cli.distributed.session as dsession
    import r2cli.features.extract as extract

    extract.list_work = timed("list_work", extract.list_work)
    inner = extract.record_success

    def record_success(catalog, item, stored):
        LAST_SUCCESS["args"] = (item, stored)
        return inner(catalog, item, stored)

    extract.record_success = timed("record_success", record_success)
    extract.record_failure = timed("record_failure", extract.record_failure)

    original_extract = dindex.extract_on_ray

    def extract_on_ray(*args, **kwargs):
        kwargs["actors"] = actors_box["actors"]
        return timed("ray_pipeline", original_extract)(*args, **kwargs)

    dindex.extract_on_ray = extract_on_ray
    original_session = dsession.ray_session

    @contextlib.contextmanager
    def ray_session(*args, **kwargs):
        kwargs.setdefault("num_cpus", actors_box.get("cpus"))
        start = time.perf_counter()
        with original_session(*args, **kwargs) as info:
            TIMES.setdefault("ray_start", []).append(time.perf_counter() - start)
            yield info
            stop = time.perf_counter()
        TIMES.setdefault("ray_stop", []).append(time.perf_counter() - stop)

    dsession.ray_session = ray_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--segment-seconds", type=float, default=60.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--catalog-records", type=int, default=200)
    args = parser.parse_args()

    import torch

    from r2cli.app.index import ray_runner
    from r2cli.features.extract import extract_features
    from r2cli.paths import resolve_workspace

    load0 = os.getloadavg()
    weights = vitb32_random_weights()
    clip = make_clip(args.seconds, args.size)
    media = WORK / f"ray-scale-{args.clips}x{int(args.seconds)}s"
    media.mkdir(parents=True, exist_ok=True)
    for n in range(args.clips):  # distinct contents (equal bytes would be one fingerprint, one work item)
        target = media / f"clip{n}.mp4"
        if not target.exists():
            shutil.copyfile(clip if n == 0 else make_clip(args.seconds + n, args.size), target)
    actors_box = {"actors": 1}
    install_wrappers(actors_box)
    hours = args.clips * args.seconds / 3600.0
    modes = [("single", None, None), ("ray-1", "local", 1), ("ray-2", "local", 2)]
    rows: list[dict] = []
    rate = None
    for rnd in range(args.rounds):
        for label, ray, actors in modes:
            actors_box["actors"] = actors
            # logical CPUs of the local instance: one per actor plus one for a decode task. With 2 actors
            # on a 2-CPU instance the actors hold every CPU and the decode tasks never start (see RESULTS).
            actors_box["cpus"] = None if actors is None else max(os.cpu_count() or 1, actors + 1)
            with tempfile.TemporaryDirectory(dir=WORK) as folder:
                workspace = resolve_workspace(Path(folder) / "ws")
                scan_start = time.perf_counter()
                _scan(workspace, media)
                scan = time.perf_counter() - scan_start
                for key in ("list_work", "record_success", "record_failure", "ray_start", "ray_stop", "ray_pipeline"):
                    TIMES[key] = []
                start = time.perf_counter()
                runner = ray_runner(ray, clip_weights=str(weights), device="cpu",
                                    segment_seconds=args.segment_seconds) if ray else None
                report = extract_features(workspace, clip_weights=str(weights), device="cpu",
                                          batch_size=args.batch_size, runner=runner)
                wall = time.perf_counter() - start
                row = {"round": rnd, "mode": label, "wall": wall, "scan": scan,
                       "extracted": report.videos_extracted, "failed": report.videos_failed,
                       "bytes": report.bytes_written, "load": os.getloadavg()[0]}
                for key in ("list_work", "record_success", "record_failure", "ray_start", "ray_stop"):
                    row[key] = sum(TIMES[key])
                rows.append(row)
                if rate is None and label == "single":
                    rate = _catalog_rate(workspace, args.catalog_records)
                print(f"round {rnd} {label}: wall {wall:.1f} s, ray start {row['ray_start']:.1f} s, "
                      f"stop {row['ray_stop']:.1f} s, extracted {report.videos_extracted}, failed {report.videos_failed}, "
                      f"load {row['load']:.2f}", flush=True)


    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(f"\n### {now}: {platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}; load average "
          f"{load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end\n")
    print(f"Clips: {args.clips} x testsrc2 {args.size} 30 fps {args.seconds:g} s x264 veryfast "
          f"({hours * 60:.1f} video-minutes); random ViT-B/32 fp32, batch {args.batch_size}; Ray segments "
          f"{args.segment_seconds:g} s.\n")
    print("| mode | rounds | wall s (median) | Ray start s | Ray stop s | video-h/wall-h (incl. start+stop) | "
          "video-h/wall-h (excl. start+stop) | vs single (excl.) |")
    print("|---|---|---|---|---|---|---|---|")
    base = None
    for label, _, _ in modes:
        mine = [r for r in rows if r["mode"] == label]
        wall = statistics.median(r["wall"] for r in mine)
        start = statistics.median(r["ray_start"] for r in mine)
        stop = statistics.median(r["ray_stop"] for r in mine)
        incl = hours / (wall / 3600)
        excl = hours / ((wall - start - stop) / 3600)
        base = base or excl
        print(f"| {label} | {len(mine)} | {wall:.1f} | {start:.1f} | {stop:.1f} | {incl:.1f} | {excl:.1f} | {excl / base:.2f} |")
    print()
    per_video = {key: statistics.median(r[key] / max(1, r["extracted"] + r["failed"]) for r in rows)
                 for key in ("list_work", "record_success", "record_failure")}
    print(f"- driver catalog calls per video (median over all rounds): list_work {per_video['list_work'] * 1000:.1f} ms, "
          f"record_success {per_video['record_success'] * 1000:.1f} ms, record_failure "
          f"{per_video['record_failure'] * 1000:.1f} ms")
    print(f"- scan (once per workspace, not in the wall above): median {statistics.median(r['scan'] for r in rows):.1f} s")
    print(f"- stored bytes per video-hour: {statistics.median(r['bytes'] for r in rows) / hours / 1e6:.0f} MB")
    if rate:
        print(f"- SQLite catalog write rate: {rate[0]} record_success calls in {rate[1]:.2f} s = "
              f"{rate[0] / rate[1]:.0f} feature-set records per second")
    for r in rows:
        print(f"  - raw: round {r['round']} {r['mode']}: wall {r['wall']:.2f}, ray start {r['ray_start']:.2f}, "
              f"stop {r['ray_stop']:.2f}, list_work {r['list_work']:.3f}, record_success {r['record_success']:.3f}, "
              f"load {r['load']:.2f}")


def _scan(workspace, media: Path) -> None:
    from r2cli.app.index import index_archive

    index_archive([media], workspace, features=False)


def _catalog_rate(workspace, records: int):
    """record_success (one feature-set record + its rows marked ok, one transaction) repeated on the
    SQLite catalog of a finished workspace, with the last recorded (item, stored) pair: each call is
    a real write (an upsert of the same record). Returns (records, seconds)."""
    import r2cli.features.stages as stages
    from r2cli.catalog import Catalog

    item, stored = LAST_SUCCESS["args"]
    with Catalog.open(workspace) as catalog:
        start = time.perf_counter()
        for _ in range(records):
            stages.record_success(catalog, item, stored)
        return records, time.perf_counter() - start


if __name__ == "__main__":
    main()
