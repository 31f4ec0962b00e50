#!/usr/bin/env bash
# Installs everything, runs the static checks (generated code, ruff, mypy, import-linter), then the
# whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
bash tools/check.sh
exec .venv/bin/python -m pytest -q "$@"
