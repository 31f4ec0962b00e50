"""Tests of naming failure modes in words: failurelens.discovery.captions (failure-direction and
slice captions, caption validation), failurelens.discovery.backgrounds (uncommon backgrounds
from an LLM or a vocabulary, de-duplication, CLIP zero-shot background of failure images) and
failurelens.world.vocabulary.

Hand-made vectors check the arithmetic; the committed world CLIP model (ONNX, through
onnxruntime) on freshly rendered world images checks that the captions name what is in the
pictures; a loopback OpenAI-compatible HTTP server checks the LLM path through the real SDK.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from failurelens.discovery.backgrounds import (
    Assignment,
    LlmError,
    LlmSettings,
    assign_backgrounds,
    background_prompts,
    clean_backgrounds,
    keep_indices,
    parse_background_list,
    propose_from_vocabulary,
    propose_with_llm,
    remove_near_duplicates,
    top_backgrounds,
)
from failurelens.discovery.captions import (
    DEFAULT_TEMPLATES,
    Candidate,
    CaptionValidation,
    ScoredCaption,
    build_candidates,
    candidate_prompts,
    caption_direction,
    caption_names_attribute,
    caption_slice,
    check_captions,
    embed_candidates,
    expand_template,
    normalise,
    pool_embeddings,
    rank_captions,
    slice_caption_scores,
    validate_caption,
)
from failurelens.world import default_config
from failurelens.world.vocabulary import WORLD_TEMPLATES, world_vocabulary, write_vocabulary

ROOT = Path(__file__).resolve().parents[1]


def _cands(*names: str) -> list[Candidate]:
    return [Candidate(text=f"a photo of a thing {n}", attribute="background", value=n) for n in names]


# ================================================================== candidates and vectors
def test_build_candidates_default_templates_order_and_dedup() -> None:
    vocab = {"background": ["on sand", "in water", "on sand", "  "], "color": ["red"], "size": ["small"], "corruption": ["blurry"]}
    c = build_candidates("star", vocab)
    assert [x.text for x in c] == [
        "a photo of a star on sand",
        "a photo of a star in water",
        "a photo of a red star",
        "a photo of a small star",
        "a blurry photo of a star",
    ]
    assert [(x.attribute, x.value) for x in c][:2] == [("background", "on sand"), ("background", "in water")]
    assert build_candidates("star", vocab) == c  # deterministic
    assert set(DEFAULT_TEMPLATES) >= {"background", "color", "size", "corruption"}


def test_build_candidates_flat_templates_free_text_and_unknown_attribute() -> None:
    flat = ["a photo of a {class} {value}", "a {class} {value}"]
    c = build_candidates("cat", {"background": ["in a hand"], "": ["a {class} held by a person"]}, flat, ensemble=False)
    assert [x.text for x in c] == ["a photo of a cat in a hand", "a cat in a hand", "a cat held by a person"]
    assert c[2].attribute == "" and c[2].value == "a {class} held by a person"
    ens = build_candidates("cat", {"background": ["in a hand"]}, flat)
    assert len(ens) == 1 and ens[0].text == "a photo of a cat in a hand"
    assert ens[0].prompts == ("a photo of a cat in a hand", "a cat in a hand")
    # an attribute no template set knows gets the generic template
    assert build_candidates("cat", {"texture": ["with stripes"]})[0].text == "a photo of a cat with stripes"
    # the same text from two attributes is kept once, with its first attribute
    twice = build_candidates("cat", {"a": ["x"], "b": ["x"]}, ["{class} {value}"])
    assert [(x.text, x.attribute) for x in twice] == [("cat x", "a")]


def test_build_candidates_context_placeholders_make_a_prompt_ensemble() -> None:
    vocab = {"background": ["in water", "on sand"], "color": ["red", "blue"], "size": ["small", "large"]}
    tpl = {"background": ["a photo of a {class} {value}", "a photo of a {size} {color} {class} {value}"]}
    c = build_candidates("star", vocab, tpl)
    water = c[0]
    assert water.text == "a photo of a star in water"
    assert water.prompts == (
        "a photo of a star in water",
        "a photo of a small red star in water",
        "a photo of a small blue star in water",
        "a photo of a large red star in water",
        "a photo of a large blue star in water",
    )
    assert expand_template("{a} {b}", {"a": "x"}, {"b": ["1", "2"]}) == ["x 1", "x 2"]
    texts, sizes = candidate_prompts(c[:2] + [Candidate("plain", "", "plain")])
    assert sizes == [5, 5, 1] and texts[-1] == "plain"
    with pytest.raises(ValueError, match="no values for 'shape'"):
        build_candidates("star", vocab, ["a {shape} {class} {value}"])


@pytest.mark.parametrize(
    "vocab, templates, match",
    [
        ({}, None, "no candidate caption"),
        ({"background": []}, None, "no candidate caption"),
        ({"background": ["", " "]}, None, "no candidate caption"),
        ({"background": "in water"}, None, "must be a list"),
        ({"background": ["in water"]}, ["a photo of a {class}"], r"no \{value\} placeholder"),
        ({"background": ["in water"]}, [], "empty list"),
        ({"background": ["in water"]}, "a {class} {value}", "not one string"),
    ],
)
def test_build_candidates_rejects_bad_input(vocab: Any, templates: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_candidates("star", vocab, templates)


def test_build_candidates_rejects_empty_class() -> None:
    with pytest.raises(ValueError, match="class_name"):
        build_candidates(" ", {"color": ["red"]})


def test_normalise_rows_vectors_and_zero_rows() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    n = normalise(x)
    np.testing.assert_allclose(n, [[0.6, 0.8], [0, 0], [0, -1]])
    np.testing.assert_allclose(normalise(np.array([0.0, 5.0])), [0, 1])
    assert normalise(np.ones((2, 3), np.float32)).dtype == np.float32
    assert normalise(np.array([[1, 1]])).dtype == np.float64
    with pytest.raises(ValueError, match="vector or a matrix"):
        normalise(np.zeros((2, 2, 2)))


def test_pool_embeddings_means_normalised_groups() -> None:
    t = np.array([[2.0, 0.0], [0.0, 3.0], [0.0, -1.0]])
    np.testing.assert_allclose(pool_embeddings(t, [2, 1]), [[0.5, 0.5], [0.0, -1.0]])
    with pytest.raises(ValueError, match="3 text embeddings"):
        pool_embeddings(t, [1, 1])
    cands = [Candidate("a", "x", "a", prompts=("a", "b")), Candidate("c", "x", "c")]
    lookup = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [0.0, 5.0]}
    got = embed_candidates(cands, lambda texts: np.array([lookup[s] for s in texts]))
    np.testing.assert_allclose(got, [[0.5, 0.5], [0.0, 1.0]])


# ======================================================================== ranking, directions
def test_rank_captions_orders_both_ends_and_breaks_ties_by_order() -> None:
    c = _cands("a", "b", "c", "d")
    pos, neg = rank_captions(np.array([0.5, 2.0, 0.5, -1.0]), c, top_k=3)
    assert [p.value for p in pos] == ["b", "a", "c"]
    assert [p.value for p in neg] == ["d", "a", "c"]
    assert isinstance(pos[0], ScoredCaption) and pos[0].score == 2.0 and pos[0].text == "a photo of a thing b"
    pos, neg = rank_captions(np.zeros(4), c, top_k=10)
    assert len(pos) == len(neg) == 4
    assert rank_captions(np.zeros(4), c, top_k=0) == ([], [])
    with pytest.raises(ValueError, match="3 scores for 4 candidates"):
        rank_captions(np.zeros(3), c, 2)
    with pytest.raises(ValueError, match="NaN"):
        rank_captions(np.array([0, np.nan, 0, 0]), c, 2)
    with pytest.raises(ValueError, match="top_k"):
        rank_captions(np.zeros(4), c, -1)


def test_caption_direction_scores_normalised_text_embeddings() -> None:
    c = _cands("x", "y", "-x", "xy")
    # text embeddings of very different norms: only their direction may matter
    t = np.array([[10.0, 0.0], [0.0, 0.1], [-3.0, 0.0], [5.0, 5.0]])
    pos, neg = caption_direction(np.array([2.0, 0.0]), t, c, top_k=2)
    assert [p.value for p in pos] == ["x", "xy"]
    assert [n.value for n in neg] == ["-x", "y"]
    assert pos[0].score == pytest.approx(2.0)
    assert pos[1].score == pytest.approx(2.0 / np.sqrt(2))
    pos_b, _ = caption_direction(np.array([2.0, 0.0]), t, c, top_k=1, intercept=-0.5)
    assert pos_b[0].score == pytest.approx(1.5)


def test_caption_direction_rejects_mismatched_dims() -> None:
    c = _cands("a", "b")
    with pytest.raises(ValueError, match=r"embedding dim 3 but 2 was expected"):
        caption_direction(np.ones(2), np.ones((2, 3)), c)
    with pytest.raises(ValueError, match=r"2 rows but there are 3 candidates"):
        caption_direction(np.ones(2), np.ones((2, 2)), _cands("a", "b", "c"))
    with pytest.raises(ValueError, match="vector"):
        caption_direction(np.ones((2, 2)), np.ones((2, 2)), c)
    with pytest.raises(ValueError, match="NaN"):
        caption_direction(np.array([np.nan, 1.0]), np.ones((2, 2)), c)


def _clusters(rng: np.random.Generator, center: np.ndarray, n: int, noise: float = 0.2) -> np.ndarray:
    return center[None, :] * rng.uniform(0.5, 3.0, (n, 1)) + noise * rng.standard_normal((n, center.shape[0]))


def test_caption_slice_names_what_separates_the_slice() -> None:
    rng = np.random.default_rng(0)
    e = np.eye(4)
    slice_emb = _clusters(rng, e[0] + 0.5 * e[2], 20)  # the slice: "water" + the class's own look (e2)
    rest = _clusters(rng, e[1] + 0.5 * e[2], 60)  # the rest: "grass" + the class's own look
    cands = _cands("water", "grass", "class", "sky")
    text = np.stack([e[0], e[1], e[2], e[3]]) * np.array([[2.0], [1.0], [7.0], [1.0]])
    for score in ("zero_shot", "mean_diff", "auc"):
        top = caption_slice(slice_emb, rest, text, cands, top_k=4, score=score)
        assert [t.value for t in top][0] == "water"
        assert [t.value for t in top][-1] == "grass"
    # mean_diff = the difference-of-means direction captioned like an SVM normal
    d = normalise(slice_emb).mean(0) - normalise(rest).mean(0)
    np.testing.assert_allclose(slice_caption_scores(slice_emb, rest, text), normalise(text) @ d)
    auc = slice_caption_scores(slice_emb, rest, text, "auc")
    assert auc[0] > 0.99 and auc[1] < 0.01
    # AUC by hand: slice cosines (1, 0.6) vs rest cosines (0.6, 0) -> pairs 1, 1, 0.5 (tie), 1 of 4
    ang = np.arccos([1.0, 0.6, 0.6, 0.0])
    pts = np.stack([np.cos(ang), np.sin(ang)], 1)
    assert slice_caption_scores(pts[:2], pts[2:], np.array([[1.0, 0.0]]), "auc")[0] == pytest.approx(3.5 / 4)
    assert slice_caption_scores(pts, pts, np.array([[1.0, 0.0]]), "auc")[0] == pytest.approx(0.5)


def test_zero_shot_slice_score_by_hand() -> None:
    # two attributes: colours (captions 0, 1) and backgrounds (captions 2, 3), 2-d toy embeddings
    text = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.2], [0.2, 1.0]])
    groups = ["color", "color", "background", "background"]
    ang = np.deg2rad([10.0, 20.0, 80.0, 40.0])  # slice: 3 of 4 nearer caption 0 (and 2)
    slice_emb = np.stack([np.cos(ang), np.sin(ang)], 1)
    rest_emb = np.array([[0.1, 1.0], [0.0, 1.0], [1.0, 0.05], [0.2, 1.0]])  # rest: 1 of 4 nearer caption 0
    got = slice_caption_scores(slice_emb, rest_emb, text, "zero_shot", groups=groups)
    md = slice_caption_scores(slice_emb, rest_emb, text, "mean_diff")
    # fractions won: slice (3/4, 1/4 | 3/4, 1/4), rest (1/4, 3/4 | 1/4, 3/4)
    np.testing.assert_allclose(got, np.array([0.5, -0.5, 0.5, -0.5]) + 1e-3 * md)
    assert abs(md[0]) > 0 and not np.allclose(got, md)
    # a group of one caption wins every image of both sides: only the tie-break is left
    one = slice_caption_scores(slice_emb, rest_emb, text[:1], "zero_shot", groups=["x"])
    np.testing.assert_allclose(one, 1e-3 * md[:1])
    # a caption far from the rest's images but never an image's nearest one of its attribute does
    # not win under zero_shot, while mean_diff ranks it first
    far = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    s_emb = np.array([[1.0, 0.1], [1.0, 0.15]])
    r_emb = np.array([[0.1, 1.0], [0.15, 1.0]])
    assert np.argmax(slice_caption_scores(s_emb, r_emb, far, "mean_diff")) == 2
    assert np.argmax(slice_caption_scores(s_emb, r_emb, far, "zero_shot", groups=["c"] * 3)) == 0
    with pytest.raises(ValueError, match="one group label per caption"):
        slice_caption_scores(s_emb, r_emb, far, "zero_shot")


def test_check_captions_validates_by_the_accuracy_near_each_caption() -> None:
    # a class of 40 images on 4 axes: 10 along each; the model fails on all of axis 0 and on 2 of axis 1
    e = np.eye(4)
    x = np.repeat(e, 10, axis=0) + 0.01 * np.arange(40)[:, None] * e[[3]]
    correct = np.ones(40, dtype=bool)
    correct[:10] = False
    correct[10:12] = False
    cands = [Candidate(f"c{i}", "background", f"v{i}") for i in range(4)]
    ranked = [
        ScoredCaption("c1", 0.9, "background", "v1"),
        ScoredCaption("c0", 0.5, "background", "v0"),
        ScoredCaption("c2", 0.1, "background", "v2"),
    ]
    in_slice = np.zeros(40, dtype=bool)
    in_slice[:10] = True
    got = check_captions(ranked, cands, e, x, correct, in_slice, k=10)
    # group accuracy 28/40 = 0.7, slice 0 -> bar 0.35; nearest 10: c0 -> 0.0, c1 -> 0.8, c2 -> 1.0
    assert [(c.text, c.nearest_accuracy, c.validated) for c in got] == [("c0", 0.0, True), ("c1", 0.8, False), ("c2", 1.0, False)]
    assert got[0].score == 0.5 and got[1].score == 0.9  # scores kept, validated first
    # the bar is (group + slice accuracy) / 2: half of axis 0 and half of axis 1 (accuracy 3/10)
    # against a group at 0.7 -> bar 0.5; c0's nearest 10 (0.0) pass, c1's (0.8) do not
    s2 = np.zeros(40, dtype=bool)
    s2[5:15] = True
    assert [(c.text, c.validated) for c in check_captions(ranked[:2], cands, e, x, correct, s2, k=10)] == [("c0", True), ("c1", False)]
    # as many nearest images as the slice has: a 2-image slice checks the 2 nearest
    tiny = np.zeros(40, dtype=bool)
    tiny[10:12] = True
    got = check_captions(ranked[:1], cands, e, x, correct, tiny, k=10)
    assert got[0].nearest_accuracy == 0.0 and got[0].validated is True  # the 2 images nearest c1 are its 2 failures
    # a slice no worse than its group validates nothing
    ok = np.zeros(40, dtype=bool)
    ok[20:] = True
    assert not any(c.validated for c in check_captions(ranked, cands, e, x, correct, ok, k=10))
    with pytest.raises(ValueError, match="not one of the candidates"):
        check_captions([ScoredCaption("zz", 1.0, "", "")], cands, e, x, correct, in_slice)
    with pytest.raises(ValueError, match="one entry per group image"):
        check_captions(ranked, cands, e, x, correct[:3], in_slice)
    with pytest.raises(ValueError, match="in_slice must be a boolean mask"):
        check_captions(ranked, cands, e, x, correct, in_slice[:5])
    with pytest.raises(ValueError, match="slice has no images"):
        check_captions(ranked, cands, e, x, correct, np.zeros(40, dtype=bool))


def test_caption_slice_rejects_bad_input() -> None:
    c = _cands("a", "b")
    t = np.eye(2)
    with pytest.raises(ValueError, match="slice has no images"):
        caption_slice(np.zeros((0, 2)), np.ones((3, 2)), t, c)
    with pytest.raises(ValueError, match="nothing to contrast"):
        caption_slice(np.ones((3, 2)), np.zeros((0, 2)), t, c)
    with pytest.raises(ValueError, match=r"rest_image_emb has embedding dim 3 but 2"):
        caption_slice(np.ones((3, 2)), np.ones((3, 3)), t, c)
    with pytest.raises(ValueError, match="unknown slice-caption score"):
        caption_slice(np.ones((3, 2)), np.ones((3, 2)), t, c, score="median")


# ================================================================================ validation
def test_validate_caption_accuracy_near_hard_and_easy_captions() -> None:
    # 6 images on a circle; the hard caption points at angle 0, the easy one at angle pi
    angles = np.array([0.1, -0.2, 0.3, np.pi - 0.1, np.pi + 0.2, np.pi + 0.4])
    x = np.stack([np.cos(angles), np.sin(angles)], 1) * np.array([[1.0], [5.0], [0.3], [2.0], [1.0], [9.0]])
    correct = np.array([False, False, True, True, True, True])
    v = validate_caption(x, correct, np.array([1.0, 0.0]), np.array([-4.0, 0.0]), k=2, rows=[10, 11, 12, 13, 14, 15])
    assert isinstance(v, CaptionValidation)
    assert v.k == 2 and v.hard_rows == [10, 11] and v.easy_rows == [13, 14]
    assert v.hard_accuracy == 0.0 and v.easy_accuracy == 1.0 and v.gap == 1.0
    v3 = validate_caption(x, correct.astype(int), np.array([1.0, 0.0]), np.array([-1.0, 0.0]), k=3)
    assert v3.hard_rows == [0, 1, 2] and v3.hard_accuracy == pytest.approx(1 / 3)
    big = validate_caption(x, correct, np.array([1.0, 0.0]), np.array([-1.0, 0.0]), k=50)
    assert big.k == 6 and big.hard_accuracy == big.easy_accuracy == pytest.approx(4 / 6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"correct": np.ones(3, bool)}, "one entry per image"),
        ({"correct": np.array([0, 2, 1, 1])}, "booleans"),
        ({"k": 0}, "positive integer"),
        ({"rows": [1, 2]}, "rows has 2 ids"),
        ({"hard_text_emb": np.ones(3)}, "hard_text_emb has embedding dim 3 but 2"),
        ({"image_emb": np.ones((0, 2)), "correct": np.ones(0, bool)}, "no images"),
    ],
)
def test_validate_caption_rejects_bad_input(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"image_emb": np.ones((4, 2)), "correct": np.ones(4, bool), "hard_text_emb": np.ones(2), "easy_text_emb": np.ones(2)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        validate_caption(**args)


def test_caption_names_attribute() -> None:
    water = ScoredCaption("a photo of a star in water", 1.0, "background", "in water")
    assert caption_names_attribute(water, "background", "water")
    assert caption_names_attribute(water, "background", "in water")
    assert not caption_names_attribute(water, "color", "water")
    assert not caption_names_attribute(water, "background", "wat")
    road = Candidate("a photo of a star on the road", "background", "on the road")
    assert caption_names_attribute(road, "background", "road")
    blurry = Candidate("a blurry photo of a star", "corruption", "blurry")
    assert not caption_names_attribute(blurry, "corruption", "blur")
    assert caption_names_attribute(blurry, "corruption", "blur", {"blurry": "blur"})
    free = Candidate("a star floating in water at night", "", "a star floating in water at night")
    assert caption_names_attribute(free, "background", "water")
    assert caption_names_attribute(free, "background", "night")
    assert not caption_names_attribute(free, "background", "grass")
    assert caption_names_attribute(Candidate("a blurry star", "", "a blurry star"), "corruption", "blur", {"blurry": "blur"})


# ================================================================ backgrounds: pure parts
def test_parse_and_clean_background_lists() -> None:
    assert parse_background_list('["In water", "on snow"]') == ["In water", "on snow"]
    assert parse_background_list('Sure! ```json\n["a", "b"]\n``` hope it helps') == ["a", "b"]
    assert parse_background_list('Here: ["a", 3, "b"] - enjoy') == ["a", "b"]
    assert parse_background_list('{"backgrounds": ["x", "y"]}') == ["x", "y"]
    assert parse_background_list("Uncommon backgrounds:\n1. In water\n2) on snow\n- at night\n* **in a cave**") == [
        "In water",
        "on snow",
        "at night",
        "**in a cave**",
    ]
    for bad in ("", "   ", "I cannot help with that.", "[1, 2, 3]", "[not json"):
        with pytest.raises(ValueError):
            parse_background_list(bad)
    assert clean_backgrounds(["  In  Water. ", "", "in water", "**on snow**", 5, "at night"], 2) == ["in water", "on snow"]
    assert clean_backgrounds(["a", "b", "c"]) == ["a", "b", "c"]


def test_propose_from_vocabulary_uses_default_for_unknown_classes() -> None:
    vocab = {"backgrounds": {"star": ["In water", "on grass", "in water", "on snow"]}, "default": ["on sand", "at night"]}
    got = propose_from_vocabulary(["star", "kite"], vocab, per_class=2)
    assert got == {"star": ["in water", "on grass"], "kite": ["on sand", "at night"]}
    assert propose_from_vocabulary(["star"], vocab, None)["star"] == ["in water", "on grass", "on snow"]
    with pytest.raises(ValueError, match="no backgrounds for class 'kite' and no \"default\""):
        propose_from_vocabulary(["kite"], {"backgrounds": {}}, 2)
    with pytest.raises(ValueError, match="per_class"):
        propose_from_vocabulary(["star"], vocab, 0)


def test_remove_near_duplicates_greedy_in_order() -> None:
    names = ["in water", "in the water", "on snow", "on grass", "In Water", "on the lawn"]
    t = np.array([[1.0, 0.0, 0.0], [0.99, 0.05, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.7, 0.7], [0.1, 0.0, 0.98]])
    kept, removed = remove_near_duplicates(names, t * 3.0, threshold=0.9)
    # "in the water" ~ "in water"; "In Water" repeats a kept name; "on the lawn" ~ "on grass"
    assert kept == ["in water", "on snow", "on grass"] and removed == 3
    assert keep_indices(names, t, threshold=0.999) == [0, 1, 2, 3, 5]
    assert remove_near_duplicates([], np.zeros((0, 3))) == ([], 0)
    with pytest.raises(ValueError, match="3 names but 2 text embeddings"):
        remove_near_duplicates(["a", "b", "c"], np.ones((2, 3)))
    with pytest.raises(ValueError, match="threshold"):
        remove_near_duplicates(["a"], np.ones((1, 3)), threshold=2.0)


def test_assign_backgrounds_and_top_backgrounds() -> None:
    e = np.eye(3)
    img = np.array([e[0] * 2, e[0] + 0.1 * e[1], e[1], e[2], e[0], e[2] * 4])
    cls = np.array([0, 0, 0, 1, 1, 2])
    rows = np.array([100, 101, 102, 103, 104, 105])
    bgs = {0: ["in water", "on snow"], 1: ["at night", "on sand", "in water"]}  # class 2: none -> skipped
    text = {0: np.stack([e[0], e[1]]) * 5, 1: np.stack([e[2], e[1], e[0]])}
    a = assign_backgrounds(img, cls, rows, bgs, text)
    assert [(x.row, x.class_index, x.background) for x in a] == [
        (100, 0, "in water"),
        (101, 0, "in water"),
        (102, 0, "on snow"),
        (103, 1, "at night"),
        (104, 1, "in water"),
    ]
    assert a[0].score == pytest.approx(1.0) and a[1].score == pytest.approx(1 / np.sqrt(1.01))
    top = top_backgrounds(a + [Assignment(106, 1, "on sand", 0.5)], top_k=2)
    assert top == {0: [("in water", 2), ("on snow", 1)], 1: [("at night", 1), ("in water", 1)]}  # ties by name
    assert top_backgrounds(a, None)[1] == [("at night", 1), ("in water", 1)]
    assert background_prompts("star", ["in water", "on  snow"]) == ["a photo of a star in water", "a photo of a star on snow"]
    assert background_prompts("star", ["in water"], "{background}: a {class}") == ["in water: a star"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_emb": np.ones((3, 4))}, r"text embedding dim 2 != image embedding dim 4"),
        ({"class_of_row": np.array([0, 0])}, "one per image"),
        ({"text_emb_per_class": {0: np.ones((3, 2))}}, r"shape \(3, 2\) for 2 backgrounds"),
        ({"text_emb_per_class": {}}, "no text embeddings"),
        ({"class_of_row": np.array([0.0, 0.0, 0.0])}, "integer class indices"),
    ],
)
def test_assign_backgrounds_rejects_bad_input(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "image_emb": np.ones((3, 2)),
        "class_of_row": np.zeros(3, int),
        "rows": np.arange(3),
        "backgrounds_per_class": {0: ["a", "b"]},
        "text_emb_per_class": {0: np.eye(2)},
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        assign_backgrounds(**args)


# ======================================================================== world vocabulary
def test_world_vocabulary_layout_and_file(tmp_path: Path) -> None:
    cfg = default_config()
    v = world_vocabulary(cfg)
    assert set(v) == {"templates", "attributes", "value_names", "backgrounds", "default"}
    assert v["templates"] == WORLD_TEMPLATES
    assert v["attributes"]["background"][:3] == ["on grass", "in water", "on sand"]
    assert v["attributes"]["color"] == list(cfg.colors)
    assert v["attributes"]["size"] == ["small", "large"]
    assert v["attributes"]["corruption"] == ["blurry", "noisy"]
    assert v["value_names"]["in water"] == "water" and v["value_names"]["at night"] == "night"
    assert v["value_names"]["blurry"] == "blur" and v["value_names"]["red"] == "red"
    assert set(v["backgrounds"]) == set(cfg.classes)
    star = v["backgrounds"]["star"]  # dominant: sky
    assert "in the sky" not in star and "in water" in star and len(star) == len(cfg.backgrounds) - 1
    assert v["default"] == v["attributes"]["background"]
    p = write_vocabulary(cfg, tmp_path / "sub" / "vocabulary.json")
    assert json.loads(p.read_text()) == v
    assert [f.name for f in p.parent.iterdir()] == ["vocabulary.json"]
    # the vocabulary feeds both consumers as it is
    assert propose_from_vocabulary(["star"], v, 3)["star"] == star[:3]
    c = build_candidates("star", v["attributes"], v["templates"])
    assert len(c) == len(cfg.backgrounds) + len(cfg.colors) + 2 + 2
    assert c[0].text == "a photo of a star on grass"
    assert "a photo of a small red star on grass" in c[0].prompts
    assert len(c[0].prompts) == 1 + 2 * len(cfg.colors)


# ===================================================== the real world CLIP model (ONNX)
class _WorldClip:
    """The committed world image–text model through onnxruntime, as the Triton models run it."""

    def __init__(self) -> None:
        import onnxruntime as ort

        from failurelens.data.tokenizer import ClipTokenizer

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        base = ROOT / "triton_models"
        self.image = ort.InferenceSession(str(base / "world-clip__image/1/model.onnx"), so, providers=["CPUExecutionProvider"])
        self.text = ort.InferenceSession(str(base / "world-clip__text/1/model.onnx"), so, providers=["CPUExecutionProvider"])
        self.tok = ClipTokenizer(context_length=20)

    def embed_images(self, images: list[Any]) -> np.ndarray:
        x = np.stack([np.asarray(im.convert("RGB"), np.float32) / 255.0 for im in images]).transpose(0, 3, 1, 2)
        x = ((x - 0.5) / 0.25).astype(np.float32)
        return self.image.run(["embeddings"], {self.image.get_inputs()[0].name: x})[0]

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        out = [self.text.run(["embeddings"], {"input_ids": self.tok.encode(texts[i : i + 256])})[0] for i in range(0, len(texts), 256)]
        return np.concatenate(out)


@pytest.fixture(scope="module")
def clip() -> _WorldClip:
    return _WorldClip()


N_PER_BACKGROUND = 24


@pytest.fixture(scope="module")
def water_grass(clip: _WorldClip) -> dict[str, Any]:
    """World images of two classes, 24 in water and 24 on grass each (colours and sizes cycled,
    random position, the default world's rotation and stretch), and their CLIP embeddings."""
    from failurelens.world import render
    from failurelens.world.generate import render_kwargs

    cfg = default_config()
    kw = render_kwargs(cfg)
    out: dict[str, Any] = {"config": cfg, "vocab": world_vocabulary(cfg)}
    for cls in ("star", "circle"):
        rng = np.random.default_rng(7)
        for bg, off in (("water", 0), ("grass", 1000)):
            ims = [
                render(
                    cls,
                    bg,
                    cfg.colors[i % len(cfg.colors)],
                    size=("small", "large")[i % 2],
                    x=float(rng.uniform(0.35, 0.65)),
                    y=float(rng.uniform(0.35, 0.65)),
                    seed=off + i,
                    **kw,
                )
                for i in range(N_PER_BACKGROUND)
            ]
            out[cls, bg] = clip.embed_images(ims)
    return out


@pytest.mark.parametrize("cls", ["star", "circle"])
def test_real_clip_caption_slice_names_water(clip: _WorldClip, water_grass: dict[str, Any], cls: str) -> None:
    vocab = water_grass["vocab"]
    cands = build_candidates(cls, vocab["attributes"], vocab["templates"])
    text = embed_candidates(cands, clip.embed_texts)
    water, grass = water_grass[cls, "water"], water_grass[cls, "grass"]
    top = caption_slice(water, grass, text, cands, top_k=3)
    assert caption_names_attribute(top[0], "background", "water", vocab["value_names"]), top
    assert top[0].text == f"a photo of a {cls} in water"
    # a clear winner: the zero-shot score is a difference of fractions of images won
    assert top[0].score - top[1].score > 0.3
    # mean_diff names it too (measured in development: 0.15-0.20 ahead over 12 class/seed runs;
    # the AUC score put water first in only 10 of 12, see caption_slice)
    md = caption_slice(water, grass, text, cands, top_k=2, score="mean_diff")
    assert md[0].text == top[0].text and md[0].score - md[1].score > 0.05
    back = caption_slice(grass, water, text, cands, top_k=1)
    assert caption_names_attribute(back[0], "background", "grass", vocab["value_names"]), back


def test_real_clip_failure_direction_and_validation(clip: _WorldClip, water_grass: dict[str, Any]) -> None:
    """The paper's pipeline on a planted failure: the model fails on stars in water; an SVM on
    normalised CLIP embeddings predicting the errors gives a direction captioned "in water"
    (hard) and "on grass" (easy), and the model's accuracy on the images nearest the hard
    caption is far below that nearest the easy one."""
    from sklearn.svm import LinearSVC

    vocab = water_grass["vocab"]
    x = np.concatenate([water_grass["star", "water"], water_grass["star", "grass"]])
    correct = np.r_[np.zeros(N_PER_BACKGROUND, bool), np.ones(N_PER_BACKGROUND, bool)]
    svm = LinearSVC(C=0.1).fit(normalise(x), ~correct)
    cands = build_candidates("star", vocab["attributes"], vocab["templates"])
    text = embed_candidates(cands, clip.embed_texts)
    hard, easy = caption_direction(svm.coef_[0], text, cands, top_k=3, intercept=float(svm.intercept_[0]))
    assert caption_names_attribute(hard[0], "background", "water"), hard
    assert caption_names_attribute(easy[0], "background", "grass"), easy
    i_hard = [c.text for c in cands].index(hard[0].text)
    i_easy = [c.text for c in cands].index(easy[0].text)
    v = validate_caption(x, correct, text[i_hard], text[i_easy], k=N_PER_BACKGROUND, rows=np.arange(1000, 1048))
    # measured: hard 0.04-0.21, easy 0.75-1.00 over 12 class/seed runs
    assert v.hard_accuracy <= 0.3 and v.easy_accuracy >= 0.7, v
    assert all(1000 <= r < 1048 for r in v.hard_rows) and len(v.hard_rows) == N_PER_BACKGROUND


def test_real_clip_assigns_backgrounds(clip: _WorldClip, water_grass: dict[str, Any]) -> None:
    vocab = water_grass["vocab"]
    bgs = vocab["default"]  # all ten background phrases
    n = N_PER_BACKGROUND
    x = np.concatenate([water_grass["star", "water"], water_grass["star", "grass"]])
    cls = np.full(2 * n, 3)  # "star" is class 3 of the default world
    rows = np.arange(2 * n)
    # prompt ensemble over sizes and colours, as the world vocabulary's templates do
    cands = build_candidates(
        "star",
        {"background": bgs, "size": vocab["attributes"]["size"], "color": vocab["attributes"]["color"]},
        {"background": vocab["templates"]["background"]},
    )[: len(bgs)]
    assert [c.value for c in cands] == bgs
    ens = embed_candidates(cands, clip.embed_texts)
    a = assign_backgrounds(x, cls, rows, {3: bgs}, {3: ens})
    on_water = sum(r.background == "in water" for r in a[:n]) / n
    on_grass = sum(r.background == "on grass" for r in a[n:]) / n
    # measured in development with the ensemble: water 21-24 of 24, grass 24 of 24 (12 runs)
    assert on_water >= 0.8 and on_grass >= 0.9, (on_water, on_grass)
    water_only = assign_backgrounds(x[:n], cls[:n], rows[:n], {3: bgs}, {3: ens})
    assert top_backgrounds(water_only, 1) == {3: [("in water", round(on_water * n))]}
    # the bare prompts "a photo of a star {background}" (background_prompts) are weaker with this
    # small model (measured 16 of 24 water, 7 of 24 grass): the ensemble must not be worse
    bare = clip.embed_texts(background_prompts("star", bgs))
    b = assign_backgrounds(x, cls, rows, {3: bgs}, {3: bare})
    bare_hits = sum(r.background == "in water" for r in b[:n]) + sum(r.background == "on grass" for r in b[n:])
    assert bare_hits <= round((on_water + on_grass) * n)


# ============================================================ LLM path over real HTTP (loopback)
@dataclasses.dataclass
class _Reply:
    status: int = 200
    content: str | None = None  # the assistant message (a chat completion is built around it)
    body: bytes | None = None  # raw body instead
    content_type: str = "application/json"
    delay: float = 0.0


class _FakeLlm:
    """A tiny OpenAI-compatible server: POST /v1/chat/completions answers ``reply(request)``."""

    def __init__(self, reply: Callable[[dict[str, Any]], _Reply]) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                req = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(raw or b"{}")}
                owner.requests.append(req)
                r = reply(req)
                if r.delay:
                    time.sleep(r.delay)
                if r.body is not None:
                    data = r.body
                elif r.status != 200:
                    data = json.dumps({"error": {"message": "model exploded", "type": "server_error"}}).encode()
                else:
                    data = json.dumps(
                        {
                            "id": "chatcmpl-1",
                            "object": "chat.completion",
                            "created": 1,
                            "model": req["body"].get("model"),
                            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": r.content}}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                        }
                    ).encode()
                try:
                    self.send_response(r.status)
                    self.send_header("Content-Type", r.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def fake_llm(no_proxy: None) -> Any:
    servers: list[_FakeLlm] = []

    def start(reply: Callable[[dict[str, Any]], _Reply]) -> _FakeLlm:
        s = _FakeLlm(reply)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def _settings(url: str, **kw: Any) -> LlmSettings:
    kw.setdefault("timeout_seconds", 5.0)
    kw.setdefault("max_retries", 0)
    return LlmSettings(base_url=url, model="tiny-llm", **kw)


def test_llm_proposes_backgrounds_through_the_sdk(fake_llm: Any) -> None:
    def reply(req: dict[str, Any]) -> _Reply:
        user = req["body"]["messages"][-1]["content"]
        if "kite" in user:
            return _Reply(content="Here you go:\n1. In a cave\n2. **Under water**\n3. in a cave\n")
        return _Reply(content='["In water", "on snow", " ", "On Snow", "at night", "in a cave"]')

    srv = fake_llm(reply)
    got = propose_with_llm(["star", "kite", "star"], 3, _settings(srv.base_url, temperature=0.3))
    assert got == {"star": ["in water", "on snow", "at night"], "kite": ["in a cave", "under water"]}
    assert len(srv.requests) == 2  # one per distinct class
    first = srv.requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["authorization"] == "Bearer not-needed"  # empty key -> dummy
    body = first["body"]
    assert body["model"] == "tiny-llm" and body["temperature"] == pytest.approx(0.3)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "uncommon backgrounds that a star can appear in" in body["messages"][1]["content"]
    assert "JSON array" in body["messages"][1]["content"]
    # a real key is sent as it is
    propose_with_llm(["star"], 1, _settings(srv.base_url, api_key="sk-test"))
    assert srv.requests[-1]["headers"]["authorization"] == "Bearer sk-test"


def test_llm_http_error_raises_llm_error(fake_llm: Any) -> None:
    srv = fake_llm(lambda req: _Reply(status=500))
    with pytest.raises(LlmError) as ei:
        propose_with_llm(["star"], 3, _settings(srv.base_url))
    msg = str(ei.value)
    assert "HTTP 500" in msg and srv.base_url + "/chat/completions" in msg and "'star'" in msg
    assert "model exploded" in msg
    assert ei.value.status == 500 and ei.value.url == srv.base_url + "/chat/completions"
    assert len(srv.requests) == 1  # max_retries=0


@pytest.mark.parametrize(
    "reply, match",
    [
        (_Reply(content="I am sorry, I cannot list backgrounds."), "unparsable reply"),
        (_Reply(content=None), "unparsable reply"),
        (_Reply(content='["", "  ", "..."]'), "lists no background"),
        (_Reply(body=b"<html>gateway</html>", content_type="text/html"), "not a chat completion"),
        (_Reply(body=b'{"foo": 1}'), "not a chat completion"),
    ],
)
def test_llm_garbage_reply_raises_llm_error(fake_llm: Any, reply: _Reply, match: str) -> None:
    srv = fake_llm(lambda req: reply)
    with pytest.raises(LlmError, match=match) as ei:
        propose_with_llm(["star"], 3, _settings(srv.base_url))
    assert srv.base_url in str(ei.value)


def test_llm_unreachable_and_silent_servers_fail_within_the_timeout(fake_llm: Any, no_proxy: None) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    t0 = time.monotonic()
    with pytest.raises(LlmError, match="could not connect") as ei:
        propose_with_llm(["star"], 3, _settings(url, timeout_seconds=2.0))
    assert time.monotonic() - t0 < 2.0 and url in str(ei.value)

    srv = fake_llm(lambda req: _Reply(content='["in water"]', delay=3.0))  # answers too late
    t0 = time.monotonic()
    with pytest.raises(LlmError, match=r"no reply within 0.5 s"):
        propose_with_llm(["star"], 3, _settings(srv.base_url, timeout_seconds=0.5))
    assert time.monotonic() - t0 < 2.5


def test_llm_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="base_url is empty"):
        propose_with_llm(["star"], 3, LlmSettings(base_url="", model="m"))
    with pytest.raises(ValueError, match="model is empty"):
        propose_with_llm(["star"], 3, LlmSettings(base_url="http://127.0.0.1:1/v1", model=""))
    with pytest.raises(ValueError, match="per_class"):
        propose_with_llm(["star"], 0, LlmSettings(base_url="http://127.0.0.1:1/v1", model="m"))


def test_shown_caption_uses_an_before_vowels_but_prompts_keep_the_template():
    from failurelens.discovery.captions import build_candidates

    c = build_candidates("arrow", {"background": ["at night"], "corruption": ["blurry"]})
    assert [x.text for x in c] == ["a photo of an arrow at night", "a blurry photo of an arrow"]
    assert c[0].prompts == ("a photo of a arrow at night",)
