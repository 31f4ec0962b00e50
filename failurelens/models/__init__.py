"""Export real, full-size models to the ONNX contract the registry accepts.

See :mod:`failurelens.models.export` (the library) and :mod:`failurelens.cli.export`
(``failurelens model export ...``). Importing this package is cheap: torch, open_clip and timm
are imported by the export functions, not here.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "OPSET",
    "PARITY_TOLERANCE",
    "ExportError",
    "ExportResult",
    "ParityError",
    "build_classifier",
    "export_classifier",
    "export_open_clip",
    "export_robust_resnet50",
    "load_checkpoint_file",
    "load_robust_resnet50",
    "make_robustness_checkpoint",
]


def __getattr__(name: str) -> Any:  # lazy: keep `import failurelens.models` light
    if name in __all__:
        from failurelens.models import export

        return getattr(export, name)
    raise AttributeError(f"module 'failurelens.models' has no attribute {name!r}")
