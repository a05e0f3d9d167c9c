#!/usr/bin/env bash
# Set up (first time) and run every check: ruff lint + format, then all pytest tests including the
# statistical, AppTest and real-browser (Playwright + Debian's Chromium) ones, and the live engine's NATS tests
# (Debian's nats-server, started by the tests on a loopback port).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup_env.sh requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1 || ! ldconfig -p | grep -q libatomic.so.1; then
  echo "installing Debian's chromium and libatomic1 for the browser tests" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium libatomic1 >/dev/null
fi
if ! command -v nats-server >/dev/null 2>&1; then
  echo "installing Debian's nats-server for the live engine's NATS tests" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nats-server >/dev/null
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
