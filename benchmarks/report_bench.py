"""Time and size of `r2cli report` per 1,000 moments, and how fast its pages open in headless Chromium.

A search run folder is synthesized with the real output writers (moments.parquet, saliency.parquet
and run.json in the schemas `r2cli search` writes): QUERIES queries x MOMENTS moments each, spread
over VIDEOS generated videos (ffmpeg lavfi, 320x180, 25 fps, SECONDS long), moments of 2-20 s at
random places, saliency at 0.5 clips/s for every (query, video) pair that has moments. Then
`build_report` runs on it and, when Debian's chromium + chromium-driver and selenium are present,
the index, the first query page and the first video page are opened and timed (load event).

Usage:  python benchmarks/report_bench.py [--queries 100] [--moments 1000] [--videos 50]
                                          [--seconds 120] [--page-size 100] [--jobs N] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_media(folder: Path, videos: int, seconds: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    colors = ["red", "blue", "green", "yellow", "purple", "teal", "orange", "white"]
    paths = []
    for i in range(videos):
        path = folder / f"video {i:03d}.mp4"
        if not path.exists():
            c1, c2 = colors[i % len(colors)], colors[(i + 3) % len(colors)]
            half = seconds / 2
            subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                            "-f", "lavfi", "-i", f"color=c={c1}:s=320x180:r=25:d={half}",
                            "-f", "lavfi", "-i", f"color=c={c2}:s=320x180:r=25:d={half}",
                            "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0,"
                            "drawbox=x='mod(t*60,iw-40)':y=70:w=40:h=40:c=white:t=fill",
                            "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", str(path)],
                           check=True)
        paths.append(path)
    return paths


def make_run(folder: Path, media: list[Path], queries: int, moments: int, seconds: float, seed: int = 0) -> None:
    import numpy as np
    import pandas as pd

    from r2cli.outputs.runs import write_manifest
    from r2cli.outputs import write_table

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows, saliency = [], []
    fps = 0.5
    clips = int(seconds * fps)
    for q in range(queries):
        qid, text = f"q{q + 1}", f"query number {q + 1}: a scene"
        video = rng.integers(0, len(media), moments)
        length = rng.uniform(2, 20, moments)
        start = rng.uniform(0, seconds - length)
        score = np.sort(rng.uniform(0, 1, moments))[::-1]
        for rank in range(moments):
            rows.append({"run_id": "bench", "query_id": qid, "query": text, "video_id": int(video[rank]) + 1,
                         "path": str(media[video[rank]]), "start_s": float(start[rank]),
                         "end_s": float(start[rank] + length[rank]), "score": float(score[rank]),
                         "rank_in_query": rank + 1, "rank_in_video": 1, "model": "bench", "preset": "qvhighlights"})
        for v in sorted(set(video.tolist())):
            saliency.append(pd.DataFrame({
                "run_id": "bench", "query_id": qid, "video_id": v + 1, "path": str(media[v]),
                "clip_index": np.arange(clips, dtype=np.int32), "clip_start_s": np.arange(clips) / fps,
                "clip_end_s": (np.arange(clips) + 1) / fps, "score": rng.normal(0, 1, clips).astype(np.float32)}))
    write_table("moments", rows, folder / "moments.parquet")
    write_table("saliency", pd.concat(saliency, ignore_index=True), folder / "saliency.parquet")
    write_manifest(folder, {
        "run_id": "bench", "kind": "search", "status": "done", "settings": {"top_k": moments},
        "queries": [{"qid": f"q{q + 1}", "query": f"query number {q + 1}: a scene"} for q in range(queries)],
        "model": {"checkpoint_id": "bench", "preset": "qvhighlights", "clip_weights": "none"},
        "counts": {"queries": queries, "moments": queries * moments}, "skipped": [],
    })


def open_pages(report: Path) -> dict[str, float] | str:
    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver_path:
        return "chromium/chromium-driver not installed"
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return "selenium not installed"
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    timings = {}
    try:
        for name in ("index.html", "q001.html", "v001.html"):
            driver.get((report / name).as_uri())
            timings[name] = driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;") / 1000
    finally:
        driver.quit()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--moments", type=int, default=1000)
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--work", type=Path, default=None, help="keep media and outputs here (default: a temp folder)")
    args = parser.parse_args()

    from r2cli.report.build import build_report

    work = args.work or Path(tempfile.mkdtemp(prefix="r2cli-report-bench-"))
    tick = time.perf_counter()
    media = make_media(work / "media", args.videos, args.seconds)
    make_run(work / "run", media, args.queries, args.moments, args.seconds)
    setup = time.perf_counter() - tick
    result = build_report(work / "run", work / "run" / "report", page_size=args.page_size, jobs=args.jobs, force=True)
    total = args.queries * args.moments
    per_k = 1000 / total
    pages = open_pages(result.out_dir)
    report = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "queries": args.queries, "moments_per_query": args.moments, "moments": total, "videos": args.videos,
        "video_seconds": args.seconds, "setup_s": round(setup, 1),
        "build_s": round(result.seconds, 2), "stages_s": result.timings,
        "build_s_per_1000_moments": round(result.seconds * per_k, 3),
        "bytes": result.bytes, "mb_per_1000_moments": round(result.bytes * per_k / 1e6, 3),
        "pages": result.pages, "thumbnails": result.thumbnails, "plots": result.plots,
        "largest_page_kb": round(max(p.stat().st_size for p in result.out_dir.glob("*.html")) / 1e3, 1),
        "page_load_s": pages,
    }
    print(json.dumps(report, indent=2))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
