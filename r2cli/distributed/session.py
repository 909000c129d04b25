"""Connecting to Ray: ``--ray local`` starts an instance for this machine, ``--ray HOST:PORT``
joins a running cluster; either way every node must see the workspace's store.

Ray itself blocks for minutes retrying an address that does not answer, so the address is probed
with a plain TCP connection first and a dead one fails at once, in one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r2cli.errors import ClusterError, MissingDependencyError, UsageError

RAY_ADDRESS_ENV = "R2CLI_RAY_ADDRESS"  # where --ray is not given, this selects the cluster
LOCAL = "local"  # --ray local: start a Ray instance on this machine for this command
INSTALL_HINT = 'pip install "r2cli[ray]"'
_PROBE_TIMEOUT_S = 5.0
# --ray local binds to the loopback range; Ray rewrites 127.0.0.1 itself to the host's network address
LOCAL_NODE_IP = "127.0.0.2"


def resolve_ray_address(flag: str | None) -> str | None:
    """The Ray address a command uses: the flag, else ``$R2CLI_RAY_ADDRESS``, else None (no Ray)."""
    value = flag if flag is not None else os.environ.get(RAY_ADDRESS_ENV)
    value = (value or "").strip()
    return value or None


def ray_address_rule(value: Any) -> str | None:
    """``local``, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``."""
    if not isinstance(value, str) or not value.strip():
        return "must be local, auto, HOST:PORT or ray://HOST:PORT"
    if value in (LOCAL, "auto"):
        return None
    _, port = _split_address(value)
    return None if port is not None else "must be local, auto, HOST:PORT or ray://HOST:PORT"


def _split_address(address: str) -> tuple[str, int | None]:
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return rest, None
    return host.strip("[]"), int(port)


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it.

    Raises:
        MissingDependencyError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def probe_address(address: str, timeout: float = _PROBE_TIMEOUT_S) -> None:
    """Fail at once when nothing listens at a cluster address.

    Raises:
        ClusterError: the host does not resolve or nothing accepts connections on the port.
    """
    host, port = _split_address(address)
    if port is None:
        raise UsageError(f"--ray must be local, auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {reason} (start it with "
                           f"`ray start --head`, or use --ray local)") from None


@dataclass(frozen=True)
class RayInfo:
    """The cluster a command runs on."""

    address: str  # as given: "local" or the cluster address
    nodes: int  # alive nodes
    cpus: float  # CPUs in the cluster
    gpus: float  # GPUs in the cluster
    started: bool  # True when this command started the instance (--ray local)


RAY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.serve")  # those that do not propagate to "ray"


@contextlib.contextmanager
def ray_output_to(log_file: Path) -> Iterator[logging.Handler]:
    """Send what Ray writes to ``log_file`` instead of the terminal, for the duration of a ``with`` block.

    Ray talks on three channels: its Python loggers (``ray``, ``ray.data``: execution plans, progress
    lines), Python warnings (deprecations) and the file descriptor 2 of this process and of the
    processes it starts (the C++ core worker's notices, the token-auth notice). All three go to
    ``log_file``; ``sys.stderr`` is given a copy of the terminal's descriptor, so r2cli's own progress
    and errors still show. Ray Data's progress bars are turned off (r2cli shows its own). Yields the
    file's logging handler (``attach_ray_loggers`` it again after anything that resets Ray's loggers).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    try:  # Ray Data configures its loggers when first imported: import it before they are redirected
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
    except ImportError:  # pragma: no cover - Ray without its data extra
        pass
    handle = open(log_file, "a", encoding="utf-8", errors="backslashreplace", buffering=1)
    handler = logging.StreamHandler(handle)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved_loggers = [(logging.getLogger(n), logging.getLogger(n).handlers[:], logging.getLogger(n).propagate)
                     for n in RAY_LOGGERS]
    attach_ray_loggers(handler)
    # ray.init(configure_logging=False) empties the "ray" logger's handlers; what Ray logs before they
    # are attached again goes to logging's last resort, which is pointed at the file meanwhile
    saved_last_resort = logging.lastResort
    logging.lastResort = handler
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    terminal_fd = os.dup(2)
    terminal = os.fdopen(os.dup(terminal_fd), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                         errors="backslashreplace")
    saved_stderr = sys.stderr
    os.dup2(handle.fileno(), 2)
    sys.stderr = terminal
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: handle.write(
                warnings.formatwarning(message, category, filename, lineno, line))
            yield handler
    finally:
        with contextlib.suppress(Exception):
            terminal.flush()
        sys.stderr = saved_stderr
        os.dup2(terminal_fd, 2)
        os.close(terminal_fd)
        terminal.close()
        logging.lastResort = saved_last_resort
        for logger, handlers, propagate in saved_loggers:
            logger.handlers = handlers
            logger.propagate = propagate
        handle.close()


def attach_ray_loggers(handler: logging.Handler) -> None:
    """Ray's loggers write to ``handler`` only (again after ``ray.init``, which resets the ``ray`` logger)."""
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False


@contextlib.contextmanager
def ray_session(address: str, *, num_cpus: int | None = None, shared_paths: Sequence[Path] = (),
                log_file: Path | None = None) -> Iterator[RayInfo]:
    """Connect to Ray for the duration of a ``with`` block, then disconnect.

    ``local`` starts an instance bound to the loopback address (stopped on exit); any other value
    joins a running cluster (left running; this driver disconnects on exit). When the caller is
    already connected to Ray, that connection is used and left open. Every path in ``shared_paths`` must be
    visible and writable on every node (the feature store on shared storage). With ``log_file``,
    Ray's own output (logs, warnings, notices) goes to that file, not the terminal (``ray_output_to``).

    Raises:
        MissingDependencyError: Ray is not installed.
        ClusterError: the cluster cannot be reached, or a node cannot see a shared path.
    """
    problem = ray_address_rule(address)
    if problem:
        raise UsageError(f"--ray {problem}, got {address!r}")
    ray = import_ray()
    with contextlib.ExitStack() as stack:
        handler = stack.enter_context(ray_output_to(Path(log_file))) if log_file is not None else None
        info = stack.enter_context(_connected(ray, address, num_cpus, shared_paths, handler))
        yield info


@contextlib.contextmanager
def _connected(ray: Any, address: str, num_cpus: int | None, shared_paths: Sequence[Path],
               handler: logging.Handler | None) -> Iterator[RayInfo]:
    connected_here = not ray.is_initialized()  # a caller's own connection (a notebook) is left alone
    if not connected_here:
        started = False
    elif address == LOCAL:
        cpus = num_cpus if num_cpus is not None else os.cpu_count() or 1
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 _node_ip_address=LOCAL_NODE_IP,
                 configure_logging=False, runtime_env={"env_vars": _worker_env()})
        started = True
    else:
        if address != "auto":
            probe_address(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False, _node_ip_address=_local_ip(address),
                     runtime_env={"env_vars": _worker_env()})
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            raise ClusterError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
        started = False
    if handler is not None:
        attach_ray_loggers(handler)
    try:
        resources = ray.cluster_resources()
        info = RayInfo(address=address, nodes=len([n for n in ray.nodes() if n.get("Alive")]),
                       cpus=float(resources.get("CPU", 0)), gpus=float(resources.get("GPU", 0)), started=started)
        if shared_paths:
            check_shared_paths(shared_paths)
        yield info
    finally:
        if connected_here:
            ray.shutdown()  # stops a --ray local instance; a cluster's driver only disconnects


def _worker_env() -> dict[str, str]:
    # workers import r2cli the way the driver does (a checkout on PYTHONPATH in development)
    keep = {name: os.environ[name] for name in ("PYTHONPATH", "R2CLI_CACHE", "R2CLI_OFFLINE", "HF_HUB_OFFLINE",
                                                "R2CLI_CLIP_WEIGHTS", "R2CLI_CHECKPOINT", "R2CLI_MODELS_DIR")
            if os.environ.get(name)}
    return keep


def _check_path_on_node(path: str, marker: str, token: str) -> tuple[str, str | None]:
    """Runs on a node: its host name, and what is wrong with ``path`` there (None: fine).

    The driver wrote ``marker`` holding ``token`` into ``path``; a node that reads another token
    (or none) has a folder of the same name on other storage, which is as bad as no folder.
    """
    host = socket.gethostname()
    target = Path(path)
    if not target.is_dir():
        return host, "does not exist"
    try:
        seen = (target / marker).read_text(encoding="utf-8")
    except OSError:
        seen = None
    if seen != token:
        return host, "is not the same storage as on the driver (a different folder of the same name)"
    probe = target / f".r2cli-probe-{host}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return host, f"is not writable ({exc.strerror or exc})"
    return host, None


def check_shared_paths(paths: Sequence[Path]) -> None:
    """Check on every alive node that each path is the driver's storage and is writable.

    Raises:
        ClusterError: the first node and path that fail, named.
    """
    import secrets

    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(num_cpus=0)(_check_path_on_node)
    token = secrets.token_hex(16)
    marker = f".r2cli-shared-{token[:8]}"
    written: list[Path] = []
    try:
        for path in paths:
            Path(path).mkdir(parents=True, exist_ok=True)
            (Path(path) / marker).write_text(token, encoding="utf-8")
            written.append(Path(path) / marker)
        pending = []
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
            for path in paths:
                ref = check.options(scheduling_strategy=strategy).remote(str(path), marker, token)
                pending.append((node.get("NodeManagerAddress", node["NodeID"]), str(path), ref))
        for address, path, ref in pending:
            host, problem = ray.get(ref)
            if problem:
                raise ClusterError(f"node {host} ({address}) cannot use {path}: it {problem}; put the workspace "
                                   "on storage every node mounts at the same path (e.g. NFS)")
    finally:
        for file in written:
            file.unlink(missing_ok=True)


def _local_ip(address: str) -> str | None:
    # a cluster on the loopback address: this driver must use the loopback too (Ray otherwise
    # substitutes the host's network address, where a loopback-bound cluster does not listen)
    host, _ = _split_address(address)
    return "127.0.0.1" if host in ("127.0.0.1", "localhost") else None
