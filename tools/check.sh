#!/usr/bin/env bash
# The project's static checks: generated code current, lint, format, types, layers.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python tools/gen_protos.py --check
.venv/bin/python tools/gen_dashboard.py --check
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/mypy -p failurelens.discovery -p failurelens.runtime -p failurelens.store -p failurelens.clients -p failurelens.workflow
.venv/bin/lint-imports --no-cache
