"""``failurelens dataset register | list``."""

from __future__ import annotations

import argparse
from typing import Any

from failurelens.cli import context
from failurelens.cli.console import FileBar, ProgressBars
from failurelens.clients import upload_and_register_dataset
from failurelens.data.manifest import load_class_names
from failurelens.v1 import common_pb2, registry_pb2


def add_commands(sub: Any) -> None:
    ds = sub.add_parser("dataset", help="datasets").add_subparsers(dest="sub", required=True)
    reg = ds.add_parser("register", help="upload (if local) and register a dataset")
    reg.add_argument("path", help="folder, local manifest (CSV/Parquet), or a manifest URI in the store")
    reg.add_argument("--name", required=True)
    reg.add_argument("--classes", help="class names file (JSON list or one per line)")
    add_register_options(reg, on_corrupt="skip")
    reg.set_defaults(fn=cmd_register)
    ds.add_parser("list").set_defaults(fn=cmd_list)


def add_register_options(parser: argparse.ArgumentParser, on_corrupt: str) -> None:
    parser.add_argument("--on-corrupt", choices=["skip", "fail"], default=on_corrupt)
    parser.add_argument("--no-verify", action="store_true", help="do not decode every image")
    parser.add_argument("--overwrite", action="store_true")


def register(ns: argparse.Namespace, path: str, class_names: list[str] | None = None) -> registry_pb2.Dataset:
    """Upload (if local) and register ``path`` as dataset ``ns.name``, with progress bars; prints a summary."""
    c = context.client(ns)
    policy = common_pb2.CORRUPT_IMAGE_POLICY_FAIL if ns.on_corrupt == "fail" else common_pb2.CORRUPT_IMAGE_POLICY_SKIP_AND_REPORT
    with FileBar("upload") as files, ProgressBars("register") as bars:
        ds = upload_and_register_dataset(
            c,
            context.store(ns, c),
            path,
            ns.name,
            class_names,
            on_file=files,
            on_progress=bars,
            corrupt_image_policy=policy,
            overwrite=ns.overwrite,
            verify_images=not ns.no_verify,
        )
    print(f"dataset {ds.dataset_id}: {ds.num_rows} images, {len(ds.class_names)} classes, splits {dict(ds.split_counts)}")
    if ds.unreadable_rows.total:
        print(f"  {ds.unreadable_rows.total} unreadable images skipped, e.g.:")
        for r in ds.unreadable_rows.rows[:5]:
            print(f"    row {r.row}: {r.uri}: {r.reason}")
    return ds


def cmd_register(ns: argparse.Namespace) -> int:
    register(ns, ns.path, load_class_names(ns.classes) if ns.classes else None)
    return 0


def cmd_list(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    for d in c.call(c.registry.ListDatasets, registry_pb2.ListDatasetsRequest()).datasets:
        print(f"{d.dataset_id:24s} {d.num_rows:8d} images {len(d.class_names):5d} classes  {dict(d.split_counts)}")
    return 0
