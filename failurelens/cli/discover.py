"""``failurelens discover``: every failure mode of one classifier, through the services."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from failurelens.cli import context
from failurelens.cli.console import ProgressBars, print_lines
from failurelens.v1 import captioning_pb2, embedding_pb2, registry_pb2
from failurelens.workflow.failure_modes import failure_table, find_failure_modes, format_failure_table

METHODS = {"text-score": captioning_pb2.DIRECTION_CAPTION_METHOD_TEXT_SCORE, "aligned-images": captioning_pb2.DIRECTION_CAPTION_METHOD_ALIGNED_IMAGES}


def add_commands(sub: Any) -> None:
    dc = sub.add_parser(
        "discover",
        help="failure trees + directions + captions + backgrounds + visual evidence of a classifier",
        description="Tunable options left out take the services' defaults (the library estimators' parameters).",
    )
    dc.add_argument("--predictions", required=True, help="embedding set of the inspected CLASSIFIER")
    dc.add_argument("--features", required=True, help="embedding set of the robust FEATURE_EXTRACTOR (same dataset rows)")
    dc.add_argument("--clip", required=True, help="embedding set of the IMAGE_TEXT model (same dataset rows)")
    dc.add_argument("--text-model", required=True, help="the IMAGE_TEXT model (text encoder for captions)")
    dc.add_argument("--vocabulary", default="", help="caption vocabulary JSON (file or store URI; default: the benchmark world's)")
    dc.add_argument("--holdout", type=float, default=None, help="fraction of each class held out to validate the slices (holdout_fraction)")
    dc.add_argument(
        "--error-modes", type=int, default=None, help="error modes per class besides the class direction (k-means clusters of its errors; 0 = off)"
    )
    dc.add_argument(
        "--direction-captions",
        choices=sorted(METHODS),
        default=None,
        help="caption directions by their most aligned images or by the SVM's score on the captions' text embeddings (the paper's)",
    )
    dc.add_argument("--no-evidence", action="store_true", help="skip top images / heatmaps / feature attacks")
    dc.add_argument("--name", default="", help="report id prefix (default: the predictions' embedding set)")
    dc.set_defaults(fn=cmd_discover)


def cmd_discover(ns: argparse.Namespace) -> int:
    """Trees, directions, captions, backgrounds and visual evidence for one classifier's embedding set."""
    c = context.client(ns)
    st = context.store(ns, c)
    emb = c.call(c.embedding.GetEmbedding, embedding_pb2.GetEmbeddingRequest(embedding_id=ns.predictions))
    ds = c.call(c.registry.GetDataset, registry_pb2.GetDatasetRequest(dataset_id=emb.dataset_id))
    vocab = ns.vocabulary
    if vocab and "://" not in vocab:
        vocab = st.uri(st.put_json(f"uploads/vocabulary/{Path(vocab).stem}.json", json.loads(Path(vocab).read_text())).key)
    if not vocab:
        from failurelens.world.config import default_config
        from failurelens.world.vocabulary import world_vocabulary

        vocab = st.uri(st.put_json("uploads/vocabulary/world.json", world_vocabulary(default_config())).key)
    found = find_failure_modes(
        c,
        inspected=ns.predictions,
        features=ns.features,
        clip=ns.clip,
        text_model=ns.text_model,
        vocabulary_uri=vocab,
        class_names=list(ds.class_names),
        report_prefix=ns.name or "",
        evidence=not ns.no_evidence,
        holdout_fraction=ns.holdout,
        error_modes=ns.error_modes,
        direction_caption_method=METHODS[ns.direction_captions] if ns.direction_captions else None,
        bar_factory=ProgressBars,
    )
    print(
        f"failure trees {found.trees.report_id}: valid-leaf fraction "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(found.trees.valid_leaf_fraction.items()))
    )
    fitted = [x for x in found.directions.directions if not x.skipped_reason]
    print(
        f"failure directions {found.directions.report_id}: {sum(x.mode == 0 for x in fitted)} classes, {sum(x.mode > 0 for x in fitted)} error-mode directions"
    )
    print_lines(format_failure_table(failure_table(found)))
    if found.evidence is not None:
        print(f"visual evidence: {found.evidence.index.uri}")
    print(f"rules: {found.trees.rules_table.uri}")
    return 0
