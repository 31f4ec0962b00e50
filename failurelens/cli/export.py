"""``failurelens model export ...``: export real models to the registry's ONNX contract.

    failurelens model export robust-resnet50 CKPT --out FILE [--bake-normalizer]
    failurelens model export open-clip --model ViT-B-32 [--checkpoint FILE] [--config JSON] --out-dir DIR
    failurelens model export classifier torchvision:resnet18 [--checkpoint FILE] [--num-classes C] \\
        --out FILE [--input-size 224 224] [--head fc]

Each prints where the file(s) went, the preprocessing to declare at registration (and the full
``failurelens model register`` command line), and the torch-vs-onnxruntime parity figure.

Wired into the ``model`` command group by :mod:`failurelens.cli.models`. This module imports nothing heavy: torch, open_clip and timm load when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_export_commands", "cmd_export_robust_resnet50", "cmd_export_open_clip", "cmd_export_classifier"]

_TOLERANCE_HELP = "parity tolerance: max abs difference torch vs onnxruntime (default 1e-4)"


def add_export_commands(model_subparsers: Any) -> argparse.ArgumentParser:
    """Add ``export`` (with ``robust-resnet50``, ``open-clip``, ``classifier``) to the ``model``
    subparsers; returns the ``export`` parser. Every leaf sets ``fn`` (returns an exit code)."""
    ex = model_subparsers.add_parser(
        "export",
        help="export real full-size models to ONNX (robust ResNet-50, open_clip, torchvision/timm classifiers)",
        description="Export a model to the ONNX contract the registry accepts, check torch vs onnxruntime parity, "
        "and print the preprocessing to declare at registration. Nothing is downloaded: weights come from local files "
        "(or random init).",
    )
    sub = ex.add_subparsers(dest="export_kind", required=True)

    rr = sub.add_parser(
        "robust-resnet50",
        help="feature_extractor: a MadryLab robustness (or torchvision) ResNet-50 checkpoint -> features + feature_map",
    )
    rr.add_argument("checkpoint", help="robustness checkpoint ({'model': ..., 'epoch': ...}) or a torchvision state dict")
    rr.add_argument("--out", required=True, help="output .onnx file")
    rr.add_argument(
        "--bake-normalizer",
        action="store_true",
        help="put the checkpoint's mean/std into the graph (then declare mean 0 0 0, std 1 1 1); default: declare them",
    )
    rr.add_argument("--tolerance", type=float, default=None, help=_TOLERANCE_HELP)
    rr.set_defaults(fn=cmd_export_robust_resnet50)

    oc = sub.add_parser("open-clip", help="image_text: an open_clip model -> image_encoder.onnx + text_encoder.onnx")
    oc.add_argument("--model", required=True, help="open_clip architecture (ViT-B-32), 'local-dir:/folder', or a name for --config")
    oc.add_argument("--checkpoint", default=None, help="local weights file (.pt/.bin/.safetensors); omit for random init")
    oc.add_argument("--config", default=None, help="JSON model config for a custom architecture (embed_dim, vision_cfg, text_cfg)")
    oc.add_argument("--out-dir", required=True, help="folder for image_encoder.onnx and text_encoder.onnx")
    oc.add_argument("--tolerance", type=float, default=None, help=_TOLERANCE_HELP)
    oc.set_defaults(fn=cmd_export_open_clip)

    cl = sub.add_parser("classifier", help="classifier: torchvision:NAME or timm:NAME -> logits + features")
    cl.add_argument("model", help="torchvision:NAME (e.g. torchvision:resnet18) or timm:NAME (e.g. timm:convnext_atto)")
    cl.add_argument("--checkpoint", default=None, help="local state dict; omit for random init")
    cl.add_argument("--num-classes", type=int, default=None, help="head size (default: read from the checkpoint, else 1000)")
    cl.add_argument("--out", required=True, help="output .onnx file")
    cl.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None, help="graph input size (default: the model's)")
    cl.add_argument("--head", default=None, help="name of the final classification layer if it is not found automatically")
    cl.add_argument("--tolerance", type=float, default=None, help=_TOLERANCE_HELP)
    cl.set_defaults(fn=cmd_export_classifier)
    return ex


def _tol(ns: argparse.Namespace) -> dict[str, float]:
    return {} if ns.tolerance is None else {"tolerance": float(ns.tolerance)}


def _report(result: Any, name_hint: str) -> int:
    print(result.summary())
    print("register with:")
    print("  " + result.register_command(name_hint))
    return 0


def _run(fn: Any, name_hint: str) -> int:
    from failurelens.data.errors import ValidationError
    from failurelens.models.export import ExportError

    try:
        result = fn()
    except (ExportError, ValidationError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _report(result, name_hint)


def cmd_export_robust_resnet50(ns: argparse.Namespace) -> int:
    from failurelens.models.export import export_robust_resnet50

    return _run(
        lambda: export_robust_resnet50(ns.checkpoint, ns.out, bake_normalizer=ns.bake_normalizer, **_tol(ns)),
        "robust_resnet50",
    )


def cmd_export_open_clip(ns: argparse.Namespace) -> int:
    from failurelens.models.export import export_open_clip

    name = ns.model.rsplit("/", 1)[-1].replace(":", "_")
    return _run(
        lambda: export_open_clip(ns.model, ns.checkpoint, ns.out_dir, model_config=ns.config, **_tol(ns)),
        name,
    )


def cmd_export_classifier(ns: argparse.Namespace) -> int:
    from failurelens.models.export import export_classifier

    return _run(
        lambda: export_classifier(
            ns.model,
            checkpoint_path=ns.checkpoint,
            num_classes=ns.num_classes,
            out_path=ns.out,
            input_size=tuple(ns.input_size) if ns.input_size else None,
            head=ns.head,
            **_tol(ns),
        ),
        ns.model.split(":", 1)[-1],
    )
