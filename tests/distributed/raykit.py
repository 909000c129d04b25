"""A real Ray cluster on the loopback range for the tests: `ray start --head` on 127.0.0.2 and a
second node process on 127.0.0.3 (started with `ray start --address`). 127.0.0.1 itself is not
used because Ray replaces it with the host's network address.

When the tests run as root with `unshare`, the second node runs in its own mount namespace with a
tmpfs over ``hidden`` (a folder that exists on the driver): from that node the folder is other
storage, which is how a node that does not mount the shared store looks.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HEAD_IP = "127.0.0.2"
NODE_IP = "127.0.0.3"
# loopback-only test clusters: no token authentication, no usage reports
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def ray_executable() -> str:
    return str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RayCluster:
    address: str  # HEAD_IP:port
    hidden: Path | None  # a folder the second node sees as other storage (None: unshare unavailable)
    nodes: int


def start_cluster(num_cpus_per_node: int = 1) -> RayCluster:
    env = {**os.environ, **RAY_ENV}
    os.environ.update(RAY_ENV)
    ray = ray_executable()
    port = free_port()
    subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120)
    head = subprocess.run([ray, "start", "--head", f"--port={port}", f"--node-ip-address={HEAD_IP}",
                           f"--num-cpus={num_cpus_per_node}", "--include-dashboard=false", "--disable-usage-stats"],
                          capture_output=True, text=True, env=env, timeout=180)
    if head.returncode != 0:
        raise RuntimeError(f"ray start --head failed: {head.stderr[-2000:]}")
    address = f"{HEAD_IP}:{port}"
    node_args = [ray, "start", f"--address={address}", f"--node-ip-address={NODE_IP}",
                 f"--num-cpus={num_cpus_per_node}", "--disable-usage-stats"]
    hidden: Path | None = Path(tempfile.mkdtemp(prefix="r2cli-hidden-"))
    if os.geteuid() == 0 and shutil.which("unshare"):
        script = f"mount -t tmpfs tmpfs {hidden} && exec {' '.join(node_args)}"
        node = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env,
                              timeout=180)
    else:
        node = subprocess.run(node_args, capture_output=True, text=True, env=env, timeout=180)
        hidden = None
    if node.returncode != 0:
        stop_cluster()
        raise RuntimeError(f"ray start --address failed: {node.stderr[-2000:]}")
    return RayCluster(address=address, hidden=hidden, nodes=2)


def stop_cluster() -> None:
    subprocess.run([ray_executable(), "stop", "--force"], capture_output=True, env={**os.environ, **RAY_ENV},
                   timeout=120)
    time.sleep(0.5)
