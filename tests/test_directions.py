"""Tests of failurelens.discovery.directions: per-class failure directions (linear SVMs on
normalised embeddings that predict the model's errors)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.svm import LinearSVC

from failurelens.discovery import directions
from failurelens.discovery.directions import ClassDirection, FailureDirections
from failurelens.errors import InvalidParameter


def planted(
    n_per: int = 400, dim: int = 16, n_classes: int = 3, seed: int = 0, random_errors: bool = False, signal: float = 0.4, noise: float = 0.02
):
    """Embeddings of ``n_classes`` classes; within each class a latent attribute ``t`` moves the
    embedding along a unit vector ``u`` (orthogonal to the class's mean) and the model is wrong
    exactly on the 30% of images with the largest ``t`` (or, with ``random_errors``, on a random 30%).
    Rows are scaled at random: the estimator must normalise them. Confidences are uninformative."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=dim)
    common /= np.linalg.norm(common)
    labels = np.repeat(np.arange(n_classes), n_per)
    x = np.empty((len(labels), dim))
    predictions = labels.copy()
    us = []
    for c in range(n_classes):
        rows = np.flatnonzero(labels == c)
        m = rng.normal(size=dim)
        m /= np.linalg.norm(m)
        u = rng.normal(size=dim)
        basis = np.linalg.qr(np.stack([common, m], 1))[0]
        u -= basis @ (basis.T @ u)
        u /= np.linalg.norm(u)
        us.append(u)
        t = rng.normal(size=n_per)
        xc = 3 * common + 1.5 * m + noise * rng.normal(size=(n_per, dim)) + signal * t[:, None] * u
        wrong = rng.random(n_per) < 0.3 if random_errors else t > np.quantile(t, 0.7)
        predictions[rows[wrong]] = n_classes + c  # some other class
        x[rows] = xc * rng.uniform(0.5, 20.0, size=(n_per, 1))
    confidences = np.clip(0.7 + 0.2 * rng.normal(size=len(labels)), 0.05, 1.0)
    return x.astype(np.float32), labels, predictions, confidences, np.array(us)


@pytest.fixture(scope="module")
def planted_fit():
    x, labels, predictions, conf, us = planted()
    fd = FailureDirections(error_modes=0).fit(x, labels, predictions, confidences=conf)
    return fd, x, labels, predictions, conf, us


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# --- the planted failure mode is found -----------------------------------------------------------
def test_planted_direction_is_found_and_validated(planted_fit):
    fd, x, labels, predictions, conf, us = planted_fit
    wrong = predictions != labels
    assert [d.class_index for d in fd.directions_] == [0, 1, 2]
    assert list(fd.classes_) == [0, 1, 2]
    for d in fd.directions_:
        assert isinstance(d, ClassDirection) and d.skipped_reason == ""
        assert d.direction.dtype == np.float32 and d.direction.shape == (x.shape[1],)
        assert abs(np.linalg.norm(d.direction) - 1.0) < 1e-5
        assert float(d.direction @ us[d.class_index]) > 0.9  # points towards the errors, along u
        assert d.n == 400 and d.errors == int(wrong[labels == d.class_index].sum())
        assert d.cv_balanced_accuracy > 0.85
        assert d.holdout_balanced_accuracy > 0.85
        h = d.holdout
        assert h is not None and h.validated and h.q_value <= 0.05 and h.q_value >= h.p_value
        assert h.error_rate > 0.7 and h.error_coverage > 0.7
        # the most aligned held-out images are the errors, the most anti-aligned ones correct
        assert len(d.top_aligned_rows) == len(d.top_antialigned_rows) == 25
        assert wrong[d.top_aligned_rows].mean() >= 0.9
        assert not wrong[d.top_antialigned_rows].any()
        class_accuracy = 1.0 - d.errors / d.n
        assert d.top_aligned_accuracy == pytest.approx(1.0 - wrong[d.top_aligned_rows].mean())
        assert d.top_aligned_accuracy < d.low_confidence_accuracy
        assert d.top_aligned_accuracy < class_accuracy - 0.5
        # the baseline really is the least-confident held-out images
        held = d.rows[~d.fit_mask]
        least = held[np.argsort(conf[held], kind="stable")[:25]]
        assert d.low_confidence_accuracy == pytest.approx(1.0 - wrong[least].mean())


def test_rows_split_and_decision_values_are_consistent(planted_fit):
    fd, x, labels, predictions, conf, us = planted_fit
    wrong = predictions != labels
    for d in fd.directions_:
        assert d.rows.dtype == np.int64 and np.array_equal(d.rows, np.flatnonzero(labels == d.class_index))
        assert d.decision_values.dtype == np.float32 and d.decision_values.shape == d.rows.shape
        assert d.fit_mask.dtype == bool and d.fit_mask.shape == d.rows.shape
        # half held out, stratified by the failure flag
        w = wrong[d.rows]
        assert (~d.fit_mask).sum() == 200
        assert (~d.fit_mask[w]).sum() == round(0.5 * w.sum())
        # the top lists are held-out images, ordered by decision value
        held = set(d.rows[~d.fit_mask].tolist())
        assert set(d.top_aligned_rows) <= held and set(d.top_antialigned_rows) <= held
        pos = {r: i for i, r in enumerate(d.rows)}
        dv_al = [d.decision_values[pos[r]] for r in d.top_aligned_rows]
        dv_anti = [d.decision_values[pos[r]] for r in d.top_antialigned_rows]
        assert dv_al == sorted(dv_al, reverse=True) and dv_anti == sorted(dv_anti)
        held_dv = d.decision_values[~d.fit_mask]
        assert dv_al[0] == held_dv.max() and dv_anti[0] == held_dv.min()
        # decision values = signed distance direction . normalise(x) + intercept, for new rows too
        xn = _unit(x[d.rows].astype(np.float64))
        np.testing.assert_allclose(d.decision_values, xn @ d.direction.astype(np.float64) + d.intercept, atol=1e-5)
        np.testing.assert_allclose(fd.decision_function(x[d.rows] * 3.0, d.class_index), d.decision_values, atol=1e-5)
        # holdout stats describe the slice "decision value > 0" of the held-out images
        hw = w[~d.fit_mask]
        in_slice = held_dv > 0
        assert d.holdout.n == int(in_slice.sum()) and d.holdout.errors == int((in_slice & hw).sum())
        ba = 0.5 * (in_slice[hw].mean() + (~in_slice[~hw]).mean())
        assert d.holdout_balanced_accuracy == pytest.approx(ba)


def test_text_scores_rank_a_caption_near_u_first(planted_fit):
    fd, x, *_, us = planted_fit
    rng = np.random.default_rng(5)
    for c in range(3):
        others = rng.normal(size=(6, x.shape[1]))
        near_u = us[c] + 0.2 * _unit(rng.normal(size=x.shape[1]))
        against_u = -us[c] + 0.2 * _unit(rng.normal(size=x.shape[1]))
        texts = np.vstack([others, 7.0 * near_u, against_u])  # scale must not matter
        scores = fd.text_scores(texts, c)
        assert scores.shape == (8,)
        assert int(np.argmax(scores)) == 6 and int(np.argmin(scores)) == 7
        np.testing.assert_allclose(scores, _unit(texts) @ fd.directions_[c].direction.astype(np.float64), atol=1e-6)
    np.testing.assert_allclose(fd.text_scores(us[0], 0), [fd.directions_[0].direction @ us[0]], atol=1e-6)


# --- nothing to find -----------------------------------------------------------------------------
def test_random_errors_give_no_validated_direction():
    x, labels, predictions, conf, _ = planted(n_per=600, random_errors=True, seed=1)
    fd = FailureDirections(error_modes=0, seed=3).fit(x, labels, predictions, confidences=conf)
    assert len(fd.directions_) == 3
    for d in fd.directions_:
        assert d.skipped_reason == ""
        assert abs(d.cv_balanced_accuracy - 0.5) < 0.12
        assert abs(d.holdout_balanced_accuracy - 0.5) < 0.12
        assert not d.holdout.validated and d.holdout.q_value > 0.05


# --- C selection ---------------------------------------------------------------------------------
def test_c_is_chosen_from_the_grid_by_cv_balanced_accuracy(planted_fit):
    fd = planted_fit[0]
    for d in fd.directions_:
        assert set(d.cv_scores) == {0.01, 0.1, 1.0, 10.0}
        assert d.c in (0.01, 0.1, 1.0, 10.0)
        best = max(d.cv_scores.values())
        assert d.cv_scores[d.c] == best and d.cv_balanced_accuracy == best
        assert d.c == min(c for c, s in d.cv_scores.items() if s == best)  # ties: the smaller C


def test_cv_score_of_a_c_does_not_depend_on_the_rest_of_the_grid(planted_fit):
    fd, x, labels, predictions, conf, _ = planted_fit
    for c in (0.01, 10.0):
        single = FailureDirections(error_modes=0, c_grid=(c,)).fit(x, labels, predictions, classes=[1])
        d = single.directions_[0]
        assert d.c == c and set(d.cv_scores) == {c}
        assert d.cv_balanced_accuracy == pytest.approx(fd.directions_[1].cv_scores[c], abs=1e-9)


def test_separable_failures_tie_across_large_c_and_pick_the_smallest(monkeypatch):
    # errors far from the correct images along u: from some C on every fold is separated, all
    # larger C give the same SVM (their fits are skipped) and the same score; the tie goes to the smallest
    rng = np.random.default_rng(2)
    dim, n = 12, 300
    u = np.zeros(dim)
    u[0] = 1.0
    x = rng.normal(size=(n, dim)) * 0.1
    wrong = np.arange(n) < 90
    x[:, 0] += np.where(wrong, 1.0, -1.0)
    labels = np.zeros(n, int)
    predictions = np.where(wrong, 1, 0)
    grid = (1.0, 10.0, 100.0)
    fits = []
    real_fit = directions._fit_svm
    monkeypatch.setattr(directions, "_fit_svm", lambda *a: fits.append(a[2]) or real_fit(*a))
    d = FailureDirections(error_modes=0, c_grid=grid).fit(x, labels, predictions).directions_[0]
    assert fits == [1.0, 1.0, 1.0, 1.0]  # one fit per fold and the refit: the larger C are skipped
    assert d.cv_scores == {1.0: 1.0, 10.0: 1.0, 100.0: 1.0}
    assert d.c == 1.0 and d.holdout_balanced_accuracy == 1.0
    assert float(d.direction @ u) > 0.9


def test_span_reduction_gives_the_plain_linear_svm():
    # fewer fitting images than dimensions: the fit runs in coordinates of the images' span; it
    # must be the SVM sklearn fits on the centred, normalised embeddings themselves
    x, labels, predictions, _, us = planted(n_per=120, dim=200, n_classes=2, seed=4, noise=0.01)
    fd = FailureDirections(error_modes=0, c_grid=(0.1, 10.0)).fit(x, labels, predictions)
    wrong = predictions != labels
    for d in fd.directions_:
        assert d.skipped_reason == "" and d.fit_mask.sum() < x.shape[1]
        xf = _unit(x[d.rows][d.fit_mask].astype(np.float64))
        mean = xf.mean(axis=0)
        svm = LinearSVC(C=d.c, loss="hinge", class_weight="balanced", dual=True, tol=1e-8, max_iter=100_000).fit(xf - mean, wrong[d.rows][d.fit_mask])
        w = svm.coef_.ravel()
        norm = np.linalg.norm(w)
        assert float(d.direction @ (w / norm)) > 0.999
        assert d.intercept == pytest.approx((svm.intercept_[0] - w @ mean) / norm, abs=2e-3)
        assert float(d.direction @ us[d.class_index]) > 0.8
        assert d.holdout.validated


# --- hold-out switched off, class subsets --------------------------------------------------------
def test_no_holdout_uses_all_rows(planted_fit):
    _, x, labels, predictions, conf, _ = planted_fit
    fd = FailureDirections(error_modes=0, holdout_fraction=0.0, top_k=10).fit(x, labels, predictions, confidences=conf, classes=[2])
    (d,) = fd.directions_
    wrong = predictions != labels
    assert d.fit_mask.all() and d.holdout is None and math.isnan(d.holdout_balanced_accuracy)
    assert len(d.top_aligned_rows) == 10
    assert d.top_aligned_rows[0] == int(d.rows[np.argmax(d.decision_values)])
    assert d.top_antialigned_rows[0] == int(d.rows[np.argmin(d.decision_values)])
    least = d.rows[np.argsort(conf[d.rows], kind="stable")[:10]]
    assert d.low_confidence_accuracy == pytest.approx(1.0 - wrong[least].mean())


def test_class_subset_matches_the_full_fit_and_needs_no_confidences(planted_fit):
    fd, x, labels, predictions, *_ = planted_fit
    sub = FailureDirections(error_modes=0).fit(x, labels, predictions, classes=np.array([2, 0]))
    assert [d.class_index for d in sub.directions_] == [0, 2]
    for d in sub.directions_:
        full = fd.directions_[d.class_index]
        assert np.array_equal(d.fit_mask, full.fit_mask)  # the split of a class does not depend on the others
        np.testing.assert_allclose(d.direction, full.direction, atol=1e-6)
        assert d.top_aligned_rows == full.top_aligned_rows
        assert math.isnan(d.low_confidence_accuracy)
    with pytest.raises(ValueError, match="class 1"):
        sub.decision_function(x[:3], 1)


# --- error modes ---------------------------------------------------------------------------------
def two_causes(n: int = 600, dim: int = 16, seed: int = 3, noise: float = 0.02):
    """One class whose model errs for two unrelated reasons: a latent ``t1`` along unit ``u1`` (the
    20% of images with the largest ``t1``) and ``t2`` along ``u2`` (the 10% with the largest
    ``t2``); u1, u2 and the class mean are orthogonal. Rows are randomly scaled."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.normal(size=(dim, 3)))[0]
    mean, u1, u2 = q.T
    t1, t2 = rng.normal(size=n), rng.normal(size=n)
    x = 3 * mean + 0.4 * t1[:, None] * u1 + 0.4 * t2[:, None] * u2 + noise * rng.normal(size=(n, dim))
    cause1, cause2 = t1 > np.quantile(t1, 0.8), t2 > np.quantile(t2, 0.9)
    labels = np.zeros(n, dtype=np.int64)
    predictions = np.where(cause1 | cause2, 1, 0)
    return (x * rng.uniform(0.5, 20.0, size=(n, 1))).astype(np.float32), labels, predictions, u1, u2, cause1, cause2


def test_error_modes_give_one_direction_per_failure_cause():
    x, labels, predictions, u1, u2, cause1, cause2 = two_causes()
    single = FailureDirections(error_modes=0).fit(x, labels, predictions)
    fd = FailureDirections(error_modes=2).fit(x, labels, predictions)
    (d0,) = single.directions_
    # one direction per class points between the two causes
    assert abs(float(d0.direction @ u1)) < 0.9 and abs(float(d0.direction @ u2)) < 0.9
    assert [(d.class_index, d.mode) for d in fd.directions_] == [(0, 0), (0, 1), (0, 2)]
    assert list(fd.classes_) == [0]
    m0, m1, m2 = fd.directions_
    # mode 0 is the class direction, the same with or without modes
    np.testing.assert_allclose(m0.direction, d0.direction, atol=1e-6)
    assert m0.mode_errors == int((predictions != labels)[m0.rows[m0.fit_mask]].sum())
    # mode 1 = the larger cause (u1), mode 2 = the smaller (u2); each is validated on held-out images
    assert float(m1.direction @ u1) > 0.9 and float(m2.direction @ u2) > 0.9
    assert m1.mode_errors + m2.mode_errors == m0.mode_errors and m1.mode_errors > m2.mode_errors
    held = ~m1.fit_mask
    for d, cause in ((m1, cause1), (m2, cause2)):
        assert d.skipped_reason == "" and d.holdout.validated
        assert np.array_equal(d.fit_mask, m0.fit_mask) and np.array_equal(d.rows, m0.rows)
        # its most aligned held-out images are the errors of its own cause
        assert cause[d.top_aligned_rows[:10]].all()
        # and its decision values rank its cause's held-out images above the rest of the class
        assert roc_auc_score(cause[d.rows[held]], d.decision_values[held]) > 0.97
    # decision values and text scores per mode; mode 0 is the default
    np.testing.assert_allclose(fd.decision_function(x[:5], 0, mode=2), _unit(x[:5].astype(np.float64)) @ m2.direction + m2.intercept, atol=1e-5)
    np.testing.assert_allclose(fd.decision_function(x[:5], 0), single.decision_function(x[:5], 0), atol=1e-5)
    assert fd.text_scores(u2, 0, mode=2)[0] > 0.9 and fd.text_scores(u1, 0, mode=1)[0] > 0.9
    with pytest.raises(ValueError, match="no mode 3"):
        fd.decision_function(x[:2], 0, mode=3)


def test_error_modes_too_small_for_cross_validation_are_skipped():
    x, labels, predictions, *_ = two_causes(n=200, seed=5)
    wrong = np.flatnonzero(predictions != labels)
    predictions[wrong[12:]] = 0  # 12 errors, 6 fitting ones
    fd = FailureDirections(error_modes=4).fit(x, labels, predictions)
    modes = fd.directions_[1:]
    assert [d.mode for d in modes] == [1, 2, 3, 4] and sum(d.mode_errors for d in modes) == 6
    assert any(d.skipped_reason == directions.SKIP_FEW_MODE_ERRORS for d in modes)
    for d in modes:
        assert (d.skipped_reason == directions.SKIP_FEW_MODE_ERRORS) == (d.mode_errors < 3)
    # fewer fitting errors than modes: the class direction only
    assert [d.mode for d in FailureDirections(error_modes=7).fit(x, labels, predictions).directions_] == [0]


# --- bad inputs ----------------------------------------------------------------------------------
def _mixed_classes():
    """Class 0 planted, class 1 no errors, class 2 only errors, class 3 one image, class 4 two errors."""
    x, labels, predictions, conf, _ = planted(n_per=200, n_classes=1, seed=7)
    rng = np.random.default_rng(8)
    extra = {1: (50, 0), 2: (40, 40), 3: (1, 0), 4: (60, 2)}
    xs, ls, ps = [x], [labels], [predictions]
    for c, (n, e) in extra.items():
        xs.append(rng.normal(size=(n, x.shape[1])).astype(np.float32))
        ls.append(np.full(n, c))
        ps.append(np.where(np.arange(n) < e, 0 if c else 1, c))
    return np.vstack(xs), np.concatenate(ls), np.concatenate(ps)


def test_degenerate_classes_are_skipped_with_a_reason():
    x, labels, predictions = _mixed_classes()
    fd = FailureDirections(error_modes=0).fit(x, labels, predictions)
    by = {d.class_index: d for d in fd.directions_}
    assert sorted(by) == [0, 1, 2, 3, 4]
    assert by[0].skipped_reason == "" and by[0].holdout.validated
    assert by[1].skipped_reason == "no errors"
    assert by[2].skipped_reason == "only errors"
    assert by[3].skipped_reason in ("no errors", "only errors") and by[3].n == 1
    assert by[4].skipped_reason == "too few errors for cross-validation"
    for c in (1, 2, 3, 4):
        d = by[c]
        assert d.holdout is None and d.top_aligned_rows == [] and math.isnan(d.c)
        assert not d.direction.any() and d.direction.shape == (x.shape[1],)
        assert d.decision_values.shape == d.rows.shape and np.isnan(d.decision_values).all()
        with pytest.raises(ValueError, match=d.skipped_reason):
            fd.decision_function(x[:2], c)
    # only the fitted direction is in the false-discovery family
    assert by[0].holdout.q_value == pytest.approx(by[0].holdout.p_value)


def test_too_few_correct_predictions_for_the_folds_are_skipped():
    x, labels, predictions = _mixed_classes()
    fd = FailureDirections(error_modes=0, cv_folds=5).fit(x, labels, predictions, classes=[4])
    assert fd.directions_[0].skipped_reason == "too few errors for cross-validation"
    keep = labels != 4
    flipped = np.where(labels[keep] == 0, np.where(predictions[keep] == 0, 1, 0), predictions[keep])  # class 0: 30% right
    d = FailureDirections(error_modes=0, cv_folds=50).fit(x[keep], labels[keep], flipped, classes=[0]).directions_[0]
    assert d.skipped_reason == "too few correct predictions for cross-validation"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_embedding_names_the_row(bad):
    x, labels, predictions, *_ = planted(n_per=60)
    x[77, 3] = bad
    with pytest.raises(ValueError, match=r"row 77\b"):
        FailureDirections().fit(x, labels, predictions)


def test_bad_inputs_raise_value_errors(planted_fit, tmp_path):
    fd, x, labels, predictions, conf, _ = planted_fit
    with pytest.raises(ValueError, match="misaligned"):
        FailureDirections().fit(x, labels[:-1], predictions)
    with pytest.raises(ValueError, match="misaligned"):
        FailureDirections().fit(x, labels, predictions[1:])
    with pytest.raises(ValueError, match="misaligned"):
        FailureDirections().fit(x, labels, predictions, confidences=conf[:10])
    bad_conf = conf.copy()
    bad_conf[5] = np.nan
    with pytest.raises(ValueError, match="confidences row 5"):
        FailureDirections().fit(x, labels, predictions, confidences=bad_conf)
    with pytest.raises(ValueError, match="class 7"):
        FailureDirections().fit(x, labels, predictions, classes=[0, 7])
    zero = x.copy()
    zero[11] = 0.0
    with pytest.raises(ValueError, match="row 11"):
        FailureDirections().fit(zero, labels, predictions)
    with pytest.raises(ValueError, match="matrix"):
        FailureDirections().fit(x[:, 0], labels, predictions)
    with pytest.raises(ValueError, match="does not exist"):
        FailureDirections().fit(tmp_path / "missing.npy", labels, predictions)
    with pytest.raises(ValueError, match="integer"):
        FailureDirections().fit(x, labels + 0.5, predictions)
    # using the fitted directions
    with pytest.raises(ValueError, match="class 9"):
        fd.decision_function(x[:2], 9)
    with pytest.raises(ValueError, match="shape"):
        fd.decision_function(x[:2, :5], 0)
    nan_rows = x[:3].copy()
    nan_rows[2, 0] = np.nan
    with pytest.raises(ValueError, match="row 2"):
        fd.text_scores(nan_rows, 0)
    with pytest.raises(ValueError, match="not fitted"):
        FailureDirections().decision_function(x[:2], 0)


@pytest.mark.parametrize(
    "params, what",
    [
        (dict(c_grid=()), "c_grid"),
        (dict(c_grid=(1.0, -1.0)), "c_grid"),
        (dict(c_grid=(float("nan"),)), "c_grid"),
        (dict(cv_folds=1), "cv_folds"),
        (dict(cv_folds=2.5), "cv_folds"),
        (dict(top_k=0), "top_k"),
        (dict(holdout_fraction=1.0), "holdout_fraction"),
        (dict(holdout_fraction=-0.1), "holdout_fraction"),
        (dict(fdr_alpha=0.0), "fdr_alpha"),
        (dict(fdr_alpha=1.0), "fdr_alpha"),
        (dict(seed=-1), "seed"),
        (dict(n_jobs=0), "n_jobs"),
        (dict(block_bytes=0), "block_bytes"),
        (dict(error_modes=1), "error_modes"),
        (dict(error_modes=-2), "error_modes"),
        (dict(error_modes=2.0), "error_modes"),
    ],
)
def test_parameters_are_checked_in_fit(params, what):
    x, labels, predictions, *_ = planted(n_per=30, n_classes=1)
    est = FailureDirections(**params)  # constructing never fails (scikit-learn style)
    assert est.get_params()[what] == params[what]
    with pytest.raises(ValueError, match=what) as ei:
        est.fit(x, labels, predictions)
    assert isinstance(ei.value, InvalidParameter) and ei.value.field == what  # names the request field too
    with pytest.raises(InvalidParameter, match=what):
        est.validate_params()  # the public check services call before any work


# --- sources, workers, progress, cancellation ----------------------------------------------------
def _same(a: FailureDirections, b: FailureDirections) -> None:
    assert len(a.directions_) == len(b.directions_)
    for da, db in zip(a.directions_, b.directions_):
        for f in dataclasses.fields(ClassDirection):
            va, vb = getattr(da, f.name), getattr(db, f.name)
            if isinstance(va, np.ndarray) and va.dtype.kind == "f":
                np.testing.assert_allclose(va, vb, atol=1e-5, err_msg=f.name)
            elif isinstance(va, np.ndarray):
                assert np.array_equal(va, vb), f.name
            elif isinstance(va, float):
                assert va == pytest.approx(vb, abs=1e-6, nan_ok=True), f.name
            elif f.name == "holdout" and va is not None:
                assert va.n == vb.n and va.errors == vb.errors and va.validated == vb.validated
                assert va.q_value == pytest.approx(vb.q_value, rel=1e-6, abs=1e-300)
            else:
                assert va == vb, f.name


def test_npy_path_and_two_workers_match_in_memory(planted_fit, tmp_path):
    fd, x, labels, predictions, conf, _ = planted_fit
    path = tmp_path / "emb.npy"
    np.save(path, x)
    seen = []
    block = 400 * x.shape[1] * 4  # one class per block: three blocks over two worker processes
    two = FailureDirections(error_modes=0, n_jobs=2, block_bytes=block).fit(
        str(path), labels, predictions, confidences=conf, progress=lambda s, d, t: seen.append((s, d, t))
    )
    _same(fd, two)
    assert seen[0] == ("fit", 0, 3) and ("fit", 3, 3) in seen and seen[-1] == ("fdr", 1, 1)
    one = FailureDirections(error_modes=0, block_bytes=block).fit(path, labels, predictions, confidences=conf)
    _same(fd, one)


def test_check_can_cancel():
    x, labels, predictions, *_ = planted(n_per=100)

    class Cancelled(Exception):
        pass

    calls = []

    def check():
        calls.append(1)
        if len(calls) > 1:
            raise Cancelled()

    with pytest.raises(Cancelled):
        FailureDirections(error_modes=0, block_bytes=100 * x.shape[1] * 4).fit(x, labels, predictions, check=check)
    assert len(calls) == 2
