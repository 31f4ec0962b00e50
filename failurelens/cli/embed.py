"""``failurelens embed``: run a registered model over a registered dataset through Triton."""

from __future__ import annotations

import argparse
from typing import Any

from failurelens.cli import context
from failurelens.cli.console import ProgressBars
from failurelens.v1 import common_pb2


def add_commands(sub: Any) -> None:
    em = sub.add_parser("embed", help="run a model over a dataset through Triton")
    em.add_argument("--dataset", required=True)
    em.add_argument("--model", required=True)
    em.add_argument("--splits", nargs="*")
    em.add_argument("--batch-size", type=int, default=32)
    em.add_argument("--on-corrupt", choices=["skip", "fail"], default="skip")
    em.add_argument("--feature-map", action="store_true")
    em.add_argument("--id", default="")
    em.add_argument("--overwrite", action="store_true")
    em.set_defaults(fn=cmd_embed)


def cmd_embed(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    policy = common_pb2.CORRUPT_IMAGE_POLICY_FAIL if ns.on_corrupt == "fail" else common_pb2.CORRUPT_IMAGE_POLICY_SKIP_AND_REPORT
    with ProgressBars("embed") as bars:
        res = c.embed(
            on_progress=bars,
            dataset_id=ns.dataset,
            model_id=ns.model,
            splits=ns.splits or [],
            batch_size=ns.batch_size,
            corrupt_image_policy=policy,
            include_feature_map=ns.feature_map,
            embedding_id=ns.id or "",
            overwrite=ns.overwrite,
        )
    print(
        f"embedding set {res.embedding_id}: {res.num_rows} rows, {res.images_per_second:.1f} img/s"
        + (f", accuracy {res.accuracy:.4f}" if res.predictions.uri else "")
        + (f", {res.skipped_rows.total} skipped" if res.skipped_rows.total else "")
    )
    for field in ("features", "logits", "predictions", "image_embeddings", "feature_map", "rows", "labels"):
        ref = getattr(res, field)
        if ref.uri:
            print(f"  {field:17s} {ref.uri}  {list(ref.shape)} {ref.dtype}")
    return 0
