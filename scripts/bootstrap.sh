#!/usr/bin/env bash
# Set up r2cli on a fresh Debian/Ubuntu machine and run one of:
#   demo   index sample_media/ and run the main job (needs weights, see README "Weights offline")
#   test   run the test suite
#   setup  only install (ffmpeg and postgresql from apt when missing, .venv with r2cli and the dev extra)
# Idempotent: a second run reuses .venv and skips installs whose inputs did not change.
set -euo pipefail
cd "$(dirname "$0")/.."
action="${1:-setup}"

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    log "need root to run: $*"; exit 1; fi
}

# 1. The ffmpeg binary (ffmpeg + ffprobe) from the system package manager.
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  log "installing ffmpeg with apt-get"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q ffmpeg
fi

# 1b. PostgreSQL server binaries (Debian's `postgresql`): the catalog tests start a throw-away
#     server from them (tests/_postgres.py); r2cli itself only needs a server to talk to.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  log "installing postgresql (server binaries for the catalog tests) with apt-get"
  as_root apt-get update -q
  # policy-rc.d exit 101: the package must not start (or fail to start) a system-wide server
  as_root sh -c 'p=/usr/sbin/policy-rc.d; [ -e $p ] && exit 0; printf "#!/bin/sh\nexit 101\n" > $p; chmod +x $p; touch $p.r2cli'
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
  as_root sh -c 'p=/usr/sbin/policy-rc.d; if [ -e $p.r2cli ]; then rm -f $p $p.r2cli; fi'
fi

# 1c. Headless Chromium and its WebDriver, for the tests that open `r2cli report` pages in a real
#     browser (they skip with a reason when these are absent). Set R2CLI_NO_CHROMIUM=1 to skip.
if [ "${R2CLI_NO_CHROMIUM:-0}" != "1" ] && { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; }; then
  log "installing chromium and chromium-driver with apt-get (for the report's browser tests)"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi

# 2. Python >= 3.10 and a virtual environment in .venv.
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  log "r2cli needs Python >= 3.10 (found: $("$PY" --version 2>&1 || echo none)); set PYTHON=/path/to/python3.x"
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  if ! "$PY" -m venv .venv 2>/dev/null; then
    log "python3-venv is missing; installing it with apt-get"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
    rm -rf .venv
    "$PY" -m venv .venv
  fi
fi

# 3. r2cli and its dependencies (editable, with the dev extra for the tests).
stamp=.venv/.r2cli-installed
want="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing r2cli into .venv (first run takes a few minutes: torch is large)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi

case "$action" in
  setup)
    log "ready: .venv/bin/r2cli --help"
    ;;
  demo)
    exec .venv/bin/r2cli run jobs/sample.toml
    ;;
  test)
    shift || true
    # pytest exits 5 when it collects no test; with `set -e` that fails the run, as it should.
    exec .venv/bin/python -m pytest -q "$@"
    ;;
  *)
    log "unknown action '$action' (use: setup, demo or test)"
    exit 2
    ;;
esac
