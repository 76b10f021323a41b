#!/usr/bin/env bash
# One-time, idempotent set-up shared by both README commands.
#
# Prints `export` lines for the environment the build needs, so callers do
#   eval "$(scripts/setup.sh)"
# Everything else (progress, errors) goes to stderr.
#
# - libtorch: an existing $LIBTORCH is honoured; otherwise a venv holding
#   torch==2.11.0 (the version tch 0.24 is built against) is created once in
#   $NASFLEET_CACHE (default ~/.cache/nasfleet) and reused by every clone and
#   by CI. The binary finds libtorch at run time through an rpath written by
#   crates/nasfleet-torch/build.rs, so users never set LD_LIBRARY_PATH.
# - redis-server and openssl: checked; installed with apt-get when root.
# - chromium (headless, for the dashboard's browser tests): the same.
set -euo pipefail

TORCH_VERSION=2.11.0
CACHE=${NASFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nasfleet}
VENV=$CACHE/torch-$TORCH_VERSION-venv

log() { echo "setup: $*" >&2; }

# ensure_tool COMMAND DEBIAN-PACKAGE: the tests need real redis-server,
# openssl (the TLS test makes a throwaway CA) and headless chromium (the
# dashboard's browser tests).
ensure_tool() {
  if command -v "$1" >/dev/null 2>&1; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "$1 missing; installing $2 with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >&2 \
      || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >&2; }
  else
    log "$1 is not installed and this is not root: install it (Debian/Ubuntu: sudo apt-get install $2; macOS: brew install $2) and rerun"
    exit 1
  fi
}

ensure_torch() {
  if [ -n "${LIBTORCH:-}" ]; then
    log "using LIBTORCH=$LIBTORCH"
    echo "export LIBTORCH='$LIBTORCH'"
    return
  fi
  local py=${PYTHON:-python3}
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" 2>/dev/null; then
    log "creating $VENV with torch==$TORCH_VERSION (once; ~2 minutes, ~5 GB)"
    mkdir -p "$CACHE"
    # Build in a temporary directory and rename, so an interrupted install is
    # never mistaken for a finished one.
    local tmp=$VENV.partial.$$
    rm -rf "$tmp"
    "$py" -m venv "$tmp"
    "$tmp/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" >&2
    rm -rf "$VENV"
    # venvs hard-code their path; recreate the activation metadata after the move.
    mv "$tmp" "$VENV"
    "$py" -m venv --upgrade "$VENV" >/dev/null
    sed -i "s#$tmp#$VENV#g" "$VENV"/bin/* 2>/dev/null || true
  fi
  echo "export VIRTUAL_ENV='$VENV'"
  echo "export PATH='$VENV/bin':\"\$PATH\""
  echo "export LIBTORCH_USE_PYTORCH=1"
}

ensure_tool redis-server redis-server
ensure_tool openssl openssl
ensure_tool chromium chromium
# One set-up at a time per cache (two clones or CI jobs starting together
# would otherwise both build the venv and swap it under each other).
mkdir -p "$CACHE"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.setup.lock"
  flock 9
fi
ensure_torch
