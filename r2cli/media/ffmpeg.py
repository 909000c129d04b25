"""Find the ffmpeg and ffprobe binaries and report their versions.

Resolution order for each tool: ``$R2CLI_FFMPEG`` / ``$R2CLI_FFPROBE`` (a path or a command
name), then the ``PATH``. A missing tool raises ``MissingDependencyError`` with an install hint.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

from r2cli.errors import MissingDependencyError

FFMPEG_ENV = "R2CLI_FFMPEG"
FFPROBE_ENV = "R2CLI_FFPROBE"

INSTALL_HINT = (
    "install it with `sudo apt-get install ffmpeg` (Debian/Ubuntu), `brew install ffmpeg` (macOS) "
    "or `conda install -c conda-forge ffmpeg`, or point ${env} at the binary"
)

_ENV_OF = {"ffmpeg": FFMPEG_ENV, "ffprobe": FFPROBE_ENV}
_VERSION_RE = re.compile(r"^\S+ version (\S+)")


@dataclass(frozen=True)
class ToolInfo:
    """One external tool as found on this machine."""

    name: str  # "ffmpeg" or "ffprobe"
    path: str  # absolute path of the executable
    version: str  # e.g. "5.1.9-0+deb12u1" (the word after "version" in `-version`)

    def to_dict(self) -> dict:
        return asdict(self)


def _find(name: str) -> str:
    env = _ENV_OF[name]
    wanted = os.environ.get(env) or name
    found = shutil.which(wanted)
    if found:
        return os.path.abspath(found)
    where = f"${env}={wanted!r}" if os.environ.get(env) else "PATH"
    raise MissingDependencyError(f"{name} not found on {where}; " + INSTALL_HINT.replace("{env}", env))


def find_ffmpeg() -> str:
    """Absolute path of the ffmpeg executable.

    Raises:
        MissingDependencyError: ffmpeg is neither at ``$R2CLI_FFMPEG`` nor on the PATH.
    """
    return _find("ffmpeg")


def find_ffprobe() -> str:
    """Absolute path of the ffprobe executable.

    Raises:
        MissingDependencyError: ffprobe is neither at ``$R2CLI_FFPROBE`` nor on the PATH.
    """
    return _find("ffprobe")


def tool_version(executable: str) -> str:
    """The version string that ``EXECUTABLE -version`` prints on its first line.

    Raises:
        MissingDependencyError: the executable cannot be run or does not print a version.
    """
    try:
        result = subprocess.run(
            [executable, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MissingDependencyError(f"cannot run {executable} -version: {exc}") from exc
    first = (result.stdout or result.stderr).strip().splitlines()
    match = _VERSION_RE.match(first[0]) if first else None
    if result.returncode != 0 or match is None:
        raise MissingDependencyError(
            f"{executable} -version exited with code {result.returncode} and no version line; "
            "is it really ffmpeg/ffprobe?"
        )
    return match.group(1)


def describe_tools() -> dict[str, ToolInfo | str]:
    """ffmpeg and ffprobe as found here: a ``ToolInfo`` each, or the error message when missing.

    Never raises for a missing tool, so a diagnostic command can report every problem at once.
    """
    tools: dict[str, ToolInfo | str] = {}
    for name, finder in (("ffmpeg", find_ffmpeg), ("ffprobe", find_ffprobe)):
        try:
            path = finder()
            tools[name] = ToolInfo(name=name, path=path, version=tool_version(path))
        except MissingDependencyError as exc:
            tools[name] = str(exc)
    return tools
