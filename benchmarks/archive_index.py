"""Archive scale (#19.2): the approximate coarse index against the exact scan, 1,000 to 10,000 video-hours.

A synthetic archive is written through the feature store's own writer: one file per video-hour
(1,800 clips at 0.5 fps) holding real-size clip embeddings ([1800, 512] fp16, random unit vectors
drawn deterministically from the video's number) and a token-sized ``layers`` tensor
([1800, 4, 1, 1]); the fine stage reads one real-size shared layer file ([1800, 4, 50, 768] fp16,
553 MB), like ``search_bench.py archive``, so the disk measures the embeddings and the index, not
55 TB of layer tokens. Query ``i`` of 100 is a random unit vector; a 6-clip moment is planted in
video ``(i * 7919) % hours`` at clip ``(i * 131) % 1794`` whose embeddings are the query plus
noise (cosine ~0.45 to it; random clips reach ~0.26 over 18 M clips).

Steps (each a separate process, so each reports its own peak memory; results are JSON lines
appended to ``--results``):

    python benchmarks/archive_index.py generate --hours 1000 --store /tmp/arch1k
    python benchmarks/archive_index.py build    --hours 1000 --store /tmp/arch1k
    python benchmarks/archive_index.py query    --hours 1000 --store /tmp/arch1k [--fine] [--exact-recall]
    python benchmarks/archive_index.py add      --hours 1000 --store /tmp/arch1k --add-hours 100
    python benchmarks/archive_index.py batch    --hours 1000 --store /tmp/arch1k --queries 1000
    python benchmarks/archive_index.py compare  # faiss vs hnswlib vs usearch on 100,000 clips
    python benchmarks/archive_index.py clean    --store /tmp/arch1k

Archives too large for this disk (30,000 video-hours and up: 1.84 GB of embeddings per 1,000 h) are
drawn on the fly instead of stored (see "100,000 video-hours" below): ``update_index`` builds the real
index from the generator and only the index is written; each query re-scores exactly from rows drawn
again in an untimed first pass and kept in memory for the timed second pass:

    python benchmarks/archive_index.py build-virtual --hours 30000 --store /work/bench/v30k
    python benchmarks/archive_index.py query-virtual --hours 30000 --store /work/bench/v30k [--nprobe 256,512]
    python benchmarks/archive_index.py add-virtual   --hours 30000 --store /work/bench/v30k --add-hours 100

``clean`` deletes the store folder (only a folder holding this benchmark's marker file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

CLIPS = 1800  # one video-hour at 0.5 fps
DIMS = 512
QUERIES = 100
PLANT = 6  # clips of a planted moment
PLANTED_IN = 1000  # planted moments lie in the first this-many videos (see _plants)
MARKER = ".r2cli-archive-bench"
SHARED_FINGERPRINT = "blake2b:" + "ab" * 32


def _settings():
    from r2cli.features.store import FeatureSettings

    return FeatureSettings(clip_model="ViT-B-32", weights_id="bench/random", fps=0.5, image_size=224, k=4)


def _fingerprint(video: int) -> str:
    return f"blake2b:{video:064x}"


def _queries(count: int = QUERIES, seed: int = 12345):
    import numpy as np

    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((count, DIMS)).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def _plants(hours: int) -> dict[int, list[tuple[int, int]]]:
    """Video -> [(query, first clip)] of the moments planted there.

    Moments lie in the first ``PLANTED_IN`` videos whatever the size, so the first 1,000 videos of a
    10,000-hour store are the 1,000-hour archive too (same plants, one generation for both).
    """
    plants: dict[int, list[tuple[int, int]]] = {}
    for q in range(QUERIES):
        plants.setdefault((q * 7919) % min(hours, PLANTED_IN), []).append((q, (q * 131) % (CLIPS - PLANT)))
    return plants


def _embed(video: int, plants: dict[int, list[tuple[int, int]]], queries):
    import numpy as np

    rng = np.random.default_rng(video)
    embed = rng.standard_normal((CLIPS, DIMS), dtype=np.float32)
    embed /= np.linalg.norm(embed, axis=1, keepdims=True)
    for q, clip in plants.get(video, ()):
        noise = rng.standard_normal((PLANT, DIMS), dtype=np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        moment = 0.45 * queries[q][None, :] + 0.89 * noise
        embed[clip : clip + PLANT] = moment / np.linalg.norm(moment, axis=1, keepdims=True)
    return embed


def _live(store_root: Path, videos: range):
    from r2cli.features.coarse_index import LiveSet
    from r2cli.features.store import FeatureStore

    store, settings = FeatureStore(store_root), _settings()
    return [LiveSet(_fingerprint(v), store.relpath(_fingerprint(v), settings), CLIPS) for v in videos]


def generate(args) -> dict:
    import numpy as np

    from r2cli.features.store import FeatureStore

    root = Path(args.store)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("r2cli benchmarks/archive_index.py synthetic archive\n")
    store, settings = FeatureStore(root), _settings()
    queries, plants = _queries(), _plants(args.hours)
    started = time.perf_counter()
    layers = np.zeros((CLIPS, 4, 1, 1), dtype=np.float16)
    stamps = (np.arange(CLIPS) + 0.5) * 2.0
    written = 0
    part, parts = (int(x) for x in getattr(args, "part", "0/1").split("/"))
    for video in range(args.first, args.hours + args.first):
        if video % parts != part or store.exists(_fingerprint(video), settings):
            continue
        store.put(_fingerprint(video), settings, layers, _embed(video, plants if video < args.hours else {}, queries),
                  stamps, duration=3600.0)
        written += 1
    shared_s = 0.0
    if args.first == 0 and part == 0 and store.get(SHARED_FINGERPRINT, settings) is None:
        tick = time.perf_counter()
        rng = np.random.default_rng(0)
        with store.writer(SHARED_FINGERPRINT, settings, duration=3600.0) as writer:
            for chunk in range(0, CLIPS, 150):
                part = rng.standard_normal((150, 4, 50, 768), dtype=np.float32).astype(np.float16)
                embed = rng.standard_normal((150, DIMS)).astype(np.float32)
                writer.append(part, embed / np.linalg.norm(embed, axis=1, keepdims=True),
                              (np.arange(chunk, chunk + 150) + 0.5) * 2.0)
            writer.commit()
        shared_s = time.perf_counter() - tick
    return {"videos_written": written, "seconds": round(time.perf_counter() - started, 1),
            "shared_layer_file_s": round(shared_s, 1),
            "store_bytes": sum(p.stat().st_size for p in root.rglob("*.safetensors"))}


def replant(args) -> dict:
    """Rewrite the videos that hold the planted moments of a ``--hours`` archive (the first ``--hours``
    videos of a larger generated store become an archive of their own)."""
    import numpy as np

    from r2cli.features.store import FeatureStore

    store, settings = FeatureStore(Path(args.store)), _settings()
    queries, plants = _queries(), _plants(args.hours)
    layers = np.zeros((CLIPS, 4, 1, 1), dtype=np.float16)
    for video in plants:
        store.put(_fingerprint(video), settings, layers, _embed(video, plants, queries),
                  (np.arange(CLIPS) + 0.5) * 2.0, duration=3600.0)
    return {"videos_rewritten": len(plants)}


def build(args) -> dict:
    from r2cli.features.coarse_index import index_root, update_index

    root = Path(args.store)
    report = update_index(root, _settings().key(), _live(root, range(args.hours)), min_clips=1, rebuild=True)
    folder = index_root(root, _settings().key()) / str(report.generation)
    return {"report": report.to_dict(), "index_bytes": sum(p.stat().st_size for p in folder.iterdir())}


def add(args) -> dict:
    from r2cli.features.coarse_index import update_index

    root = Path(args.store)
    generate(argparse.Namespace(store=args.store, hours=args.add_hours, first=args.hours, part="0/1"))
    live = _live(root, range(args.hours)) + _live(root, range(args.hours, args.hours + args.add_hours))
    report = update_index(root, _settings().key(), live, min_clips=1)
    return {"added_hours": args.add_hours, "report": report.to_dict()}


def _plan(root: Path, hours: int, window_clips: int = 75, stride_clips: int = 37):
    from r2cli.features.store import FeatureStore
    from r2cli.inference.search import ArchiveVideo, SearchPlan
    from r2cli.inference.windows import PostProcess, plan_windows

    store, settings = FeatureStore(root), _settings()
    shared = store.get(SHARED_FINGERPRINT, settings)

    class _Record:
        def __init__(self, video):
            self.id, self.path, self.fingerprint = video, f"/archive/v{video:06d}.mp4", _fingerprint(video)

    videos, windows = [], []
    for v in range(hours):
        features = store.get(_fingerprint(v), settings)
        features.layers = shared.layers  # the fine stage reads the one real-size layer file
        video = ArchiveVideo(record=_Record(v), features=features, duration=3600.0,
                             windows=plan_windows(CLIPS, window_clips, stride_clips))
        windows.extend((v, w) for w in video.windows)
        videos.append(video)
    return SearchPlan(videos=videos, windows=windows, fps=0.5, post=PostProcess())


def _planted_windows(plan, hours: int) -> dict[int, set[int]]:
    """Query -> windows holding its planted moment."""
    found: dict[int, set[int]] = {}
    plants = _plants(hours)
    for w, (v, window) in enumerate(plan.windows):
        for q, clip in plants.get(v, ()):
            if window.start_clip <= clip and clip + PLANT <= window.end_clip:
                found.setdefault(q, set()).add(w)
    return found


def query(args) -> dict:
    """100 single queries through the index path (one row per ``--nprobe`` value), against the exact scan."""
    import numpy as np

    from r2cli.features.coarse_index import load_index
    from r2cli.inference.search import choose_candidates, choose_coarse_stage, coarse_scores, indexed_window_scores

    root = Path(args.store)
    tick = time.perf_counter()
    plan = _plan(root, args.hours)
    plan_s = time.perf_counter() - tick
    tick = time.perf_counter()
    index = load_index(root, _settings().key())
    load_s = time.perf_counter() - tick
    queries = _queries()
    planted = _planted_windows(plan, args.hours)
    result = {"plan_s": round(plan_s, 2), "index_load_s": round(load_s, 2), "windows": len(plan.windows),
              "candidates": args.candidates, "index_factory": index.spec.factory,
              "index_file_bytes": (index.root / index.generation / "index.faiss").stat().st_size,
              "rss_after_plan_and_index_mb": round(_rss_mb(), 1)}
    nprobes = [int(x) for x in args.nprobe.split(",")] if args.nprobe else [None]
    rows, chosen_by_nprobe = [], {}
    for nprobe in nprobes:
        tick = time.perf_counter()
        stage = choose_coarse_stage(plan, index, candidates=args.candidates, nprobe=nprobe)
        choose_s = time.perf_counter() - tick
        latencies, cpu, found_index, chosen_index = [], [], 0, []
        for q in range(QUERIES):
            tick, cpu_tick = time.perf_counter(), time.process_time()
            looked_at, scores = indexed_window_scores(plan, queries[q : q + 1], stage, candidates=args.candidates)
            pairs = choose_candidates(scores, args.candidates)
            latencies.append(time.perf_counter() - tick)
            cpu.append(time.process_time() - cpu_tick)
            chosen = {int(looked_at[w]) for w, _ in pairs}
            chosen_index.append(chosen)
            found_index += bool(chosen & planted.get(q, set()))
        chosen_by_nprobe[stage.nprobe] = (chosen_index, found_index)
        row = {"stage": stage.record(), "choose_s": round(choose_s, 3), **_latencies(latencies, cpu),
               "planted_found_index": found_index, "load_average": [round(x, 2) for x in os.getloadavg()]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    result["runs"] = rows
    if args.exact_recall:
        tick = time.perf_counter()
        exact = coarse_scores(plan.videos, queries)  # [windows, queries], one pass over every embedding
        result["exact_batch_s"] = round(time.perf_counter() - tick, 1)
        tick = time.perf_counter()
        coarse_scores(plan.videos, queries[:1])
        result["exact_one_query_s"] = round(time.perf_counter() - tick, 2)
        best = [{int(w) for w in np.argsort(-exact[:, q], kind="stable")[: args.candidates]} for q in range(QUERIES)]
        found_exact = sum(bool(best[q] & planted.get(q, set())) for q in range(QUERIES))
        result["planted_found_exact"] = found_exact
        for row in rows:
            chosen_index, found_index = chosen_by_nprobe[row["stage"]["nprobe"]]
            agree = sum(len(best[q] & chosen_index[q]) for q in range(QUERIES))
            row.update(planted_recall_vs_exact=round(found_index / max(1, found_exact), 4),
                       candidate_overlap_with_exact=round(agree / (QUERIES * args.candidates), 4))
    if args.fine:
        stage = choose_coarse_stage(plan, index, candidates=args.candidates)
        result["end_to_end"] = _end_to_end(plan, stage, queries[:1], args.candidates)
    return result


def _latencies(wall: list[float], cpu: list[float]) -> dict:
    """The coarse stage's wall and CPU percentiles (ms) over the queries of one run."""
    import numpy as np

    return {"coarse_ms_p50": round(1000 * float(np.percentile(wall, 50)), 1),
            "coarse_ms_p95": round(1000 * float(np.percentile(wall, 95)), 1),
            "coarse_ms_max": round(1000 * max(wall), 1),
            "coarse_cpu_ms_p50": round(1000 * float(np.percentile(cpu, 50)), 1),
            "coarse_cpu_ms_p95": round(1000 * float(np.percentile(cpu, 95)), 1)}


def _end_to_end(plan, stage, query_embed, candidates: int) -> dict:
    """One query through coarse (index), fine (R2-Tuning, random weights of the real shapes) and merge."""
    import torch

    from r2cli.inference.grounding import Grounder
    from r2cli.inference.search import ground_windows, merge_moments, select_candidates
    from r2cli.model import build_model

    torch.manual_seed(0)
    model = build_model().eval()
    grounder = Grounder(model, "cpu")
    query_layers = [torch.randn(20, 4, 512)]
    ticks = [time.perf_counter()]
    pairs = select_candidates(plan, query_embed, candidates, coarse=stage)
    ticks.append(time.perf_counter())
    outputs, kept = ground_windows(grounder, plan, query_layers, pairs)
    ticks.append(time.perf_counter())
    merged = merge_moments(plan, kept, outputs)
    ticks.append(time.perf_counter())
    timings = {name: round(ticks[i + 1] - ticks[i], 3) for i, name in enumerate(("coarse_s", "fine_s", "merge_s"))}
    timings["total_s"] = round(ticks[-1] - ticks[0], 3)
    return {"pairs": len(kept), "moments": int(sum(len(m) for m in merged.moments)), "timings": timings,
            "torch_threads": torch.get_num_threads()}


def batch(args) -> dict:
    import numpy as np

    from r2cli.features.coarse_index import load_index
    from r2cli.inference.search import (INDEX_QUERIES_PER_PASS, choose_candidates, choose_coarse_stage, coarse_scores,
                                        indexed_window_scores, matmul_from_queries)

    root = Path(args.store)
    plan = _plan(root, args.hours)
    stage = choose_coarse_stage(plan, load_index(root, _settings().key()), candidates=args.candidates)
    queries = _queries(args.queries, seed=777)
    out = {"queries": args.queries, "rule_matmul_from_queries": matmul_from_queries(stage.clips)}
    for size in sorted({1, 100, args.queries}):
        tick = time.perf_counter()
        for first in range(0, size, INDEX_QUERIES_PER_PASS):  # as search serves a batch from the index
            looked_at, scores = indexed_window_scores(plan, queries[first : min(size, first + INDEX_QUERIES_PER_PASS)],
                                                      stage, candidates=args.candidates)
            choose_candidates(scores, args.candidates)
        index_s = time.perf_counter() - tick
        tick = time.perf_counter()
        scores = coarse_scores(plan.videos, queries[:size])
        choose_candidates(scores, args.candidates)
        matmul_s = time.perf_counter() - tick
        out[f"batch_{size}"] = {"index_s": round(index_s, 2), "index_q_per_s": round(size / index_s, 1),
                                "matmul_s": round(matmul_s, 2), "matmul_q_per_s": round(size / matmul_s, 1)}
    return out


def _rss_mb() -> float:
    """Resident memory of this process now (MB), from /proc (Linux)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def compare(args) -> dict:
    """faiss IVF (``--compare-codes``: SQ8, PQ64, PQ32, fast-scan PQ64x4fs) vs hnswlib vs usearch (f16, i8) on ``--compare-clips`` clustered clips.

    Clips come in "videos" of 1,800 around a random centre (real CLIP embeddings cluster by shot and
    video); a query is a clip plus noise. Recall@100 is against the exact top 100 by inner product.
    Each library builds with the threads ``OMP_NUM_THREADS`` allows and answers single queries; each
    row is printed as it completes (``--results`` gets the whole line at the end).
    """
    import numpy as np

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    rng = np.random.default_rng(3)
    n = args.compare_clips
    centres = rng.standard_normal((n // CLIPS + 1, DIMS)).astype(np.float32)
    data = rng.standard_normal((n, DIMS)).astype(np.float32) + 1.5 * centres[np.arange(n) // CLIPS]
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    picks = rng.choice(n, QUERIES, replace=False)
    queries = data[picks] + 0.5 * rng.standard_normal((QUERIES, DIMS)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = 100
    truth = np.argsort(-(data @ queries.T), axis=0)[:k].T  # [queries, k]
    results: dict = {"clips": n, "dims": DIMS, "threads": threads, "k": k}

    def measure(name, build_fn, search_fn, bytes_fn, built=None):
        rss, tick, cpu = _rss_mb(), time.perf_counter(), time.process_time()
        handle = build_fn() if built is None else built[0]
        build_s, build_cpu = time.perf_counter() - tick, time.process_time() - cpu
        grown = _rss_mb() - rss
        if built is not None:  # the same index searched another way: its build was measured in its own row
            build_s, build_cpu, grown = built[1], built[2], float("nan")
        lat, recall = [], []
        for q in range(QUERIES):
            tick = time.perf_counter()
            ids = search_fn(handle, queries[q : q + 1])
            lat.append(time.perf_counter() - tick)
            recall.append(len(set(map(int, ids)) & set(map(int, truth[q]))) / k)
        row = {"build_s": round(build_s, 1), "build_cpu_s": round(build_cpu, 1),
               "ms_p50": round(1000 * float(np.median(lat)), 2), "ms_p95": round(1000 * float(np.percentile(lat, 95)), 2),
               "recall_at_100": round(float(np.mean(recall)), 3), "bytes_per_clip": round(bytes_fn(handle) / n, 1),
               "rss_growth_mb": round(grown, 1), "load_average": [round(x, 2) for x in os.getloadavg()]}
        print(json.dumps({name: row}), flush=True)
        results[name] = row
        return handle, build_s, build_cpu

    import faiss

    from r2cli.features.coarse_index import IndexSpec

    faiss.omp_set_num_threads(threads)
    nlist = 256  # sqrt(100,000) rounded to a power of two, as index_spec chooses
    libraries = set(args.compare_libraries.split(","))
    for codes in args.compare_codes.split(",") if "faiss" in libraries else ():
        spec = IndexSpec(nlist=nlist, codes=codes)

        def build_faiss(spec=spec):
            index = faiss.index_factory(DIMS, spec.factory, faiss.METRIC_INNER_PRODUCT)
            index.train(data[np.random.default_rng(0).choice(n, min(n, max(nlist * 64, 65_536)), replace=False)])
            index.add(data)
            return index

        params = faiss.SearchParametersIVF(nprobe=spec.nprobe)
        size = lambda h: len(faiss.serialize_index(h))  # noqa: E731
        built = measure(f"faiss {spec.factory} nprobe {spec.nprobe}", build_faiss,
                        lambda h, q: h.search(q, k, params=params)[1][0], size)

        def rescored(h, q, params=params):
            """What search does: 10 x k approximate hits, re-scored exactly from the stored vectors."""
            ids = h.search(q, 10 * k, params=params)[1][0]
            ids = ids[ids >= 0]
            return ids[np.argsort(-(data[ids] @ q[0]), kind="stable")[:k]]

        measure(f"faiss {spec.factory} nprobe {spec.nprobe}, {10 * k} hits re-scored exactly", None, rescored,
                size, built=built)
        for per in sorted({16, spec.hits_per_candidate}):
            name = f"faiss {spec.factory} nprobe {spec.nprobe}, window recall@40, {per} hits per candidate"
            results[name] = _window_recall(built[0], params, data, queries, per)
            print(json.dumps({name: results[name]}), flush=True)
    try:
        if "hnswlib" not in libraries:
            raise ImportError
        import hnswlib
    except ImportError:
        results["hnswlib"] = "not installed"
    else:
        def build_hnsw():
            index = hnswlib.Index(space="ip", dim=DIMS)
            index.init_index(max_elements=n, ef_construction=100, M=16)
            index.add_items(data, num_threads=threads)
            index.set_ef(128)
            index.set_num_threads(1)
            return index

        # hnswlib keeps float32 vectors + 2 x M links of level 0 + a label per element
        measure("hnswlib M16 efC100 ef128 (float32)", build_hnsw, lambda h, q: h.knn_query(q, k=k)[0][0],
                lambda h: n * (DIMS * 4 + 2 * 16 * 4 + 4 + 8))
    try:
        if "usearch" not in libraries:
            raise ImportError
        from usearch.index import Index
    except ImportError:
        results["usearch"] = "not installed"
    else:
        for dtype in ("f16", "i8"):
            def build_usearch(dtype=dtype):
                index = Index(ndim=DIMS, metric="ip", dtype=dtype, connectivity=16, expansion_add=100,
                              expansion_search=128)
                index.add(np.arange(n), data, threads=threads)
                return index

            measure(f"usearch M16 efC100 ef128 ({dtype})", build_usearch, lambda h, q: h.search(q[0], k).keys,
                    lambda h: h.memory_usage)
    return results


# ----------------------------------------------------------------------------------------------
# 100,000 video-hours: embeddings drawn on the fly (184 GB of fp16 clip embeddings fit no disk here)
#
# The virtual archive stores nothing but the index: every clip embedding is drawn deterministically
# from (video, block of BLOCK clips), so any rows can be drawn again without the rest of the video
# (the index build reads whole videos, the training sample a few rows of each, the exact re-scoring
# of a query the windows it looked at). Planted moments are as in ``_plants`` (first 1,000 videos),
# drawn from (video, query). ``update_index`` runs unchanged; only its two readers of feature files,
# ``_embeddings`` and ``file_checksum``, are replaced (``_virtual_store``). The vectors differ from the
# stored archive's (another generator), their distribution does not.

BLOCK = 36  # clips per independently seeded block (50 per video)
VIRTUAL_TAG = 19_100  # seeds: [VIRTUAL_TAG, video, block] and [VIRTUAL_TAG, video, 10**6 + query]
_DRAWN = {"cpu_s": 0.0, "wall_s": 0.0, "videos_added": 0}


class VirtualEmbed:
    """A video's [CLIPS, DIMS] fp16 clip embeddings, drawn on indexing (slices or integer rows)."""

    shape = (CLIPS, DIMS)
    dtype = "float16"

    def __init__(self, video: int, hours: int):
        self.video, self.hours = video, hours

    def __len__(self) -> int:
        return CLIPS

    def _block(self, block: int, queries, plants):
        import numpy as np

        first = block * BLOCK
        rng = np.random.default_rng([VIRTUAL_TAG, self.video, block])
        rows = rng.standard_normal((min(BLOCK, CLIPS - first), DIMS), dtype=np.float32)
        for q, clip in plants.get(self.video, ()):
            noise = np.random.default_rng([VIRTUAL_TAG, self.video, 10**6 + q]).standard_normal((PLANT, DIMS),
                                                                                               dtype=np.float32)
            noise /= np.linalg.norm(noise, axis=1, keepdims=True)
            for i in range(PLANT):
                if first <= clip + i < first + rows.shape[0]:
                    rows[clip + i - first] = 0.45 * queries[q] + 0.89 * noise[i]
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return rows.astype(np.float16)

    def __getitem__(self, key):
        import numpy as np

        if isinstance(key, slice):
            kept = (self.video, key.start, key.stop, key.step)
        else:
            kept = (self.video, "rows", tuple(np.atleast_1d(key).tolist()))
        if kept in _BLOCKS:  # the timed pass: the rows as a stored archive's memory map gives them
            return _BLOCKS[kept]
        tick, cpu = time.perf_counter(), time.process_time()
        rows = np.atleast_1d(np.arange(CLIPS)[key])
        blocks = np.unique(rows // BLOCK)
        queries, plants = _virtual_plants(self.hours)
        drawn = []
        for b in blocks.tolist():
            block = _BLOCKS.get((self.video, b))
            if block is None:
                block = self._block(b, queries, plants)
                if _BLOCKS.get("keep"):
                    _BLOCKS[(self.video, b)] = block
            drawn.append(block)
        if drawn:
            offsets = dict(zip(blocks.tolist(), np.cumsum([0] + [len(d) for d in drawn[:-1]]).tolist()))
            out = np.concatenate(drawn)[[offsets[r // BLOCK] + r % BLOCK for r in rows.tolist()]]
        else:
            out = np.zeros((0, DIMS), dtype=np.float16)
        _DRAWN["cpu_s"] += time.process_time() - cpu
        _DRAWN["wall_s"] += time.perf_counter() - tick
        result = out[0] if np.ndim(np.arange(CLIPS)[key]) == 0 else out
        if _BLOCKS.get("keep"):
            _BLOCKS[kept] = result
        return result


_PLANT_CACHE: dict = {}
# Blocks kept between a query's first pass (drawing them) and its timed second pass (reading them from
# memory, as a stored archive reads page-cached fp16 files); emptied after each query.
_BLOCKS: dict = {}


def _virtual_plants(hours: int):
    if hours not in _PLANT_CACHE:
        _PLANT_CACHE[hours] = (_queries(), _plants(hours))
    return _PLANT_CACHE[hours]


def _virtual_video(relpath: str) -> int:
    return int(relpath.rsplit("/", 1)[-1])


def _virtual_store(hours: int, codes: str | None = None) -> None:
    """Point the coarse index's readers of feature files at the generator (see the section comment)."""
    from r2cli.features import coarse_index

    coarse_index._embeddings = lambda root, relpath: VirtualEmbed(_virtual_video(relpath), hours)
    coarse_index.file_checksum = lambda root, relpath: f"virtual:{_virtual_video(relpath)}"
    add_video, started = coarse_index._add_video, time.perf_counter()

    def counted(index, embed, first_id):
        add_video(index, embed, first_id)
        _DRAWN["videos_added"] += 1
        if _DRAWN["videos_added"] % 2000 == 0:
            print(json.dumps({"videos_added": _DRAWN["videos_added"], "of": hours,
                              "elapsed_s": round(time.perf_counter() - started, 1),
                              "drawing_cpu_s": round(_DRAWN["cpu_s"], 1), "rss_mb": round(_rss_mb(), 1),
                              "load_average": [round(x, 2) for x in os.getloadavg()]}), flush=True)

    coarse_index._add_video = counted
    if codes:  # a small archive with the large one's codes (to check the path before the long build)
        spec_for = coarse_index.index_spec
        coarse_index.index_spec = lambda n: coarse_index.IndexSpec(nlist=spec_for(n).nlist, codes=codes)


def _virtual_live(hours: int):
    from r2cli.features.coarse_index import LiveSet

    return [LiveSet(_fingerprint(v), f"virtual/{v:08d}", CLIPS) for v in range(hours)]


def build_virtual(args) -> dict:
    """``update_index`` over ``--hours`` videos drawn on the fly; only the index is written (to ``--store``)."""
    from r2cli.features.coarse_index import index_root, update_index

    root = Path(args.store)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("r2cli benchmarks/archive_index.py virtual archive (index only)\n")
    _virtual_store(args.hours, args.codes)
    report = update_index(root, _settings().key(), _virtual_live(args.hours), min_clips=1, rebuild=True)
    folder = index_root(root, _settings().key()) / str(report.generation)
    return {"report": report.to_dict(), "index_bytes": sum(p.stat().st_size for p in folder.iterdir()),
            "drawing_cpu_s": round(_DRAWN["cpu_s"], 1), "drawing_wall_s": round(_DRAWN["wall_s"], 1),
            "stored": "the index generation only (index.faiss + manifest.json)"}


def add_virtual(args) -> dict:
    """``--add-hours`` more videos drawn on the fly, added to the virtual archive's index by ``update_index``."""
    from r2cli.features.coarse_index import update_index

    total = args.hours + args.add_hours
    _virtual_store(total, args.codes)
    report = update_index(Path(args.store), _settings().key(), _virtual_live(total), min_clips=1)
    return {"added_hours": args.add_hours, "report": report.to_dict(), "drawing_cpu_s": round(_DRAWN["cpu_s"], 1)}


class _VirtualFeatures:
    def __init__(self, video: int, hours: int):
        self.embed, self.num_clips = VirtualEmbed(video, hours), CLIPS
        self.fingerprint, self.metadata = _fingerprint(video), {"checksum": f"virtual:{video}"}


def query_virtual(args) -> dict:
    """100 single queries through ``indexed_window_scores`` on the virtual archive's index.

    Each query runs twice: the first pass draws the rows of the windows it re-scores and keeps them in
    memory, the second, timed, reads them from there (a stored archive reads them from memory-mapped,
    page-cached fp16 files, as the 10,000-hour runs did).
    """
    import numpy as np

    from r2cli.features.coarse_index import load_index
    from r2cli.inference.search import (ArchiveVideo, SearchPlan, choose_candidates, choose_coarse_stage,
                                        indexed_window_scores)
    from r2cli.inference.windows import PostProcess, plan_windows

    root = Path(args.store)
    rss, tick = _rss_mb(), time.perf_counter()
    index = load_index(root, _settings().key())
    result = {"index_load_s": round(time.perf_counter() - tick, 1), "index_rss_mb": round(_rss_mb() - rss, 1),
              "index_factory": index.spec.factory, "index_vectors": index.vectors,
              "index_file_bytes": (index.root / index.generation / "index.faiss").stat().st_size}
    tick = time.perf_counter()
    shared = plan_windows(CLIPS, 75, 37)

    class _Record:
        def __init__(self, video):
            self.id, self.path, self.fingerprint = video, f"/archive/v{video:06d}.mp4", _fingerprint(video)

    videos = [ArchiveVideo(record=_Record(v), features=_VirtualFeatures(v, args.hours), duration=3600.0,
                           windows=shared) for v in range(args.hours)]
    plan = SearchPlan(videos=videos, windows=[(v, w) for v in range(args.hours) for w in shared], fps=0.5,
                      post=PostProcess())
    planted = _planted_windows(plan, args.hours)
    result["plan_s"] = round(time.perf_counter() - tick, 1)
    queries = _queries()
    nprobes = [int(x) for x in args.nprobe.split(",")] if args.nprobe else [None]
    rows = []
    for nprobe in nprobes:
        stage = choose_coarse_stage(plan, index, candidates=args.candidates, nprobe=nprobe)
        wall, cpu, drawn, found, probe = [], [], [], 0, []
        for q in range(args.query_count):
            cpu_tick = time.process_time()  # the index search alone (the rest is window mapping and re-scoring)
            index.search(queries[q : q + 1], stage.clips_per_query, stage.nprobe)
            probe.append(time.process_time() - cpu_tick)
            _BLOCKS.clear()
            _BLOCKS["keep"] = True
            before = dict(_DRAWN)
            indexed_window_scores(plan, queries[q : q + 1], stage, candidates=args.candidates)  # draws the rows
            drawn.append(_DRAWN["wall_s"] - before["wall_s"])
            tick, cpu_tick = time.perf_counter(), time.process_time()
            looked_at, scores = indexed_window_scores(plan, queries[q : q + 1], stage, candidates=args.candidates)
            pairs = choose_candidates(scores, args.candidates)
            wall.append(time.perf_counter() - tick)
            cpu.append(time.process_time() - cpu_tick)
            _BLOCKS.clear()
            found += bool({int(looked_at[w]) for w, _ in pairs} & planted.get(q, set()))
        row = {"stage": stage.record(), **_latencies(wall, cpu),
               "index_search_cpu_ms_p50": round(1000 * float(np.percentile(probe, 50)), 1),
               "drawing_ms_p50_untimed_pass": round(1000 * float(np.percentile(drawn, 50)), 1),
               "planted_found_index": found, "load_average": [round(x, 2) for x in os.getloadavg()]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    result["runs"] = rows
    return result


def _window_recall(index, params, data, queries, per: int, candidates: int = 40) -> float:
    """What search's index path finds: the exact top-``candidates`` windows (75 clips, stride 37, within a
    "video" of CLIPS clips) among those it picks from ``per * candidates`` hits re-scored exactly, best
    first, up to RESCORED_PER_CANDIDATE windows per candidate (as ``indexed_window_scores``)."""
    import numpy as np

    from r2cli.inference.search import RESCORED_PER_CANDIDATE

    n = data.shape[0]
    starts = np.array([v + s for v in range(0, n, CLIPS) for s in range(0, CLIPS - 75 + 1, 37) if v + s + 75 <= n])
    found = []
    for q in range(queries.shape[0]):
        sims = data @ queries[q]
        window_scores = np.maximum.reduceat(np.concatenate([sims[a : a + 75] for a in starts]),
                                            np.arange(0, 75 * len(starts), 75))
        best = set(np.argsort(-window_scores, kind="stable")[:candidates].tolist())
        hits = index.search(queries[q : q + 1], per * candidates, params=params)[1][0]
        hits = hits[hits >= 0]
        picked: list[int] = []
        for clip in hits[np.argsort(-sims[hits], kind="stable")].tolist():
            for w in np.flatnonzero((starts <= clip) & (clip < starts + 75)).tolist():
                if w not in picked:
                    picked.append(w)
            if len(picked) >= RESCORED_PER_CANDIDATE * candidates:
                break
        chosen = np.array(picked)[np.argsort(-window_scores[picked], kind="stable")[:candidates]]
        found.append(len(best & set(chosen.tolist())) / candidates)
    return round(float(np.mean(found)), 3)


def clean(args) -> dict:
    root = Path(args.store)
    if not (root / MARKER).is_file():
        raise SystemExit(f"{root}: not a folder written by this benchmark ({MARKER} missing); not deleted")
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    shutil.rmtree(root)
    return {"deleted_bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("generate", "replant", "build", "query", "add", "batch", "compare", "build-virtual",
                                           "query-virtual", "add-virtual", "clean"))
    parser.add_argument("--store", default="/tmp/r2cli-archive-bench")
    parser.add_argument("--hours", type=int, default=1000)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--part", default="0/1", help="generate: write only videos v with v %% n == i (i/n)")
    parser.add_argument("--add-hours", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--nprobe", default=None, help="query: lists probed, comma-separated values for several runs")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--compare-clips", type=int, default=100_000)
    parser.add_argument("--compare-codes", default="SQ8,PQ64,PQ32,PQ64x4fs", help="compare: faiss codes to run")
    parser.add_argument("--compare-libraries", default="faiss,hnswlib,usearch", help="compare: which to run")
    parser.add_argument("--fine", action="store_true", help="also one query end to end (coarse + fine + merge)")
    parser.add_argument("--exact-recall", action="store_true", help="also the exact scan of all 100 queries")
    parser.add_argument("--query-count", type=int, default=QUERIES, help="query-virtual: the first this many of the 100")
    parser.add_argument("--codes", default=None, help="build-virtual: force these codes (a small check of a large tier)")
    parser.add_argument("--results", default=None, help="append the JSON result to this file")
    args = parser.parse_args()
    info = {"step": args.step, "hours": args.hours, "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    started = time.perf_counter()
    result = {"generate": generate, "replant": replant, "build": build, "query": query, "add": add, "batch": batch, "compare": compare,
              "build-virtual": build_virtual, "query-virtual": query_virtual,
              "add-virtual": add_virtual, "clean": clean}[args.step](args)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    # the machine is shared (see load_average): CPU seconds of this process say what the work costs
    result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    line = json.dumps({**info, **result})
    print(line, flush=True)
    if args.results:
        with open(args.results, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()
