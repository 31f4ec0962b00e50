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
# Debian packages the tests start: the system's headless Chromium (the report's browser test), a
# real Prometheus server with promtool (the monitoring test), Node.js and npm (the Node.js client).
# Only what is missing is asked for: a machine may already carry Node.js and npm from elsewhere
# (NodeSource's nodejs ships npm and conflicts with Debian's npm package).
pkgs=()
command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || pkgs+=(chromium-driver)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || pkgs+=(prometheus)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
if [ ${#pkgs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  else
    echo "bootstrap: install Debian's ${pkgs[*]} for the browser, monitoring and Node.js tests" >&2
  fi
fi
# The Node.js client's pinned packages (package-lock.json), when they changed.
node_stamp=clients/node/node_modules/.failurelens-installed
node_want=$(sha256sum clients/node/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]; then
  (cd clients/node && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  echo "$node_want" > "$node_stamp"
fi
