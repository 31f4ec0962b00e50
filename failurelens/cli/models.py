"""``failurelens model register | list | export``."""

from __future__ import annotations

import argparse
from typing import Any

from failurelens.cli import context, export
from failurelens.clients import MODEL_KINDS, upload_and_register_model
from failurelens.data.manifest import load_class_names
from failurelens.v1 import common_pb2, registry_pb2


def add_commands(sub: Any) -> None:
    md = sub.add_parser("model", help="models").add_subparsers(dest="sub", required=True)
    mr = md.add_parser("register", help="upload (if local) and register an ONNX model")
    mr.add_argument("onnx")
    mr.add_argument("--name", required=True)
    mr.add_argument("--kind", choices=sorted(MODEL_KINDS), default="classifier")
    mr.add_argument("--text-onnx", default="", help="IMAGE_TEXT: the text encoder")
    mr.add_argument("--context-length", type=int, default=77)
    mr.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"))
    mr.add_argument("--mean", type=float, nargs=3, default=[0.485, 0.456, 0.406])
    mr.add_argument("--std", type=float, nargs=3, default=[0.229, 0.224, 0.225])
    mr.add_argument("--resize", choices=["stretch", "center_crop"], default="stretch")
    mr.add_argument("--crop-pct", type=float, default=1.0)
    mr.add_argument("--interpolation", choices=["bilinear", "bicubic"], default="bilinear")
    mr.add_argument("--dataset", help="take class names from this registered dataset")
    mr.add_argument("--classes", help="class names file")
    mr.add_argument("--max-batch-size", type=int, default=64)
    mr.add_argument("--overwrite", action="store_true")
    mr.set_defaults(fn=cmd_register)
    md.add_parser("list").set_defaults(fn=cmd_list)
    export.add_export_commands(md)


def cmd_register(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    pp = common_pb2.Preprocessing(
        mean=ns.mean,
        std=ns.std,
        interpolation=ns.interpolation,
        resize=common_pb2.RESIZE_MODE_SHORTER_SIDE_CENTER_CROP if ns.resize == "center_crop" else common_pb2.RESIZE_MODE_STRETCH,
        crop_pct=ns.crop_pct,
    )
    if ns.input_size:
        pp.input_height, pp.input_width = ns.input_size
    model = upload_and_register_model(
        c,
        context.store(ns, c),
        ns.onnx,
        ns.name,
        ns.kind,
        ns.text_onnx,
        preprocessing=pp,
        class_names=load_class_names(ns.classes) if ns.classes else [],
        dataset_id=ns.dataset or "",
        tokenizer=registry_pb2.Tokenizer(kind="clip_bpe", context_length=ns.context_length) if ns.text_onnx else None,
        max_batch_size=ns.max_batch_size,
        overwrite=ns.overwrite,
    )
    print(
        f"model {model.model_id}: {registry_pb2.ModelKind.Name(model.kind)}, triton models {list(model.triton_models)}, "
        f"input {model.preprocessing.input_height}x{model.preprocessing.input_width}"
        + (f", {model.num_classes} classes, {model.feature_dim}-d features" if model.num_classes else "")
    )
    return 0


def cmd_list(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    for m in c.call(c.registry.ListModels, registry_pb2.ListModelsRequest()).models:
        print(f"{m.model_id:24s} {registry_pb2.ModelKind.Name(m.kind):28s} {list(m.triton_models)}")
    return 0
