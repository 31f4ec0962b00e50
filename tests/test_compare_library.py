"""The run comparison library: failures merged within a run, matched across runs by their error
images, and paired confidence intervals of per-class accuracy changes."""

from __future__ import annotations

import numpy as np
import pytest

from failurelens.discovery.compare import RunComparison


def _mode(cls: str, errors: range | list[int], er: float = 0.8, caption: str = "") -> dict:
    rows = list(errors)
    return {
        "class": cls,
        "error_rows": rows,
        "member_rows": rows + [10_000 + r for r in rows],
        "error_rate": er,
        "error_coverage": 0.5,
        "caption": caption,
    }


def _fit(a, b, **kw) -> RunComparison:
    labels = np.zeros(4, dtype=int)
    return RunComparison(**kw).fit(a, b, labels, np.ones(4, bool), np.ones(4, bool), ["cat", "dog"])


def test_fixed_introduced_and_unchanged_failures_are_told_apart_by_their_error_images():
    a = [_mode("cat", range(0, 20), caption="cat on sand"), _mode("cat", range(100, 110), caption="cat at night"), _mode("dog", range(200, 230))]
    b = [_mode("cat", range(105, 112), caption="cat at night"), _mode("dog", range(300, 310), caption="dog in snow"), _mode("dog", range(200, 215))]
    cmp = _fit(a, b)
    assert [f.description for f in cmp.fixed_] == ["cat on sand"]
    assert [f.description for f in cmp.introduced_] == ["dog in snow"]
    assert sorted((fa.class_name, round(ov, 2)) for fa, _, ov in cmp.unchanged_) == [("cat", 0.5), ("dog", 0.5)]
    # the gate's view: new failures at or above an error rate
    assert [f.description for f in cmp.new_modes(0.5)] == ["dog in snow"] and cmp.new_modes(0.9) == []


def test_detectors_that_agree_on_a_failure_are_merged_and_classes_never_mix():
    a = [_mode("cat", range(0, 20), er=0.9, caption="rule"), _mode("cat", range(5, 25), er=0.6, caption="direction"), _mode("dog", range(0, 20))]
    cmp = _fit(a, [])
    cats = [f for f in cmp.modes_a_ if f.class_name == "cat"]
    assert len(cats) == 1 and len(cats[0].detectors) == 2 and cats[0].description == "rule" and cats[0].error_rate == 0.9
    assert cats[0].members == frozenset(range(0, 25)) and len(cmp.fixed_) == 2


def test_per_class_deltas_have_paired_confidence_intervals():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 400)
    a = rng.random(800) < 0.7
    b = a.copy()
    b[:400] |= rng.random(400) < 0.5  # class 0 improves, class 1 is unchanged
    cmp = RunComparison(confidence=0.95).fit([], [], labels, a, b, ["cat", "dog"])
    cat, dog = cmp.class_deltas_
    assert cat.ci_low > 0 and cat.ci_low <= cat.delta <= cat.ci_high
    assert dog.delta == 0 and dog.ci_low == dog.ci_high == 0
    d = b[:400].astype(float) - a[:400]
    assert cat.ci_high - cat.delta == pytest.approx(1.959964 * d.std(ddof=1) / np.sqrt(400), rel=1e-5)


@pytest.mark.parametrize("params", [{"min_overlap": 0.0}, {"min_overlap": 1.5}, {"confidence": 1.0}])
def test_bad_parameters_are_refused_in_fit(params):
    with pytest.raises(ValueError):
        _fit([], [], **params)
