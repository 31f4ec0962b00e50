"""Any diffusers text-to-image pipeline from a local folder as a generator (``diffusers``).

The folder is what ``pipeline.save_pretrained(folder)`` writes (``model_index.json`` and one
subfolder per component); it is loaded with ``AutoPipelineForText2Image.from_pretrained(folder,
local_files_only=True)`` — nothing is downloaded — in fp16 on CUDA when there is a GPU, fp32 on
the CPU otherwise. Images are made in batches, each with its own seeded ``torch.Generator``, so
an image depends on its prompt and seed only, not on the batch it was made in.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from failurelens.errors import FailedPrecondition, InvalidArgument
from failurelens.generation import GeneratedImage


def check_pipeline_folder(path: str | Path) -> dict[str, Any]:
    """The pipeline's ``model_index.json`` if the folder holds a complete saved pipeline, else
    FailedPrecondition naming the missing part."""
    folder = Path(path)
    if not folder.is_dir():
        raise FailedPrecondition(
            f"diffusers pipeline folder {folder} does not exist; save a pipeline there with save_pretrained", type="GENERATOR", subject=str(folder)
        )
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise FailedPrecondition(f"{folder} is not a saved diffusers pipeline: model_index.json is missing", type="GENERATOR", subject=str(folder))
    try:
        index = json.loads(index_path.read_text())
    except ValueError as exc:
        raise FailedPrecondition(f"{index_path} is not valid JSON: {exc}", type="GENERATOR", subject=str(index_path)) from None
    for component, spec in index.items():
        if component.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        sub = folder / component
        if not sub.is_dir() or not any(sub.iterdir()):
            raise FailedPrecondition(
                f"the pipeline in {folder} is incomplete: component {component!r} ({spec[-1]}) has no folder {sub.name}/",
                type="GENERATOR",
                subject=str(sub),
            )
        has_weights = any(sub.glob("*.safetensors")) or any(sub.glob("*.bin"))
        has_config = any(sub.glob("*.json")) or any(sub.glob("*.txt"))
        if not has_config or (component in ("unet", "vae", "text_encoder", "transformer") and not has_weights):
            raise FailedPrecondition(
                f"the pipeline in {folder} is incomplete: {sub.name}/ lacks its {'weights' if has_config else 'config'}",
                type="GENERATOR",
                subject=str(sub),
            )
    return dict(index)


class DiffusersGenerator:
    backend = "diffusers"

    def __init__(
        self,
        name: str,
        path: str | Path,
        device: str = "auto",
        batch_size: int = 4,
        num_inference_steps: int = 25,
        guidance_scale: float = 7.5,
        height: int | None = None,
        width: int | None = None,
    ) -> None:
        self.name = name
        self.path = Path(path)
        self.device = device
        self.batch_size = batch_size
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        index = check_pipeline_folder(self.path)
        self.description = f"diffusers {index.get('_class_name', 'pipeline')} from {self.path}"
        self._pipe: Any = None
        self._lock = threading.Lock()
        size = self._sample_size()
        self.height = height or size
        self.width = width or size

    def _sample_size(self) -> int:
        """The pipeline's native image side (UNet sample size x VAE scale factor), 512 if unknown."""
        try:
            unet = json.loads((self.path / "unet" / "config.json").read_text())
            vae = json.loads((self.path / "vae" / "config.json").read_text())
            return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
        except (OSError, KeyError, ValueError, TypeError):
            return 512

    def check_prompt(self, text: str) -> None:
        if not text.strip():
            raise InvalidArgument("an empty prompt", field="prompts")

    def _load(self) -> Any:
        with self._lock:
            if self._pipe is None:
                import torch
                from diffusers import AutoPipelineForText2Image

                device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
                dtype = torch.float16 if device.startswith("cuda") else torch.float32
                pipe = AutoPipelineForText2Image.from_pretrained(str(self.path), local_files_only=True, torch_dtype=dtype)
                pipe = pipe.to(device)
                pipe.set_progress_bar_config(disable=True)
                self._pipe, self._device = pipe, device
            return self._pipe

    def generate(self, text: str, seeds: Sequence[int]) -> list[GeneratedImage]:
        import torch

        pipe = self._load()
        out: list[GeneratedImage] = []
        for s in range(0, len(seeds), self.batch_size):
            chunk = [int(x) for x in seeds[s : s + self.batch_size]]
            generators = [torch.Generator(device=self._device).manual_seed(x) for x in chunk]
            with torch.inference_mode():
                images = pipe(
                    prompt=[text] * len(chunk),
                    generator=generators,
                    num_inference_steps=self.num_inference_steps,
                    guidance_scale=self.guidance_scale,
                    height=self.height,
                    width=self.width,
                    output_type="pil",
                ).images
            out += [GeneratedImage(im.convert("RGB"), seed) for im, seed in zip(images, chunk)]
        return out
