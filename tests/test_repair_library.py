"""The repair library in-process: prompt planning with equal budgets, the debug split, the world's
prompt parser and renderer, and the head retrainer's loss, starts and checks."""

from __future__ import annotations

import numpy as np
import pytest

from failurelens.discovery.debug import DebugSplitter
from failurelens.errors import InvalidArgument, InvalidData, InvalidParameter
from failurelens.generation.world import WorldGenerator
from failurelens.repair.head import HeadRetrainer
from failurelens.repair.prompts import PromptPlanner
from failurelens.world.config import default_config
from failurelens.world.prompts import parse_prompt

NAMES = ["apple", "circle", "owl"]
COUNTS = {0: [("on grass", 6), ("in water", 3), ("on sand", 1)], 2: [("at night", 4)]}


def _budget(prompts) -> dict[int, int]:
    out: dict[int, int] = {}
    for p in prompts:
        out[p.label] = out.get(p.label, 0) + p.count
    return out


def test_failure_backgrounds_top_k_even_or_by_frequency():
    plan = PromptPlanner(top_k=2, images_per_class=10).failure_backgrounds(NAMES, COUNTS)
    assert [(p.label, p.text, p.count) for p in plan] == [
        (0, "a photo of an apple on grass", 5),
        (0, "a photo of an apple in water", 5),
        (2, "a photo of an owl at night", 10),
    ]
    freq = PromptPlanner(top_k=2, images_per_class=10).failure_backgrounds(NAMES, COUNTS, by_frequency=True)
    assert [(p.source, p.count) for p in freq if p.label == 0] == [("on grass", 6), ("in water", 3), ("on sand", 1)]
    with pytest.raises(InvalidArgument, match="unknown class"):
        PromptPlanner().failure_backgrounds(NAMES, COUNTS, classes=[7])


def test_equal_budgets_across_strategies_for_the_same_classes():
    planner = PromptPlanner(top_k=3, images_per_class=7, seed=1)
    classes = [0, 2]
    captions = {0: ["a photo of a red apple", "a photo of a red apple ", "a photo of a small apple"]}  # owl has none
    plans = {
        "failure_backgrounds": planner.failure_backgrounds(NAMES, COUNTS, classes),
        "failure_captions": planner.failure_captions(NAMES, captions, classes, backgrounds=COUNTS),
        "class_only": planner.class_only(NAMES, classes),
        "random_backgrounds": planner.random_backgrounds(NAMES, ["on grass", "on snow", "at night", "on wood"], classes),
    }
    assert {k: _budget(v) for k, v in plans.items()} == {k: {0: 7, 2: 7} for k in plans}
    # duplicate captions count once; the owl, without a validated caption, gets its failure background
    assert [p.text for p in plans["failure_captions"]] == ["a photo of a red apple", "a photo of a small apple", "a photo of an owl at night"]
    assert {p.text for p in plans["class_only"]} == {"a photo of an apple", "a photo of an owl"}
    again = PromptPlanner(top_k=3, images_per_class=7, seed=1).random_backgrounds(NAMES, ["on grass", "on snow", "at night", "on wood"], classes)
    assert again == plans["random_backgrounds"]  # same seed, same draw
    assert len({p.source for p in plans["random_backgrounds"] if p.label == 0}) == 3


def test_planner_parameters_are_checked():
    with pytest.raises(InvalidParameter, match="template"):
        PromptPlanner(template="a photo of {class}").validate_params()
    with pytest.raises(InvalidParameter, match="images_per_class"):
        PromptPlanner(images_per_class=0).class_only(NAMES)
    with pytest.raises(InvalidArgument, match="vocabulary"):
        PromptPlanner().random_backgrounds(NAMES, [" "])


def test_debug_split_halves_each_class_failures():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    pred = np.where(rng.random(400) < 0.3, (y + 1) % 4, y)
    s = DebugSplitter(seed=3).fit(y, pred)
    assert not set(s.seed_) & set(s.heldout_) and set(s.seed_) | set(s.heldout_) == set(np.flatnonzero(y != pred))
    for c in range(4):
        n_seed, n_held = (y[s.seed_] == c).sum(), (y[s.heldout_] == c).sum()
        assert abs(int(n_seed) - int(n_held)) <= 1 and n_held >= 1
    t = DebugSplitter(seed=3).fit(y, pred)
    assert np.array_equal(s.seed_, t.seed_)
    assert not np.array_equal(s.seed_, DebugSplitter(seed=4).fit(y, pred).seed_)
    with pytest.raises(InvalidData, match="no errors"):
        DebugSplitter().fit(y, y)


def test_world_prompts_parse_or_name_the_words_they_do_not_understand():
    cfg = default_config()
    p = parse_prompt(cfg, "A photo of a small white bolt at night.")
    assert p.class_name == "bolt" and p.attributes == {"size": "small", "color": "white", "background": "night"}
    with pytest.raises(InvalidArgument, match="'on', 'mars'"):
        parse_prompt(cfg, "a photo of a circle on mars")
    with pytest.raises(InvalidArgument, match="names no class"):
        parse_prompt(cfg, "a photo of grass")
    with pytest.raises(InvalidArgument, match="two colors"):
        parse_prompt(cfg, "a photo of a red blue circle")
    gen = WorldGenerator(cfg)
    a = gen.generate("a photo of a blue heart on sand", [1, 2])
    b = gen.generate("a photo of a blue heart on sand", [1, 2])
    assert [x.attributes["background"] for x in a] == ["sand", "sand"] and all(x.attributes["color"] == "blue" for x in a)
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b))
    assert not np.array_equal(np.asarray(a[0].image), np.asarray(a[1].image))


def _blobs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes told apart by features 0-2 (on very different scales); features 3-5 are noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = np.concatenate([3.0 * np.eye(3)[y], np.zeros((n, 3))], 1) + rng.normal(size=(n, 6)) * np.array([1, 1, 1, 0.3, 0.3, 0.3])
    return x * np.array([1.0, 10.0, 0.1, 1.0, 1.0, 1.0]) + 5.0, y


def test_lambda_zero_is_the_original_data_alone_and_lambda_repairs_a_shifted_set():
    x, y = _blobs(0, 600)
    # the debug images look like the next class in features 0-2; only features 3-5 tell the truth
    rng = np.random.default_rng(1)
    yd = rng.integers(0, 3, 90)
    xd = np.concatenate([3.0 * np.eye(3)[(yd + 1) % 3], 4.0 * np.eye(3)[yd]], 1) + rng.normal(size=(90, 6)) * 0.3
    xd = xd * np.array([1.0, 10.0, 0.1, 1.0, 1.0, 1.0]) + 5.0
    alone = HeadRetrainer(init="new", epochs=60).fit(x, y, num_classes=3)
    zero = HeadRetrainer(init="new", epochs=60, lam=0.0).fit(x, y, xd, yd, num_classes=3)
    np.testing.assert_array_equal(alone.coef_, zero.coef_)
    np.testing.assert_array_equal(alone.intercept_, zero.intercept_)
    assert alone.score(xd, yd) < 0.2
    repaired = HeadRetrainer(init="new", epochs=60, lam=1.0).fit(x, y, xd, yd, num_classes=3)
    assert repaired.score(xd, yd) > 0.8 and repaired.score(x, y) > 0.9
    # the learned head lives in the raw feature space: logits are x @ W.T + b
    np.testing.assert_allclose(repaired.decision_function(x), x @ repaired.coef_.T.astype(np.float64) + repaired.intercept_, rtol=1e-6)


def test_own_head_start_and_checks():
    x, y = _blobs(2, 300)
    own = HeadRetrainer(init="new", epochs=40).fit(x, y, num_classes=3)
    kept = HeadRetrainer(init="own", epochs=0).fit(x, y, init_weight=own.coef_, init_bias=own.intercept_)
    np.testing.assert_allclose(kept.coef_, own.coef_, rtol=1e-5, atol=1e-6)  # 0 epochs: the own head, unchanged
    np.testing.assert_allclose(kept.intercept_, own.intercept_, rtol=1e-5, atol=1e-5)
    with pytest.raises(InvalidData, match="init_weight"):
        HeadRetrainer(init="own").fit(x, y)
    with pytest.raises(InvalidData, match="does not fit 6 features"):
        HeadRetrainer(init="own").fit(x, y, init_weight=np.zeros((3, 5)), init_bias=np.zeros(3))
    with pytest.raises(InvalidData, match="X_debug has 2 features"):
        HeadRetrainer(init="new").fit(x, y, np.zeros((4, 2)), np.zeros(4, dtype=int))
    with pytest.raises(InvalidParameter, match="lam"):
        HeadRetrainer(lam=-1).fit(x, y)
    a = HeadRetrainer(init="new", epochs=5, batch_size=64, seed=7).fit(x, y, x[:50], y[:50])
    b = HeadRetrainer(init="new", epochs=5, batch_size=64, seed=7).fit(x, y, x[:50], y[:50])
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert len(a.history_) == 5 and a.history_[-1].train_accuracy > 0.8


def test_devices():
    import torch

    x, y = _blobs(3, 200)
    with pytest.raises(InvalidParameter, match="device"):
        HeadRetrainer(device="tpu").fit(x, y)
    cpu = HeadRetrainer(init="new", epochs=20, device="cpu").fit(x, y, x[:30], y[:30])
    assert cpu.device_ == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(InvalidData, match="no GPU"):
            HeadRetrainer(init="new", device="cuda").fit(x, y)
        assert HeadRetrainer(init="new", epochs=1).fit(x, y).device_ == "cpu"
    else:  # the same head on the GPU, to float64 rounding
        gpu = HeadRetrainer(init="new", epochs=20, device="cuda").fit(x, y, x[:30], y[:30])
        assert gpu.device_ == "cuda"
        np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-5, atol=1e-6)
