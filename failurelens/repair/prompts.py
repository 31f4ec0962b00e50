"""Prompts for repair data (mitigation paper §4): what to generate for each failing class.

:class:`PromptPlanner` turns what discovery found into prompts with equal image budgets, so that
strategies compare fairly (``images_per_class`` images for every planned class, split evenly over
its prompts):

* :meth:`~PromptPlanner.failure_backgrounds` - the paper's: the ``top_k`` most frequent
  CLIP-assigned backgrounds of a class's debug-seed failures, ``"a photo of a {class} {background}"``;
  with ``by_frequency`` the class's images are instead spread over all its failure backgrounds in
  proportion to their counts (collective debugging type 1 pools the counts of several models);
* :meth:`~PromptPlanner.failure_captions` - beyond the paper: the validated captions of the
  class's failure modes (rules and directions), which name colours and other attributes too
  (a class without one falls back to its failure backgrounds);
* :meth:`~PromptPlanner.class_only` - the paper's random baseline, ``"a photo of a {class}"``;
* :meth:`~PromptPlanner.random_backgrounds` - backgrounds drawn uniformly from a vocabulary:
  diversity without targeting.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from failurelens.discovery import params as P
from failurelens.errors import InvalidArgument

STRATEGIES = ("failure_backgrounds", "failure_captions", "class_only", "random_backgrounds")
CLASS_ONLY_TEMPLATE = "a photo of a {class}"


@dataclasses.dataclass(frozen=True)
class PlannedPrompt:
    """``count`` images of class ``label`` for ``text``; ``source`` is the background or caption."""

    label: int
    class_name: str
    text: str
    count: int
    source: str = ""


def _article(text: str) -> str:
    return re.sub(r"\ba ([aeiou])", r"an \1", text)


class PromptPlanner(P.Estimator):
    """Prompts with equal image budgets per class (see the module doc)."""

    def __init__(self, top_k: int = 3, images_per_class: int = 30, template: str = "a photo of a {class} {background}", seed: int = 0) -> None:
        self.top_k = top_k
        self.images_per_class = images_per_class
        self.template = template
        self.seed = seed

    def _checked_params(self) -> dict[str, Any]:
        P.need(
            isinstance(self.template, str) and "{class}" in self.template and "{background}" in self.template,
            "template",
            f"template={self.template!r}: the template must contain {{class}} and {{background}}",
        )
        return {
            "top_k": P.positive_int(self.top_k, "top_k", 1, 100),
            "images_per_class": P.positive_int(self.images_per_class, "images_per_class", 1, 100_000),
            "template": self.template,
            "seed": P.seed(self.seed),
        }

    # -- building blocks
    def _split(self, label: int, class_name: str, items: Sequence[tuple[str, str]], weights: Sequence[float] | None = None) -> list[PlannedPrompt]:
        """The class's budget over (text, source) items: evenly, or in proportion to ``weights``
        (largest remainders), items that get no image dropped."""
        n = int(self.validate_params()["images_per_class"])
        if not items:
            return []
        w = np.ones(len(items)) if weights is None else np.asarray(weights, dtype=np.float64)
        exact = n * w / w.sum()
        counts = np.floor(exact).astype(int)
        for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
            counts[i] += 1
        return [PlannedPrompt(label, class_name, text, int(c), source) for (text, source), c in zip(items, counts) if c > 0]

    def _background_prompt(self, class_name: str, background: str) -> str:
        return _article(" ".join(self.validate_params()["template"].replace("{class}", class_name).replace("{background}", background).split()))

    @staticmethod
    def _classes(class_names: Sequence[str], classes: Sequence[int] | None, default: Sequence[int]) -> list[int]:
        chosen = sorted(set(default if classes is None or len(classes) == 0 else classes))
        bad = [c for c in chosen if not 0 <= c < len(class_names)]
        if bad:
            raise InvalidArgument(f"unknown class index(es) {bad}; the classes are 0..{len(class_names) - 1}", field="classes")
        return chosen

    # -- strategies
    def failure_backgrounds(
        self,
        class_names: Sequence[str],
        counts: Mapping[int, Sequence[tuple[str, int]]],
        classes: Sequence[int] | None = None,
        by_frequency: bool = False,
    ) -> list[PlannedPrompt]:
        """``counts``: per class index, (background, number of its failures assigned to it)."""
        k = int(self.validate_params()["top_k"])
        out: list[PlannedPrompt] = []
        for c in self._classes(class_names, classes, [c for c, v in counts.items() if v]):
            ranked = sorted(((b, int(n)) for b, n in counts.get(c, []) if int(n) > 0), key=lambda bn: (-bn[1], bn[0]))
            chosen = ranked if by_frequency else ranked[:k]
            items = [(self._background_prompt(class_names[c], b), b) for b, _ in chosen]
            out += self._split(c, class_names[c], items, [n for _, n in chosen] if by_frequency else None)
        return out

    def failure_captions(
        self,
        class_names: Sequence[str],
        captions: Mapping[int, Sequence[str]],
        classes: Sequence[int] | None = None,
        backgrounds: Mapping[int, Sequence[tuple[str, int]]] | None = None,
    ) -> list[PlannedPrompt]:
        """``captions``: per class index, its validated failure captions, most important first. A
        chosen class without a validated caption gets its failure-background prompts when
        ``backgrounds`` (as for :meth:`failure_backgrounds`) has some, so budgets stay equal."""
        k = int(self.validate_params()["top_k"])
        backgrounds = backgrounds or {}
        out: list[PlannedPrompt] = []
        for c in self._classes(class_names, classes, [c for c, v in captions.items() if v]):
            distinct = list(dict.fromkeys(" ".join(t.split()) for t in captions.get(c, []) if t.strip()))[:k]
            if distinct:
                out += self._split(c, class_names[c], [(t, t) for t in distinct])
            else:
                out += self.failure_backgrounds(class_names, backgrounds, [c]) if backgrounds.get(c) else []
        return out

    def class_only(self, class_names: Sequence[str], classes: Sequence[int] | None = None) -> list[PlannedPrompt]:
        out: list[PlannedPrompt] = []
        for c in self._classes(class_names, classes, range(len(class_names))):
            out += self._split(c, class_names[c], [(_article(CLASS_ONLY_TEMPLATE.replace("{class}", class_names[c])), "")])
        return out

    def random_backgrounds(self, class_names: Sequence[str], backgrounds: Sequence[str], classes: Sequence[int] | None = None) -> list[PlannedPrompt]:
        """``top_k`` backgrounds per class drawn uniformly (without repeats) from ``backgrounds``."""
        p = self.validate_params()
        pool = list(dict.fromkeys(b.strip() for b in backgrounds if b.strip()))
        if not pool:
            raise InvalidArgument("random backgrounds need a vocabulary with background phrases", field="vocabulary_uri")
        rng = np.random.default_rng(p["seed"])
        out: list[PlannedPrompt] = []
        for c in self._classes(class_names, classes, range(len(class_names))):
            chosen = [pool[i] for i in rng.choice(len(pool), size=min(int(p["top_k"]), len(pool)), replace=False)]
            out += self._split(c, class_names[c], [(self._background_prompt(class_names[c], b), b) for b in chosen])
        return out
