"""The fine stage of search on Ray: (window, query) pairs sharded over grounding actors.

The coarse stage (CLIP cosine over the stored clip embeddings) stays on the driver: it reads
512 numbers per clip and takes well under a second per 100 video-hours. The fine stage is where
the arithmetic is; ``RayGrounder`` has ``Grounder``'s interface (``run`` and ``has_boundaries``),
so ``r2cli.inference.search.ground_windows`` uses it unchanged. All pairs of one window go to the
same actor, so each window's query-independent video side is computed once for all its queries,
and every pair's result is the batch-invariant one the local grounder gives: merging and
post-processing on the driver are then exactly the local ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from r2cli.progress import NULL_REPORTER, Reporter


class GroundingActor:
    """Holds one R2-Tuning head (``Grounder``) on a node; grounds the pairs of a shard."""

    def __init__(self, model: Any, *, device: str, batch_size: int | None, precision: str,
                 threads: int | None = None) -> None:
        import torch

        from r2cli.inference.grounding import Grounder

        if threads:
            torch.set_num_threads(threads)
        self.grounder = Grounder(model.to(device).eval(), device, batch_size=batch_size, precision=precision)

    def run(self, windows: list, queries: list, pairs: list[tuple[int, int]], fps: float) -> dict:
        return self.grounder.run(windows, queries, pairs, fps=fps)


def shard_windows(pairs: Iterable[tuple[int, int]], shards: int) -> list[list[int]]:
    """Windows split into ``shards`` groups of about equal pair counts (largest first, greedy)."""
    counts: dict[int, int] = {}
    for w, _ in pairs:
        counts[w] = counts.get(w, 0) + 1
    groups: list[list[int]] = [[] for _ in range(max(1, shards))]
    loads = [0] * len(groups)
    for w in sorted(counts, key=lambda w: (-counts[w], w)):
        target = loads.index(min(loads))
        groups[target].append(w)
        loads[target] += counts[w]
    return [sorted(group) for group in groups if group]


class RayGrounder:
    """``Grounder.run`` on a pool of Ray actors (started on first use, one per GPU or per CPU pair)."""

    def __init__(self, grounder: Any, *, actors: int | None = None) -> None:
        self.local = grounder
        self.has_boundaries = grounder.has_boundaries
        self._actors_wanted = actors
        self._actors: list[Any] = []

    def _pool(self) -> list[Any]:
        import ray

        if self._actors:
            return self._actors
        from r2cli.distributed.placement import cluster_nodes, plan_actor_pool

        # every actor must start (a shard sent to one that never starts waits forever): CPUs per
        # actor from the nodes' sizes, or a one-line refusal (r2cli.distributed.placement)
        placement = plan_actor_pool(cluster_nodes(ray), actors=self._actors_wanted,
                                    use_gpus=str(self.local.device).startswith("cuda"))
        count = placement.actors
        if placement.actor_gpus:
            options, device, threads = {"num_gpus": 1}, "cuda", None
        else:
            options, device, threads = {"num_cpus": placement.actor_cpus}, "cpu", 1
        model = ray.put(self.local.model.to("cpu"))
        actor = ray.remote(max_restarts=3, max_task_retries=3)(GroundingActor)
        self._actors = [actor.options(**options).remote(model, device=device, batch_size=self.local.batch_size,
                                                       precision=self.local.precision, threads=threads)
                        for _ in range(count)]
        return self._actors

    def run(self, windows: list[Any], queries: list[Any], pairs: Iterable[tuple[int, int]], *, fps: float,
            reporter: Reporter = NULL_REPORTER, stage: str = "grounding") -> dict:
        import numpy as np
        import ray

        pairs = list(pairs)
        if not pairs:
            return {}
        pool = self._pool()
        queries_cpu = ray.put([q.detach().cpu() for q in queries])
        jobs = []
        for shard, group in enumerate(shard_windows(pairs, len(pool))):
            local = {w: i for i, w in enumerate(group)}
            shard_pairs = [(local[w], q) for w, q in pairs if w in local]
            arrays = [np.ascontiguousarray(windows[w]) for w in group]  # read from the store's memory maps
            ref = pool[shard % len(pool)].run.remote(arrays, queries_cpu, shard_pairs, fps)
            jobs.append((ref, group, len(shard_pairs)))
        reporter.begin(stage, total=len(pairs), unit="pairs")
        results: dict = {}
        try:
            for ref, group, count in jobs:
                for (local_w, q), output in ray.get(ref).items():
                    results[(group[local_w], q)] = output
                reporter.advance(stage, count)
        finally:
            reporter.end(stage)
        return results
