"""Uncommon backgrounds of each class and the background of each failure image.

After *Identifying and Mitigating Model Failures through Few-shot CLIP-aided Diffusion
Generation*: an LLM is asked, per class, for the uncommon backgrounds the class can appear in
(:func:`propose_with_llm`, any OpenAI-compatible chat-completions endpoint; offline:
:func:`propose_from_vocabulary`); near-duplicate proposals are dropped by their text
embeddings (:func:`remove_near_duplicates`); every failure image of the debug seed set is then
given, zero-shot with CLIP, the background whose prompt ``"a photo of a {class} {background}"``
is nearest its image embedding (:func:`assign_backgrounds`); the most frequent backgrounds of a
class's failures (:func:`top_backgrounds`) are the named failure modes, and the prompts for
generating repair data.

Everything except :func:`propose_with_llm` is pure numpy; the caller embeds prompts and images.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from failurelens.discovery import params as P
from failurelens.errors import Internal, InvalidArgument

from .captions import normalise

__all__ = [
    "Assignment",
    "BackgroundAssigner",
    "BackgroundProposer",
    "DEFAULT_PROMPT_TEMPLATE",
    "LlmError",
    "LlmSettings",
    "assign_backgrounds",
    "background_prompts",
    "clean_backgrounds",
    "keep_indices",
    "llm_messages",
    "parse_background_list",
    "propose_from_vocabulary",
    "propose_with_llm",
    "remove_near_duplicates",
    "top_backgrounds",
]

DEFAULT_PROMPT_TEMPLATE = "a photo of a {class} {background}"
_DUMMY_API_KEY = "not-needed"


class LlmError(Internal):
    """The LLM could not give a usable list of backgrounds (HTTP error, timeout, unreachable
    server, unparsable reply). ``url`` is the endpoint, ``status`` the HTTP status if any.
    INTERNAL: the caller cannot fix the endpoint; the message says what failed."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None, class_name: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.class_name = class_name


@dataclasses.dataclass
class LlmSettings:
    """An OpenAI-compatible chat-completions endpoint. ``base_url`` is the API root (e.g.
    ``http://localhost:8000/v1``; requests go to ``{base_url}/chat/completions``); an empty
    ``api_key`` sends a dummy key (local servers ignore it). ``max_retries``: the SDK's retries
    (with back-off) of connection errors, 408/409/429 and 5xx replies."""

    base_url: str
    model: str
    api_key: str = ""
    temperature: float = 0.2
    timeout_seconds: float = 60.0
    max_retries: int = 2

    def __post_init__(self) -> None:
        P.need(
            P.is_real(self.temperature) and 0.0 <= self.temperature <= 2.0, "temperature", f"temperature={self.temperature!r}: use a number in [0, 2]"
        )
        P.need(
            P.is_real(self.timeout_seconds) and self.timeout_seconds > 0,
            "timeout_seconds",
            f"timeout_seconds={self.timeout_seconds!r}: use a positive number of seconds",
        )


# ------------------------------------------------------------------------------ cleaning
_BULLET = re.compile(r"^\s*(?:[-*\u2022\u2013]|\(?\d{1,3}[.):]|\(?[a-z][.)])\s+(.+?)\s*$", re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_STRIP_CHARS = " \t\r\n\"'`*_.,;:!"


def clean_backgrounds(items: Sequence[Any], per_class: int | None = None) -> list[str]:
    """Strip, lowercase, collapse spaces, drop empties and repeats (order kept), cap at ``per_class``."""
    out: list[str] = []
    for it in items:
        if not isinstance(it, str):
            continue
        s = re.sub(r"\s+", " ", it).strip(_STRIP_CHARS).lower()
        if s and s not in out:
            out.append(s)
    return out if per_class is None else out[: int(per_class)]


def _json_list(obj: Any) -> list[Any] | None:
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return None


def parse_background_list(content: str) -> list[str]:
    """Backgrounds in an LLM reply: a JSON array (alone, in a code fence, inside prose, or the one
    list of a JSON object), else a bulleted or numbered list. Raises ``ValueError`` when neither
    is there. Items are not cleaned (see :func:`clean_backgrounds`)."""
    if not isinstance(content, str) or not content.strip():
        raise ValueError("the reply is empty")
    texts = [m.group(1) for m in _FENCE.finditer(content)] + [content]
    for text in texts:
        t = text.strip()
        try:
            found = _json_list(json.loads(t))
        except ValueError:
            found = None
        if found is None:
            start, end = t.find("["), t.rfind("]")
            if 0 <= start < end:
                try:
                    found = _json_list(json.loads(t[start : end + 1]))
                except ValueError:
                    found = None
        if found is not None:
            strings = [x for x in found if isinstance(x, str)]
            if strings:
                return strings
    bullets = [m.group(1) for m in map(_BULLET.match, content.splitlines()) if m]
    if bullets:
        return bullets
    raise ValueError("the reply holds neither a JSON array of strings nor a bulleted or numbered list")


# ---------------------------------------------------------------------------------- LLM
def llm_messages(class_name: str, per_class: int) -> list[dict[str, str]]:
    """The chat messages asking for the uncommon backgrounds of one class (the paper's question,
    plus the answer format)."""
    return [
        {"role": "system", "content": "You are a helpful assistant that answers with a JSON array of short strings and nothing else."},
        {
            "role": "user",
            "content": (
                f"What are the uncommon backgrounds that a {class_name} can appear in? "
                f"Answer with a JSON array of at most {per_class} short background phrases that "
                f'complete "a photo of a {class_name} ...", such as "in water" or "on snow".'
            ),
        },
    ]


def _endpoint(base_url: str) -> str:
    return base_url.rstrip("/") + "/chat/completions"


def propose_with_llm(class_names: Sequence[str], per_class: int, settings: LlmSettings) -> dict[str, list[str]]:
    """Ask an OpenAI-compatible chat-completions endpoint, once per class, for its uncommon
    backgrounds; returns ``{class: [background phrase, ...]}`` (cleaned, at most ``per_class``).

    Raises :class:`LlmError` (naming the class and the URL) on HTTP errors, timeouts, unreachable
    servers and replies without a parsable list.
    """
    import openai

    if not isinstance(per_class, int) or isinstance(per_class, bool) or per_class < 1:
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}")
    if not settings.base_url:
        raise ValueError("LlmSettings.base_url is empty: give the API root, e.g. http://localhost:8000/v1")
    if not settings.model:
        raise ValueError("LlmSettings.model is empty: name the model the endpoint serves")
    if settings.timeout_seconds <= 0:
        raise ValueError(f"LlmSettings.timeout_seconds must be positive, got {settings.timeout_seconds}")
    url = _endpoint(settings.base_url)
    client = openai.OpenAI(
        base_url=settings.base_url,
        api_key=settings.api_key or _DUMMY_API_KEY,
        timeout=float(settings.timeout_seconds),
        max_retries=int(settings.max_retries),
    )
    out: dict[str, list[str]] = {}
    try:
        for cls in class_names:
            if not isinstance(cls, str) or not cls.strip():
                raise ValueError(f"class names must be non-empty strings, got {cls!r}")
            if cls in out:
                continue
            out[cls] = _ask(client, cls, per_class, settings, url)
    finally:
        client.close()
    return out


def _ask(client: Any, cls: str, per_class: int, settings: LlmSettings, url: str) -> list[str]:
    import openai

    where = f"asking {url} (model {settings.model!r}) for the uncommon backgrounds of {cls!r}"
    try:
        resp = client.chat.completions.create(model=settings.model, messages=llm_messages(cls, per_class), temperature=float(settings.temperature))
    except openai.APITimeoutError:
        raise LlmError(f"{where}: no reply within {settings.timeout_seconds:g} s", url=url, class_name=cls) from None
    except openai.APIConnectionError as e:
        raise LlmError(f"{where}: could not connect ({e.__cause__ or e})", url=url, class_name=cls) from None
    except openai.APIStatusError as e:
        body = ""
        try:
            body = e.response.text[:300]
        except Exception:
            pass
        raise LlmError(f"{where}: HTTP {e.status_code}: {body or e.message}", url=url, status=e.status_code, class_name=cls) from None
    except openai.OpenAIError as e:
        raise LlmError(f"{where}: {type(e).__name__}: {e}", url=url, class_name=cls) from None
    try:
        content = resp.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        raise LlmError(
            f"{where}: the reply is not a chat completion (no choices[0].message.content): {str(resp)[:300]}", url=url, class_name=cls
        ) from None
    try:
        items = clean_backgrounds(parse_background_list(content or ""), per_class)
    except ValueError as e:
        raise LlmError(f"{where}: unparsable reply ({e}): {str(content)[:300]!r}", url=url, class_name=cls) from None
    if not items:
        raise LlmError(f"{where}: the reply lists no background: {str(content)[:300]!r}", url=url, class_name=cls)
    return items


# ------------------------------------------------------------------------------ offline
def propose_from_vocabulary(class_names: Sequence[str], vocabulary: Mapping[str, Any], per_class: int | None) -> dict[str, list[str]]:
    """The offline stand-in for :func:`propose_with_llm`: backgrounds from a vocabulary JSON
    object ``{"backgrounds": {class: [phrase, ...]}, "default": [phrase, ...]}`` (other keys are
    ignored, so a world's ``vocabulary.json`` from :func:`failurelens.world.vocabulary.world_vocabulary`
    works as it is). A class without an entry gets ``"default"``; cleaned like LLM replies and
    capped at ``per_class`` (``None``: all)."""
    if not isinstance(vocabulary, Mapping):
        raise InvalidArgument(f"vocabulary must be a JSON object, got {type(vocabulary).__name__}", field="vocabulary")
    if per_class is not None and (not isinstance(per_class, int) or isinstance(per_class, bool) or per_class < 1):
        raise InvalidArgument(f"per_class must be a positive integer or None, got {per_class!r}", field="per_class")
    per = vocabulary.get("backgrounds", {}) or {}
    default = vocabulary.get("default")
    if not isinstance(per, Mapping):
        raise InvalidArgument('vocabulary["backgrounds"] must be an object class -> list of backgrounds', field="vocabulary")
    out: dict[str, list[str]] = {}
    for cls in class_names:
        items = per.get(cls, default)
        if items is None:
            raise InvalidArgument(f'the vocabulary has no backgrounds for class {cls!r} and no "default" list', field="vocabulary")
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise InvalidArgument(f"the vocabulary's backgrounds of {cls!r} must be a list of strings, got {items!r}", field="vocabulary")
        out[cls] = clean_backgrounds(items, per_class)
    return out


# -------------------------------------------------------------------------- de-duplicate
def keep_indices(names: Sequence[str], text_embeddings: np.ndarray, threshold: float = 0.9) -> list[int]:
    """Indices :func:`remove_near_duplicates` keeps."""
    t = np.asarray(text_embeddings, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError(f"text_embeddings must be a 2-D array [names, embedding dim], got shape {t.shape}")
    if t.shape[0] != len(names):
        raise ValueError(f"{len(names)} names but {t.shape[0]} text embeddings (one row per name)")
    if not np.all(np.isfinite(t)):
        raise ValueError("text_embeddings holds NaN or infinite values")
    if not -1.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    tn = normalise(t)
    kept: list[int] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        key = str(name).strip().lower()
        if key in seen:
            continue
        if kept and float(np.max(tn[kept] @ tn[i])) > threshold:
            continue
        kept.append(i)
        seen.add(key)
    return kept


def remove_near_duplicates(names: Sequence[str], text_embeddings: np.ndarray, threshold: float = 0.9) -> tuple[list[str], int]:
    """Greedy, in order: a name is dropped when its normalised text embedding has cosine >
    ``threshold`` with a name already kept (or it repeats a kept name). Returns ``(kept names,
    number removed)``."""
    kept = keep_indices(names, text_embeddings, threshold)
    return [names[i] for i in kept], len(names) - len(kept)


# ---------------------------------------------------------------------------- assignment
@dataclasses.dataclass(frozen=True)
class Assignment:
    """Image ``row`` (of class ``class_index``) shows ``background``; ``score``: the cosine of its
    image embedding with that background's prompt."""

    row: int
    class_index: int
    background: str
    score: float


def background_prompts(class_name: str, backgrounds: Sequence[str], template: str = DEFAULT_PROMPT_TEMPLATE) -> list[str]:
    """``["a photo of a star in water", ...]``: the zero-shot prompts to embed for one class."""
    if "{background}" not in template:
        raise ValueError(f"template {template!r} has no {{background}} placeholder")
    return [re.sub(r"\s+", " ", template.replace("{class}", class_name).replace("{background}", b)).strip() for b in backgrounds]


def assign_backgrounds(
    image_emb: np.ndarray,
    class_of_row: np.ndarray,
    rows: np.ndarray,
    backgrounds_per_class: Mapping[int, Sequence[str]],
    text_emb_per_class: Mapping[int, np.ndarray],
) -> list[Assignment]:
    """CLIP zero-shot background of each image: the argmax over its class's background prompts
    (embedded by the caller from :func:`background_prompts`) of the cosine with its image
    embedding. ``class_of_row[i]`` is image i's class index (its label: the paper assigns
    failures of the class), ``rows[i]`` its row id to report. Images of a class with no
    backgrounds are skipped. Ties go to the earlier background."""
    x = np.asarray(image_emb, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"image_emb must be a 2-D array [images, embedding dim], got shape {x.shape}")
    n, e = x.shape
    cls = np.asarray(class_of_row).reshape(-1)
    rid = np.asarray(rows).reshape(-1)
    if cls.shape[0] != n or rid.shape[0] != n:
        raise ValueError(f"image_emb has {n} rows but class_of_row has {cls.shape[0]} and rows {rid.shape[0]} (one per image)")
    if n and not np.issubdtype(cls.dtype, np.integer):
        raise ValueError(f"class_of_row must hold integer class indices, got dtype {cls.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError("image_emb holds NaN or infinite values")
    xn = normalise(x)
    found: list[tuple[int, Assignment]] = []  # (input position, assignment)
    for c in sorted(set(int(v) for v in cls)):
        names = list(backgrounds_per_class.get(c, []) or [])
        if not names:
            continue
        if c not in text_emb_per_class:
            raise ValueError(f"class {c} has {len(names)} backgrounds but no text embeddings")
        t = np.asarray(text_emb_per_class[c], dtype=np.float64)
        if t.ndim != 2 or t.shape[0] != len(names):
            raise ValueError(f"class {c}: text embeddings of shape {t.shape} for {len(names)} backgrounds (need [{len(names)}, {e}])")
        if t.shape[1] != e:
            raise ValueError(f"class {c}: text embedding dim {t.shape[1]} != image embedding dim {e} (same CLIP model?)")
        if not np.all(np.isfinite(t)):
            raise ValueError(f"class {c}: text embeddings hold NaN or infinite values")
        idx = np.flatnonzero(cls == c)
        sims = xn[idx] @ normalise(t).T
        best = np.argmax(sims, axis=1)
        for j, (i, b) in enumerate(zip(idx, best)):
            found.append((int(i), Assignment(row=int(rid[i]), class_index=c, background=names[int(b)], score=float(sims[j, b]))))
    found.sort(key=lambda p: p[0])  # input order
    return [a for _, a in found]


def top_backgrounds(assignments: Sequence[Assignment], top_k: int | None) -> dict[int, list[tuple[str, int]]]:
    """``{class_index: [(background, count), ...]}``: the ``top_k`` most frequent backgrounds of
    each class's assignments, most frequent first, ties by name (``None``: all)."""
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
        raise ValueError(f"top_k must be a non-negative integer or None, got {top_k!r}")
    counts: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for a in assignments:
        counts[int(a.class_index)][a.background] += 1
    out: dict[int, list[tuple[str, int]]] = {}
    for c in sorted(counts):
        ranked = sorted(counts[c].items(), key=lambda kv: (-kv[1], kv[0]))
        out[c] = ranked if top_k is None else ranked[:top_k]
    return out


# ---------------------------------------------------------------------------- estimators
class BackgroundProposer(P.Estimator):
    """Uncommon backgrounds per class (the mitigation paper's LLM step): ``per_class`` proposals
    of an LLM (:meth:`propose` with :class:`LlmSettings`) or of a vocabulary file, near-duplicates
    (text-embedding cosine above ``dedup_threshold``) merged by :meth:`deduplicate`."""

    def __init__(self, per_class: int = 5, dedup_threshold: float = 0.9) -> None:
        self.per_class = per_class
        self.dedup_threshold = dedup_threshold

    def _checked_params(self) -> dict[str, Any]:
        P.need(P.is_int(self.per_class) and 1 <= self.per_class <= 100, "per_class", f"per_class={self.per_class!r}: use an integer from 1 to 100")
        P.need(
            P.is_real(self.dedup_threshold) and -1.0 <= self.dedup_threshold <= 1.0,
            "dedup_threshold",
            f"dedup_threshold={self.dedup_threshold!r}: use a cosine similarity in [-1, 1]",
        )
        return {"per_class": int(self.per_class), "dedup_threshold": float(self.dedup_threshold)}

    def propose(
        self, class_names: Sequence[str], *, llm: LlmSettings | None = None, vocabulary: Mapping[str, Any] | None = None
    ) -> dict[str, list[str]]:
        """Backgrounds per class from the LLM when given, else from ``vocabulary``."""
        p = self.validate_params()
        if llm is not None:
            return propose_with_llm(class_names, p["per_class"], llm)
        return propose_from_vocabulary(class_names, vocabulary or {}, p["per_class"])

    def deduplicate(self, names: Sequence[str], text_embeddings: np.ndarray) -> tuple[list[str], int]:
        return remove_near_duplicates(names, text_embeddings, self.validate_params()["dedup_threshold"])


class BackgroundAssigner(P.Estimator):
    """The background of every failure image by CLIP zero-shot (prompts from ``template``, with
    ``{class}`` and ``{background}``) and the ``top_k`` most frequent backgrounds per class."""

    def __init__(self, top_k: int = 5, template: str = DEFAULT_PROMPT_TEMPLATE) -> None:
        self.top_k = top_k
        self.template = template

    def _checked_params(self) -> dict[str, Any]:
        P.need(P.is_int(self.top_k) and self.top_k >= 1, "top_k", f"top_k={self.top_k!r}: use an integer >= 1")
        P.need(
            isinstance(self.template, str) and "{class}" in self.template and "{background}" in self.template,
            "template",
            f"template={self.template!r}: the template must contain {{class}} and {{background}}",
        )
        return {"top_k": int(self.top_k), "template": self.template}

    def prompts(self, class_name: str, backgrounds: Sequence[str]) -> list[str]:
        return background_prompts(class_name, backgrounds, self.validate_params()["template"])

    def assign(
        self,
        image_emb: np.ndarray,
        class_of_row: np.ndarray,
        rows: np.ndarray,
        backgrounds_per_class: Mapping[int, Sequence[str]],
        text_emb_per_class: Mapping[int, np.ndarray],
    ) -> tuple[list[Assignment], dict[int, list[tuple[str, int]]]]:
        """(every assignment, the top backgrounds per class)."""
        p = self.validate_params()
        assigned = assign_backgrounds(image_emb, class_of_row, rows, backgrounds_per_class, text_emb_per_class)
        return assigned, top_backgrounds(assigned, p["top_k"])
