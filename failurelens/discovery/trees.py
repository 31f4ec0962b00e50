"""Barlow failure trees: shallow decision trees that say where a classifier fails.

Method (Singla et al., *Understanding Failures of Deep Networks via Robust Feature Extraction*,
CVPR 2021, Section 5; ``/work/shared/papers/000_*``):

* Rows are split into class groups, by ground-truth label (false negatives) and by prediction
  (false positives). Failure is ``prediction != label``.
* Per group, the mutual information between each feature and the failure flag selects the
  ``top_k_features`` (20 in the paper); a decision tree of depth <= 3 trained to predict failure on
  those features turns its root-to-leaf paths into rules.
* Per leaf ``l`` of a tree fitted on the group: error rate ``ER = errors(l) / n(l)`` (Def. 1), error
  coverage ``EC = errors(l) / errors(group)`` (Def. 2) and importance value ``IV = ER * EC``
  (Def. 5). Per tree: base error rate ``BER`` = error rate of the whole group (Def. 3) and the
  average leaf error rate, Definition 4 verbatim::

      ALER(T) = sum over leaves l of ER(C_l) * EC(C_l)

  i.e. the leaf error rates averaged with the leaves' error coverages as weights (the coverages
  sum to 1 because every failure falls in exactly one leaf). ``ALER - BER`` is the paper's tree
  score. Note ``ALER`` is the sum of the leaves' ``IV``.
* A leaf is a *valid* failure mode when ``EC > tau`` and ``ER >= BER + delta`` (Section 5,
  "Truncation and rule generation": "error coverage higher than tau and an error rate of at
  least BER + delta"; Section 7 writes the second test strictly, which only matters at exact
  equality; defaults tau = 0.2, delta = 0.1 as in Section 7).

Beyond the paper: every group is split (stratified by the failure flag) into a fitting part and a
held-out part; mutual information, the tree and all the metrics above come from the fitting part,
and each leaf is re-measured on the held-out rows (one-sided Fisher test, leaf versus rest of the
group) with Benjamini–Hochberg control of the false discovery rate over all valid leaves of the
report (:mod:`failurelens.discovery.validation`).

Everything here is plain numpy / scikit-learn in and dataclasses out: a fitted tree is kept as
lists (node split features in original feature indices, thresholds, children, leaf ids), so
``dataclasses.asdict`` of any result is JSON-serialisable, and it can be applied to new rows with
:meth:`FailureTrees.leaf_membership` without scikit-learn objects.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.tree import DecisionTreeClassifier

from failurelens.discovery import classwise, validation
from failurelens.discovery import params as P
from failurelens.discovery.validation import HoldoutStats
from failurelens.errors import InvalidArgument, InvalidData

GROUPINGS = ("label", "prediction")
SKIP_NO_ROWS = "no rows in this group"
SKIP_NO_ERRORS = "no errors in this group"
SKIP_ONLY_ERRORS = "only errors in this group"
SKIP_TOO_FEW = "fewer than 2*min_leaf_size samples"
# ER >= BER + delta is compared with this slack, so that e.g. ER = 0.3, BER = 0.2, delta = 0.1
# (0.2 + 0.1 = 0.30000000000000004 in floating point) counts as "at least".
_RATE_SLACK = 1e-9
_CHECK_CHUNK_BYTES = 64 * 2**20


# --- results -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Condition:
    """One test on a path of the tree: ``feature[feature] <op> threshold`` (original index)."""

    feature: int
    op: str  # "<=" (left branch) or ">" (right branch)
    threshold: float

    def describe(self) -> str:
        return f"feature[{self.feature}] {self.op} {self.threshold:.4g}"


@dataclasses.dataclass
class Leaf:
    """A leaf of a failure tree, i.e. a candidate rule; metrics on the group's fitting rows."""

    leaf_id: int
    conditions: list[Condition]
    text: str
    n: int
    errors: int
    error_rate: float  # ER
    error_coverage: float  # EC
    importance: float  # IV = ER * EC
    valid: bool  # EC > tau and ER >= BER + delta
    holdout: HoldoutStats | None = None  # None when holdout_fraction == 0
    # mean of the leaf's fitting errors over the tree's selected features, standardised with the
    # group's fitting mean/std (the "typical failure" of the rule; see FailureTrees.slice_scores)
    error_centroid: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ClassTree:
    """The failure tree of one class group (rows with that label, or that prediction).

    ``n``, ``errors``, ``base_error_rate`` (BER), ``aler`` and the leaves' metrics are measured on
    the fitting rows; ``n_holdout`` / ``errors_holdout`` count the held-out rows. The tree itself
    is the ``node_*`` lists (sklearn's node order, root = 0): ``node_feature`` is the original
    feature index split on (-1 at leaves), a row goes to ``node_left`` when
    ``float32(x[feature]) <= node_threshold`` and to ``node_right`` otherwise, and
    ``node_leaf_id`` is the leaf's ``leaf_id`` at leaves (-1 at splits). ``feature_std`` is the
    fitting rows' standard deviation of each of ``selected_features`` (scale of rule scores).
    A skipped group (``skipped_reason`` set) has no nodes and no leaves.
    """

    class_index: int
    grouping: str  # "label" | "prediction"
    n: int
    errors: int
    base_error_rate: float
    aler: float
    aler_minus_ber: float
    selected_features: list[int]
    mutual_information: list[float]  # nats, aligned with selected_features
    leaves: list[Leaf]
    has_valid_leaf: bool
    skipped_reason: str = ""
    n_holdout: int = 0
    errors_holdout: int = 0
    feature_std: list[float] = dataclasses.field(default_factory=list)
    feature_mean: list[float] = dataclasses.field(default_factory=list)
    node_feature: list[int] = dataclasses.field(default_factory=list)
    node_threshold: list[float] = dataclasses.field(default_factory=list)
    node_left: list[int] = dataclasses.field(default_factory=list)
    node_right: list[int] = dataclasses.field(default_factory=list)
    node_leaf_id: list[int] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (reports store trees this way; never pickled)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassTree:
        """The tree of :meth:`to_dict`'s output (e.g. read back from a stored report)."""
        d = dict(d)
        leaves = []
        for leaf in d.pop("leaves"):
            leaf = dict(leaf)
            leaf["conditions"] = [Condition(**c) for c in leaf["conditions"]]
            leaf["holdout"] = HoldoutStats(**leaf["holdout"]) if leaf.get("holdout") is not None else None
            leaves.append(Leaf(**leaf))
        return cls(leaves=leaves, **d)


@dataclasses.dataclass
class Rule:
    """A valid leaf together with the group it was found in."""

    class_index: int
    grouping: str
    leaf: Leaf


@dataclasses.dataclass
class _NonFinite:
    """Worker answer for a group whose rows hold NaN or Inf (first one, original row index)."""

    row: int
    column: int


# --- mutual information ------------------------------------------------------------------------
def _sortable_keys(S: np.ndarray) -> np.ndarray:
    """Flat uint64 keys of a float32 matrix sorted along rows: ``row << 32 | order-preserving bits
    of the value``, so the flat array is sorted and one ``searchsorted`` serves every row."""
    i = S.view(np.int32)
    # positive floats: set the sign bit; negative ones: flip all bits (IEEE-754 total order)
    k = (i.view(np.uint32) ^ ((i >> 31).view(np.uint32) | np.uint32(0x80000000))).astype(np.uint64)
    k |= (np.arange(S.shape[0], dtype=np.uint64) << np.uint64(32))[:, None]
    return k.reshape(-1)


def _transposed_f32(X: np.ndarray, rows_per_step: int = 32) -> np.ndarray:
    """C-contiguous float32 copy of ``X.T``, with -0.0 turned into +0.0 (so that equal values
    get equal sort keys). Copied a few rows at a time, which keeps both sides in cache: several
    times faster than ``np.ascontiguousarray(X.T)`` for [1000, 2048] matrices."""
    n, d = X.shape
    out = np.empty((d, n), dtype=np.float32)
    zero = np.float32(0.0)
    for i in range(0, n, rows_per_step):
        np.add(X[i : i + rows_per_step].T, zero, out=out[:, i : i + rows_per_step], casting="unsafe")
    return out


def mutual_information(X: np.ndarray, failed: np.ndarray, bins: int = 16) -> np.ndarray:
    """Plug-in mutual information (nats) between every column of ``X`` and the binary ``failed``.

    Each column (as float32, the precision the trees split on) is discretised into ``bins``
    equal-frequency bins: a value's bin is ``floor(bins * r / n)`` with ``r`` the number of values
    of the column strictly below it, so tied values share a bin and a constant column has MI 0.
    Equivalently, a value is in a bin below ``j`` iff it is ``<=`` the column's ``ceil(j n / bins)``-th
    smallest value, so the per-bin counts of all rows and of failing rows come from sorting the
    columns (all rows, and failing rows only) and one batched ``searchsorted`` for all columns'
    bin edges at once; no per-element bin indices are materialised.
    """
    y = np.asarray(failed, dtype=bool)
    X = np.asarray(X)
    n, d = X.shape
    if n == 0 or d == 0:
        return np.zeros(d)
    XT = _transposed_f32(X)
    XE = np.compress(y, XT, axis=1)  # C-contiguous (XT[:, y] would be column-major)
    XT.sort(axis=1)
    XE.sort(axis=1)
    n_err = XE.shape[1]
    keys = _sortable_keys(XT)
    edge_pos = (np.arange(1, bins, dtype=np.int64) * n + bins - 1) // bins - 1  # ceil(j n / bins) - 1
    edges = keys.reshape(d, n)[:, edge_pos].reshape(-1)
    row = np.arange(d, dtype=np.int64)[:, None]
    le_all = np.searchsorted(keys, edges, side="right").reshape(d, bins - 1) - row * n
    le_err = np.searchsorted(_sortable_keys(XE), edges, side="right").reshape(d, bins - 1) - row * n_err
    count = np.diff(le_all, prepend=0, append=n, axis=1).astype(np.float64)
    err = np.diff(le_err, prepend=0, append=n_err, axis=1).astype(np.float64)
    ok = count - err
    n_ok = n - n_err
    mi = np.zeros(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        for joint, marginal in ((err, n_err), (ok, n_ok)):
            if marginal > 0:
                term = joint * np.log(joint * n / (count * marginal))
                mi += np.where(joint > 0, term, 0.0).sum(axis=1)
    mi /= n
    return np.maximum(mi, 0.0)


def _top_features(mi: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, largest first, ties by smaller index."""
    return np.lexsort((np.arange(len(mi)), -mi))[: min(k, len(mi))]


# --- tree application --------------------------------------------------------------------------
def _apply_nodes(node_feature, node_threshold, node_left, node_right, X: np.ndarray) -> np.ndarray:
    """Leaf node index of every row of ``X`` (original feature columns)."""
    X = np.asarray(X)
    feat = np.asarray(node_feature, dtype=np.int64)
    thr = np.asarray(node_threshold, dtype=np.float64)
    left = np.asarray(node_left, dtype=np.int64)
    right = np.asarray(node_right, dtype=np.int64)
    node = np.zeros(len(X), dtype=np.int64)
    active = np.arange(len(X))
    while active.size:
        f = feat[node[active]]
        split = f >= 0
        active, f = active[split], f[split]
        if not active.size:
            break
        # sklearn fits on float32 copies of the features, so compare the same way.
        x = X[active, f].astype(np.float32).astype(np.float64)
        nd = node[active]
        node[active] = np.where(x <= thr[nd], left[nd], right[nd])
    return node


def _leaf_ids(tree: ClassTree, X: np.ndarray) -> np.ndarray:
    if not tree.node_feature:
        return np.full(len(X), -1, dtype=np.int64)
    nodes = _apply_nodes(tree.node_feature, tree.node_threshold, tree.node_left, tree.node_right, X)
    return np.asarray(tree.node_leaf_id, dtype=np.int64)[nodes]


def _standardised(tree: ClassTree, X: np.ndarray) -> np.ndarray:
    """The tree's selected features of ``X``, standardised with the group's fitting mean/std."""
    sel = np.asarray(tree.selected_features, dtype=np.intp)
    std = np.asarray(tree.feature_std, dtype=np.float64)
    return (X[:, sel].astype(np.float64) - np.asarray(tree.feature_mean, dtype=np.float64)) / np.where(std > 0, std, 1.0)


def _merge_conditions(path: list[Condition]) -> list[Condition]:
    """Keep the tightest test per (feature, op), in order of first appearance on the path."""
    out: dict[tuple[int, str], Condition] = {}
    for c in path:
        key = (c.feature, c.op)
        if key not in out:
            out[key] = Condition(c.feature, c.op, c.threshold)
        elif c.op == "<=":
            out[key].threshold = min(out[key].threshold, c.threshold)
        else:
            out[key].threshold = max(out[key].threshold, c.threshold)
    return list(out.values())


# --- per-group fit (runs in worker processes) ---------------------------------------------------
def _first_non_finite(X: np.ndarray) -> tuple[int, int] | None:
    if not np.issubdtype(X.dtype, np.floating):
        return None
    finite = np.isfinite(X)
    if finite.all():
        return None
    r, c = np.argwhere(~finite)[0]
    return int(r), int(c)


def _skipped(base: dict[str, Any], reason: str) -> ClassTree:
    ber = base["errors"] / base["n"] if base["n"] else 0.0
    return ClassTree(
        **base,
        base_error_rate=ber,
        aler=ber,
        aler_minus_ber=0.0,
        selected_features=[],
        mutual_information=[],
        leaves=[],
        has_valid_leaf=False,
        skipped_reason=reason,
    )


def _fit_tree(grouping: str, class_index: int, X: np.ndarray, wrong: np.ndarray, held: np.ndarray, params: dict[str, Any]) -> ClassTree:
    """The failure tree of one group: ``X`` its rows, ``wrong`` their failure flags, ``held``
    the rows kept out of fitting."""
    fit = ~held
    Xf, yf = X[fit], wrong[fit]
    Xh, yh = X[held], wrong[held]
    n, e = int(len(yf)), int(yf.sum())
    base: dict[str, Any] = dict(class_index=int(class_index), grouping=grouping, n=n, errors=e, n_holdout=int(len(yh)), errors_holdout=int(yh.sum()))
    if n == 0:
        return _skipped(base, SKIP_NO_ROWS)
    if e == 0:
        return _skipped(base, SKIP_NO_ERRORS)
    if e == n:
        return _skipped(base, SKIP_ONLY_ERRORS)
    if n < 2 * params["min_leaf_size"]:
        return _skipped(base, SKIP_TOO_FEW)
    ber = e / n

    mi = mutual_information(Xf, yf, params["mi_bins"])
    top = _top_features(mi, params["top_k_features"])
    Xk = np.ascontiguousarray(Xf[:, top], dtype=np.float32)
    clf = DecisionTreeClassifier(
        max_depth=params["max_depth"], class_weight="balanced", min_samples_leaf=params["min_leaf_size"], random_state=params["seed"]
    )
    clf.fit(Xk, yf.astype(np.int8))
    t = clf.tree_
    is_leaf = t.children_left < 0
    node_feature = [-1 if lf else int(top[f]) for f, lf in zip(t.feature, is_leaf)]
    node_threshold = [0.0 if lf else float(v) for v, lf in zip(t.threshold, is_leaf)]
    node_left = [int(v) for v in t.children_left]
    node_right = [int(v) for v in t.children_right]
    node_leaf_id = [-1] * t.node_count
    paths: dict[int, list[Condition]] = {}

    def walk(node: int, path: list[Condition]) -> None:
        if is_leaf[node]:
            node_leaf_id[node] = len(paths)
            paths[node_leaf_id[node]] = path
            return
        f, v = node_feature[node], node_threshold[node]
        walk(node_left[node], path + [Condition(f, "<=", v)])
        walk(node_right[node], path + [Condition(f, ">", v)])

    walk(0, [])
    tree = ClassTree(
        **base,
        base_error_rate=ber,
        aler=0.0,
        aler_minus_ber=0.0,
        selected_features=[int(i) for i in top],
        mutual_information=[float(mi[i]) for i in top],
        leaves=[],
        has_valid_leaf=False,
        feature_std=[float(s) for s in Xf[:, top].astype(np.float64).std(axis=0)],
        feature_mean=[float(m) for m in Xf[:, top].astype(np.float64).mean(axis=0)],
        node_feature=node_feature,
        node_threshold=node_threshold,
        node_left=node_left,
        node_right=node_right,
        node_leaf_id=node_leaf_id,
    )
    member_fit = _leaf_ids(tree, Xf)
    member_held = _leaf_ids(tree, Xh)
    Zf = _standardised(tree, Xf)
    aler = 0.0
    for leaf_id in range(len(paths)):
        inside = member_fit == leaf_id
        nl = int(inside.sum())
        el = int((inside & yf).sum())
        er = el / nl if nl else 0.0
        ec = el / e
        iv = er * ec
        aler += iv
        conds = _merge_conditions(paths[leaf_id])
        holdout = None
        if params["holdout_fraction"] > 0:
            holdout = validation.slice_stats(member_held == leaf_id, yh)
        tree.leaves.append(
            Leaf(
                leaf_id=leaf_id,
                conditions=conds,
                text=" and ".join(c.describe() for c in conds) if conds else "all rows of the group",
                n=nl,
                errors=el,
                error_rate=er,
                error_coverage=ec,
                importance=iv,
                valid=bool(ec > params["tau"] and er >= ber + params["delta"] - _RATE_SLACK),
                holdout=holdout,
                error_centroid=[float(v) for v in Zf[inside & yf].mean(axis=0)] if el else [],
            )
        )
    tree.aler = aler
    tree.aler_minus_ber = aler - ber
    tree.has_valid_leaf = any(lf.valid for lf in tree.leaves)
    return tree


def _fit_group(key: tuple[str, int], rows: np.ndarray, X_rows: np.ndarray, context: dict[str, Any]):
    """``classwise.map_groups`` worker: the tree of group ``key = (grouping, class)``."""
    grouping, class_index = key
    X = np.asarray(X_rows)
    bad = _first_non_finite(X)
    if bad is not None:
        return _NonFinite(int(rows[bad[0]]), bad[1])
    wrong = context["labels"][rows] != context["predictions"][rows]
    held = context["holdout"][grouping][rows]
    return _fit_tree(grouping, class_index, X, wrong, held, context["params"])


# --- estimator ---------------------------------------------------------------------------------
def _non_finite_error(row: int, column: int) -> InvalidData:
    return InvalidData(f"features contain NaN or Inf at row {row}, column {column}: clean or impute the features before fitting failure trees")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and bool(np.isfinite(float(v)))


class FailureTrees(P.Estimator):
    """Barlow failure trees for every class, by label and/or by prediction grouping.

    Parameters (checked in :meth:`fit`): ``max_depth`` 1..3; ``top_k_features`` features kept by
    mutual information; ``tau`` / ``delta`` the rule thresholds (``EC > tau``,
    ``ER >= BER + delta``); ``min_leaf_size`` the trees' ``min_samples_leaf``; ``groupings`` a
    subset of ``("label", "prediction")``; ``holdout_fraction`` of each group kept out of fitting
    for validation (0 disables); ``fdr_alpha`` the false discovery rate of the hold-out tests;
    ``seed`` for the hold-out split and the trees; ``n_jobs`` worker processes (-1: all cores);
    ``mi_bins`` equal-frequency bins of the mutual information estimate; ``block_bytes`` the most
    feature bytes a worker reads at once.

    Fitted attributes: ``trees_`` (one :class:`ClassTree` per grouping and class, sorted by
    grouping then class), ``rules_`` (valid leaves of all trees, highest importance first),
    ``valid_leaf_fraction_`` (per grouping, the fraction of its classes, fitted or skipped, with
    at least one valid leaf) and ``top_leaf_valid_fraction_`` (per grouping, the fraction whose
    highest-IV leaf is valid, the statistic of the paper's Section 7 / Appendix Table 1).
    """

    def __init__(
        self,
        max_depth=2,
        top_k_features=20,
        tau=0.2,
        delta=0.1,
        min_leaf_size=5,
        groupings=("label", "prediction"),
        holdout_fraction=0.5,
        fdr_alpha=0.05,
        seed=0,
        n_jobs=1,
        mi_bins=16,
        block_bytes=256 * 2**20,
    ):
        self.max_depth = max_depth
        self.top_k_features = top_k_features
        self.tau = tau
        self.delta = delta
        self.min_leaf_size = min_leaf_size
        self.groupings = groupings
        self.holdout_fraction = holdout_fraction
        self.fdr_alpha = fdr_alpha
        self.seed = seed
        self.n_jobs = n_jobs
        self.mi_bins = mi_bins
        self.block_bytes = block_bytes

    # -- parameters and inputs --
    def _checked_params(self) -> dict[str, Any]:
        need = P.need
        need(
            _is_int(self.max_depth) and 1 <= self.max_depth <= 3,
            "max_depth",
            f"max_depth={self.max_depth!r}: use an integer from 1 to 3 (failure trees stay shallow)",
        )
        need(
            _is_int(self.top_k_features) and self.top_k_features >= 1,
            "top_k_features",
            f"top_k_features={self.top_k_features!r}: use an integer >= 1",
        )
        need(_is_real(self.tau) and 0.0 <= self.tau < 1.0, "tau", f"tau={self.tau!r}: use a number in [0, 1)")
        need(_is_real(self.delta) and 0.0 <= self.delta <= 1.0, "delta", f"delta={self.delta!r}: use a number in [0, 1]")
        need(_is_int(self.min_leaf_size) and self.min_leaf_size >= 1, "min_leaf_size", f"min_leaf_size={self.min_leaf_size!r}: use an integer >= 1")
        groupings = (self.groupings,) if isinstance(self.groupings, str) else tuple(self.groupings)
        need(
            len(groupings) > 0 and all(g in GROUPINGS for g in groupings) and len(set(groupings)) == len(groupings),
            "groupings",
            f"groupings={self.groupings!r}: use a non-empty subset of {GROUPINGS} without repeats",
        )
        need(
            _is_real(self.holdout_fraction) and 0.0 <= self.holdout_fraction < 1.0,
            "holdout_fraction",
            f"holdout_fraction={self.holdout_fraction!r}: use a number in [0, 1) (0 disables the hold-out)",
        )
        need(_is_real(self.fdr_alpha) and 0.0 < self.fdr_alpha < 1.0, "fdr_alpha", f"fdr_alpha={self.fdr_alpha!r}: use a number in (0, 1)")
        need(_is_int(self.seed) and 0 <= self.seed < 2**32, "seed", f"seed={self.seed!r}: use an integer in [0, 2**32)")
        need(
            _is_int(self.n_jobs) and (self.n_jobs >= 1 or self.n_jobs == -1),
            "n_jobs",
            f"n_jobs={self.n_jobs!r}: use an integer >= 1, or -1 for all cores",
        )
        need(_is_int(self.mi_bins) and self.mi_bins >= 2, "mi_bins", f"mi_bins={self.mi_bins!r}: use an integer >= 2")
        need(_is_int(self.block_bytes) and self.block_bytes >= 1, "block_bytes", f"block_bytes={self.block_bytes!r}: use a positive integer")
        return dict(
            max_depth=int(self.max_depth),
            top_k_features=int(self.top_k_features),
            tau=float(self.tau),
            delta=float(self.delta),
            min_leaf_size=int(self.min_leaf_size),
            groupings=tuple(g for g in GROUPINGS if g in groupings),
            holdout_fraction=float(self.holdout_fraction),
            fdr_alpha=float(self.fdr_alpha),
            seed=int(self.seed),
            n_jobs=(os.cpu_count() or 1) if self.n_jobs == -1 else int(self.n_jobs),
            mi_bins=int(self.mi_bins),
            block_bytes=int(self.block_bytes),
        )

    @staticmethod
    def _checked_source(features) -> tuple[np.ndarray | str, tuple[int, ...], np.dtype]:
        if isinstance(features, (str, os.PathLike)):
            source: np.ndarray | str = str(Path(features))
            shape, dtype = classwise.source_shape(source)
        else:
            source = np.asarray(features)
            shape, dtype = source.shape, source.dtype
        if len(shape) != 2:
            raise InvalidData(f"features must be a 2-D [rows, features] matrix, got shape {tuple(shape)}")
        if shape[0] == 0 or shape[1] == 0:
            raise InvalidData(f"features of shape {tuple(shape)} are empty: need at least one row and one column")
        if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
            raise InvalidData(f"features must be real numbers (float or integer dtype), got {dtype}")
        return source, tuple(shape), np.dtype(dtype)

    @staticmethod
    def _checked_targets(values, name: str, n_rows: int) -> np.ndarray:
        a = np.asarray(values)
        if a.ndim != 1:
            raise InvalidData(f"{name} must be a 1-D array of class indices, got shape {a.shape}")
        if len(a) != n_rows:
            raise InvalidData(f"{name} has {len(a)} entries but features have {n_rows} rows: they must align row by row")
        if not np.issubdtype(a.dtype, np.integer):
            raise InvalidData(f"{name} must hold integer class indices, got dtype {a.dtype}")
        return a.astype(np.int64, copy=False)

    @staticmethod
    def _check_finite_in_memory(X: np.ndarray, analysed: np.ndarray) -> None:
        if not np.issubdtype(X.dtype, np.floating):
            return
        rows = np.flatnonzero(analysed)
        step = max(1, _CHECK_CHUNK_BYTES // max(1, X.shape[1] * X.itemsize))
        everything = len(rows) == len(X)
        for s in range(0, len(rows), step):
            block = X[s : s + step] if everything else X[rows[s : s + step]]
            bad = _first_non_finite(block)
            if bad is not None:
                raise _non_finite_error(int(rows[s + bad[0]]), bad[1])

    # -- fitting --
    def fit(
        self,
        features,
        labels,
        predictions,
        classes: Iterable[int] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        check: Callable[[], None] | None = None,
    ) -> FailureTrees:
        """Fit one failure tree per grouping and class.

        ``features``: float matrix [N, D] or the path of a ``.npy`` file holding one (read in
        blocks through a memory map, never loaded whole); ``labels`` / ``predictions``: integer
        class indices [N]; ``classes``: the classes to analyse (default: every value found in
        labels or predictions); ``progress(stage, done, total)`` reports the finished groups of
        stage ``"trees"``; ``check()`` is called between blocks and may raise to cancel.

        Only rows of the analysed groups are read; a NaN or Inf among them raises InvalidData
        (a ValueError) naming the first such row and column. Input errors (shapes, dtypes:
        InvalidData; unknown classes, parameters: InvalidArgument) raise before any work starts.
        """
        p = self.validate_params()
        source, shape, _ = self._checked_source(features)
        n_rows = shape[0]
        labels = self._checked_targets(labels, "labels", n_rows)
        predictions = self._checked_targets(predictions, "predictions", n_rows)
        present = np.union1d(labels, predictions)
        if classes is None:
            wanted = present
        else:
            try:
                wanted = np.unique(np.asarray(list(classes), dtype=np.int64))
            except (TypeError, ValueError, OverflowError) as exc:
                raise InvalidArgument(f"classes must be integer class indices: {exc}", field="classes") from None
            unknown = np.setdiff1d(wanted, present)
            if unknown.size:
                shown = ", ".join(str(int(c)) for c in unknown[:10]) + (" ..." if unknown.size > 10 else "")
                raise InvalidArgument(
                    f"classes {shown} occur neither in labels nor in predictions: pass only classes present in the data", field="classes"
                )
        if check:
            check()

        wrong = labels != predictions
        column = {"label": labels, "prediction": predictions}
        holdout: dict[str, np.ndarray] = {}
        groups: dict[tuple[str, int], np.ndarray] = {}
        analysed = np.zeros(n_rows, dtype=bool)
        for g in p["groupings"]:
            # stratified by failure flag within each class group, over all rows (so a class's
            # split does not depend on which other classes are analysed)
            holdout[g] = validation.stratified_holdout(column[g] * 2 + wrong, p["holdout_fraction"], p["seed"])
            for c, rows in classwise.group_rows(column[g], keep=wanted).items():
                groups[(g, c)] = rows
                analysed[rows] = True
        if isinstance(source, np.ndarray):
            self._check_finite_in_memory(source, analysed)

        context = dict(labels=labels, predictions=predictions, holdout=holdout, params=p)
        results = classwise.map_groups(
            _fit_group,
            source,
            groups,
            context,
            n_jobs=p["n_jobs"],
            block_bytes=p["block_bytes"],
            progress=(lambda done, total: progress("trees", done, total)) if progress else None,
            check=check,
        )
        bad = [r for r in results.values() if isinstance(r, _NonFinite)]
        if bad:
            first = min(bad, key=lambda b: (b.row, b.column))
            raise _non_finite_error(first.row, first.column)

        trees: list[ClassTree] = []
        for g in p["groupings"]:
            for c in wanted:
                c = int(c)
                if (g, c) in results:
                    trees.append(results[(g, c)])
                else:  # class present only in the other column: an empty group
                    trees.append(_skipped(dict(class_index=c, grouping=g, n=0, errors=0), SKIP_NO_ROWS))

        family: list[HoldoutStats] = []
        for t in trees:
            for leaf in t.leaves:
                if leaf.holdout is None:
                    continue
                if leaf.valid:
                    family.append(leaf.holdout)
                else:
                    leaf.holdout.q_value, leaf.holdout.validated = 1.0, False
        if family:
            validation.apply_fdr(family, p["fdr_alpha"])

        rules = [Rule(t.class_index, t.grouping, leaf) for t in trees for leaf in t.leaves if leaf.valid]
        rank = {g: i for i, g in enumerate(GROUPINGS)}
        rules.sort(key=lambda r: (-r.leaf.importance, rank[r.grouping], r.class_index, r.leaf.leaf_id))

        self.trees_ = trees
        self.rules_ = rules
        self.n_features_in_ = int(shape[1])
        self.valid_leaf_fraction_ = {}
        self.top_leaf_valid_fraction_ = {}
        for g in p["groupings"]:
            mine = [t for t in trees if t.grouping == g]
            self.valid_leaf_fraction_[g] = sum(t.has_valid_leaf for t in mine) / len(mine) if mine else 0.0
            top_valid = [bool(t.leaves) and max(t.leaves, key=lambda lf: (lf.importance, -lf.leaf_id)).valid for t in mine]
            self.top_leaf_valid_fraction_[g] = sum(top_valid) / len(mine) if mine else 0.0
        return self

    # -- applying a tree --
    @staticmethod
    def _rows(tree: ClassTree, X_rows) -> np.ndarray:
        X = np.asarray(X_rows)
        if X.ndim != 2:
            raise InvalidData(f"X_rows must be a 2-D [rows, features] matrix, got shape {X.shape}")
        needed = max(tree.node_feature, default=-1) + 1
        if X.shape[1] < needed:
            raise InvalidData(
                f"X_rows has {X.shape[1]} feature columns but the tree splits on feature {needed - 1}: pass rows with all original feature columns"
            )
        return X

    @staticmethod
    def leaf_membership(tree: ClassTree, X_rows) -> np.ndarray:
        """``leaf_id`` of every row of ``X_rows`` (all original feature columns) in ``tree``;
        -1 for every row when the tree was skipped. Needs no fitted estimator (a tree read back
        from a report works)."""
        return _leaf_ids(tree, FailureTrees._rows(tree, X_rows))

    @staticmethod
    def rule_depth(tree: ClassTree, leaf: Leaf, X_rows) -> np.ndarray:
        """How deep each row lies inside ``leaf``'s rule: the minimum over its conditions of the
        signed margin (``x - threshold`` for ``>``, ``threshold - x`` for ``<=``) divided by the
        feature's standard deviation on the group's fitting rows. Positive means inside the rule;
        ``+inf`` for every row when the leaf has no condition (a tree with a single leaf)."""
        X = FailureTrees._rows(tree, X_rows)
        scores = np.full(len(X), np.inf)
        std = dict(zip(tree.selected_features, tree.feature_std))
        for c in leaf.conditions:
            x = X[:, c.feature].astype(np.float32).astype(np.float64)
            margin = x - c.threshold if c.op == ">" else c.threshold - x
            s = std.get(c.feature, 0.0)
            np.minimum(scores, margin / (s if s > 0 else 1.0), out=scores)
        return scores

    @staticmethod
    def slice_scores(tree: ClassTree, leaf: Leaf, X_rows) -> np.ndarray:
        """Score of each row as a member of ``leaf``'s slice, for ranking (higher = more typical):
        rows outside the rule get ``-inf``; rows inside it the negative distance (RMS over the
        tree's selected features, standardised) to the rule's typical failure, the mean of its
        fitting errors. The rule says *where* the model fails; the centroid ranks the members by
        how much they look like the failures found there (a rule region also holds rows that
        are in it for other reasons). A leaf without fitting errors ranks by :meth:`rule_depth`."""
        X = FailureTrees._rows(tree, X_rows)
        inside = _leaf_ids(tree, X) == leaf.leaf_id
        scores = np.full(len(X), -np.inf)
        if not leaf.error_centroid:
            scores[inside] = FailureTrees.rule_depth(tree, leaf, X[inside])
            return scores
        z = _standardised(tree, X[inside])
        scores[inside] = -np.sqrt(np.mean((z - np.asarray(leaf.error_centroid)) ** 2, axis=1))
        return scores
