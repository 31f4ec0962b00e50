"""Failure directions: per-class linear SVMs on CLIP image embeddings that predict the model's errors.

After Jain, Lawrence, Moitra, Madry, *Distilling Model Failures as Directions in Latent Space*
(paper ``002`` in the papers index). For every class (the images whose label is the class) a
linear SVM is trained on the L2-normalised CLIP image embeddings to separate the images the model
gets wrong from those it gets right; the unit normal of its hyperplane, pointing towards the
errors, is the class's *failure direction*. The images with the largest decision values are the
hardest ("most aligned"), those with the smallest the easiest ("most anti-aligned"); since CLIP
embeds text in the same space, candidate captions are ranked by ``direction · normalise(text)``.

What failurelens adds to the paper:

* every class is split (stratified by the failure flag) into a fitting part and a held-out part
  (:func:`validation.stratified_holdout`); ``C`` is chosen by stratified k-fold cross-validated
  balanced accuracy on the fitting part only, and everything reported (balanced accuracy, most
  aligned images, the slice "decision value > 0") is measured on the held-out part;
* the slice "decision value > 0" of the held-out part is tested against the rest of the held-out
  class (one-sided Fisher) and Benjamini–Hochberg is applied over all classes as one family;
* optionally (``error_modes``) one more direction per k-means cluster of a class's errors, so
  that a class failing for several reasons gets one direction per reason;
* the baseline of the paper's comparison, the model's accuracy on its least confident images, is
  reported next to the accuracy on the most aligned images.

Decision values here are signed distances: ``direction · normalise(x) + intercept`` with a unit
``direction`` (the SVM's ``w·x + b`` divided by ``|w|``: same sign, same order).

Speed. Each class has fewer images than embedding dimensions (ImageNet: ~640 fitting images,
2048 dimensions), so the SVM's weight vector lies in the span of the fitting images and the dual
solver only ever sees their inner products. The fitting part is centred and replaced by
coordinates in an orthonormal basis of its span (from a pivoted Cholesky factorisation of its
Gram matrix): every SVM of the cross-validation and the final refit then runs on an
``n x rank`` matrix instead of ``n x 2048`` with the same solution, mapped back to embedding
space once. Centring only moves the
intercept (``b - w·mean`` is folded back), which makes liblinear's regularised intercept behave
like an ordinary one. When a fit leaves no training margin violated (the data are separated), the
solution is the same for every larger ``C`` and those fits are skipped.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import linalg
from scipy.linalg import lapack
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from failurelens.discovery import classwise
from failurelens.discovery import params as P
from failurelens.discovery.validation import HoldoutStats, apply_fdr, slice_stats, stratified_holdout
from failurelens.errors import InvalidArgument, InvalidData

__all__ = ["ClassDirection", "FailureDirections"]

# liblinear (dual coordinate descent) stopping rule: the directions and decision orders are stable
# long before the default tolerance; the iteration cap bounds the slow, nearly hard-margin fits.
_TOL = 1e-3
_MAX_ITER = 300
# a fit whose training margins are all >= 1 - _SEPARATED_SLACK counts as separating the data (the
# solver stops once margin violations of supported images are within its tolerance)
_SEPARATED_SLACK = 2 * _TOL
# rows whose squared distance from the span of the rows already chosen is below this fraction of
# the largest squared row norm add nothing to the basis (rank-revealing pivoted Cholesky)
_RANK_RTOL = 1e-10

SKIP_NO_ERRORS = "no errors"
SKIP_ONLY_ERRORS = "only errors"
SKIP_FEW_ERRORS = "too few errors for cross-validation"
SKIP_FEW_CORRECT = "too few correct predictions for cross-validation"
SKIP_CONSTANT = "all embeddings of the class are identical"
SKIP_ZERO_NORMAL = "the SVM found no direction (zero weight vector)"
SKIP_FEW_MODE_ERRORS = "too few errors in this error mode for cross-validation"


@dataclasses.dataclass
class ClassDirection:
    """The failure direction of one class and how it holds up on the class's held-out images."""

    class_index: int
    n: int
    errors: int
    #: float32 [E] unit normal of the SVM in normalised embedding space, pointing towards errors
    direction: np.ndarray
    #: decision value of x = direction · normalise(x) + intercept (a signed distance)
    intercept: float
    c: float
    cv_balanced_accuracy: float
    holdout_balanced_accuracy: float
    #: int64 indices (into the input arrays) of the class's images, sorted
    rows: np.ndarray
    #: float32 [len(rows)] decision value of every image of the class (NaN when skipped)
    decision_values: np.ndarray
    #: bool [len(rows)] True = used for fitting, False = held out
    fit_mask: np.ndarray
    #: input-array indices of held-out images (all images without hold-out), hardest first
    top_aligned_rows: list[int]
    #: input-array indices of held-out images (all images without hold-out), easiest first
    top_antialigned_rows: list[int]
    #: model accuracy on the ``top_aligned_rows``
    top_aligned_accuracy: float
    #: model accuracy on as many least-confident held-out images (NaN without confidences)
    low_confidence_accuracy: float
    #: held-out images with decision value > 0 against the rest of the held-out class
    holdout: HoldoutStats | None
    #: "" when fitted, else why the class has no direction
    skipped_reason: str
    #: mean cross-validated balanced accuracy of every C of the grid
    cv_scores: dict[float, float] = dataclasses.field(default_factory=dict)
    #: 0: the class's direction (all its errors, the paper's); m >= 1: the direction of the class's
    #: m-th error mode (the m-th largest k-means cluster of its fitting errors against all its
    #: fitting correct predictions)
    mode: int = 0
    #: fitting errors the SVM was trained on (all fitting errors for mode 0, the cluster's for m >= 1)
    mode_errors: int = 0


# --- helpers -------------------------------------------------------------------------------------
def _normalise_rows(x: np.ndarray, row_ids: Sequence[int] | np.ndarray | None, what: str) -> np.ndarray:
    """float64 copy of ``x`` with unit rows; ValueError naming the first non-finite or zero row."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise InvalidData(f"{what} must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=True)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        name = int(row_ids[i]) if row_ids is not None else i
        raise InvalidData(f"{what} row {name} contains NaN or Inf")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    if not (norms > 0).all():
        i = int(np.flatnonzero(~(norms > 0))[0])
        name = int(row_ids[i]) if row_ids is not None else i
        raise InvalidData(f"{what} row {name} is all zeros and cannot be L2-normalised")
    x /= norms[:, None]
    return x


def _balanced_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean of the recalls of errors and correct predictions (NaN if either is absent)."""
    pos, neg = y, ~y
    if not pos.any() or not neg.any():
        return float("nan")
    return 0.5 * (float(pred[pos].mean()) + float((~pred[neg]).mean()))


def _class_seed(seed: int, class_index: int) -> int:
    """A per-class seed, so that a class's split does not depend on which other classes are fitted."""
    return int(np.random.SeedSequence([seed, class_index % 2**63]).generate_state(1)[0])


def _svm(c: float, seed: int) -> LinearSVC:
    # the standard (hinge-loss) SVM, solved by liblinear's dual coordinate descent: a class has
    # fewer images than dimensions, and the dual's box constraints let the solver shrink the
    # images at their bound (faster than the squared hinge, and separable folds reach the exact
    # hard-margin solution that makes larger C redundant)
    return LinearSVC(C=c, loss="hinge", class_weight="balanced", dual=True, tol=_TOL, max_iter=_MAX_ITER, random_state=seed)


def _fit_svm(z: np.ndarray, y: np.ndarray, c: float, seed: int) -> tuple[np.ndarray, float, bool]:
    """Weights, intercept and whether the fit separates the training data with margin 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = _svm(c, seed).fit(z, y)
    w = m.coef_.ravel()
    b = float(m.intercept_[0])
    margins = np.where(y, 1.0, -1.0) * (z @ w + b)
    return w, b, bool(margins.min() >= 1.0 - _SEPARATED_SLACK)


def _span_coordinates(xc: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Coordinates ``z`` of the rows of ``xc`` in an orthonormal basis of their span (so
    ``z @ z.T == xc @ xc.T``) and the map from a weight vector in those coordinates back to
    embedding space. Without fewer rows than dimensions the rows are used as they are.

    The basis comes from a pivoted Cholesky factorisation of the Gram matrix (rank-revealing,
    a few ms for 640 rows): ``gram[piv][:, piv] = L @ L.T``; the first ``rank`` pivot rows ``B``
    span the rows, ``V = B.T @ inv(L11).T`` is orthonormal and ``xc @ V = L`` (rows unpermuted).
    """
    n, d = xc.shape
    if n >= d:
        return xc, lambda w: w
    gram = xc @ xc.T
    top = float(gram.diagonal().max()) if n else 0.0
    if not top > 0.0:
        return np.zeros((n, 0)), lambda w: np.zeros(d)
    factor, piv, rank, info = lapack.dpstrf(gram, tol=_RANK_RTOL * top, lower=1, overwrite_a=1)
    if info < 0:
        raise RuntimeError(f"pivoted Cholesky failed (LAPACK info {info})")
    piv = piv[:n] - 1
    lower = np.tril(factor[:, :rank])
    z = np.empty((n, rank))
    z[piv] = lower
    basis_rows = xc[piv[:rank]]
    l11 = np.ascontiguousarray(lower[:rank])

    def back(w_z: np.ndarray) -> np.ndarray:
        return basis_rows.T @ linalg.solve_triangular(l11, w_z, trans="T", lower=True, check_finite=False)

    return z, back


def _skipped(
    cls: int, rows: np.ndarray, wrong: np.ndarray, fit_mask: np.ndarray, dim: int, reason: str, mode: int = 0, mode_errors: int | None = None
) -> ClassDirection:
    return ClassDirection(
        class_index=cls,
        n=len(rows),
        errors=int(wrong.sum()),
        direction=np.zeros(dim, np.float32),
        intercept=0.0,
        c=float("nan"),
        cv_balanced_accuracy=float("nan"),
        holdout_balanced_accuracy=float("nan"),
        rows=rows,
        decision_values=np.full(len(rows), np.nan, np.float32),
        fit_mask=fit_mask,
        top_aligned_rows=[],
        top_antialigned_rows=[],
        top_aligned_accuracy=float("nan"),
        low_confidence_accuracy=float("nan"),
        holdout=None,
        skipped_reason=reason,
        mode=mode,
        mode_errors=int(wrong[fit_mask].sum()) if mode_errors is None else mode_errors,
    )


def _choose_c(z: np.ndarray, y: np.ndarray, grid: list[float], folds: int, seed: int) -> tuple[float, dict[float, float]]:
    """C of the grid with the best stratified k-fold cross-validated balanced accuracy (ties go to
    the smaller, more regularised C) and every C's mean score."""
    scores = {c: 0.0 for c in grid}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    for tr, va in splitter.split(z, y):
        z_tr, y_tr, z_va, y_va = z[tr], y[tr], z[va], y[va]
        pred_va: np.ndarray | None = None
        separated = False
        for c in grid:
            if not separated:  # once the training fold is separated, larger C give the same SVM
                w, b, separated = _fit_svm(z_tr, y_tr, c, seed)
                pred_va = (z_va @ w + b) > 0
            assert pred_va is not None  # the first C always fits
            scores[c] += _balanced_accuracy(pred_va, y_va) / folds
    best = grid[0]
    for c in grid[1:]:
        if scores[c] > scores[best] + 1e-12:
            best = c
    return best, scores


def _error_modes(x_err: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cluster index (0 = largest cluster) of every fitting error: k-means (k-means++ starts, 10
    restarts) on the unit embeddings of the errors."""
    with warnings.catch_warnings():  # fewer distinct errors than clusters: some clusters stay small
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, n_init=10, random_state=seed % 2**32).fit(x_err)
    sizes = np.bincount(km.labels_, minlength=k)
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[km.labels_]


def _fit_class(key: Any, rows: np.ndarray, x_rows: np.ndarray, context: dict[str, Any]) -> list[ClassDirection]:
    """The failure directions of class ``key``: mode 0 (all of the class's errors, the paper's
    direction) and, with ``error_modes`` k, one per k-means cluster of the fitting errors (module
    level: runs in worker processes)."""
    cls = int(key)
    rows = np.asarray(rows, dtype=np.int64)
    p = context["params"]
    wrong = np.asarray(context["wrong"][rows], dtype=bool)
    conf = None if context["confidences"] is None else np.asarray(context["confidences"][rows], np.float64)
    dim = int(np.shape(x_rows)[1])
    xn = _normalise_rows(x_rows, rows, "embeddings")
    del x_rows
    seed = _class_seed(p["seed"], cls)
    n, n_err = len(rows), int(wrong.sum())
    if p["holdout_fraction"] > 0:
        held = stratified_holdout(wrong.astype(np.int8), p["holdout_fraction"], seed=seed)
    else:
        held = np.zeros(n, dtype=bool)
    fit = ~held
    folds = p["cv_folds"]
    if n_err == 0:
        return [_skipped(cls, rows, wrong, fit, dim, SKIP_NO_ERRORS)]
    if n_err == n:
        return [_skipped(cls, rows, wrong, fit, dim, SKIP_ONLY_ERRORS)]
    y = wrong[fit]
    if int(y.sum()) < folds:
        return [_skipped(cls, rows, wrong, fit, dim, SKIP_FEW_ERRORS)]
    if int((~y).sum()) < folds:
        return [_skipped(cls, rows, wrong, fit, dim, SKIP_FEW_CORRECT)]

    xf = xn[fit]
    mean = xf.mean(axis=0)
    xc = xf - mean
    z, back = _span_coordinates(xc)
    if z.shape[1] == 0:
        return [_skipped(cls, rows, wrong, fit, dim, SKIP_CONSTANT)]
    grid = sorted(set(float(c) for c in p["c_grid"]))

    def direction(mode: int, use: np.ndarray) -> ClassDirection:
        """The SVM of the fitting rows ``use`` (errors = positives), evaluated on the class."""
        y_use = y[use]
        n_pos = int(y_use.sum())
        if n_pos < folds:
            return _skipped(cls, rows, wrong, fit, dim, SKIP_FEW_ERRORS if mode == 0 else SKIP_FEW_MODE_ERRORS, mode, n_pos)
        z_use = z[use]
        best, scores = _choose_c(z_use, y_use, grid, folds, seed)
        w_z, b, _ = _fit_svm(z_use, y_use, best, seed)
        w = back(w_z)
        norm = float(np.linalg.norm(w))
        if not (norm > 0 and math.isfinite(norm)):
            return _skipped(cls, rows, wrong, fit, dim, SKIP_ZERO_NORMAL, mode, n_pos)
        unit = (w / norm).astype(np.float32)
        intercept = float((b - float(w @ mean)) / norm)
        dv = xn @ unit.astype(np.float64) + intercept
        if held.any():
            ev = held
            hold = slice_stats(dv[held] > 0, wrong[held])
            hold_ba = _balanced_accuracy(dv[held] > 0, wrong[held])
        else:
            ev = np.ones(n, dtype=bool)
            hold, hold_ba = None, float("nan")
        ev_rows, ev_dv, ev_wrong = rows[ev], dv[ev], wrong[ev]
        k = min(p["top_k"], len(ev_rows))
        aligned = np.argsort(-ev_dv, kind="stable")[:k]
        anti = np.argsort(ev_dv, kind="stable")[:k]
        top_acc = float(1.0 - ev_wrong[aligned].mean()) if k else float("nan")
        low_acc = float("nan")
        if conf is not None and k:
            least = np.argsort(conf[ev], kind="stable")[:k]
            low_acc = float(1.0 - ev_wrong[least].mean())
        return ClassDirection(
            class_index=cls,
            n=n,
            errors=n_err,
            direction=unit,
            intercept=intercept,
            c=best,
            cv_balanced_accuracy=float(scores[best]),
            holdout_balanced_accuracy=hold_ba,
            rows=rows,
            decision_values=dv.astype(np.float32),
            fit_mask=fit,
            top_aligned_rows=[int(r) for r in ev_rows[aligned]],
            top_antialigned_rows=[int(r) for r in ev_rows[anti]],
            top_aligned_accuracy=top_acc,
            low_confidence_accuracy=low_acc,
            holdout=hold,
            skipped_reason="",
            cv_scores={c: float(s) for c, s in scores.items()},
            mode=mode,
            mode_errors=n_pos,
        )

    out = [direction(0, np.ones(len(y), dtype=bool))]
    k = p["error_modes"]
    if k and int(y.sum()) >= k:
        err = np.flatnonzero(y)
        cluster = _error_modes(xf[err], k, seed)
        for m in range(k):
            use = ~y.copy()
            use[err[cluster == m]] = True
            out.append(direction(m + 1, use))
    return out


# --- estimator -----------------------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _int_vector(a: Any, name: str, n: int | None) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise InvalidData(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise InvalidData(f"{name} row {int(np.flatnonzero(~np.isfinite(a))[0])} is NaN or Inf")
        if not (a == np.round(a)).all():
            raise InvalidData(f"{name} must be integer class indices")
    elif a.dtype.kind not in "iu":
        raise InvalidData(f"{name} must be integer class indices, got dtype {a.dtype}")
    if n is not None and len(a) != n:
        raise InvalidData(f"{name} has {len(a)} entries but the embeddings have {n} rows: the arrays are misaligned")
    return a.astype(np.int64)


class FailureDirections(P.Estimator):
    """Per-class failure directions (see the module docstring); scikit-learn estimator style.

    Parameters are checked by :meth:`validate_params` (called by :meth:`fit`). ``n_jobs`` worker processes (``-1``: all CPUs) fit
    blocks of classes of at most ``block_bytes`` of embeddings each; an embeddings ``.npy`` path
    is read block by block through a memory map and never loaded whole.

    ``error_modes`` (beyond the paper; default 3): 0 fits one direction per class (the paper's);
    k >= 2 also clusters each
    class's fitting errors into k error modes (k-means on their unit embeddings, largest first) and
    fits one more direction per mode (that mode's errors against all the class's correct
    predictions), each validated on the held-out part like the class direction. A class whose
    errors come from several distinct causes (say, blue hearts *and* red hearts on wood) gets one
    direction per cause instead of a single normal pointing between them. ``directions_`` lists
    every direction, by class then mode (0 = the class direction).
    """

    def __init__(
        self,
        c_grid: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
        cv_folds: int = 3,
        top_k: int = 25,
        holdout_fraction: float = 0.5,
        fdr_alpha: float = 0.05,
        error_modes: int = 3,
        seed: int = 0,
        n_jobs: int = 1,
        block_bytes: int = 256 * 2**20,
    ):
        self.c_grid = c_grid
        self.error_modes = error_modes
        self.cv_folds = cv_folds
        self.top_k = top_k
        self.holdout_fraction = holdout_fraction
        self.fdr_alpha = fdr_alpha
        self.seed = seed
        self.n_jobs = n_jobs
        self.block_bytes = block_bytes

    # -- parameters
    def _checked_params(self) -> dict[str, Any]:
        need = P.need
        try:
            grid = [float(c) for c in np.atleast_1d(np.asarray(self.c_grid, dtype=np.float64))]
        except (TypeError, ValueError):
            grid = []
        need(
            bool(grid) and all(c > 0 and math.isfinite(c) for c in grid),
            "c_grid",
            f"c_grid={self.c_grid!r}: use a non-empty sequence of positive finite numbers",
        )
        need(_is_int(self.cv_folds) and self.cv_folds >= 2, "cv_folds", f"cv_folds={self.cv_folds!r}: use an integer >= 2")
        need(_is_int(self.top_k) and self.top_k >= 1, "top_k", f"top_k={self.top_k!r}: use an integer >= 1")
        hf = P.fraction(self.holdout_fraction, "holdout_fraction", note="0 disables the hold-out")
        a = P.fraction(self.fdr_alpha, "fdr_alpha", low_open=True)
        need(
            _is_int(self.error_modes) and self.error_modes >= 0 and self.error_modes != 1,
            "error_modes",
            f"error_modes={self.error_modes!r}: use 0 (the class direction only) or an integer >= 2 (that many error modes "
            "besides the class direction)",
        )
        need(_is_int(self.seed) and self.seed >= 0, "seed", f"seed={self.seed!r}: use a non-negative integer")
        need(
            _is_int(self.n_jobs) and (self.n_jobs >= 1 or self.n_jobs == -1),
            "n_jobs",
            f"n_jobs={self.n_jobs!r}: use a positive integer or -1 (all CPUs)",
        )
        need(_is_int(self.block_bytes) and self.block_bytes >= 1, "block_bytes", f"block_bytes={self.block_bytes!r}: use a positive integer")
        return dict(
            c_grid=tuple(grid),
            cv_folds=int(self.cv_folds),
            top_k=int(self.top_k),
            holdout_fraction=hf,
            fdr_alpha=a,
            error_modes=int(self.error_modes),
            seed=int(self.seed),
        )

    # -- fitting
    def fit(
        self,
        embeddings: np.ndarray | str | os.PathLike,
        labels: Any,
        predictions: Any,
        confidences: Any = None,
        classes: Sequence[int] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        check: Callable[[], None] | None = None,
    ) -> FailureDirections:
        """Fit one direction per class (and per error mode, see ``error_modes``).

        ``embeddings``: float [N, E] array or the path of a ``.npy`` file holding one (CLIP image
        embeddings, normalised here); ``labels``/``predictions``: int [N]; ``confidences``:
        optional float [N] (max softmax) for the low-confidence baseline; ``classes``: the class
        indices to fit (default: every label present). ``progress(stage, done, total)`` is called
        with stages ``"fit"`` (classes) and ``"fdr"``; ``check()`` is called between blocks and may
        raise to cancel.
        """
        params = self.validate_params()
        n_jobs = (os.cpu_count() or 1) if self.n_jobs == -1 else int(self.n_jobs)
        if isinstance(embeddings, np.ndarray):
            source: np.ndarray | str = embeddings
            shape, dtype = embeddings.shape, embeddings.dtype
        elif isinstance(embeddings, (str, os.PathLike)):
            source = os.fspath(embeddings)
            if not os.path.isfile(source):
                raise InvalidData(f"embeddings file {source!r} does not exist")
            try:
                shape, dtype = classwise.source_shape(source)
            except Exception as exc:  # not a .npy file
                raise InvalidData(f"embeddings file {source!r} is not a readable .npy array: {exc}") from None
        else:
            raise InvalidData(f"embeddings must be an array or a .npy path, got {type(embeddings).__name__}")
        if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
            raise InvalidData(f"embeddings must be a non-empty [N, E] matrix, got shape {tuple(shape)}")
        if np.dtype(dtype).kind not in "fiu":
            raise InvalidData(f"embeddings must be numeric, got dtype {dtype}")
        n_rows, dim = int(shape[0]), int(shape[1])
        labels = _int_vector(labels, "labels", n_rows)
        predictions = _int_vector(predictions, "predictions", n_rows)
        conf = None
        if confidences is not None:
            conf = np.asarray(confidences, dtype=np.float64)
            if conf.ndim != 1 or len(conf) != n_rows:
                raise InvalidData(f"confidences must have shape ({n_rows},) like the embeddings' rows, got {conf.shape}: the arrays are misaligned")
            bad = ~np.isfinite(conf)
            if bad.any():
                raise InvalidData(f"confidences row {int(np.flatnonzero(bad)[0])} is NaN or Inf")
            conf = conf.astype(np.float32)
        present = np.unique(labels)
        if classes is None:
            wanted = [int(c) for c in present]
        else:
            wanted_arr = np.asarray(classes)
            if wanted_arr.ndim != 1 or (wanted_arr.size and wanted_arr.dtype.kind not in "iu"):
                raise InvalidArgument(f"classes must be a sequence of integer class indices, got {classes!r}", field="classes")
            wanted = sorted(set(int(c) for c in wanted_arr))
            unknown = sorted(set(wanted) - set(int(c) for c in present))
            if unknown:
                raise InvalidArgument(
                    f"class {unknown[0]} has no images (no label equals it)"
                    if len(unknown) == 1
                    else f"classes {unknown} have no images (no label equals them)",
                    field="classes",
                )
        groups = classwise.group_rows(labels, keep=wanted)
        context = {"wrong": predictions != labels, "confidences": conf, "params": params}
        prog = (lambda d, t: progress("fit", d, t)) if progress else None
        results = classwise.map_groups(
            _fit_class, source, groups, context, n_jobs=n_jobs, block_bytes=int(self.block_bytes), progress=prog, check=check
        )
        directions = [d for c in sorted(results) for d in results[c]]
        if progress:
            progress("fdr", 0, 1)
        apply_fdr([d.holdout for d in directions if d.holdout is not None and not d.skipped_reason], params["fdr_alpha"])
        if progress:
            progress("fdr", 1, 1)
        self.directions_ = directions
        self.classes_ = np.array(sorted(results), dtype=np.int64)
        self.n_features_in_ = dim
        self._by_key = {(d.class_index, d.mode): d for d in directions}
        return self

    # -- using the directions
    def _direction(self, class_index: int, mode: int) -> ClassDirection:
        if not hasattr(self, "_by_key"):
            raise ValueError("this FailureDirections is not fitted yet: call fit first")
        if not _is_int(class_index) or (int(class_index), 0) not in self._by_key:
            raise ValueError(f"class {class_index!r} was not fitted (fitted classes: {len(self.classes_)})")
        if not _is_int(mode) or (int(class_index), int(mode)) not in self._by_key:
            modes = sorted(m for c, m in self._by_key if c == int(class_index))
            raise ValueError(f"class {int(class_index)} has no mode {mode!r} (its modes: {modes})")
        d = self._by_key[int(class_index), int(mode)]
        if d.skipped_reason:
            raise ValueError(f"class {int(class_index)}{f' mode {int(mode)}' if mode else ''} has no direction: {d.skipped_reason}")
        return d

    def _rows(self, x: Any, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise ValueError(f"{what} must have shape [M, {self.n_features_in_}], got {x.shape}")
        return _normalise_rows(x, None, what)

    def decision_function(self, embeddings_rows: Any, class_index: int, mode: int = 0) -> np.ndarray:
        """Signed distances ``direction · normalise(x) + intercept`` of new rows ``[M, E]`` (or one
        row ``[E]``) for the class; > 0: the SVM predicts an error. ValueError for a class that was
        not fitted or was skipped; ``mode`` picks an error mode's direction."""
        d = self._direction(class_index, mode)
        return self._rows(embeddings_rows, "embeddings_rows") @ d.direction.astype(np.float64) + d.intercept

    def text_scores(self, text_embeddings: Any, class_index: int, mode: int = 0) -> np.ndarray:
        """``direction · normalise(t)`` of every text embedding: larger = the caption describes the
        class's failures better (rank captions by it, as the paper does)."""
        d = self._direction(class_index, mode)
        return self._rows(text_embeddings, "text_embeddings") @ d.direction.astype(np.float64)
