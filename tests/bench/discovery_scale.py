"""Discovery at ImageNet scale: wall time and peak memory of failure trees and directions.

    python tests/bench/discovery_scale.py [--rows 1281167] [--dim 2048] [--classes 1000] [--jobs 2] [--error-modes 3] [--dir DIR]

Writes a synthetic feature matrix (float32 [rows, dim], a ``.npy`` on disk, written in chunks so
it never sits in memory) with labels spread over the classes in random order and predictions
that are wrong for ~25% of the images, more often where a class-specific feature is high (so
trees and directions have something to find). Then fits, as the service does (reading the
matrix through a memory map in blocks, classes in ``--jobs`` worker processes):
failure trees with both groupings, and failure directions with the service's default three error modes
per class (``--error-modes 0``: the paper's one direction per class).
Peak memory is the largest summed resident set of this process and its workers (sampled from
/proc every 50 ms), not counting the page cache. Last two lines: ``peak_gb: X`` and
``wall_seconds: X`` (trees + directions; targets <= 12 GB and <= 600 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from failurelens.discovery.directions import FailureDirections  # noqa: E402
from failurelens.discovery.trees import FailureTrees  # noqa: E402


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(x) for x in f.read().split()]
                out += kids
                todo += kids
        except OSError:
            continue
    return out


class PeakMemory:
    """Samples the summed RSS of this process tree in a thread."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            total = _rss_bytes(me) + sum(_rss_bytes(p) for p in _descendants(me))
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def write_synthetic(path: str, rows: int, dim: int, classes: int, seed: int = 0, chunk: int = 32768) -> tuple[np.ndarray, np.ndarray]:
    """The feature file plus labels and predictions (in memory: 2 x rows int64)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, rows).astype(np.int64)
    key_feature = rng.integers(0, dim, classes)  # each class fails where its key feature is high
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    offset = arr.offset
    del arr
    preds = labels.copy()
    with open(path, "r+b") as f:
        f.seek(offset)
        for s in range(0, rows, chunk):
            n = min(chunk, rows - s)
            x = rng.standard_normal((n, dim), dtype=np.float32)
            lab = labels[s : s + n]
            key = x[np.arange(n), key_feature[lab]]
            p_wrong = np.where(key > 0.8, 0.75, 0.15)
            wrong = rng.random(n) < p_wrong
            shift = rng.integers(1, classes, n)
            preds[s : s + n] = np.where(wrong, (lab + shift) % classes, lab)
            f.write(x.tobytes())
    return labels, preds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_281_167)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--error-modes", type=int, default=3, help="error-mode directions per class besides the class direction (the service's default: 3)"
    )
    ap.add_argument("--dir", help="where to write the feature file (default: a temporary folder; needs rows*dim*4 bytes)")
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=ns.dir) as tmp:
        path = os.path.join(tmp, "features.npy")
        t0 = time.monotonic()
        labels, preds = write_synthetic(path, ns.rows, ns.dim, ns.classes)
        gb = os.path.getsize(path) / 2**30
        print(
            f"wrote {ns.rows} x {ns.dim} float32 ({gb:.1f} GiB), {ns.classes} classes, error rate {np.mean(labels != preds):.3f} in {time.monotonic() - t0:.0f}s",
            flush=True,
        )
        last = [0.0]

        def progress(stage: str, done: int, total: int) -> None:
            now = time.monotonic()
            if done >= total or now - last[0] > 15:
                last[0] = now
                print(f"  {stage}: {done}/{total}", flush=True)

        with PeakMemory() as mem:
            t0 = time.monotonic()
            trees = FailureTrees(n_jobs=ns.jobs).fit(path, labels, preds, progress=progress)
            t_trees = time.monotonic() - t0
            print(
                f"failure trees (label + prediction grouping): {len(trees.trees_)} trees, {len(trees.rules_)} valid rules, "
                f"valid-leaf fraction {trees.valid_leaf_fraction_}, {t_trees:.0f}s",
                flush=True,
            )
            t0 = time.monotonic()
            dirs = FailureDirections(n_jobs=ns.jobs, error_modes=ns.error_modes).fit(path, labels, preds, progress=progress)
            t_dirs = time.monotonic() - t0
            fitted = [d for d in dirs.directions_ if not d.skipped_reason]
            print(
                f"failure directions: {sum(d.mode == 0 for d in fitted)} classes + {sum(d.mode > 0 for d in fitted)} error modes "
                f"({ns.error_modes} per class) fitted, mean held-out balanced accuracy "
                f"{np.mean([d.holdout_balanced_accuracy for d in fitted]):.3f}, {t_dirs:.0f}s",
                flush=True,
            )
        print(f"trees {t_trees:.0f}s + directions {t_dirs:.0f}s with {ns.jobs} worker processes")
        print(f"peak_gb: {mem.peak / 2**30:.2f}")
        print(f"wall_seconds: {t_trees + t_dirs:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
