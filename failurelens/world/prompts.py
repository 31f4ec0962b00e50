"""Text prompts for the benchmark world: "a photo of a small white bolt at night" -> what it names.

:func:`parse_prompt` reads a prompt in the world's caption language (the phrases of
:func:`failurelens.world.render.caption`, case and punctuation free) into the class and the
attributes it names: background (by its caption phrase, "on sand", "in the sky", or its bare name),
colour, size and corruption ("blurry", "noisy"). Words that are neither attributes nor the
caption's filler ("a photo of a") make it refuse the prompt, naming them, so that a generator
never silently draws something the prompt did not ask for.
"""

from __future__ import annotations

import dataclasses
import re

from failurelens.errors import InvalidArgument

from .config import BACKGROUND_PHRASES, WorldConfig
from .vocabulary import CORRUPTION_PHRASES

#: words of the caption language that name nothing
FILLER = frozenset({"a", "an", "the", "photo", "picture", "image", "of", "with", "and"})
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


@dataclasses.dataclass(frozen=True)
class ParsedPrompt:
    """The class a prompt names and the attributes it names (others are left to the generator)."""

    class_name: str
    attributes: dict[str, str]

    @property
    def class_only(self) -> bool:
        return not self.attributes


def _phrases(config: WorldConfig) -> dict[tuple[str, ...], tuple[str, str]]:
    """Word sequences the world knows -> (attribute, value)."""
    out: dict[tuple[str, ...], tuple[str, str]] = {}
    for b in config.backgrounds:
        out[tuple(_WORD.findall(BACKGROUND_PHRASES.get(b, f"on {b}")))] = ("background", b)
        out.setdefault((b,), ("background", b))
    for c in config.colors:
        out[(c,)] = ("color", c)
    for s in config.sizes:
        out[(s,)] = ("size", s)
    for value, phrase in CORRUPTION_PHRASES.items():
        if float(config.corruption.get(value, 0.0)) > 0.0:
            out[(phrase,)] = ("corruption", value)
    for cls in config.classes:
        out[tuple(_WORD.findall(cls.lower()))] = ("class", cls)
    return out


def parse_prompt(config: WorldConfig, text: str) -> ParsedPrompt:
    """The class and named attributes of ``text``; InvalidArgument naming the words it does not
    understand, a missing class, or an attribute named twice."""
    words = _WORD.findall(text.lower())
    known = _phrases(config)
    longest = max(len(k) for k in known)
    found: dict[str, str] = {}
    unknown: list[str] = []
    i = 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            hit = known.get(tuple(words[i : i + n]))
            if hit is not None:
                attribute, value = hit
                if attribute in found and found[attribute] != value:
                    raise InvalidArgument(f"prompt {text!r} names two {attribute}s ({found[attribute]!r} and {value!r}); name one", field="prompts")
                found[attribute] = value
                i += n
                break
        else:
            if words[i] not in FILLER:
                unknown.append(words[i])
            i += 1
    if unknown:
        raise InvalidArgument(
            f"prompt {text!r}: the world generator does not understand {', '.join(repr(w) for w in unknown)}; it knows the classes "
            f"{list(config.classes)}, backgrounds {[BACKGROUND_PHRASES.get(b, 'on ' + b) for b in config.backgrounds]}, colours "
            f"{list(config.colors)}, sizes {list(config.sizes)} and {sorted(CORRUPTION_PHRASES.values())} photos",
            field="prompts",
        )
    if "class" not in found:
        raise InvalidArgument(f"prompt {text!r} names no class; name one of {list(config.classes)}", field="prompts")
    cls = found.pop("class")
    return ParsedPrompt(cls, found)
