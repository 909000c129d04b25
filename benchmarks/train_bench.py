"""QVHighlights-shaped training throughput of the R2-Tuning head (a benchmark, not a test).

Random fp16 features of the real shapes (video T=75 clips x k=4 layers x P=50 tokens x 768, query
L in [12, 28] tokens x 4 x 512, one window per pair) go through r2cli's own collate and training step
(AdamW, official padding, clip 35; optional fp16 autocast + GradScaler) with the QVHighlights preset
head (dims 256, 2.84 M parameters). Prints one JSON line with iterations/s and pairs/s.

    python benchmarks/train_bench.py --device cpu --batch-size 8 --iterations 5
    python benchmarks/train_bench.py --device cuda --amp --batch-size 128 --iterations 50
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--amp", action="store_true", help="fp16 autocast + GradScaler (CUDA only)")
    parser.add_argument("--batch-size", type=int, default=None, help="pairs per iteration (default 128 on CUDA, 8 on CPU)")
    parser.add_argument("--iterations", type=int, default=None, help="timed iterations (default 50 CUDA, 5 CPU)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--clips", type=int, default=75, help="clips per video (QVHighlights: 75)")
    parser.add_argument("--preset", default="qvhighlights", help="preset whose head and recipe to use")
    parser.add_argument("--collate-each-step", action="store_true",
                        help="collate numpy samples every iteration (measures the data path too)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from r2cli.model import build_model, load_preset
    from r2cli.train import loop
    from r2cli.train.data import Sample, collate

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if args.amp and not cuda:
        parser.error("--amp needs --device cuda")
    batch_size = args.batch_size or (128 if cuda else 8)
    iterations = args.iterations or (50 if cuda else 5)
    preset = load_preset(args.preset)
    config = preset.model
    rng = np.random.default_rng(0)
    samples = []
    for index in range(batch_size):
        length = int(rng.integers(12, 29))
        start = float(rng.integers(0, args.clips - 10))
        samples.append(Sample(
            key=str(index),
            video=rng.standard_normal((args.clips, config.k, config.num_tokens, config.video_width), dtype=np.float32).astype(np.float16),
            query=rng.standard_normal((length, config.k, config.query_width), dtype=np.float32).astype(np.float16),
            saliency=np.concatenate([np.zeros(int(start)), np.ones(5), np.zeros(args.clips - int(start) - 5)]).astype(np.float32),
            pos_clip=int(start) + 2, boundary=np.array([[start * 2, start * 2 + 10]], np.float32), fps=0.5))
    loop.seed_everything(0)
    model = build_model(config).to(args.device)
    optimizer = loop.make_optimizer(model, preset.train.lr, preset.train.weight_decay)
    scaler = loop.make_scaler(args.amp)
    fixed = collate(samples).to(args.device)

    def step():
        batch = collate(samples).to(args.device, non_blocking=True) if args.collate_each_step else fixed
        return loop.train_step(model, batch, optimizer, scaler, lr=preset.train.lr, grad_clip=preset.train.grad_clip,
                               amp=args.amp)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(iterations):
        result = step()
    sync()
    seconds = time.perf_counter() - started
    record = {
        "benchmark": "train_step", "preset": preset.name, "device": args.device,
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "amp": args.amp, "batch_size": batch_size, "clips": args.clips, "iterations": iterations,
        "collate_each_step": args.collate_each_step, "threads": torch.get_num_threads(),
        "seconds": round(seconds, 3), "iterations_per_s": round(iterations / seconds, 3),
        "pairs_per_s": round(iterations * batch_size / seconds, 1), "last_loss": round(result.total, 4),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None,
        "torch": torch.__version__, "python": sys.version.split()[0],
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
