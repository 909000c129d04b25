"""How many CPUs (in Ray's accounting) each Ray task and actor asks for, decided from the nodes' sizes.

Ray starts a task or an actor only on a node with the CPUs it asks for free. The index pipeline
runs two kinds side by side: CLIP actors that live for the whole run, and decode (and assembly)
tasks that come and go. If the actors took so much of every node that no node has a decode task's
CPUs free, nothing ever decodes and the run waits forever (1-CPU nodes with ``actors=2``: half a
CPU per actor, one per node, and decode tasks asking for a whole CPU).

The rule here makes that impossible. The actors together ask for at most half of the cluster's
CPUs; the rest, C - A, is free on *some* node to at least (C - A) / N, whatever nodes Ray put the
actors on (N nodes share C - A, so the freest has at least the average). A decode task asks for no
more than that, so one always runs. Requests are Ray's bookkeeping, not limits: a task given 0.5
CPU still uses every thread it starts. What cannot be satisfied (more GPU actors than GPUs,
actors too many to get a measurable share) is refused with one line naming the limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from r2cli.errors import ClusterError

_GRAIN = 1e-4  # Ray accounts resources in units of 1/10,000
MIN_ACTOR_CPUS = 0.01  # below this an actor's share is meaningless: refuse instead


@dataclass(frozen=True)
class NodeSize:
    """One alive node's resources."""

    cpus: float
    gpus: float = 0.0


@dataclass(frozen=True)
class Placement:
    """What each worker of the index pipeline asks Ray for."""

    actors: int  # CLIP actors in the pool
    actor_cpus: float  # CPUs each actor asks for
    actor_gpus: int  # GPUs each actor asks for (0 or 1)
    task_cpus: float  # CPUs each decode and assembly task asks for


def _down(value: float) -> float:
    return math.floor(value / _GRAIN + 1e-9) * _GRAIN


def _fitting_share(nodes: Sequence[NodeSize], pool: int, cap: float) -> tuple[float, int]:
    """The largest CPU share <= ``cap`` at which ``pool`` actors fit on the nodes, and how many fit.

    Only shares ``cap`` and node size / m can be the largest that fits (a smaller one fits no more).
    """
    candidates = {_down(cap)} | {_down(n.cpus / m) for n in nodes if n.cpus > 0 for m in range(1, pool + 1)}
    best, most = 0.0, 0
    for share in sorted((c for c in candidates if 0 < c <= cap + 1e-12), reverse=True):
        fits = sum(math.floor(n.cpus / share + 1e-9) for n in nodes if n.cpus > 0)
        if fits >= pool:
            return share, fits
        most = max(most, fits)
    return best, most


def cluster_nodes(ray_module) -> list[NodeSize]:
    """The alive nodes of the connected cluster and their CPU and GPU counts."""
    nodes = []
    for node in ray_module.nodes():
        if node.get("Alive"):
            resources = node.get("Resources", {})
            nodes.append(NodeSize(cpus=float(resources.get("CPU", 0.0)), gpus=float(resources.get("GPU", 0.0))))
    return nodes


def plan_index_placement(nodes: Sequence[NodeSize], *, actors: int | None, use_gpus: bool) -> Placement:
    """CPUs and GPUs for the index pipeline's CLIP actors and decode tasks on these nodes.

    ``actors`` None: one per GPU (``use_gpus``), else half the cluster's CPUs (at least one).

    Raises:
        ClusterError: the nodes cannot run the request (the message names the limit).
    """
    if actors is not None and (isinstance(actors, bool) or not isinstance(actors, int) or actors < 1):
        raise ClusterError(f"actors must be a positive integer, got {actors!r}")
    cpu_nodes = [n for n in nodes if n.cpus > 0]
    total = sum(n.cpus for n in cpu_nodes)
    if not cpu_nodes or total <= 0:
        raise ClusterError("the Ray cluster has no CPUs: decode tasks cannot run anywhere")
    gpus = int(sum(math.floor(n.gpus) for n in nodes)) if use_gpus else 0
    if use_gpus and gpus:
        pool = actors or gpus
        if pool > gpus:
            raise ClusterError(f"actors={pool} needs {pool} GPUs (one per CLIP actor); the cluster has {gpus}")
        # a GPU node's actors take at most half of its CPUs together, so decode fits beside them
        per_actor = _down(min(1.0, min(n.cpus / (2 * math.floor(n.gpus)) for n in nodes if n.gpus >= 1)))
        gpu_each = 1
    else:
        pool = actors or max(1, int(total) // 2)
        per_actor, _ = _fitting_share(cpu_nodes, pool, min(1.0, total / 2 / pool))
        gpu_each = 0
        if per_actor < MIN_ACTOR_CPUS:
            raise ClusterError(
                f"actors={pool} is too many for {total:g} CPUs: each CLIP actor would get under "
                f"{MIN_ACTOR_CPUS} CPU (at most {int(total / 2 / MIN_ACTOR_CPUS)} actors fit)")
    task_cpus = _down(min(1.0, (total - pool * per_actor) / len(cpu_nodes)))
    if task_cpus < _GRAIN:
        raise ClusterError(f"actors={pool} leave no CPU of the cluster's {total:g} to the decode tasks")
    return Placement(actors=pool, actor_cpus=per_actor, actor_gpus=gpu_each, task_cpus=task_cpus)


def plan_actor_pool(nodes: Sequence[NodeSize], *, actors: int | None, use_gpus: bool) -> Placement:
    """CPUs and GPUs for a pool of actors that run alone (search's grounding actors): every actor
    must start, or the shards sent to it would wait forever.

    ``actors`` None: one per GPU (``use_gpus``), else half the cluster's CPUs (at least one).

    Raises:
        ClusterError: the nodes cannot hold the pool (the message names the limit).
    """
    if actors is not None and (isinstance(actors, bool) or not isinstance(actors, int) or actors < 1):
        raise ClusterError(f"actors must be a positive integer, got {actors!r}")
    total = sum(n.cpus for n in nodes)
    gpus = int(sum(math.floor(n.gpus) for n in nodes)) if use_gpus else 0
    if use_gpus and gpus:
        pool = actors or gpus
        if pool > gpus:
            raise ClusterError(f"actors={pool} needs {pool} GPUs (one per actor); the cluster has {gpus}")
        return Placement(actors=pool, actor_cpus=0.0, actor_gpus=1, task_cpus=0.0)
    pool = actors or max(1, int(total) // 2)
    per_actor, _ = _fitting_share(nodes, pool, min(1.0, total / pool))
    if per_actor < MIN_ACTOR_CPUS:
        raise ClusterError(f"actors={pool} is too many for {total:g} CPUs: each actor would get under "
                           f"{MIN_ACTOR_CPUS} CPU")
    return Placement(actors=pool, actor_cpus=per_actor, actor_gpus=0, task_cpus=0.0)
