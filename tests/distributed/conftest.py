"""Fixtures for the Ray tests: one local instance and one two-node loopback cluster per session."""

from __future__ import annotations

import pytest

from tests.distributed.raykit import start_cluster, stop_cluster

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'r2cli[ray]')")


@pytest.fixture(scope="session")
def ray_cluster():
    """A running two-node cluster on the loopback range; stopped after the session."""
    if ray.is_initialized():
        ray.shutdown()
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        stop_cluster(cluster.address, cluster.temp_dir)
