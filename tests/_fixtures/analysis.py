"""The fields of an analysis of the benchmark world (RunPipelineRequest / FailureLensClient.analyze)."""

from __future__ import annotations

from typing import Any


def world_analysis(model: str, vocabulary_uri: str, /, **fields: Any) -> dict[str, Any]:
    """Analyse ``model`` on the registered world with the world's robust extractor, image-text
    model and caption vocabulary; ``fields`` add to or override those."""
    base = {
        "dataset_id": "world",
        "model_id": model,
        "feature_model_id": "world-robust",
        "image_text_model_id": "world-clip",
        "vocabulary_uri": vocabulary_uri,
    }
    return {**base, **fields}
