"""``failurelens demo``: the main job (see :mod:`failurelens.clients.main_job`)."""

from __future__ import annotations

import argparse
from typing import Any

from failurelens.cli.console import ProgressBars
from failurelens.clients.main_job import run_main_job


def add_commands(sub: Any) -> None:
    demo = sub.add_parser("demo", help="the main job: start the stack, register the benchmark world and its models, embed, find failure modes")
    demo.set_defaults(fn=cmd_demo)


def cmd_demo(ns: argparse.Namespace) -> int:
    return run_main_job(ns.state_dir, store=ns.store, echo=lambda s: print(s, flush=True), bar_factory=ProgressBars)
