"""The dcbench-style slice-recovery metrics on hand-computed cases."""

import numpy as np
import pytest

from failurelens.discovery.metrics import average_precision, match_slices, precision_at_k


def test_precision_at_k_counts_the_top_scores():
    scores = np.array([0.9, 0.1, 0.8, 0.7, -np.inf])
    truth = np.array([1, 1, 0, 1, 1], bool)
    assert precision_at_k(scores, truth, 1) == 1.0
    assert precision_at_k(scores, truth, 2) == 0.5  # 0.9 (in), 0.8 (out)
    assert precision_at_k(scores, truth, 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        precision_at_k(scores, truth, 0)


def test_average_precision_by_hand_and_outside_group_scores():
    # ranking: in, out, in -> AP = (1/1 + 2/3) / 2
    assert average_precision(np.array([3.0, 2.0, 1.0]), np.array([1, 0, 1], bool)) == pytest.approx((1 + 2 / 3) / 2)
    # -inf (outside the predicted slice's group) ranks last, not NaN
    ap = average_precision(np.array([1.0, -np.inf, 0.5]), np.array([0, 1, 0], bool))
    assert ap == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        average_precision(np.array([1.0]), np.array([False]))


def test_match_slices_picks_the_best_predicted_slice_per_truth():
    truth = {"a": np.array([1, 1, 0, 0, 0, 0], bool), "b": np.array([0, 0, 0, 0, 1, 1], bool)}
    pred = {"x": np.array([5, 4, 3, 2, 1, 0.0]), "y": np.array([0, 1, 2, 3, 4, 5.0]), "z": np.zeros(6)}
    m = {s.slice_name: s for s in match_slices(truth, pred)}
    assert m["a"].predicted == "x" and m["a"].average_precision == pytest.approx(1.0)
    assert m["b"].predicted == "y" and m["b"].precision_at_10 == pytest.approx(2 / 6)
    assert not m["a"].identified  # P@10 over 6 images with 2 members is 1/3
