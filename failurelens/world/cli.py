"""``failurelens world ...`` commands (wired into ``failurelens/cli.py`` with :func:`add_world_commands`).

    failurelens world generate [--config FILE] --out DIR [--workers N] [--seed S] [--sheet PNG]
    failurelens world register DIR --name NAME [--overwrite] [--no-verify]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any


def add_world_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``world`` command group to the top-level ``subparsers`` (from ``add_subparsers``)."""
    world = subparsers.add_parser("world", help="the procedurally rendered benchmark world with planted failure modes")
    sub = world.add_subparsers(dest="sub", required=True)

    gen = sub.add_parser("generate", help="render a benchmark world (images, manifest.csv, classes.txt, world.json)")
    gen.add_argument("--config", default=None, help="world config JSON (default: the built-in default world)")
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="render processes (output is identical for any number)")
    gen.add_argument("--seed", type=int, default=None, help="override the config's seed")
    gen.add_argument("--sheet", default=None, help="also write a contact sheet PNG (8 samples per class, balanced split)")
    gen.set_defaults(fn=cmd_world_generate)

    reg = sub.add_parser("register", help="upload a generated world and register it as a dataset")
    reg.add_argument("path", help="the folder written by `world generate`")
    reg.add_argument("--name", required=True)
    reg.add_argument("--on-corrupt", choices=["skip", "fail"], default="fail")
    reg.add_argument("--no-verify", action="store_true", help="do not decode every image")
    reg.add_argument("--overwrite", action="store_true")
    reg.set_defaults(fn=cmd_world_register)
    return world


def cmd_world_generate(ns: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .config import WorldConfigError, load_config
    from .generate import generate_world

    try:
        config = load_config(ns.config)
    except WorldConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if ns.seed is not None:
        if ns.seed < 0:
            print("error: --seed must be non-negative", file=sys.stderr)
            return 1
        config = config.with_seed(ns.seed)
    bar = tqdm(desc="render", unit="img", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    t0 = time.perf_counter()
    try:
        world = generate_world(config, ns.out, workers=max(1, ns.workers), progress=progress)
    finally:
        bar.close()
    dt = time.perf_counter() - t0
    counts = world.frequencies["split_counts"]
    print(f"world: {len(world.df)} images in {dt:.1f}s -> {ns.out}  ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    print(f"  {len(config.classes)} classes, {len(config.backgrounds)} backgrounds, {len(config.colors)} colours, seed {config.seed}")
    biased = list(config.biased_splits)
    for s in config.planted_slices:
        per = world.frequencies["planted_slices"][s.name]
        print(f"  planted {s.name:20s} {s.description:28s} " + "  ".join(f"{sp} {per[sp]['count']:4d}" for sp in biased))
    if ns.sheet:
        write_sheet(world, ns.sheet)
        print(f"  contact sheet: {ns.sheet}")
    return 0


def write_sheet(world: Any, path: str, split: str | None = None, per_class: int = 8) -> None:
    """A contact sheet: one column per class, ``per_class`` rows, from ``split`` (default: balanced
    if present, else the first split)."""
    from PIL import Image

    from .render import contact_sheet

    splits = list(world.config.splits)
    split = split or ("balanced" if "balanced" in splits else splits[0])
    df = world.split(split)
    ims = []
    for r in range(per_class):
        for c in world.class_names:
            sub = df[df["label"] == c]
            if r < len(sub):
                with Image.open(world.out_dir / sub["uri"].iloc[r]) as im:
                    ims.append(im.convert("RGB"))
            else:
                ims.append(Image.new("RGB", (world.config.image_size,) * 2, (0, 0, 0)))
    contact_sheet(ims, len(world.class_names), scale=2).save(path)


def cmd_world_register(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from failurelens.cli import _client, _store, progress_bar
    from failurelens.clients import upload_dataset
    from failurelens.v1 import common_pb2

    root = Path(ns.path)
    if not (root / "manifest.csv").is_file() or not (root / "world.json").is_file():
        print(f"error: {root} is not a generated world (no manifest.csv / world.json); run `failurelens world generate` first", file=sys.stderr)
        return 1
    client = _client(ns)
    store = _store(ns, client)
    bar = tqdm(desc="upload", unit="img", file=sys.stderr)

    def on_file(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        manifest_uri, class_names = upload_dataset(store, root, ns.name, None, on_file=on_file)
    finally:
        bar.close()
    bar_cb = progress_bar("register")
    policy = common_pb2.CORRUPT_IMAGE_POLICY_FAIL if ns.on_corrupt == "fail" else common_pb2.CORRUPT_IMAGE_POLICY_SKIP_AND_REPORT
    try:
        ds = client.register_dataset(on_progress=bar_cb, name=ns.name, manifest_uri=manifest_uri, class_names=class_names,
                                     corrupt_image_policy=policy, overwrite=ns.overwrite, verify_images=not ns.no_verify)
    finally:
        bar_cb.close()  # type: ignore[attr-defined]
    print(f"dataset {ds.dataset_id}: {ds.num_rows} images, {len(ds.class_names)} classes, splits {dict(ds.split_counts)}")
    if ds.unreadable_rows.total:
        print(f"  {ds.unreadable_rows.total} unreadable images skipped")
    return 0
