"""Comparing two analyses of the same images (two model versions, last week's and today's model).

:class:`RunComparison` takes each run's validated failure modes (class, member images, error rate)
and each image's correctness under both models, and finds

* the **failure modes** of each run, merged where detectors agree (a tree rule and a failure
  direction of one class whose member images overlap describe one failure), then matched across
  the runs by their member images: *fixed* (only in the older run), *introduced* (only in the
  newer one) and *unchanged* (in both);
* the **per-class accuracy deltas** with paired confidence intervals (both models saw the same
  images: the interval of the mean per-image difference, normal approximation).

A failure is represented by the images its model gets wrong in it (``error_rows``; the member
images where a mode gives no errors). Within a run, two detectors' modes are one failure when most
of the smaller error set is in the other (``|A ∩ B| / min(|A|, |B|)``). Across runs: a failure of
A is *fixed* when no failure of B still holds most of its errors (``|A ∩ B| / |A|``), and a
failure of B is *introduced* when no failure of A already held most of its errors
(``|A ∩ B| / |B|``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["ClassDelta", "FailureMode", "RunComparison"]


@dataclasses.dataclass
class FailureMode:
    """One failure of a run: the detectors' modes that agree on its images."""

    class_name: str
    members: frozenset[int]  # manifest rows
    error_rate: float  # the highest held-out error rate among its detectors
    description: str  # caption (or rule text) of its most important detector
    detectors: list[dict[str, Any]]


@dataclasses.dataclass
class ClassDelta:
    class_name: str
    n: int
    accuracy_a: float
    accuracy_b: float
    delta: float
    ci_low: float
    ci_high: float


def _overlap(a: frozenset[int], b: frozenset[int]) -> float:
    return len(a & b) / max(1, min(len(a), len(b)))


class RunComparison:
    """Failure modes fixed, introduced and unchanged between run A (older) and run B (newer), and
    the per-class accuracy deltas.

    Parameters: ``min_overlap`` (member overlap at which two modes are the same failure, within a
    run and across runs), ``confidence`` (of the accuracy-delta intervals).
    """

    def __init__(self, min_overlap: float = 0.5, confidence: float = 0.95) -> None:
        self.min_overlap = min_overlap
        self.confidence = confidence

    def validate_params(self) -> dict[str, Any]:
        if not 0.0 < self.min_overlap <= 1.0:
            raise ValueError(f"min_overlap must be in (0, 1], got {self.min_overlap}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        return {"min_overlap": self.min_overlap, "confidence": self.confidence}

    def _merge(self, modes: Sequence[Mapping[str, Any]]) -> list[FailureMode]:
        """Modes of one run merged into failures (same class, overlapping members), most important first."""
        ordered = sorted(modes, key=lambda m: -float(m.get("error_rate", 0.0)) * float(m.get("error_coverage", 1.0)))
        out: list[FailureMode] = []
        for m in ordered:
            members = frozenset(int(r) for r in (m["error_rows"] if m.get("error_rows") else m.get("member_rows", [])))
            if not members:
                continue
            home = next((f for f in out if f.class_name == m["class"] and _overlap(f.members, members) >= self.min_overlap), None)
            if home is None:
                out.append(FailureMode(m["class"], members, float(m["error_rate"]), m.get("caption") or m.get("text", ""), [dict(m)]))
            else:
                home.members = home.members | members
                home.error_rate = max(home.error_rate, float(m["error_rate"]))
                home.detectors.append(dict(m))
        return out

    def fit(
        self,
        modes_a: Sequence[Mapping[str, Any]],
        modes_b: Sequence[Mapping[str, Any]],
        labels: np.ndarray,
        correct_a: np.ndarray,
        correct_b: np.ndarray,
        class_names: Sequence[str],
    ) -> RunComparison:
        """``labels``, ``correct_a``, ``correct_b``: per image of the shared rows (same order)."""
        self.validate_params()
        labels, ca, cb = np.asarray(labels), np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
        if not (len(labels) == len(ca) == len(cb)):
            raise ValueError("labels, correct_a and correct_b must describe the same images")
        self.modes_a_, self.modes_b_ = self._merge(modes_a), self._merge(modes_b)
        # a failure is the same in both runs when their member images overlap (several detectors'
        # failures of one run may match one failure of the other: matching is not one-to-one)
        self.unchanged_: list[tuple[FailureMode, FailureMode, float]] = []
        self.fixed_: list[FailureMode] = []
        for fa in self.modes_a_:
            kept = [(fb, len(fa.members & fb.members) / len(fa.members)) for fb in self.modes_b_ if fb.class_name == fa.class_name]
            best = max(kept, key=lambda t: t[1], default=None)
            if best is not None and best[1] >= self.min_overlap:
                self.unchanged_.append((fa, best[0], best[1]))
            else:
                self.fixed_.append(fa)
        self.introduced_ = [
            fb
            for fb in self.modes_b_
            if not any(fa.class_name == fb.class_name and len(fa.members & fb.members) / len(fb.members) >= self.min_overlap for fa in self.modes_a_)
        ]
        z = float(stats.norm.ppf(0.5 + self.confidence / 2))
        self.class_deltas_: list[ClassDelta] = []
        for c, name in enumerate(class_names):
            idx = labels == c
            n = int(idx.sum())
            if n == 0:
                continue
            d = cb[idx] - ca[idx]
            mean = float(d.mean())
            half = z * float(d.std(ddof=1)) / np.sqrt(n) if n > 1 else 0.0
            self.class_deltas_.append(ClassDelta(name, n, float(ca[idx].mean()), float(cb[idx].mean()), mean, mean - half, mean + half))
        return self

    def new_modes(self, min_error_rate: float) -> list[FailureMode]:
        """Failures of run B that run A did not have, with an error rate of at least ``min_error_rate``."""
        return [f for f in self.introduced_ if f.error_rate >= min_error_rate]
