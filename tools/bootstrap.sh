#!/usr/bin/env bash
# Installs failurelens and its pinned dependencies into ./.venv (idempotent; fast when done).
# Needs Python 3.11 and the package registry. torch comes as the registry's build (runs on CPU too).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "failurelens needs Python 3.11 (the bundled Triton python-backend stub is built for it)"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.failurelens-installed
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade "pip>=24" wheel
  .venv/bin/python -m pip install -q -c requirements.lock -e ".[dev]"
  echo "$want" > "$stamp"
fi
# The report's browser test drives the system's headless Chromium (Debian packages).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "bootstrap: install Debian's chromium and chromium-driver for the report's browser test" >&2
  fi
fi
