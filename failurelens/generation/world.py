"""The benchmark world as a text-to-image generator (``world``).

A prompt is parsed into the class and the attributes it names
(:func:`failurelens.world.prompts.parse_prompt`); the others are drawn per image: for the
class-only prompt ``"a photo of a {class}"`` from the world's *biased training distribution* of
the class (what a generator's prior does: a photo of a circle is mostly on its usual background),
for any other prompt uniformly. Size, position and corruption are drawn like the world's own
images unless named. Image ``i`` is drawn and rendered from its seed alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from failurelens.generation import GeneratedImage
from failurelens.world.config import WorldConfig, attribute_distribution
from failurelens.world.generate import EDGE_MARGIN, render_kwargs
from failurelens.world.prompts import ParsedPrompt, parse_prompt
from failurelens.world.render import ImageAttributes, caption, render_image


class WorldGenerator:
    backend = "world"

    def __init__(self, config: WorldConfig, name: str = "world") -> None:
        self.config = config
        self.name = name
        self.width = self.height = config.image_size
        self.description = (
            f"the benchmark world's renderer ({len(config.classes)} shapes x {len(config.backgrounds)} scenes x {len(config.colors)} colours): "
            "prompts in its caption language, unnamed attributes drawn (class-only prompts: from the biased training distribution)"
        )

    def check_prompt(self, text: str) -> None:
        parse_prompt(self.config, text)

    def attributes(self, parsed: ParsedPrompt, seed: int) -> ImageAttributes:
        """What image ``seed`` of a parsed prompt shows."""
        cfg = self.config
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x6E6E]))
        named = parsed.attributes
        drawn: dict[str, str] = {}
        for attr in ("background", "color"):
            if attr in named:
                drawn[attr] = named[attr]
            else:
                dist = attribute_distribution(cfg, parsed.class_name, attr, biased=parsed.class_only)
                values = list(dist)
                drawn[attr] = values[int(rng.choice(len(values), p=np.asarray([dist[v] for v in values]) / sum(dist.values())))]
        size = named.get("size") or list(cfg.sizes)[int(rng.integers(len(cfg.sizes)))]
        if "corruption" in named:
            corruption = named["corruption"]
        else:
            probs = {"none": max(0.0, 1.0 - sum(cfg.corruption.values())), **cfg.corruption}
            keys = list(probs)
            corruption = keys[int(rng.choice(len(keys), p=np.asarray([probs[k] for k in keys]) / sum(probs.values())))]
        lo = cfg.sizes[size][1] + EDGE_MARGIN
        x, y = (round(lo + (1 - 2 * lo) * float(u), 3) for u in rng.random(2))
        return ImageAttributes(
            label=parsed.class_name, background=drawn["background"], color=drawn["color"], size=size, x=x, y=y, corruption=corruption
        )

    def generate(self, text: str, seeds: Sequence[int]) -> list[GeneratedImage]:
        parsed = parse_prompt(self.config, text)
        out = []
        for seed in seeds:
            attrs = self.attributes(parsed, seed)
            image = render_image(
                attrs, self.config.image_size, np.random.default_rng(np.random.SeedSequence([int(seed), 0x7E4D])), **render_kwargs(self.config)
            )
            out.append(
                GeneratedImage(
                    image,
                    int(seed),
                    {
                        "label": attrs.label,
                        "background": attrs.background,
                        "color": attrs.color,
                        "size": attrs.size,
                        "corruption": attrs.corruption,
                        "caption": caption(attrs),
                    },
                )
            )
        return out
