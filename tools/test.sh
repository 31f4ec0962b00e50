#!/usr/bin/env bash
# Installs everything, checks the generated gRPC code is current, runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
.venv/bin/python tools/gen_protos.py --check
exec .venv/bin/python -m pytest -q "$@"
