"""``failurelens world generate | register``: the procedurally rendered benchmark world.

failurelens world generate [--config FILE] --out DIR [--workers N] [--seed S] [--sheet PNG]
failurelens world register DIR --name NAME [--overwrite] [--no-verify]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from failurelens.cli import datasets
from failurelens.cli.console import FileBar


def add_commands(subparsers: Any) -> None:
    """Add the ``world`` command group to the top-level ``subparsers``."""
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
    datasets.add_register_options(reg, on_corrupt="fail")
    reg.set_defaults(fn=cmd_world_register)


def cmd_world_generate(ns: argparse.Namespace) -> int:
    from failurelens.world.config import WorldConfigError, load_config
    from failurelens.world.generate import generate_world, write_contact_sheet

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
    t0 = time.perf_counter()
    with FileBar("render") as bar:
        world = generate_world(config, ns.out, workers=max(1, ns.workers), progress=bar)
    dt = time.perf_counter() - t0
    counts = world.frequencies["split_counts"]
    print(f"world: {len(world.df)} images in {dt:.1f}s -> {ns.out}  ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    print(f"  {len(config.classes)} classes, {len(config.backgrounds)} backgrounds, {len(config.colors)} colours, seed {config.seed}")
    biased = list(config.biased_splits)
    for s in config.planted_slices:
        per = world.frequencies["planted_slices"][s.name]
        print(f"  planted {s.name:20s} {s.description:28s} " + "  ".join(f"{sp} {per[sp]['count']:4d}" for sp in biased))
    if ns.sheet:
        write_contact_sheet(world, ns.sheet)
        print(f"  contact sheet: {ns.sheet}")
    return 0


def cmd_world_register(ns: argparse.Namespace) -> int:
    root = Path(ns.path)
    if not (root / "manifest.csv").is_file() or not (root / "world.json").is_file():
        print(f"error: {root} is not a generated world (no manifest.csv / world.json); run `failurelens world generate` first", file=sys.stderr)
        return 1
    datasets.register(ns, str(root))
    return 0
