"""Triton Inference Server integration: launcher, model repository writer, gRPC client.

* :mod:`failurelens.triton.launcher` -- start/stop the ``tritonserver`` bundled in nvidia-pytriton.
* :mod:`failurelens.triton.repository` -- write model folders (python-backend + onnxruntime configs).
* :mod:`failurelens.triton.client` -- ``TritonClient`` with deadlines and UNAVAILABLE retries.
* ``failurelens/triton/onnx_model.py`` -- the python-backend model file copied into each model
  (runs inside Triton's stub; not meant to be imported here).

Names are re-exported lazily so that importing the package does not import tritonclient/grpc.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TritonServer": "launcher",
    "TritonStartError": "launcher",
    "TritonNotFoundError": "launcher",
    "TritonInstallation": "launcher",
    "find_tritonserver": "launcher",
    "process_group_members": "launcher",
    "TensorSpec": "repository",
    "TritonModelSpec": "repository",
    "ONNXRUNTIME_CONFIG_NAME": "repository",
    "write_model": "repository",
    "remove_model": "repository",
    "render_python_config": "repository",
    "render_onnxruntime_config": "repository",
    "spec_from_onnx": "repository",
    "validate_model_name": "repository",
    "TritonClient": "client",
    "TritonInferenceError": "client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'failurelens.triton' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
