"""A small dataset and classifier that are not the benchmark world, for the README's worked example.

    python tools/make_example.py OUT

Writes ``OUT/data/{train,test}/<class>/*.png`` (four shape classes on random backgrounds, 64x64)
and ``OUT/classifier.onnx``: a small CNN trained on ``train`` for ten epochs (input 64x64,
normalised with mean 0.5 and std 0.25, outputs ``logits`` and ``features``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._fixtures.shapes import export_onnx, train_tiny_classifier, write_dataset  # noqa: E402


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    data = write_dataset(out / "data", {"train": 120, "test": 80}, seed=1)
    export_onnx(train_tiny_classifier(data, epochs=10), out / "classifier.onnx")
    print(f"dataset: {data}\nclassifier: {out / 'classifier.onnx'} (input 64x64, mean 0.5, std 0.25)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
