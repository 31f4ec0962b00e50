"""Slice-discovery evaluation against known slices (the dcbench protocol), failure overlap and
confidences.

Every predicted slice is a score per image (higher = more inside the slice; ``-inf`` for images
outside the slice's group). For each ground-truth slice the predicted slice with the highest
average precision is matched, and its precision at k is reported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import average_precision_score


def precision_at_k(scores: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Fraction of the ``k`` highest-scoring images (stable order on ties) that are in the slice."""
    if k < 1:
        raise ValueError(f"k={k} must be at least 1")
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")[:k]
    return float(np.asarray(truth, bool)[order].mean()) if len(order) else 0.0


def average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    truth = np.asarray(truth, bool)
    if not truth.any():
        raise ValueError("the ground-truth slice is empty")
    s = np.asarray(scores, np.float64)
    s = np.where(np.isfinite(s), s, np.nanmin(s[np.isfinite(s)]) - 1.0 if np.isfinite(s).any() else 0.0)
    return float(average_precision_score(truth, s))


@dataclasses.dataclass
class SliceMatch:
    slice_name: str
    predicted: str  # key of the best predicted slice
    average_precision: float
    precision_at_10: float
    precision_at_25: float

    @property
    def identified(self) -> bool:
        return self.precision_at_10 >= 0.8


def match_slices(truth: Mapping[str, np.ndarray], predicted: Mapping[str, np.ndarray]) -> list[SliceMatch]:
    """For every ground-truth slice, the predicted slice with the best average precision."""
    out = []
    for name, t in truth.items():
        best_key, best_ap = "", -1.0
        for key, s in predicted.items():
            ap = average_precision(s, t)
            if ap > best_ap:
                best_key, best_ap = key, ap
        if not best_key:
            out.append(SliceMatch(name, "", 0.0, 0.0, 0.0))
            continue
        s = predicted[best_key]
        out.append(SliceMatch(name, best_key, best_ap, precision_at_k(s, t, 10), precision_at_k(s, t, 25)))
    return out


def failure_iou(failure_sets: Sequence[set[int]]) -> np.ndarray:
    """The mitigation paper's failure overlap: ``[M, M]`` intersection over union of the sets of
    failing rows of M models (on the same rows); two empty sets overlap fully (1.0)."""
    m = len(failure_sets)
    out = np.ones((m, m))
    for i, a in enumerate(failure_sets):
        for j, b in enumerate(failure_sets):
            union = len(a | b)
            out[i, j] = len(a & b) / union if union else 1.0
    return out


def max_softmax(logits: np.ndarray) -> np.ndarray:
    """The model's confidence in its prediction: the largest softmax probability of each row."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return (p.max(axis=1) / p.sum(axis=1)).astype(np.float32)
