#!/usr/bin/env bash
# Installs everything and runs the main job: start the stack, register a generated dataset and a
# trained model, embed through Triton, print a summary, stop the stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
exec .venv/bin/failurelens demo "$@"
