"""Connecting to Ray: a real two-node cluster on loopback, a dead address, a node without the store."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from r2cli.errors import ClusterError, MissingDependencyError, UsageError


def test_joins_a_two_node_cluster_and_checks_the_store(ray_cluster, tmp_path):
    from r2cli.distributed.session import ray_session

    with ray_session(ray_cluster.address, shared_paths=[tmp_path]) as info:
        assert info.nodes == 2 and info.cpus == 2.0 and not info.started
    assert not list(tmp_path.iterdir()), "the probe files were not cleaned up"


def test_a_node_that_does_not_see_the_store_is_named(ray_cluster):
    from r2cli.distributed.session import ray_session

    if ray_cluster.hidden is None:
        pytest.skip("needs root and unshare to give one node its own mount namespace")
    with pytest.raises(ClusterError) as caught:
        with ray_session(ray_cluster.address, shared_paths=[ray_cluster.hidden]):
            pass
    message = str(caught.value)
    assert f"(127.0.0.3) cannot use {ray_cluster.hidden}: it is not the same storage as on the driver" in message


def test_dead_address_fails_fast_in_one_line():
    from r2cli.distributed.session import ray_session
    from tests.distributed.raykit import free_port

    started = time.monotonic()
    with pytest.raises(ClusterError) as caught:
        with ray_session(f"127.0.0.2:{free_port()}"):
            pass
    assert time.monotonic() - started < 10
    assert str(caught.value).startswith("cannot reach the Ray cluster at 127.0.0.2:")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("address", ["", "nowhere", "host:port", "ray://"])
def test_bad_addresses_are_usage_errors(address):
    from r2cli.distributed.session import ray_session

    with pytest.raises(UsageError, match="--ray must be local, auto, HOST:PORT or ray://HOST:PORT"):
        with ray_session(address):
            pass


def test_ray_not_installed_is_one_line():
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"
        "from r2cli.distributed.session import import_ray\n"
        "from r2cli.errors import MissingDependencyError\n"
        "try:\n    import_ray()\nexcept MissingDependencyError as exc:\n    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == '--ray needs Ray, which is not installed: pip install "r2cli[ray]"'


def test_address_comes_from_the_flag_or_the_environment(monkeypatch):
    from r2cli.distributed.session import RAY_ADDRESS_ENV, resolve_ray_address

    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    assert resolve_ray_address(None) is None
    monkeypatch.setenv(RAY_ADDRESS_ENV, "10.1.2.3:6379")
    assert resolve_ray_address(None) == "10.1.2.3:6379"
    assert resolve_ray_address("local") == "local"
