#!/usr/bin/env bash
# Set up r2cli on a fresh Debian/Ubuntu machine and run one of:
#   demo   index sample_media/ and run the main job (needs weights, see README "Weights offline")
#   test   run the test suite
#   setup  only install (ffmpeg from apt when missing, .venv with r2cli)
# Only `test` also installs what the tests need and r2cli does not: PostgreSQL server binaries, headless
# Chromium and the `dev` extra (pytest, hypothesis ...).
# Idempotent: a second run reuses .venv and skips installs whose inputs did not change.
# apt-get waits up to R2CLI_APT_WAIT seconds (default 600) for another package manager to finish.
set -euo pipefail
cd "$(dirname "$0")/.."
action="${1:-setup}"

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    log "need root to run: $*"; exit 1; fi
}

# apt-get fails at once when another apt-get/dpkg (unattended-upgrades on a fresh machine) holds its
# locks; wait for them, up to a limit, instead. DPkg::Lock::Timeout makes apt-get itself wait.
APT_WAIT="${R2CLI_APT_WAIT:-600}"
apt_get() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_WAIT" "$@" || {
    status=$?
    log "apt-get $* failed (exit $status); if another package manager held the lock for more than" \
        "${APT_WAIT} s, wait for it to finish (or raise R2CLI_APT_WAIT) and run this again"
    exit "$status"
  }
}

# 1. The ffmpeg binary (ffmpeg + ffprobe) from the system package manager.
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  log "installing ffmpeg with apt-get"
  apt_get update -q
  apt_get install -y -q ffmpeg
fi

# 1b. (test only) PostgreSQL server binaries (Debian's `postgresql`): the catalog tests start a
#     throw-away server from them (tests/_postgres.py); r2cli itself only needs a server to talk to.
if [ "$action" = test ] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  log "installing postgresql (server binaries for the catalog tests) with apt-get"
  apt_get update -q
  # policy-rc.d exit 101: the package must not start (or fail to start) a system-wide server
  as_root sh -c 'p=/usr/sbin/policy-rc.d; [ -e $p ] && exit 0; printf "#!/bin/sh\nexit 101\n" > $p; chmod +x $p; touch $p.r2cli'
  apt_get install -y -q --no-install-recommends postgresql
  as_root sh -c 'p=/usr/sbin/policy-rc.d; if [ -e $p.r2cli ]; then rm -f $p $p.r2cli; fi'
fi

# 1c. (test only) Headless Chromium and its WebDriver, for the tests that open `r2cli report` pages in
#     a real browser (they skip with a reason when these are absent). Set R2CLI_NO_CHROMIUM=1 to skip.
if [ "$action" = test ] && [ "${R2CLI_NO_CHROMIUM:-0}" != "1" ] \
    && { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; }; then
  log "installing chromium and chromium-driver with apt-get (for the report's browser tests)"
  apt_get update -q
  apt_get install -y -q chromium chromium-driver
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
    apt_get update -q
    apt_get install -y -q python3-venv
    rm -rf .venv
    "$PY" -m venv .venv
  fi
fi

# 3. r2cli and its dependencies (editable; `test` adds the dev extra). The stamp records what was
#    installed, so `setup` after `test` keeps the dev extra and `test` after `setup` adds it.
stamp=.venv/.r2cli-installed
extras=""
[ "$action" = test ] && extras="[dev]"
hash="$(cat pyproject.toml | sha256sum | cut -c1-16)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$have" = "$hash dev" ] || { [ -z "$extras" ] && [ "$have" = "$hash" ]; }; then
  :  # installed from this pyproject.toml, with what this action needs
else
  log "installing r2cli${extras} into .venv (first run takes a few minutes: torch is large)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extras}"
  if [ -n "$extras" ]; then echo "$hash dev" > "$stamp"; else echo "$hash" > "$stamp"; fi
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
