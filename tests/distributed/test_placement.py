"""Placement of the Ray index's actors and tasks: decode always has room beside the actors, whatever
the nodes' sizes and the number of actors; what cannot run is refused in one line."""

from __future__ import annotations

import itertools

import pytest

from r2cli.distributed.placement import NodeSize, plan_actor_pool, plan_index_placement
from r2cli.errors import ClusterError


def _worst_free(nodes: list[NodeSize], actors: int, per_actor: float) -> float:
    """The most CPUs free on one node, minimised over every way Ray could place the actors."""
    best = None
    counts = range(actors + 1)
    for split in itertools.product(counts, repeat=len(nodes)):
        if sum(split) != actors or any(n * per_actor > node.cpus + 1e-9 for n, node in zip(split, nodes)):
            continue
        free = max(node.cpus - n * per_actor for n, node in zip(split, nodes))
        best = free if best is None else min(best, free)
    assert best is not None, "the actors fit in no placement"
    return best


@pytest.mark.parametrize("sizes", [(1, 1), (1,), (2, 1), (1, 1, 1), (4, 1), (0.5, 0.5), (8,), (3, 3, 2)])
@pytest.mark.parametrize("actors", [None, 1, 2, 3, 5])
def test_decode_fits_beside_the_actors_in_every_placement(sizes, actors):
    nodes = [NodeSize(cpus=float(c)) for c in sizes]
    try:
        plan = plan_index_placement(nodes, actors=actors, use_gpus=False)
    except ClusterError as exc:
        assert "\n" not in str(exc) and "actors=" in str(exc)
        return
    assert plan.actors == (actors or max(1, int(sum(sizes)) // 2))
    assert 0 < plan.actor_cpus <= 1 and 0 < plan.task_cpus <= 1
    assert _worst_free(nodes, plan.actors, plan.actor_cpus) >= plan.task_cpus - 1e-9


def test_two_actors_on_two_one_cpu_nodes():
    plan = plan_index_placement([NodeSize(1), NodeSize(1)], actors=2, use_gpus=False)
    # the old rule gave each actor 0.5 CPU and each decode task a whole one: spread over both
    # nodes, the actors left half a CPU on each, and no decode task ever started
    assert (plan.actor_cpus, plan.task_cpus) == (0.5, 0.5)


def test_gpu_actors_leave_cpus_to_decode_and_are_limited_by_gpus():
    plan = plan_index_placement([NodeSize(2, gpus=2), NodeSize(4)], actors=None, use_gpus=True)
    assert (plan.actors, plan.actor_gpus, plan.actor_cpus) == (2, 1, 0.5)
    assert plan.task_cpus > 0
    with pytest.raises(ClusterError, match=r"actors=3 needs 3 GPUs .* has 2"):
        plan_index_placement([NodeSize(2, gpus=2)], actors=3, use_gpus=True)


def test_impossible_requests_are_refused_in_one_line():
    with pytest.raises(ClusterError, match="too many for 1 CPUs"):
        plan_index_placement([NodeSize(1)], actors=500, use_gpus=False)
    with pytest.raises(ClusterError, match="no CPUs"):
        plan_index_placement([NodeSize(0, gpus=1)], actors=1, use_gpus=False)
    with pytest.raises(ClusterError, match="positive integer"):
        plan_index_placement([NodeSize(1)], actors=0, use_gpus=False)


def test_search_pool_always_starts_every_actor():
    plan = plan_actor_pool([NodeSize(1), NodeSize(1)], actors=3, use_gpus=False)
    assert plan.actors == 3 and plan.actor_cpus * 3 <= 2
    assert sum(int(1 / plan.actor_cpus + 1e-9) for _ in range(2)) >= 3
    assert plan_actor_pool([NodeSize(4)], actors=None, use_gpus=False).actor_cpus == 1.0
