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
    temp_dir: str = ""  # this cluster's own Ray temp folder (how its processes are told from others')


def start_cluster(num_cpus_per_node: int = 1) -> RayCluster:
    """Start a two-node loopback cluster. Other Ray instances on the machine (other test sessions,
    other people's clusters) are left alone: ``stop_cluster`` stops only this one's processes."""
    env = {**os.environ, **RAY_ENV}
    os.environ.update(RAY_ENV)
    ray = ray_executable()
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="r2cli-ray-")
    address = f"{HEAD_IP}:{port}"
    head = subprocess.run([ray, "start", "--head", f"--port={port}", f"--node-ip-address={HEAD_IP}",
                           f"--temp-dir={temp_dir}",
                           f"--num-cpus={num_cpus_per_node}", "--include-dashboard=false", "--disable-usage-stats"],
                          capture_output=True, text=True, env=env, timeout=180)
    if head.returncode != 0:
        stop_cluster(address, temp_dir)
        raise RuntimeError(f"ray start --head failed: {head.stderr[-2000:]}")
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
        stop_cluster(address, temp_dir)
        raise RuntimeError(f"ray start --address failed: {node.stderr[-2000:]}")
    return RayCluster(address=address, hidden=hidden, nodes=2, temp_dir=temp_dir)


def cluster_processes(address: str, temp_dir: str) -> list[int]:
    """Ids of the processes of one cluster: those whose command line names its GCS address
    (raylets, workers, agents, the second node) or its own temp folder (the GCS server)."""
    port = address.rsplit(":", 1)[-1]
    marks = [address.encode(), f"--gcs_server_port={port}".encode()] + ([temp_dir.encode()] if temp_dir else [])
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read()
        except OSError:
            continue
        if any(mark in command for mark in marks):
            found.append(int(entry))
    return found


def stop_cluster(address: str, temp_dir: str = "") -> None:
    """Stop this cluster's processes (never `ray stop`, which stops every Ray instance of the machine)."""
    import signal

    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        pids = cluster_processes(address, temp_dir)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if os.path.exists(f"/proc/{pid}") and not _zombie(pid)]
            time.sleep(0.1)
        if not pids:
            break
    if temp_dir:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True
