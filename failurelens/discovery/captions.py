"""Name failure modes in words with an image–text (CLIP) embedding space.

Pure numpy: the caller embeds images and caption texts with the image and text towers of the
same CLIP model and passes the arrays in; nothing here talks to a server.

A candidate caption may stand for several prompts (:attr:`Candidate.prompts`, e.g. the same
background phrase with every size and colour of the world's captions); its text embedding is
the mean of their normalised embeddings (:func:`embed_candidates`), CLIP's prompt ensembling.
With the small world CLIP model this matters: zero-shot background accuracy on rendered world
images (40 per background, three classes) was 0.68-0.76 with the bare "a photo of a {class}
{value}" and 0.93-0.98 with the ensemble over the world's sizes and colours.

* :func:`build_candidates` turns a vocabulary of attribute values (``{"background": ["in
  water", ...], "color": ["red", ...]}``) into candidate captions of one class with templates
  (``"a photo of a {class} {value}"``).
* :func:`caption_direction` – *Distilling model failures as directions in latent space*: a
  per-class linear SVM trained on CLIP image embeddings to predict the model's errors has a
  normal ``w``; because CLIP puts text in the same space, the captions whose **normalised** text
  embedding has the largest decision value ``w · t + b`` describe the hard direction, the
  smallest ones the easy direction.
* :func:`caption_slice` – names an explicit slice (a set of images, e.g. a tree leaf or the
  images most aligned with a direction) by the captions that best separate its images from the
  rest of the class.
* :func:`validate_caption` – the paper's proxy check of a caption pair: the model's accuracy on
  the ``k`` images of the class nearest (cosine) the hard caption should be lower than on the
  ``k`` images nearest the easy caption.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from failurelens.discovery import params as P
from failurelens.errors import InvalidArgument

__all__ = [
    "DEFAULT_TEMPLATES",
    "DIRECTION_METHODS",
    "CaptionValidator",
    "DirectionCaptioner",
    "RuleCaptioner",
    "GENERIC_TEMPLATE",
    "SLICE_SCORES",
    "Candidate",
    "CaptionValidation",
    "ScoredCaption",
    "build_candidates",
    "candidate_prompts",
    "caption_direction",
    "caption_names_attribute",
    "caption_slice",
    "check_captions",
    "embed_candidates",
    "expand_template",
    "normalise",
    "pool_embeddings",
    "rank_captions",
    "slice_caption_scores",
    "validate_caption",
]

#: templates per attribute; ``{class}`` is the class name, ``{value}`` a value phrase of the
#: attribute (backgrounds are phrases with their preposition: "on sand", "in water", "at night")
DEFAULT_TEMPLATES: dict[str, list[str]] = {
    "background": ["a photo of a {class} {value}"],
    "color": ["a photo of a {value} {class}"],
    "size": ["a photo of a {value} {class}"],
    "corruption": ["a {value} photo of a {class}"],
}
#: template for an attribute that neither the given templates nor DEFAULT_TEMPLATES know
GENERIC_TEMPLATE = "a photo of a {class} {value}"
#: the slice-caption scores :func:`caption_slice` offers
SLICE_SCORES = ("zero_shot", "mean_diff", "auc")
#: weight of the mean_diff score that breaks ties between equal zero_shot scores (zero_shot moves
#: in steps of 1/len(slice); mean_diff is at most 2, usually below 0.3)
_ZERO_SHOT_TIE_BREAK = 1e-3

_SPACES = re.compile(r"\s+")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A candidate caption: its text and the (attribute, value) it names; ``attribute`` is ""
    for a free-text caption. ``prompts``: the texts whose embeddings are averaged into the
    candidate's text embedding (see :func:`embed_candidates`); empty: just ``text``."""

    text: str
    attribute: str
    value: str
    prompts: tuple[str, ...] = ()  # texts to embed and average (prompt ensemble); () -> (text,)


@dataclasses.dataclass(frozen=True)
class ScoredCaption:
    text: str
    score: float
    attribute: str
    value: str
    #: model accuracy on the group's images nearest the caption (NaN: not checked, see
    #: :func:`check_captions`)
    nearest_accuracy: float = float("nan")
    #: whether those images fail like the slice does (None: not checked)
    validated: bool | None = None


@dataclasses.dataclass
class CaptionValidation:
    """Model accuracy on the ``k`` images nearest the hard caption vs the ``k`` nearest the easy
    one (``*_rows``: those images, nearest first, as the caller's row ids)."""

    hard_accuracy: float
    easy_accuracy: float
    k: int
    hard_rows: list[int]
    easy_rows: list[int]

    @property
    def gap(self) -> float:
        """``easy_accuracy - hard_accuracy`` (positive: the hard caption names a harder subgroup)."""
        return self.easy_accuracy - self.hard_accuracy


# -------------------------------------------------------------------------------- candidates
_A_VOWEL = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def _articles(text: str) -> str:
    """ "a arrow" -> "an arrow" in the shown caption (the prompts keep the template's words)."""
    return _A_VOWEL.sub(lambda m: m.group(1) + "n ", text)


def _clean_text(s: str) -> str:
    return _SPACES.sub(" ", s).strip()


def expand_template(template: str, fixed: Mapping[str, str], context: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Every text of ``template``: placeholders named in ``fixed`` (``{class}``, ``{value}``) take
    that value, any other placeholder (``{size}``, ``{color}``, ...) every value of that
    attribute in ``context``, in order (the product, last placeholder fastest)."""
    names: list[str] = []
    for m in _PLACEHOLDER.finditer(template):
        n = m.group(1)
        if n not in fixed and n not in names:
            names.append(n)
    pools: list[list[str]] = []
    for n in names:
        vals = None if context is None else context.get(n)
        if isinstance(vals, (str, bytes)) or not vals:
            raise InvalidArgument(
                f"template {template!r} uses {{{n}}} but the vocabulary has no values for {n!r}"
                f" (placeholders: {{class}}, {{value}} and the vocabulary's attributes)",
                field="vocabulary",
            )
        pools.append([_clean_text(v) for v in vals if isinstance(v, str) and v.strip()])
    out: list[str] = []
    for combo in itertools.product(*pools):
        fill = dict(fixed)
        fill.update(zip(names, combo))
        # a regex substitution, not str.format: braces inside values must not break anything
        out.append(_clean_text(_PLACEHOLDER.sub(lambda m: fill[m.group(1)], template)))
    return out


def build_candidates(
    class_name: str,
    vocabulary: Mapping[str, Sequence[str]],
    templates: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
    ensemble: bool = True,
) -> list[Candidate]:
    """Candidate captions of ``class_name``, one per value of each attribute of ``vocabulary``
    (``{attribute: [value phrase, ...]}``).

    ``templates``: ``None`` -> :data:`DEFAULT_TEMPLATES`; a dict ``{attribute: [template, ...]}``
    (an attribute it lacks falls back to DEFAULT_TEMPLATES, then :data:`GENERIC_TEMPLATE`); a flat
    list -> used for every attribute. A template holds ``{value}``, usually ``{class}``, and may
    name other attributes of the vocabulary (``"a photo of a {size} {color} {class} {value}"``),
    which expand to every value of those attributes (context for the text encoder).

    ``ensemble=True`` (default): one candidate per (attribute, value); its ``text`` is the first
    text of its first template (put the short, readable template first) and its ``prompts`` all
    texts of all its templates, to be embedded and averaged (CLIP prompt ensembling, see
    :func:`embed_candidates`). ``ensemble=False``: one candidate per distinct text.

    The attribute ``""`` holds free-text captions used as they are (``{class}`` substituted).
    Order is deterministic (vocabulary order, value order, template order); a display text
    produced twice is kept once (its first (attribute, value)).
    """
    if not isinstance(class_name, str) or not class_name.strip():
        raise InvalidArgument(f"class_name must be a non-empty string, got {class_name!r}", field="vocabulary")
    if not isinstance(vocabulary, Mapping):
        raise InvalidArgument(f"vocabulary must be a mapping attribute -> list of values, got {type(vocabulary).__name__}", field="vocabulary")
    class_name = _clean_text(class_name)
    flat: list[str] | None = None
    tmap: Mapping[str, Sequence[str]] = DEFAULT_TEMPLATES
    if templates is not None:
        if isinstance(templates, Mapping):
            tmap = templates
        elif isinstance(templates, (str, bytes)):
            raise InvalidArgument(
                "templates must be a list of templates or a dict attribute -> list of templates, not one string", field="vocabulary"
            )
        else:
            flat = list(templates)
            if not flat:
                raise InvalidArgument("templates is an empty list: no caption can be built", field="vocabulary")

    out: list[Candidate] = []
    seen: set[str] = set()
    for attribute, values in vocabulary.items():
        if not isinstance(attribute, str):
            raise InvalidArgument(f"vocabulary attribute names must be strings, got {attribute!r}", field="vocabulary")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise InvalidArgument(f"vocabulary[{attribute!r}] must be a list of value phrases, got {values!r}", field="vocabulary")
        if attribute == "":
            tpls = []  # a free text is its own template
        elif flat is not None:
            tpls = flat
        else:
            tpls = list(tmap.get(attribute) or DEFAULT_TEMPLATES.get(attribute) or [GENERIC_TEMPLATE])
        for t in tpls:
            if not isinstance(t, str) or "{value}" not in t:
                raise InvalidArgument(f"template {t!r} for attribute {attribute!r} has no {{value}} placeholder", field="vocabulary")
        for value in values:
            if not isinstance(value, str):
                raise InvalidArgument(f"vocabulary[{attribute!r}] holds {value!r}, not a string", field="vocabulary")
            v = _clean_text(value)
            if not v:
                continue
            fixed = {"class": class_name, "value": v}
            if attribute:
                fixed[attribute] = v
            texts: list[str] = []
            for t in tpls or [v]:
                for text in expand_template(t, fixed, vocabulary):
                    if text and text not in texts:
                        texts.append(text)
            if ensemble:
                if texts and texts[0] not in seen:
                    seen.add(texts[0])
                    out.append(Candidate(text=_articles(texts[0]), attribute=attribute, value=v, prompts=tuple(texts)))
            else:
                for text in texts:
                    if text not in seen:
                        seen.add(text)
                        out.append(Candidate(text=text, attribute=attribute, value=v))
    if not out:
        raise InvalidArgument(
            f"the vocabulary gives no candidate caption for class {class_name!r} "
            f"(it is empty or all its value lists are empty): {dict(vocabulary)!r}",
            field="vocabulary",
        )
    return out


def candidate_prompts(candidates: Sequence[Candidate]) -> tuple[list[str], list[int]]:
    """``(texts, group_sizes)``: every prompt of every candidate, in candidate order, and how many
    belong to each candidate. Embed ``texts`` and pool them with :func:`pool_embeddings`."""
    texts: list[str] = []
    sizes: list[int] = []
    for c in candidates:
        p = list(c.prompts) or [c.text]
        texts.extend(p)
        sizes.append(len(p))
    return texts, sizes


def pool_embeddings(text_embeddings: np.ndarray, group_sizes: Sequence[int]) -> np.ndarray:
    """Mean of the normalised embeddings of each consecutive group of rows (one row per group)."""
    t = np.asarray(text_embeddings, dtype=np.float64)
    sizes = [int(s) for s in group_sizes]
    if t.ndim != 2:
        raise ValueError(f"text_embeddings must be a 2-D array [texts, embedding dim], got shape {t.shape}")
    if any(s < 1 for s in sizes):
        raise ValueError("every group needs at least one text embedding")
    if sum(sizes) != t.shape[0]:
        raise ValueError(f"the groups hold {sum(sizes)} texts but there are {t.shape[0]} text embeddings")
    tn = normalise(t)
    if not sizes:
        return tn[:0]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    return np.add.reduceat(tn, starts, axis=0) / np.asarray(sizes, dtype=np.float64)[:, None]


def embed_candidates(candidates: Sequence[Candidate], embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """One text embedding per candidate: ``embed`` (texts -> ``[n, E]``, e.g. the CLIP text tower)
    applied to all prompts, averaged per candidate after normalisation."""
    texts, sizes = candidate_prompts(candidates)
    emb = np.asarray(embed(texts))
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ValueError(f"embed returned shape {emb.shape} for {len(texts)} texts (need [{len(texts)}, E])")
    return pool_embeddings(emb, sizes)


# ------------------------------------------------------------------------------------ arrays
def normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (a 1-D array is one row); all-zero rows stay zero. Float arrays
    keep their dtype, others become float64."""
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    if a.ndim not in (1, 2):
        raise ValueError(f"normalise takes a vector or a matrix of row vectors, got shape {a.shape}")
    n = np.linalg.norm(a, axis=-1, keepdims=True)
    safe = np.where(n > 0, n, 1).astype(a.dtype, copy=False)
    return a / safe


def _matrix(x: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [rows, embedding dim], got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name} has embedding dim {a.shape[1]} but {dim} was expected (same CLIP model for images and texts?)")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def _vector(x: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 1:
        raise ValueError(f"{name} must be a vector [embedding dim], got shape {a.shape}")
    if dim is not None and a.shape[0] != dim:
        raise ValueError(f"{name} has embedding dim {a.shape[0]} but {dim} was expected (same CLIP model for images and texts?)")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def _check_texts(text_embeddings: np.ndarray, candidates: Sequence[Candidate], dim: int | None) -> np.ndarray:
    t = _matrix(text_embeddings, "text_embeddings", dim)
    if t.shape[0] != len(candidates):
        raise ValueError(f"text_embeddings has {t.shape[0]} rows but there are {len(candidates)} candidates (one row per candidate)")
    if not candidates:
        raise ValueError("no candidate captions given")
    return t


# ----------------------------------------------------------------------------------- ranking
def rank_captions(scores: np.ndarray, candidates: Sequence[Candidate], top_k: int) -> tuple[list[ScoredCaption], list[ScoredCaption]]:
    """``(positive, negative)``: the ``top_k`` candidates with the highest scores (highest first)
    and the ``top_k`` with the lowest (lowest first). Ties keep candidate order."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape[0] != len(candidates):
        raise ValueError(f"{s.shape[0]} scores for {len(candidates)} candidates")
    if not np.all(np.isfinite(s)):
        raise ValueError("caption scores hold NaN or infinite values")
    if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative integer, got {top_k!r}")
    k = min(int(top_k), len(candidates))
    idx = np.arange(len(s))
    pos = np.lexsort((idx, -s))[:k]
    neg = np.lexsort((idx, s))[:k]

    def mk(i: int) -> ScoredCaption:
        c = candidates[int(i)]
        return ScoredCaption(text=c.text, score=float(s[i]), attribute=c.attribute, value=c.value)

    return [mk(i) for i in pos], [mk(i) for i in neg]


def caption_direction(
    direction: np.ndarray, text_embeddings: np.ndarray, candidates: Sequence[Candidate], top_k: int = 5, intercept: float = 0.0
) -> tuple[list[ScoredCaption], list[ScoredCaption]]:
    """Caption a failure direction: score = ``direction · normalise(text) + intercept`` (the SVM's
    decision value of each caption's normalised text embedding). ``direction`` is the SVM normal
    in the space the SVM was fitted in (normalised CLIP image embeddings). Returns
    ``(positive, negative)``: the captions of the hard side (highest decision value first) and
    of the easy side (lowest first)."""
    d = _vector(direction, "direction")
    t = _check_texts(text_embeddings, candidates, d.shape[0])
    scores = normalise(t) @ d + float(intercept)
    return rank_captions(scores, candidates, top_k)


def _auc_per_column(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mann–Whitney AUC of every column: P(pos > neg) + 0.5 P(pos == neg)."""
    from scipy.stats import rankdata

    n1, n0 = pos.shape[0], neg.shape[0]
    ranks = rankdata(np.concatenate([pos, neg], axis=0), axis=0)  # average ranks for ties
    u = ranks[:n1].sum(axis=0) - n1 * (n1 + 1) / 2.0
    return u / (n1 * n0)


def slice_caption_scores(
    slice_image_emb: np.ndarray,
    rest_image_emb: np.ndarray,
    text_embeddings: np.ndarray,
    score: str = "mean_diff",
    groups: Sequence[str] | None = None,
) -> np.ndarray:
    """One score per caption of how well its text embedding separates the slice's images from
    the rest (see :func:`caption_slice`); ``groups`` (one label per caption, e.g. its attribute)
    is needed by ``score="zero_shot"``."""
    if score not in SLICE_SCORES:
        raise ValueError(f"unknown slice-caption score {score!r}; choose from {list(SLICE_SCORES)}")
    t = _matrix(text_embeddings, "text_embeddings")
    a = _matrix(slice_image_emb, "slice_image_emb", t.shape[1])
    b = _matrix(rest_image_emb, "rest_image_emb", t.shape[1])
    if a.shape[0] == 0:
        raise ValueError("the slice has no images")
    if b.shape[0] == 0:
        raise ValueError("the rest of the class has no images: nothing to contrast the slice with")
    if t.shape[0] == 0:
        raise ValueError("no caption text embeddings given")
    tn = normalise(t)
    # mean_i cos(a_i, t) - mean_j cos(b_j, t) = t̂ · (mean â - mean b̂): linear in t̂
    mean_diff = tn @ (normalise(a).mean(axis=0) - normalise(b).mean(axis=0))
    if score == "mean_diff":
        return mean_diff
    if score == "auc":
        return _auc_per_column(normalise(a) @ tn.T, normalise(b) @ tn.T)
    if groups is None or len(groups) != t.shape[0]:
        raise ValueError(f"score 'zero_shot' needs one group label per caption ({t.shape[0]}), got {'none' if groups is None else len(groups)}")
    sa, sb = normalise(a) @ tn.T, normalise(b) @ tn.T
    labels = np.asarray([str(g) for g in groups])
    out = np.empty(t.shape[0])
    for g in dict.fromkeys(labels.tolist()):  # groups in first-seen order
        cols = np.flatnonzero(labels == g)
        # each image goes to its nearest caption of the group (CLIP zero-shot classification)
        fa = np.bincount(sa[:, cols].argmax(axis=1), minlength=len(cols)) / a.shape[0]
        fb = np.bincount(sb[:, cols].argmax(axis=1), minlength=len(cols)) / b.shape[0]
        out[cols] = fa - fb
    return out + _ZERO_SHOT_TIE_BREAK * mean_diff


def caption_slice(
    slice_image_emb: np.ndarray,
    rest_image_emb: np.ndarray,
    text_embeddings: np.ndarray,
    candidates: Sequence[Candidate],
    top_k: int = 5,
    score: str = "zero_shot",
) -> list[ScoredCaption]:
    """Captions that best tell a slice's images from the rest of their class, best first.

    ``score="zero_shot"`` (default): every image is classified zero-shot among the candidates of
    each attribute (its nearest caption by cosine, one winner per attribute); a caption scores the
    fraction of slice images it wins minus the fraction of rest images it wins (ties broken by
    ``mean_diff``). Only the *relative* similarity of an image to the values of one attribute
    counts, so a caption whose text embedding merely lies far from the rest's images does not
    win: on the world's planted slices (the true slice's images against the rest of the class) it
    names 12 of 12 attributes, ``mean_diff`` 11 (night scenes are nearer "a blurry photo" than
    plain images are, yet CLIP calls them "at night" when asked which background they show).

    ``score="mean_diff"``: ``mean cos(slice image, t) - mean cos(rest image, t)``. It
    equals ``t̂ · (mean of the normalised slice embeddings - mean of the normalised rest
    embeddings)``, i.e. it captions the difference-of-means direction exactly the way
    :func:`caption_direction` captions an SVM normal, so the two namings are comparable; it
    never saturates, so captions stay ordered even when several separate the slice perfectly.

    ``score="auc"``: the rank AUC of the caption's cosine, slice vs rest (P(a random slice image
    is nearer the caption than a random rest image)). Robust to a few outlying images and
    bounded in [0, 1], but it ties at 1.0 as soon as several captions separate the slice
    perfectly (common for background slices), and then the order among them is arbitrary.

    Measured with the world CLIP model (24 water vs 24 grass images, 6 classes x 2 seeds):
    ``mean_diff`` put the water caption first in 12 of 12 runs, 0.10-0.20 ahead of the runner-up;
    ``auc`` in 10 of 12, often less than 0.05 ahead.
    """
    _check_texts(text_embeddings, candidates, None)
    scores = slice_caption_scores(slice_image_emb, rest_image_emb, text_embeddings, score, groups=[c.attribute for c in candidates])
    return rank_captions(scores, candidates, top_k)[0]


# -------------------------------------------------------------------------------- validation
def check_captions(
    ranked: Sequence[ScoredCaption],
    candidates: Sequence[Candidate],
    text_embeddings: np.ndarray,
    group_image_emb: np.ndarray,
    correct: np.ndarray,
    in_slice: np.ndarray,
    k: int = 25,
) -> list[ScoredCaption]:
    """The paper's caption validation applied to each ranked caption of a slice: the model's
    accuracy on the images of the slice's group (the class; ``in_slice`` marks the slice in it)
    nearest the caption's text embedding, as many as ``k`` and at most as many as the slice has.
    A caption is *validated* when those images fail like the slice does, i.e. their accuracy
    recovers at least half of the slice's drop below the group:
    ``nearest_accuracy <= group_accuracy - (group_accuracy - slice_accuracy) / 2``. Returns the
    captions with ``nearest_accuracy`` and ``validated`` set, validated ones first (each part in
    its ranked order).

    Why: CLIP may find a caption that separates a slice's images from the rest without naming
    why the model fails (dark night scenes lie nearer "a noisy photo" than plain ones; a failure
    mode CLIP has no word for goes to whatever is nearest). Measured on the benchmark world's test
    split (world-convnet-a, 25 nearest images): "a noisy photo of a crescent" 0.48 accuracy
    against "a photo of a yellow crescent" 0.08 for a class at 0.87, where noise is no cause.
    ``candidates``/``text_embeddings``: the candidate list the captions were ranked from (one
    embedding row per candidate, matched by text)."""
    t = _check_texts(text_embeddings, candidates, None)
    x = _matrix(group_image_emb, "group_image_emb", t.shape[1])
    c = np.asarray(correct)
    if c.ndim != 1 or c.shape[0] != x.shape[0]:
        raise ValueError(f"correct must have one entry per group image ({x.shape[0]}), got shape {c.shape}")
    if x.shape[0] == 0:
        raise ValueError("the group has no images to validate captions on")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    members = np.asarray(in_slice)
    if members.dtype != bool or members.shape != c.shape:
        raise ValueError(f"in_slice must be a boolean mask with one entry per group image ({x.shape[0]}), got {members.dtype} {members.shape}")
    if not members.any():
        raise ValueError("the slice has no images")
    row_of: dict[str, int] = {}
    for i, cand in enumerate(candidates):
        row_of.setdefault(cand.text, i)
    missing = [r.text for r in ranked if r.text not in row_of]
    if missing:
        raise ValueError(f"caption {missing[0]!r} is not one of the candidates")
    c = c.astype(bool)
    group_acc = float(c.mean())
    slice_acc = float(c[members].mean())
    bar = group_acc - 0.5 * (group_acc - slice_acc)
    sims = normalise(x) @ normalise(t[[row_of[r.text] for r in ranked]]).T
    kk = min(int(k), int(members.sum()))
    out = []
    for j, r in enumerate(ranked):
        acc = float(c[_nearest(sims[:, j], kk)].mean())
        ok = bool(slice_acc < group_acc and acc <= bar + 1e-12)
        out.append(dataclasses.replace(r, nearest_accuracy=acc, validated=ok))
    return [r for r in out if r.validated] + [r for r in out if not r.validated]


def _nearest(sims: np.ndarray, k: int) -> np.ndarray:
    idx = np.arange(sims.shape[0])
    return np.lexsort((idx, -sims))[:k]


def validate_caption(
    image_emb: np.ndarray,
    correct: np.ndarray,
    hard_text_emb: np.ndarray,
    easy_text_emb: np.ndarray,
    k: int = 50,
    rows: Sequence[int] | np.ndarray | None = None,
) -> CaptionValidation:
    """The paper's proxy test of a (hard, easy) caption pair on the images of one class: the
    model's accuracy (mean of ``correct``) on the ``k`` images whose normalised embeddings are
    nearest (cosine) the hard caption's text embedding, and on the ``k`` nearest the easy
    caption's. ``k`` is capped at the number of images (the result's ``k`` is the one used).
    ``rows``: the row id of each image to report (default 0..N-1). Ties: lower index first."""
    x = _matrix(image_emb, "image_emb")
    n, e = x.shape
    c = np.asarray(correct)
    if c.ndim != 1 or c.shape[0] != n:
        raise ValueError(f"correct must be a vector with one entry per image ({n}), got shape {c.shape}")
    if c.dtype != bool:
        if not np.all(np.isin(c, (0, 1))):
            raise ValueError("correct must be booleans (or 0/1): was the model right on each image?")
        c = c.astype(bool)
    if n == 0:
        raise ValueError("no images to validate the caption on")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    ids = np.arange(n) if rows is None else np.asarray(rows).reshape(-1)
    if ids.shape[0] != n:
        raise ValueError(f"rows has {ids.shape[0]} ids but there are {n} images")
    hard = _vector(hard_text_emb, "hard_text_emb", e)
    easy = _vector(easy_text_emb, "easy_text_emb", e)
    xn = normalise(x)
    kk = min(int(k), n)
    h = _nearest(xn @ normalise(hard), kk)
    z = _nearest(xn @ normalise(easy), kk)
    return CaptionValidation(
        hard_accuracy=float(c[h].mean()),
        easy_accuracy=float(c[z].mean()),
        k=kk,
        hard_rows=[int(r) for r in ids[h]],
        easy_rows=[int(r) for r in ids[z]],
    )


# ---------------------------------------------------------------------------------- matching
def _has_phrase(text: str, phrase: str) -> bool:
    p = _clean_text(phrase).lower()
    if not p:
        return False
    return re.search(r"(?<![a-z0-9])" + re.escape(p) + r"(?![a-z0-9])", text.lower()) is not None


def caption_names_attribute(caption: ScoredCaption | Candidate, attribute: str, value: str, value_names: Mapping[str, str] | None = None) -> bool:
    """Whether ``caption`` names ``attribute`` = ``value`` (for benchmarks: does the top caption
    of a planted slice name its attribute?).

    A structured caption (non-empty ``attribute``) must have that attribute, and its value must
    be ``value``, map to it through ``value_names`` (phrase -> value name, e.g. ``"in water" ->
    "water"``, ``"blurry" -> "blur"``), or contain it as a whole word (``"in water"`` names
    ``"water"``). A free-text caption (``attribute == ""``) names it when its text contains the
    value (or a phrase that ``value_names`` maps to the value) as whole words.
    """
    val = _clean_text(value).lower()
    if not val:
        return False
    names = {(_clean_text(k).lower()): _clean_text(v).lower() for k, v in (value_names or {}).items()}
    if caption.attribute:
        if caption.attribute != attribute:
            return False
        cv = _clean_text(caption.value).lower()
        if cv == val or names.get(cv) == val:
            return True
        return _has_phrase(cv, val)
    if _has_phrase(caption.text, val):
        return True
    return any(v == val and _has_phrase(caption.text, phrase) for phrase, v in names.items())


# --------------------------------------------------------------------------------- estimators
#: how :class:`DirectionCaptioner` names a direction
DIRECTION_METHODS = ("aligned_images", "text_score")


class DirectionCaptioner(P.Estimator):
    """Captions of a failure direction's hard (positive) and easy (negative) side.

    ``method="aligned_images"`` (beyond the paper): the captions that best tell the class's
    ``aligned_images`` most aligned images from the rest (:func:`caption_slice`), and for the
    easy side the least aligned ones; on the benchmark world it names every matched planted
    slice. ``method="text_score"`` (the paper's): the SVM's decision value on each caption's
    normalised text embedding (:func:`caption_direction`). The best ``validation_pool`` positive
    captions are then validated (:func:`check_captions` with ``nearest_images``) against the
    most aligned images as the slice, validated ones first, and ``top_k`` are kept per side.
    """

    def __init__(
        self, top_k: int = 5, method: str = "aligned_images", aligned_images: int = 25, nearest_images: int = 25, validation_pool: int = 10
    ) -> None:
        self.top_k = top_k
        self.method = method
        self.aligned_images = aligned_images
        self.nearest_images = nearest_images
        self.validation_pool = validation_pool

    def _checked_params(self) -> dict[str, Any]:
        P.need(self.method in DIRECTION_METHODS, "method", f"method={self.method!r}: use one of {DIRECTION_METHODS}")
        return {
            "top_k": P.positive_int(self.top_k, "top_k"),
            "method": self.method,
            "aligned_images": P.positive_int(self.aligned_images, "aligned_images"),
            "nearest_images": P.positive_int(self.nearest_images, "nearest_images"),
            "validation_pool": P.positive_int(self.validation_pool, "validation_pool"),
        }

    def caption(
        self,
        candidates: Sequence[Candidate],
        text_embeddings: np.ndarray,
        group_image_emb: np.ndarray,
        correct: np.ndarray,
        decision_values: np.ndarray,
        direction: np.ndarray | None = None,
        intercept: float = 0.0,
    ) -> tuple[list[ScoredCaption], list[ScoredCaption]]:
        """``(positive, negative)`` captions of one class's direction: ``group_image_emb`` the
        class's image embeddings, ``correct`` whether the model was right on each,
        ``decision_values`` the direction's value on each (``direction``/``intercept`` needed for
        ``text_score``)."""
        p = self.validate_params()
        top_k = int(p["top_k"])
        dv = np.asarray(decision_values, dtype=np.float64).reshape(-1)
        x = np.asarray(group_image_emb)
        if dv.shape[0] != x.shape[0] or len(np.asarray(correct)) != x.shape[0]:
            raise ValueError(f"{dv.shape[0]} decision values and {len(np.asarray(correct))} outcomes for {x.shape[0]} images: they must align")
        order = np.argsort(-dv, kind="stable")
        k = min(int(p["aligned_images"]), len(order) - 1)
        in_slice = np.zeros(len(order), dtype=bool)
        in_slice[order[:k]] = True
        pool = max(top_k, int(p["validation_pool"]))
        if p["method"] == "aligned_images":
            top, rest = x[order[:k]], x[order[k:]]
            ranked = caption_slice(top, rest, text_embeddings, candidates, top_k=pool)
            easy = rest[-k:] if len(rest) >= k else rest
            others = np.concatenate([top, rest[:-k]]) if len(rest) > k else top
            negative = caption_slice(easy, others, text_embeddings, candidates, top_k=top_k)
        else:
            if direction is None:
                raise ValueError("method 'text_score' needs the direction")
            ranked, negative = caption_direction(direction, text_embeddings, candidates, top_k=pool, intercept=intercept)
            negative = negative[:top_k]
        positive = check_captions(ranked, candidates, text_embeddings, x, correct, in_slice, k=int(p["nearest_images"]))[:top_k]
        return positive, negative


class RuleCaptioner(P.Estimator):
    """Captions of an explicit slice (a tree rule's images within its group): the ``top_k`` that
    best tell the slice from the rest of the group (:func:`caption_slice`), after validating the
    best ``validation_pool`` with ``nearest_images`` (:func:`check_captions`)."""

    def __init__(self, top_k: int = 5, nearest_images: int = 25, validation_pool: int = 10) -> None:
        self.top_k = top_k
        self.nearest_images = nearest_images
        self.validation_pool = validation_pool

    def _checked_params(self) -> dict[str, Any]:
        return {
            "top_k": P.positive_int(self.top_k, "top_k"),
            "nearest_images": P.positive_int(self.nearest_images, "nearest_images"),
            "validation_pool": P.positive_int(self.validation_pool, "validation_pool"),
        }

    def caption(
        self, candidates: Sequence[Candidate], text_embeddings: np.ndarray, group_image_emb: np.ndarray, correct: np.ndarray, in_slice: np.ndarray
    ) -> list[ScoredCaption]:
        p = self.validate_params()
        x, member = np.asarray(group_image_emb), np.asarray(in_slice, dtype=bool)
        ranked = caption_slice(x[member], x[~member], text_embeddings, candidates, top_k=max(int(p["top_k"]), int(p["validation_pool"])))
        return check_captions(ranked, candidates, text_embeddings, x, correct, member, k=int(p["nearest_images"]))[: int(p["top_k"])]


class CaptionValidator(P.Estimator):
    """The paper's check of a (hard, easy) caption pair with the ``k`` images nearest each
    (:func:`validate_caption`; ``k`` capped at the number of images)."""

    def __init__(self, k: int = 50) -> None:
        self.k = k

    def _checked_params(self) -> dict[str, Any]:
        return {"k": P.positive_int(self.k, "k")}

    def validate(
        self,
        image_emb: np.ndarray,
        correct: np.ndarray,
        hard_text_emb: np.ndarray,
        easy_text_emb: np.ndarray,
        rows: Sequence[int] | np.ndarray | None = None,
    ) -> CaptionValidation:
        k = int(self.validate_params()["k"])
        return validate_caption(image_emb, correct, hard_text_emb, easy_text_emb, k=min(k, max(1, len(np.asarray(correct)))), rows=rows)
