"""Held-out validation of discovered slices (beyond the papers).

Every slice a method reports (a tree rule, a failure direction) is fitted on one part of the data
and re-measured on the other: its error rate, error coverage and accuracy there, a one-sided
Fisher exact test that the slice's error rate exceeds the rest of its group's, and
Benjamini–Hochberg control of the false discovery rate across all slices of a report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import stats


@dataclasses.dataclass
class HoldoutStats:
    """A slice re-measured on held-out rows of its group."""

    n: int = 0
    errors: int = 0
    error_rate: float = 0.0
    error_coverage: float = 0.0
    accuracy: float = 0.0
    p_value: float = 1.0
    q_value: float = 1.0
    validated: bool = False


def stratified_holdout(groups: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of held-out rows: ``fraction`` of each group (rounded, at least one row kept
    for fitting) chosen at random, deterministic in ``seed``."""
    groups = np.asarray(groups)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction {fraction} must be in [0, 1)")
    mask = np.zeros(len(groups), dtype=bool)
    if fraction == 0.0 or len(groups) == 0:
        return mask
    rng = np.random.default_rng(seed)
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    for rows in np.split(order, bounds):
        k = min(len(rows) - 1, int(round(fraction * len(rows))))
        if k > 0:
            mask[rng.choice(rows, size=k, replace=False)] = True
    return mask


def slice_stats(in_slice: np.ndarray, wrong: np.ndarray) -> HoldoutStats:
    """Statistics of the slice ``in_slice`` within a group whose per-row errors are ``wrong``.

    The p-value is the one-sided Fisher exact test that the slice's error rate is greater than
    the error rate of the rest of the group (1.0 when either side is empty)."""
    in_slice = np.asarray(in_slice, dtype=bool)
    wrong = np.asarray(wrong, dtype=bool)
    if in_slice.shape != wrong.shape:
        raise ValueError(f"slice mask {in_slice.shape} and error mask {wrong.shape} differ in shape")
    n = int(in_slice.sum())
    e = int((in_slice & wrong).sum())
    total_errors = int(wrong.sum())
    rest_n = len(wrong) - n
    rest_e = total_errors - e
    p = 1.0
    if n > 0 and rest_n > 0:
        p = float(stats.fisher_exact([[e, n - e], [rest_e, rest_n - rest_e]], alternative="greater")[1])
    return HoldoutStats(
        n=n,
        errors=e,
        error_rate=e / n if n else 0.0,
        error_coverage=e / total_errors if total_errors else 0.0,
        accuracy=1.0 - e / n if n else 0.0,
        p_value=p,
        q_value=p,
    )


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """BH-adjusted p-values (q-values), monotone and capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    return stats.false_discovery_control(np.clip(p, 0.0, 1.0), method="bh")


def apply_fdr(slices: Sequence[HoldoutStats], alpha: float = 0.05) -> None:
    """Fill ``q_value`` and ``validated`` (q <= alpha) of every slice, in place, as one family."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"false discovery rate {alpha} must be in (0, 1)")
    q = benjamini_hochberg([s.p_value for s in slices])
    for s, qv in zip(slices, q):
        s.q_value = float(qv)
        s.validated = bool(qv <= alpha and s.n > 0)
