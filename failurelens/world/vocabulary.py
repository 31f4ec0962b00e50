"""The caption vocabulary of a benchmark world, for naming failure modes in words.

:func:`world_vocabulary` turns a :class:`~failurelens.world.config.WorldConfig` into a JSON-able
dict that both caption modules read:

* ``failurelens.discovery.captions.build_candidates(class_name, vocab["attributes"],
  vocab["templates"])`` – candidate captions of a class;
* ``failurelens.discovery.backgrounds.propose_from_vocabulary(classes, vocab, per_class)`` –
  the offline stand-in for the LLM's uncommon backgrounds of each class.

Layout::

    {
      "templates":   {"background": ["a photo of a {class} {value}",
                                     "a photo of a {size} {color} {class} {value}"],
                      "color": [...], "size": [...], "corruption": [...]},   # WORLD_TEMPLATES
      "attributes":  {"background": ["on grass", "in water", ...],   # caption phrases
                      "color": ["red", ...], "size": ["small", "large"],
                      "corruption": ["blurry", "noisy"]},
      "value_names": {"in water": "water", "red": "red", "blurry": "blur", ...},  # phrase -> value
      "backgrounds": {"star": ["on grass", "in water", ...]},   # every background but the dominant one
      "default":     ["on grass", "in water", ...]              # every background phrase
    }

The phrases are those of the world's own captions (:func:`failurelens.world.render.caption`:
``"a blurry photo of a small red star on sand"``), so the templates produce text the world's
CLIP model was trained on, less the attributes a template leaves out.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .config import BACKGROUND_PHRASES, CORRUPTIONS, WorldConfig

__all__ = ["CORRUPTION_PHRASES", "WORLD_TEMPLATES", "background_phrase", "world_vocabulary", "write_vocabulary"]

#: templates in the word order of the world's captions ("a {corruption} photo of a {size}
#: {color} {class} {background}"): per attribute, a short readable one (the caption shown) and
#: one completed with the other attributes, which ``build_candidates`` expands over their values
#: into a prompt ensemble - the world's CLIP model only ever saw complete captions, and the
#: ensemble names backgrounds far more reliably than the short text alone
WORLD_TEMPLATES: dict[str, list[str]] = {
    "background": ["a photo of a {class} {value}", "a photo of a {size} {color} {class} {value}"],
    "color": ["a photo of a {value} {class}", "a photo of a {size} {value} {class} {background}"],
    "size": ["a photo of a {value} {class}", "a photo of a {value} {color} {class} {background}"],
    "corruption": ["a {value} photo of a {class}", "a {value} photo of a {size} {color} {class} {background}"],
}
#: caption adjective of each corruption (as in render.caption)
CORRUPTION_PHRASES: dict[str, str] = {"blur": "blurry", "noise": "noisy"}


def background_phrase(background: str) -> str:
    """``"water"`` -> ``"in water"`` (the world's caption phrase)."""
    return BACKGROUND_PHRASES.get(background, f"on {background}")


def world_vocabulary(config: WorldConfig) -> dict[str, Any]:
    """The caption vocabulary of ``config`` (layout in the module docstring)."""
    bg_phrases = [background_phrase(b) for b in config.backgrounds]
    corruptions = [c for c in CORRUPTIONS if c != "none" and float(config.corruption.get(c, 0.0)) > 0.0]
    value_names: dict[str, str] = {}
    for b, p in zip(config.backgrounds, bg_phrases):
        value_names[p] = b
    for c in config.colors:
        value_names.setdefault(c, c)
    for s in config.sizes:
        value_names.setdefault(s, s)
    for c in corruptions:
        value_names.setdefault(CORRUPTION_PHRASES[c], c)
    backgrounds: dict[str, list[str]] = {}
    for cls in config.classes:
        bias = config.bias.get(cls)
        dominant = bias.background if bias is not None else None
        backgrounds[cls] = [background_phrase(b) for b in config.backgrounds if b != dominant]
    return {
        "templates": {k: list(v) for k, v in WORLD_TEMPLATES.items()},
        "attributes": {
            "background": bg_phrases,
            "color": list(config.colors),
            "size": list(config.sizes),
            "corruption": [CORRUPTION_PHRASES[c] for c in corruptions],
        },
        "value_names": value_names,
        "backgrounds": backgrounds,
        "default": list(bg_phrases),
    }


def write_vocabulary(config: WorldConfig, path: str | os.PathLike[str]) -> Path:
    """Write :func:`world_vocabulary` of ``config`` as JSON to ``path`` (atomically: a temporary
    file beside it, then renamed). Returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(world_vocabulary(config), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return p
