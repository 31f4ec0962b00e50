"""Image generators for repair data: pluggable backends behind one small interface.

* :class:`~failurelens.generation.world.WorldGenerator` (``world``) renders the benchmark world
  from prompts in its caption language (what a text-to-image model does for real images);
* :class:`~failurelens.generation.diffusion.DiffusersGenerator` (``diffusers``) runs any
  text-to-image pipeline from a local folder (Stable Diffusion 1.5 is the paper's).

Every generator is deterministic in the seed of each image: the same (prompt, seed) gives the
same image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from PIL import Image


@dataclasses.dataclass(frozen=True)
class GeneratedImage:
    """One image, the seed it was drawn with, and what it shows where the generator knows it
    (the world's attributes; empty for a diffusion model)."""

    image: Image.Image
    seed: int
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)


class Generator(Protocol):
    name: str
    backend: str
    description: str
    width: int
    height: int

    def check_prompt(self, text: str) -> None:
        """Raise InvalidArgument when the generator cannot draw ``text`` (before any work)."""

    def generate(self, text: str, seeds: Sequence[int]) -> list[GeneratedImage]:
        """One image per seed."""
