"""scripts/bootstrap.sh (#22.14): `demo` and `setup` install only what r2cli needs; `test` adds the test
tools (PostgreSQL, Chromium, the dev extra); apt-get waits for a held lock, with a limit.

The script runs for real in a copy of the repository's layout; apt-get, sudo and the Python it is
given are stand-ins on the PATH that record their arguments (a test cannot install packages)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

STUB_PYTHON = """#!/bin/sh
# stand-in for python3: venv creates a .venv whose python records pip/pytest calls
echo "python $*" >> "$R2CLI_STUB_LOG"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; chmod +x "$3/bin/python"
  printf '#!/bin/sh\\necho "r2cli $*" >> "$R2CLI_STUB_LOG"\\n' > "$3/bin/r2cli"; chmod +x "$3/bin/r2cli"
fi
exit 0
"""
STUB_APT = """#!/bin/sh
echo "apt-get $*" >> "$R2CLI_STUB_LOG"
exit "${R2CLI_STUB_APT_EXIT:-0}"
"""


@pytest.fixture
def sandbox(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    root = tmp_path / "clone"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "bootstrap.sh", root / "scripts" / "bootstrap.sh")
    (root / "pyproject.toml").write_text("[project]\nname = 'r2cli'\n", encoding="utf-8")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, text in (("python3", STUB_PYTHON), ("apt-get", STUB_APT), ("ffmpeg", "#!/bin/sh\n"),
                       ("ffprobe", "#!/bin/sh\n"), ("sudo", '#!/bin/sh\nexec "$@"\n')):
        (stubs / name).write_text(text, encoding="utf-8")
        (stubs / name).chmod(0o755)
    for tool in ("cat", "sha256sum", "cut", "mkdir", "cp", "chmod", "id", "sh", "env", "rm", "touch", "dirname"):
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} is not installed")
        (stubs / tool).symlink_to(found)  # only these: no chromium, whatever this machine has
    log = tmp_path / "calls.log"

    def run(action: str, **env: str) -> tuple[subprocess.CompletedProcess, str]:
        log.write_text("", encoding="utf-8")
        environment = {"PATH": str(stubs), "HOME": str(tmp_path), "PYTHON": str(stubs / "python3"),
                       "R2CLI_STUB_LOG": str(log), **env}
        result = subprocess.run([shutil.which("bash"), str(root / "scripts" / "bootstrap.sh"), action], capture_output=True,
                                text=True, env=environment, timeout=60, cwd=tmp_path)
        return result, log.read_text(encoding="utf-8")

    return run


def test_setup_and_demo_install_no_test_tools(sandbox):
    result, calls = sandbox("setup")
    assert result.returncode == 0, result.stderr
    assert "chromium" not in calls and "postgresql" not in calls, calls
    assert "pip install -q -e ." in calls and "[dev]" not in calls, calls
    result, calls = sandbox("demo")  # the same install: reused
    assert result.returncode == 0, result.stderr
    assert "chromium" not in calls and "postgresql" not in calls and "pip install" not in calls, calls
    assert "r2cli run jobs/sample.toml" in calls
    result, calls = sandbox("test")  # adds the dev extra to the same .venv
    assert "pip install -q -e .[dev]" in calls
    result, calls = sandbox("setup")  # keeps it
    assert "pip install" not in calls


def test_test_installs_the_test_tools_waiting_for_the_apt_lock(sandbox):
    result, calls = sandbox("test")
    assert result.returncode == 0, result.stderr
    assert "pip install -q -e .[dev]" in calls and "-m pytest -q" in calls
    assert "install -y -q chromium chromium-driver" in calls
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        assert "postgresql" in calls
    apt = [line for line in calls.splitlines() if line.startswith("apt-get")]
    assert apt and all("-o DPkg::Lock::Timeout=600" in line for line in apt), apt
    result, calls = sandbox("test", R2CLI_APT_WAIT="5", R2CLI_STUB_APT_EXIT="100")
    assert result.returncode == 100
    assert "DPkg::Lock::Timeout=5" in calls and "held the lock for more than 5 s" in result.stderr
