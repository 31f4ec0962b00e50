"""Pure data-layer helpers: manifests, image decoding/preprocessing, ONNX model checks, tokenizer.

Submodules are imported lazily (``onnx``, ``onnxruntime`` and ``open_clip`` are heavy), so
``from failurelens.data import decode_image`` only loads what it names.
"""

from __future__ import annotations

import importlib
from typing import Any

from failurelens.data.errors import ImageDecodeError, ValidationError, Violation, ViolationCollector

_LAZY = {
    # manifest
    "Manifest": "manifest",
    "load_manifest": "manifest",
    "validate_manifest": "manifest",
    "validate_class_names": "manifest",
    "manifest_from_directory": "manifest",
    "load_class_names": "manifest",
    "resolve_image_keys": "manifest",
    "check_images_exist": "manifest",
    # images
    "Preprocessing": "images",
    "decode_image": "images",
    "preprocess": "images",
    "read_image": "images",
    "sniff_format": "images",
    # onnx
    "TensorInfo": "onnx_models",
    "OnnxSignature": "onnx_models",
    "ClassifierInfo": "onnx_models",
    "ImageEncoderInfo": "onnx_models",
    "TextEncoderInfo": "onnx_models",
    "FeatureExtractorInfo": "onnx_models",
    "inspect_onnx": "onnx_models",
    "validate_classifier": "onnx_models",
    "validate_image_encoder": "onnx_models",
    "validate_text_encoder": "onnx_models",
    "validate_feature_extractor": "onnx_models",
    "run_onnx_inprocess": "onnx_models",
    "smoke_run": "onnx_models",
    # tokenizer
    "ClipTokenizer": "tokenizer",
}

__all__ = ["ImageDecodeError", "ValidationError", "Violation", "ViolationCollector", *_LAZY]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'failurelens.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"failurelens.data.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
