"""Search by picture over 1,000 video-hours (#20.2, #19.1): the coarse index against the exact scan.

One image query's coarse stage and moment ranking, as ``r2cli search --image`` runs them
(``r2cli.inference.visual_index.picture_scores`` then ``r2cli.app.search_visual.rank_picture_moments``),
on both paths, over a synthetic archive written through the feature store's own writer: one file per
video-hour (1,800 clips at 0.5 fps) of real-size clip embeddings ([1800, 512] fp16, random unit
vectors drawn from the video's number; token-sized layers, which a picture search never reads).
The CLIP tower and the catalog are left out: both paths pay them alike.

Two queries (the still's embedding stands in as a unit vector):

- ``planted``: runs of clips at a chosen cosine to the query are planted in 10 videos (one of 30
  clips at ~0.93, others of 2 to 8 clips at 0.80 to 0.90), so the margin rule has real moments to
  find; random clips reach ~0.22.
- ``unplanted``: a query nothing was planted for: its moments are the archive's best random clips
  (~0.22), so thousands of clips lie within the margin; the hard case for the index.

Steps (results are JSON lines appended to ``--results``):

    python benchmarks/visual_index_bench.py generate --hours 1000 --store /tmp/r2cli-visual-bench
    python benchmarks/visual_index_bench.py build    --hours 1000 --store /tmp/r2cli-visual-bench
    python benchmarks/visual_index_bench.py query    --hours 1000 --store /tmp/r2cli-visual-bench [--repeats 3]
    python benchmarks/visual_index_bench.py clean    --store /tmp/r2cli-visual-bench

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
FPS = 0.5
MARKER = ".r2cli-visual-bench"
# (video, first clip, clips, cosine to the planted query)
PLANTS = ((417, 900, 30, 0.93), (88, 100, 6, 0.90), (733, 1500, 3, 0.88), (5, 10, 8, 0.87), (250, 1700, 2, 0.86),
          (501, 0, 4, 0.85), (612, 1794, 6, 0.84), (808, 333, 5, 0.83), (950, 1200, 2, 0.82), (999, 50, 3, 0.80))


def _settings():
    from r2cli.features.store import FeatureSettings

    return FeatureSettings(clip_model="ViT-B-32", weights_id="bench/visual-random", fps=FPS, image_size=224, k=4)


def _fingerprint(video: int) -> str:
    return f"blake2b:{video:064x}"


def _queries():
    """``[2, D]``: the planted query and the unplanted one (unit vectors)."""
    import numpy as np

    rng = np.random.default_rng(20_2)
    queries = rng.standard_normal((2, DIMS)).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def _embed(video: int, planted_query):
    import numpy as np

    rng = np.random.default_rng(video)
    embed = rng.standard_normal((CLIPS, DIMS), dtype=np.float32)
    embed /= np.linalg.norm(embed, axis=1, keepdims=True)
    for where, first, clips, cosine in PLANTS:
        if where != video:
            continue
        noise = embed[first : first + clips] - (embed[first : first + clips] @ planted_query)[:, None] * planted_query
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)  # orthogonal to the query
        embed[first : first + clips] = cosine * planted_query[None, :] + np.sqrt(1 - cosine**2) * noise
    return embed


def _machine() -> dict:
    import faiss
    import numpy as np

    return {"machine": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "faiss": faiss.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                        time.gmtime())}


def generate(args) -> dict:
    import numpy as np

    from r2cli.features.store import FeatureStore

    root = Path(args.store)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("r2cli benchmarks/visual_index_bench.py synthetic archive\n")
    store, settings = FeatureStore(root), _settings()
    planted = _queries()[0]
    layers = np.zeros((CLIPS, 4, 1, 1), dtype=np.float16)
    stamps = (np.arange(CLIPS) + 0.5) / FPS
    started, written = time.perf_counter(), 0
    for video in range(args.hours):
        if store.exists(_fingerprint(video), settings):
            continue
        store.put(_fingerprint(video), settings, layers, _embed(video, planted), stamps, duration=CLIPS / FPS)
        written += 1
    return {"videos_written": written, "seconds": round(time.perf_counter() - started, 1),
            "store_bytes": sum(p.stat().st_size for p in root.rglob("*.safetensors"))}


def build(args) -> dict:
    from r2cli.features.coarse_index import LiveSet, index_root, update_index
    from r2cli.features.store import FeatureStore

    root = Path(args.store)
    store, settings = FeatureStore(root), _settings()
    live = [LiveSet(_fingerprint(v), store.relpath(_fingerprint(v), settings), CLIPS) for v in range(args.hours)]
    report = update_index(root, settings.key(), live, rebuild=True)  # the default min_clips
    folder = index_root(root, settings.key()) / str(report.generation)
    return {"report": report.to_dict(), "index_bytes": sum(p.stat().st_size for p in folder.iterdir())}


class _Record:
    """The catalog fields the moment ranking reads."""

    def __init__(self, video: int) -> None:
        self.id, self.path, self.duration = video, f"/archive/v{video:06d}.mp4", CLIPS / FPS


def _top(frame) -> list[tuple]:
    return [(int(v), float(a), float(b), round(float(s), 5))
            for v, a, b, s in zip(frame["video_id"], frame["start_s"], frame["end_s"], frame["score"])]


def query(args) -> dict:
    import numpy as np

    from r2cli.app.search_visual import PictureQuery, rank_picture_moments
    from r2cli.features.coarse_index import load_index
    from r2cli.features.store import FeatureStore
    from r2cli.inference.search import coarse_stage_for
    from r2cli.inference.visual_index import hits_per_query, picture_scores

    root = Path(args.store)
    store, settings = FeatureStore(root), _settings()
    tick = time.perf_counter()
    found = [(_Record(v), store.get(_fingerprint(v), settings)) for v in range(args.hours)]
    open_s = time.perf_counter() - tick
    stored = [features for _, features in found]
    queries = _queries()
    names = ("planted", "unplanted")
    results: dict = {"hours": args.hours, "clips": args.hours * CLIPS, "open_features_s": round(open_s, 2),
                     "top_k": args.top_k, "margin": args.margin, **_machine()}
    for q, name in enumerate(names):
        query_embed = queries[q : q + 1]
        picture = [PictureQuery(qid="q1", kind="image", text=name, path=Path(name))]
        runs: dict = {"index": [], "exact": []}
        tops: dict = {}
        detail: dict = {}
        for repeat in range(args.repeats):
            for path in ("exact", "index"):
                tick = time.perf_counter()
                stage = None
                if path == "index":
                    index = load_index(root, settings.key())  # a search loads it every time
                    stage = coarse_stage_for(stored, index, clips_per_query=hits_per_query(args.top_k))
                    assert stage.path == "index", stage.reason
                load_s = time.perf_counter() - tick
                scores = picture_scores(query_embed, stored, stage, margin=args.margin, min_run=1, top_k=args.top_k)
                coarse_s = time.perf_counter() - tick - load_s
                moments, _ = rank_picture_moments(scores.similarities, found, picture, fps=FPS, margin=args.margin,
                                                  min_run=1, top_k=args.top_k, min_score=None, run_id="bench",
                                                  model_id="bench", preset=None)
                total_s = time.perf_counter() - tick
                runs[path].append({"load_s": round(load_s, 3), "coarse_s": round(coarse_s, 3),
                                   "total_s": round(total_s, 3)})
                tops[path] = _top(moments)
                detail[path] = {**scores.counts()}
                if stage is not None:
                    detail[path].update(nprobe=stage.nprobe, factory=stage.index.spec.factory)
        exact_top, index_top = tops["exact"], tops["index"]
        same_rank = sum(a == b for a, b in zip(exact_top, index_top))
        median = {path: float(np.median([r["total_s"] for r in runs[path]])) for path in runs}
        results[name] = {
            "runs": runs, "detail": detail, "moments_exact": len(exact_top), "moments_index": len(index_top),
            "top_k_same_set": len(set(exact_top) & set(index_top)), "top_k_same_rank": same_rank,
            "top1_same": bool(exact_top[:1] == index_top[:1]),
            "median_total_s": {path: round(value, 3) for path, value in median.items()},
            "speedup": round(median["exact"] / median["index"], 1),
            "exact_top": exact_top[:3], "index_top": index_top[:3],
        }
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return results


def clean(args) -> dict:
    root = Path(args.store)
    if not (root / MARKER).is_file():
        raise SystemExit(f"{root}: not a folder this benchmark made (no {MARKER}); refusing to delete it")
    shutil.rmtree(root)
    return {"removed": str(root)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("generate", "build", "query", "clean"))
    parser.add_argument("--hours", type=int, default=1000, help="video-hours (one video per hour)")
    parser.add_argument("--store", default="/tmp/r2cli-visual-bench", help="feature store folder")
    parser.add_argument("--top-k", type=int, default=10, help="moments kept per query (search's default)")
    parser.add_argument("--margin", type=float, default=0.1, help="--match-margin (search's default)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each path (the median is reported)")
    parser.add_argument("--results", default=None, help="append the JSON result here")
    args = parser.parse_args()
    result = {"step": args.step, **{"generate": generate, "build": build, "query": query, "clean": clean}[args.step](args)}
    line = json.dumps(result)
    print(line)
    if args.results:
        with open(args.results, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()
