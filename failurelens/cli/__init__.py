"""The ``failurelens`` command: one module per command group, progress bars and tables in
:mod:`failurelens.cli.console`.

    failurelens up [--detach] | down | status        the local stack (Triton + every service)
    failurelens dataset register PATH --name N       (and list)
    failurelens model register MODEL.onnx --name N --kind classifier ...   (and list, export)
    failurelens world generate --out DIR | register DIR --name N
    failurelens embed --dataset D --model M [--splits val]
    failurelens discover --predictions E --features E --clip E --text-model M
    failurelens generators | generate --dataset D --name N --strategy S ...   targeted images
    failurelens retrain --model M --train E --debug-train E [--eval NAME=E]   a new head, a new version
    failurelens repair --dataset D --model M --clip C                        the mitigation protocol
    failurelens analyze --dataset D --model M [--features F] [--clip C] [--repair] [--json]
                                                     the whole job as one pipeline run, an HTML report
    failurelens runs list | watch RUN | cancel RUN   pipeline runs
    failurelens compare RUN_A RUN_B [--fail-on-new-mode ER]   fixed / new failure modes (a promotion gate)
    failurelens demo                                 the main job
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from failurelens import errors
from failurelens.cli import analyze, datasets, discover, embed, main_job, models, repair, stack, world
from failurelens.clients.client import FailureLensError

DEFAULT_STATE = os.environ.get("FAILURELENS_STATE_DIR", ".state")
COMMAND_GROUPS = (stack, datasets, models, world, embed, discover, repair, analyze, main_job)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="failurelens", description="Find, name and repair the failure modes of image classifiers.")
    ap.add_argument("--state-dir", default=DEFAULT_STATE, help="stack state folder (stack.json, logs, local store); env FAILURELENS_STATE_DIR")
    ap.add_argument("--store", default=os.environ.get("FAILURELENS_STORE", ""), help="artifact store URI (default: the stack's)")
    ap.add_argument(
        "--token-file",
        default="",
        help="file holding the bearer token (default: env FAILURELENS_AUTH_TOKEN or FAILURELENS_AUTH_TOKEN_FILE; never on the command line)",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        return int(ns.fn(ns) or 0)
    except (FailureLensError, errors.Error, FileNotFoundError) as exc:  # what the user can fix: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
