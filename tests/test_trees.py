"""Barlow failure trees (failurelens.discovery.trees): metrics by hand, planted and absent slices,
hold-out validation, bad inputs, and equal results from a .npy file and from worker processes."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from failurelens.discovery import validation
from failurelens.discovery.trees import ClassTree, Condition, FailureTrees, Leaf, Rule, mutual_information
from failurelens.errors import InvalidParameter


# --- hand-computed case -------------------------------------------------------------------------
# One class (label 0), ten rows, feature 1 = 0..9 (feature 0 is a constant), the classifier is
# wrong at x in {1, 7, 8, 9}. A depth-1 tree splits at the midpoint 6.5: the left leaf holds 7 rows
# with 1 error, the right leaf 3 rows with 3 errors.
def _hand_data():
    x = np.arange(10, dtype=np.float32)
    X = np.stack([np.full(10, 2.0, dtype=np.float32), x], axis=1)
    labels = np.zeros(10, dtype=np.int64)
    wrong = np.isin(x, [1, 7, 8, 9])
    predictions = np.where(wrong, 1, 0)
    return X, labels, predictions


def _hand_fit(**kw):
    X, labels, predictions = _hand_data()
    params = dict(max_depth=1, min_leaf_size=1, holdout_fraction=0.0, groupings=("label",))
    params.update(kw)
    return FailureTrees(**params).fit(X, labels, predictions, classes=[0])


def test_hand_computed_depth1_tree_metrics():
    ft = _hand_fit()
    assert len(ft.trees_) == 1
    tree = ft.trees_[0]
    assert (tree.class_index, tree.grouping, tree.skipped_reason) == (0, "label", "")
    assert (tree.n, tree.errors) == (10, 4)
    assert tree.selected_features[0] == 1  # the constant feature 0 carries no information
    assert tree.base_error_rate == pytest.approx(0.4)
    left, right = tree.leaves
    assert left.conditions == [Condition(1, "<=", 6.5)] and left.text == "feature[1] <= 6.5"
    assert right.conditions == [Condition(1, ">", 6.5)] and right.text == "feature[1] > 6.5"
    assert (left.leaf_id, left.n, left.errors) == (0, 7, 1)
    assert (right.leaf_id, right.n, right.errors) == (1, 3, 3)
    assert left.error_rate == pytest.approx(1 / 7) and left.error_coverage == pytest.approx(1 / 4)
    assert right.error_rate == pytest.approx(1.0) and right.error_coverage == pytest.approx(3 / 4)
    assert left.importance == pytest.approx(1 / 28) and right.importance == pytest.approx(3 / 4)
    # ALER (Barlow Def. 4) = sum_l ER_l * EC_l = 1/7 * 1/4 + 1 * 3/4
    assert tree.aler == pytest.approx(1 / 28 + 3 / 4)
    assert tree.aler_minus_ber == pytest.approx(1 / 28 + 3 / 4 - 0.4)
    # tau = 0.2, delta = 0.1: left has EC 0.25 > 0.2 but ER 0.143 < 0.5; right passes both
    assert (left.valid, right.valid, tree.has_valid_leaf) == (False, True, True)
    assert left.holdout is None and right.holdout is None  # hold-out disabled
    assert [(r.class_index, r.grouping, r.leaf.leaf_id) for r in ft.rules_] == [(0, "label", 1)]
    assert ft.valid_leaf_fraction_ == {"label": 1.0}


@pytest.mark.parametrize(
    "tau, delta, right_valid, left_valid",
    [
        (0.2, 0.1, True, False),
        (0.74, 0.1, True, False),
        (0.75, 0.1, False, False),  # EC must be strictly above tau
        (0.2, 0.6, True, False),  # ER >= BER + delta holds with equality: 1.0 >= 0.4 + 0.6
        (0.2, 0.61, False, False),
        (0.0, 0.0, True, False),  # left: ER 1/7 < BER 0.4
        (0.25, 0.0, True, False),  # and the left leaf's EC = 0.25 is not above 0.25 either
    ],
)
def test_valid_flags_follow_tau_and_delta(tau, delta, right_valid, left_valid):
    ft = _hand_fit(tau=tau, delta=delta)
    left, right = ft.trees_[0].leaves
    assert (left.valid, right.valid) == (left_valid, right_valid)
    assert ft.trees_[0].has_valid_leaf == right_valid
    assert len(ft.rules_) == int(right_valid)
    assert ft.valid_leaf_fraction_["label"] == float(right_valid)


def test_hand_membership_and_rule_depth():
    X, labels, predictions = _hand_data()
    ft = _hand_fit()
    tree = ft.trees_[0]
    assert ft.leaf_membership(tree, X).tolist() == [0] * 7 + [1] * 3
    std = float(np.std(np.arange(10.0)))  # population std of 0..9 = sqrt(8.25)
    assert tree.feature_std[tree.selected_features.index(1)] == pytest.approx(std)
    right = tree.leaves[1]
    scores = ft.rule_depth(tree, right, X)
    np.testing.assert_allclose(scores, (np.arange(10) - 6.5) / std)
    left_scores = ft.rule_depth(tree, tree.leaves[0], X)
    np.testing.assert_allclose(left_scores, (6.5 - np.arange(10)) / std)
    # new rows: only feature 1 matters
    new = np.array([[100.0, 6.5], [-3.0, 6.50001], [0.0, -1e9]])
    assert ft.leaf_membership(tree, new).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="feature columns"):
        ft.leaf_membership(tree, X[:, :1])


def test_hand_slice_scores_rank_members_by_closeness_to_the_rules_failures():
    """Right leaf (x > 6.5) has fitting errors at x = 7, 8, 9: standardised with the group's mean
    4.5 and std sqrt(8.25), its centroid is (8 - 4.5) / std over the selected feature 1 (the
    constant feature 0 has std 0 and is left unscaled)."""
    ft = _hand_fit(top_k_features=1)
    tree = ft.trees_[0]
    right = next(lf for lf in tree.leaves if lf.conditions[0].op == ">")
    std = math.sqrt(8.25)
    assert tree.selected_features == [1]
    assert right.error_centroid == pytest.approx([(8 - 4.5) / std])
    left = next(lf for lf in tree.leaves if lf.conditions[0].op == "<=")
    assert left.error_centroid == pytest.approx([(1 - 4.5) / std])  # its only error is x = 1
    X, _, _ = _hand_data()
    s = FailureTrees.slice_scores(tree, right, X)
    assert np.all(np.isneginf(s[:7]))  # outside the rule
    assert s[8] == pytest.approx(0.0) and s[7] == pytest.approx(-1 / std) and s[9] == pytest.approx(-1 / std)
    s_left = FailureTrees.slice_scores(tree, left, X)
    assert np.argmax(s_left) == 1 and np.all(np.isneginf(s_left[7:]))


def test_mutual_information_by_hand():
    # 10 rows, 2 equal-frequency bins: x 0..4 -> bin 0 (1 error), 5..9 -> bin 1 (3 errors)
    x = np.arange(10, dtype=np.float32)
    y = np.isin(x, [1, 7, 8, 9])
    p = {(0, 1): 0.1, (0, 0): 0.4, (1, 1): 0.3, (1, 0): 0.2}
    py = {1: 0.4, 0: 0.6}
    expected = sum(v * math.log(v / (0.5 * py[k[1]])) for k, v in p.items())
    # ties share a bin: six zeros have no value below them (bin 0), 1..4 have 6..9 below (bin 1)
    tied = np.array([0, 0, 0, 0, 0, 0, 1, 2, 3, 4], dtype=np.float32)
    y_tied = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], dtype=bool)  # bin 0: 3/6 errors, bin 1: 0/4
    q = {(0, 1): 0.3, (0, 0): 0.3, (1, 0): 0.4}
    pb = {0: 0.6, 1: 0.4}
    py_t = {1: 0.3, 0: 0.7}
    expected_tied = sum(v * math.log(v / (pb[k[0]] * py_t[k[1]])) for k, v in q.items())
    mi = mutual_information(np.stack([x, np.full(10, 5.0, np.float32), -x], axis=1), y, bins=2)
    assert mi[0] == pytest.approx(expected)
    assert mi[1] == 0.0  # constant feature
    assert mi[2] == pytest.approx(expected)  # the order of values, not their sign, matters
    assert mutual_information(tied[:, None], y_tied, bins=2)[0] == pytest.approx(expected_tied)
    # -0.0 and 0.0 are the same value
    signed = np.array([0.0, -0.0, 0.0, -0.0, 1, 2], dtype=np.float32)
    plain = np.abs(signed)
    ys = np.array([1, 0, 0, 1, 0, 1], dtype=bool)
    assert mutual_information(signed[:, None], ys, 3)[0] == mutual_information(plain[:, None], ys, 3)[0]


# --- planted and absent slices -------------------------------------------------------------------
def _synthetic(n=3000, d=30, n_classes=3, seed=0, planted=True):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    labels = rng.integers(0, n_classes, n)
    p_err = np.where(X[:, 3] > 0.5, 0.6, 0.05) if planted else np.full(n, 0.2)
    wrong = rng.random(n) < p_err
    predictions = np.where(wrong, (labels + 1 + rng.integers(0, n_classes - 1, n)) % n_classes, labels)
    return X, labels, predictions


def test_planted_slice_is_the_top_rule_and_validated():
    X, labels, predictions = _synthetic()
    ft = FailureTrees(max_depth=2).fit(X, labels, predictions)
    assert [(t.grouping, t.class_index) for t in ft.trees_] == [("label", c) for c in range(3)] + [("prediction", c) for c in range(3)]
    for t in ft.trees_:
        assert t.skipped_reason == "" and t.selected_features[0] == 3
        assert t.mutual_information == sorted(t.mutual_information, reverse=True)
        assert t.aler_minus_ber > 0.1
    top = ft.rules_[0]
    assert isinstance(top, Rule) and top.leaf.valid
    planted = [c for c in top.leaf.conditions if c.feature == 3]
    assert planted and planted[0].op == ">" and abs(planted[0].threshold - 0.5) < 0.2
    assert top.leaf.holdout is not None and top.leaf.holdout.validated
    assert top.leaf.holdout.q_value <= 0.05 and top.leaf.holdout.error_rate > 0.4
    importances = [r.leaf.importance for r in ft.rules_]
    assert importances == sorted(importances, reverse=True)
    assert ft.valid_leaf_fraction_ == {"label": 1.0, "prediction": 1.0}
    # every class's best rule contains the planted split
    for t in ft.trees_:
        best = max(t.leaves, key=lambda lf: lf.importance)
        assert any(c.feature == 3 and c.op == ">" for c in best.conditions)


def test_random_errors_yield_no_validated_rule():
    X, labels, predictions = _synthetic(n=2400, planted=False, seed=1)
    ft = FailureTrees(max_depth=3, min_leaf_size=5, tau=0.1, delta=0.05).fit(X, labels, predictions)
    # shallow trees still overfit noise on the fitting rows ...
    assert len(ft.rules_) > 0
    # ... but no rule survives the held-out test with FDR control
    assert not any(r.leaf.holdout.validated for r in ft.rules_)


def test_holdout_fdr_family_is_the_valid_leaves():
    X, labels, predictions = _synthetic(seed=2)
    ft = FailureTrees(max_depth=2, fdr_alpha=0.05).fit(X, labels, predictions)
    valid = [lf for t in ft.trees_ for lf in t.leaves if lf.valid]
    invalid = [lf for t in ft.trees_ for lf in t.leaves if not lf.valid]
    assert valid and invalid
    q = validation.benjamini_hochberg([lf.holdout.p_value for lf in valid])
    np.testing.assert_allclose([lf.holdout.q_value for lf in valid], q)
    assert [lf.holdout.validated for lf in valid] == [bool(v <= 0.05) for v in q]
    assert all(lf.holdout.q_value == 1.0 and not lf.holdout.validated for lf in invalid)
    # the hold-out really is held out: fitting and held-out counts partition each group
    for t in ft.trees_:
        assert t.n + t.n_holdout == int(np.sum((labels if t.grouping == "label" else predictions) == t.class_index))
        assert sum(lf.n for lf in t.leaves) == t.n
        assert sum(lf.holdout.n for lf in t.leaves) == t.n_holdout
        assert abs(t.n_holdout - t.n) <= 2  # half, rounded per stratum


def test_membership_reproduces_leaf_counts_and_scores_agree():
    X, labels, predictions = _synthetic(seed=3)
    ft = FailureTrees(max_depth=3, holdout_fraction=0.0).fit(X, labels, predictions)
    wrong = labels != predictions
    for t in ft.trees_:
        rows = (labels if t.grouping == "label" else predictions) == t.class_index
        member = ft.leaf_membership(t, X[rows])
        for leaf in t.leaves:
            inside = member == leaf.leaf_id
            assert (int(inside.sum()), int((inside & wrong[rows]).sum())) == (leaf.n, leaf.errors)
            s = ft.rule_depth(t, leaf, X[rows])
            assert np.all(inside[s > 0]) and not np.any(inside[s < 0])


def test_stored_tree_reproduces_sklearn_leaf_assignment():
    from sklearn.tree import DecisionTreeClassifier

    X, labels, predictions = _synthetic(n=2000, d=25, seed=7)
    X[:, 5] = np.round(X[:, 5], 1)  # ties and thresholds between close float32 values
    ft = FailureTrees(max_depth=3, min_leaf_size=7, top_k_features=6, seed=3, holdout_fraction=0.0, groupings=("label",)).fit(X, labels, predictions)
    wrong = labels != predictions
    for t in ft.trees_:
        rows = labels == t.class_index
        clf = DecisionTreeClassifier(max_depth=3, class_weight="balanced", min_samples_leaf=7, random_state=3)
        clf.fit(X[rows][:, t.selected_features], wrong[rows].astype(np.int8))
        expected = np.asarray(t.node_leaf_id)[clf.apply(X[rows][:, t.selected_features])]
        assert (ft.leaf_membership(t, X[rows]) == expected).all()
        assert len(t.leaves) == clf.get_n_leaves()


# --- bad inputs ---------------------------------------------------------------------------------
def test_degenerate_groups_are_skipped_not_crashing():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    labels = np.repeat([0, 1, 2, 3], [20, 20, 6, 14])
    predictions = labels.copy()
    predictions[20:40] = 9  # class 1: always wrong
    predictions[40:43] = 0  # class 2: 6 rows, 3 wrong (too few for two leaves of 5)
    predictions[46:49] = 7  # class 3: 3 of 14 wrong, predicted as class 7 (present only as a prediction)
    labels = np.append(labels, 5)  # class 5: a single row, right
    predictions = np.append(predictions, 5)
    X = np.vstack([X, np.zeros((1, 4), np.float32)])
    ft = FailureTrees(holdout_fraction=0.0, min_leaf_size=5).fit(X, labels, predictions)
    by = {(t.grouping, t.class_index): t for t in ft.trees_}
    assert sorted(by) == sorted((g, c) for g in ("label", "prediction") for c in (0, 1, 2, 3, 5, 7, 9))
    assert by[("label", 0)].skipped_reason == "no errors in this group"
    assert by[("label", 1)].skipped_reason == "only errors in this group"
    assert by[("label", 2)].skipped_reason == "fewer than 2*min_leaf_size samples"
    assert by[("label", 3)].skipped_reason == ""
    assert by[("label", 5)].skipped_reason == "no errors in this group"
    assert by[("label", 7)].skipped_reason == "no rows in this group"
    assert by[("prediction", 9)].skipped_reason == "only errors in this group"
    assert by[("prediction", 1)].skipped_reason == "no rows in this group"
    assert by[("prediction", 7)].skipped_reason == "only errors in this group"
    assert by[("prediction", 2)].skipped_reason == "no errors in this group"
    for t in ft.trees_:
        if t.skipped_reason:
            assert t.leaves == [] and not t.has_valid_leaf
            assert (ft.leaf_membership(t, X) == -1).all()
    fitted = by[("label", 3)]
    assert (fitted.n, fitted.errors) == (14, 3)
    n_label = sum(1 for g, _ in by if g == "label")
    assert ft.valid_leaf_fraction_["label"] == sum(t.has_valid_leaf for t in ft.trees_ if t.grouping == "label") / n_label


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_name_row_and_column(tmp_path, bad):
    X, labels, predictions = _synthetic(n=300, d=6)
    X[250, 4] = bad
    X[120, 5] = bad
    X[120, 2] = bad
    for source in (X, tmp_path / "x.npy"):
        if not isinstance(source, np.ndarray):
            np.save(source, X)
        with pytest.raises(ValueError, match=r"row 120, column 2"):
            FailureTrees().fit(source, labels, predictions)


def test_misaligned_unknown_and_bad_parameters():
    X, labels, predictions = _synthetic(n=200, d=5)
    with pytest.raises(ValueError, match="labels has 199 entries"):
        FailureTrees().fit(X, labels[:-1], predictions)
    with pytest.raises(ValueError, match="predictions has 201 entries"):
        FailureTrees().fit(X, labels, np.append(predictions, 0))
    with pytest.raises(ValueError, match="integer"):
        FailureTrees().fit(X, labels.astype(float), predictions)
    with pytest.raises(ValueError, match="2-D"):
        FailureTrees().fit(X[:, 0], labels, predictions)
    with pytest.raises(ValueError, match=r"classes 17, 42 occur neither"):
        FailureTrees().fit(X, labels, predictions, classes=[0, 42, 17])
    for kw, name in [
        (dict(max_depth=4), "max_depth"),
        (dict(max_depth=0), "max_depth"),
        (dict(tau=1.5), "tau"),
        (dict(delta=-0.1), "delta"),
        (dict(groupings=("labels",)), "groupings"),
        (dict(groupings=()), "groupings"),
        (dict(holdout_fraction=1.0), "holdout_fraction"),
        (dict(fdr_alpha=0.0), "fdr_alpha"),
        (dict(top_k_features=0), "top_k_features"),
        (dict(min_leaf_size=0), "min_leaf_size"),
        (dict(mi_bins=1), "mi_bins"),
        (dict(n_jobs=0), "n_jobs"),
        (dict(max_depth=True), "max_depth"),
        (dict(seed=-1), "seed"),
    ]:
        with pytest.raises(ValueError, match=name) as ei:
            FailureTrees(**kw).fit(X, labels, predictions)
        assert isinstance(ei.value, InvalidParameter) and ei.value.field == name


# --- equal results from a file, from workers, and for a subset of classes -------------------------
def _asdicts(ft: FailureTrees):
    return [dataclasses.asdict(t) for t in ft.trees_], [dataclasses.asdict(r) for r in ft.rules_]


def test_npy_path_and_worker_processes_give_identical_results(tmp_path):
    X, labels, predictions = _synthetic(n=1500, d=40, n_classes=4, seed=5)
    path = tmp_path / "features.npy"
    np.save(path, X)
    reference = FailureTrees(max_depth=2).fit(X, labels, predictions)
    assert any(r.leaf.holdout.validated for r in reference.rules_)
    from_file = FailureTrees(max_depth=2, block_bytes=20_000).fit(str(path), labels, predictions)
    assert _asdicts(from_file) == _asdicts(reference)
    calls = []
    parallel = FailureTrees(max_depth=2, n_jobs=2, block_bytes=1).fit(
        path, labels, predictions, progress=lambda stage, done, total: calls.append((stage, done, total))
    )
    assert _asdicts(parallel) == _asdicts(reference)
    assert calls[0] == ("trees", 0, 8) and calls[-1] == ("trees", 8, 8)
    assert parallel.valid_leaf_fraction_ == reference.valid_leaf_fraction_
    # results are plain data
    json.dumps(_asdicts(parallel))


def test_subset_of_classes_matches_full_fit_and_cancellation():
    X, labels, predictions = _synthetic(n=1500, d=12, n_classes=4, seed=6)
    full = FailureTrees().fit(X, labels, predictions)
    part = FailureTrees(groupings=("prediction",)).fit(X, labels, predictions, classes=[2])

    def without_q(t):  # q-values depend on the size of the FDR family (all valid leaves of a fit)
        d = dataclasses.asdict(t)
        for leaf in d["leaves"]:
            leaf["holdout"].pop("q_value")
        return d

    same = [t for t in full.trees_ if t.grouping == "prediction" and t.class_index == 2]
    assert [without_q(t) for t in part.trees_] == [without_q(t) for t in same]
    assert part.trees_[0].has_valid_leaf
    assert list(part.valid_leaf_fraction_) == ["prediction"]

    class Cancelled(Exception):
        pass

    def check():
        raise Cancelled

    with pytest.raises(Cancelled):
        FailureTrees().fit(X, labels, predictions, check=check)


def test_dataclasses_are_plain_json():
    ft = _hand_fit(holdout_fraction=0.0)
    tree = ft.trees_[0]
    assert isinstance(tree, ClassTree) and all(isinstance(lf, Leaf) for lf in tree.leaves)
    blob = json.loads(json.dumps(dataclasses.asdict(tree)))
    assert blob["leaves"][1]["conditions"] == [{"feature": 1, "op": ">", "threshold": 6.5}]
    assert blob["node_feature"] == [1, -1, -1] and blob["node_leaf_id"] == [-1, 0, 1]
    # a tree rebuilt from its JSON applies the same way
    rebuilt = ClassTree(**{**blob, "leaves": []})
    X, _, _ = _hand_data()
    assert ft.leaf_membership(rebuilt, X).tolist() == ft.leaf_membership(tree, X).tolist()
