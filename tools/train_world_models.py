#!/usr/bin/env python
"""Retrain every benchmark-world model on CPU and write them into triton_models/ (one command).

    .venv/bin/python tools/train_world_models.py [--world DIR] [--repo triton_models] [--only NAME ...]

Generates the default world (deterministic) unless --world names one, trains the three inspected
classifiers of the discovery benchmarks, the three repairable inspected classifiers (pretrained on
an unbiased split rendered in memory, then trained on the biased train split), the L2-PGD robust
feature extractor and the image-text model, exports each to ONNX with both Triton configs and
records the measured figures in triton_models/world_models.json. --only NAME ... trains just those
models and keeps the others' entries.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from failurelens.models.world_models import TrainSettings, train_all  # noqa: E402
from failurelens.world.config import default_config  # noqa: E402
from failurelens.world.generate import generate_world  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world")
    ap.add_argument("--repo", default=str(ROOT / "triton_models"))
    ap.add_argument("--only", nargs="*", default=[])
    ns = ap.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        world = ns.world or tmp
        if ns.world is None:
            print("generating the default world ...", flush=True)
            generate_world(default_config(), world, workers=2)
        train_all(world, ns.repo, TrainSettings(), log=lambda s: print(s, flush=True), only=ns.only)
    print(f"done in {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
