"""A throw-away PostgreSQL server for the tests, from the Debian ``postgresql`` package's binaries.

``PostgresServer.start()`` runs ``initdb`` and ``postgres`` on 127.0.0.1 at a free port, with its
data folder and unix socket in a fresh temporary folder, ``fsync=off`` (nothing here must survive
a power cut) and trust authentication for one superuser ``r2cli``. ``initdb`` refuses to run as
root, so as root the server runs as the ``postgres`` system user (created by the Debian package),
else ``nobody``, owning the temporary folder. ``stop()`` shuts it down and deletes everything.

``new_database()`` returns the SQLAlchemy URL of a new, empty database (CREATE DATABASE from
``template0`` with the FILE_COPY strategy: a few milliseconds with fsync off); ``drop_database(url)``
removes it again (each one takes about 7 MB on disk).
"""

from __future__ import annotations

import ctypes
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER = "r2cli"


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` with initdb and postgres ($R2CLI_PG_BINDIR first)."""
    candidates = [os.environ.get("R2CLI_PG_BINDIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if candidate and all(os.access(Path(candidate) / exe, os.X_OK) for exe in ("initdb", "postgres")):
            return Path(candidate)
    return None


def _major(bindir: str) -> int:
    try:
        return int(Path(bindir).parent.name)
    except ValueError:
        return 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="r2cli-pg-", dir=_tempdir_for_others()))
        self.data = self.root / "data"
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._names = itertools.count(1)
        self._run_as: dict = {}
        if os.geteuid() == 0:
            account = _unprivileged_account()
            self._run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            os.chown(self.root, account.pw_uid, account.pw_gid)
            os.chmod(self.root, 0o700)

    # -- life cycle -----------------------------------------------------------------------
    def start(self, attempts: int = 3) -> "PostgresServer":
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC", "HOME": str(self.root)}
        initdb = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
             "--locale=C", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, env=env, cwd=self.root, timeout=120, **self._run_as,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}): {initdb.stderr[-2000:]}")
        last_error = ""
        for _ in range(attempts):  # the free port can be taken between _free_port() and bind()
            self.port = _free_port()
            log = open(self.root / "server.log", "ab")
            self.process = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                 "-k", str(self.root), "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB",
                 "-c", "listen_addresses=127.0.0.1", "-c", "logging_collector=off"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root, start_new_session=True,
                preexec_fn=_die_with_parent, **self._run_as,
            )
            log.close()
            if self._wait_ready(60):
                return self
            last_error = (self.root / "server.log").read_text(errors="replace")[-2000:]
            self._terminate()
        raise RuntimeError(f"postgres did not start on 127.0.0.1: {last_error}")

    def _wait_ready(self, seconds: float) -> bool:
        import psycopg

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        return False

    def _terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: disconnect clients, no checkpoint wait
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- use ------------------------------------------------------------------------------
    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """The SQLAlchemy URL of a new, empty database."""
        import psycopg

        name = f"{prefix}{next(self._names)}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0{strategy}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by ``new_database``, ending the sessions still connected to it."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            force = " WITH (FORCE)" if conn.info.server_version >= 130000 else ""
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')


try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # loaded here: the forked child only calls it
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


def _die_with_parent() -> None:
    """In the server's child process (after the user switch): shut down fast if pytest dies unannounced."""
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGINT))  # PR_SET_PDEATHSIG


def _tempdir_for_others() -> str:
    """The temporary folder when every folder above it lets other users through, else /tmp."""
    base = Path(tempfile.gettempdir()).resolve()
    if os.geteuid() != 0 or all(p.stat().st_mode & 0o001 for p in (base, *base.parents)):
        return str(base)
    return "/tmp"


def _unprivileged_account() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' account exists to run initdb")
