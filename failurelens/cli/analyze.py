"""``failurelens analyze``, ``runs`` and ``compare``: the whole job through the pipeline service.

Exit codes (for pipelines): 0 the run succeeded; 1 the request was refused or the stack is not
reachable (the message says what to fix); 2 bad command-line usage; 3 the run failed (the message
names the stage and the cause); 4 the run was cancelled; 5 (``compare --fail-on-new-mode``) the
newer run has a validated failure mode the older one did not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from failurelens.cli import context
from failurelens.cli.console import ProgressBars
from failurelens.v1 import common_pb2
from failurelens.workflow.compare import compare_summaries, format_comparison, load_summary
from failurelens.workflow.report_data import STATE, format_summary

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_RUN_FAILED, EXIT_RUN_CANCELLED, EXIT_NEW_FAILURE_MODE = 0, 1, 2, 3, 4, 5
EXIT = {common_pb2.JOB_STATE_SUCCEEDED: EXIT_OK, common_pb2.JOB_STATE_FAILED: EXIT_RUN_FAILED, common_pb2.JOB_STATE_CANCELLED: EXIT_RUN_CANCELLED}


def add_commands(sub: Any) -> None:
    an = sub.add_parser(
        "analyze",
        help="the whole job: failure modes of a classifier on a dataset (and their repair), as an HTML report",
        description="Exit codes: 0 succeeded, 1 refused/unreachable, 2 usage, 3 the run failed, 4 the run was cancelled.",
    )
    an.add_argument("--dataset", required=True, help="registered dataset id")
    an.add_argument("--model", required=True, help="registered CLASSIFIER model id (the inspected model)")
    an.add_argument("--features", default="", help="robust FEATURE_EXTRACTOR model for the failure trees (default: the model's own features)")
    an.add_argument("--clip", default="", help="IMAGE_TEXT model for directions, captions, backgrounds, repair (default: none, captions skipped)")
    an.add_argument("--vocabulary", default="", help="caption vocabulary JSON (file or store URI; default: failurelens's generic one)")
    an.add_argument("--split", default="", help="split analysed (default: test if present, else the largest)")
    an.add_argument("--repair", action="store_true", help="also run the mitigation protocol and publish the repaired model")
    an.add_argument("--generator", default="", help="image generator for the repair (default: world)")
    an.add_argument("--no-evidence", action="store_true", help="skip top images / heatmaps / feature attacks")
    an.add_argument("--request-id", default="", help="idempotency key: resubmitting it returns the same run")
    an.add_argument("--title", default="", help="report title")
    an.add_argument("--model-version", type=int, default=None, help="version of the model (default: its latest)")
    an.add_argument("--baseline", default="", help="a finished run on the same data: the report compares this run with it")
    an.add_argument("--strategies", nargs="+", default=[], help="the repair's prompt strategies (default: all four)")
    an.add_argument("--out", default="failurelens-reports", help="local folder the report is written to (<out>/<run id>/report.html)")
    an.add_argument("--json", action="store_true", help="print one JSON object (run, state, report path, summary) instead of text")
    an.set_defaults(fn=cmd_analyze)

    runs = sub.add_parser("runs", help="pipeline runs: list, watch, cancel").add_subparsers(dest="runs_cmd", required=True)
    ls = runs.add_parser("list", help="runs, newest first")
    ls.add_argument("--state", choices=["running", "succeeded", "failed", "cancelled"], default=None)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(fn=cmd_runs_list)
    wa = runs.add_parser("watch", help="follow a run to its end (reconnects to a running one)")
    wa.add_argument("run_id")
    wa.add_argument("--out", default="failurelens-reports")
    wa.add_argument("--json", action="store_true")
    wa.set_defaults(fn=cmd_runs_watch)
    ca = runs.add_parser("cancel", help="stop a run; nothing of the stage in progress is kept")
    ca.add_argument("run_id")
    ca.set_defaults(fn=cmd_runs_cancel)

    cp = sub.add_parser(
        "compare",
        help="two runs on the same data: failure modes fixed / introduced / unchanged, per-class accuracy deltas",
        description="A gate before promoting a model: with --fail-on-new-mode ER, exits 5 when RUN_B (the newer model) has a validated "
        "failure mode with error rate >= ER that RUN_A did not have.",
    )
    cp.add_argument("run_a", help="the older run (e.g. the model before its repair, last week's model)")
    cp.add_argument("run_b", help="the newer run")
    cp.add_argument("--fail-on-new-mode", type=float, default=None, metavar="MIN_ER", help="exit 5 on a new failure mode with ER >= MIN_ER")
    cp.add_argument("--min-overlap", type=float, default=None, help="member-image overlap at which two modes are the same failure")
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(fn=cmd_compare)


def _vocabulary(ns: argparse.Namespace, st: Any) -> str:
    if not ns.vocabulary or "://" in ns.vocabulary:
        return str(ns.vocabulary)
    path = Path(ns.vocabulary)
    return st.uri(st.put_json(f"uploads/vocabulary/{path.stem}.json", json.loads(path.read_text())).key)


def cmd_analyze(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    st = context.store(ns, c)
    fields: dict[str, Any] = {
        "request_id": ns.request_id,
        "dataset_id": ns.dataset,
        "model_id": ns.model,
        "feature_model_id": ns.features,
        "image_text_model_id": ns.clip,
        "vocabulary_uri": _vocabulary(ns, st),
        "analysis_split": ns.split,
        "repair": ns.repair,
        "generator": ns.generator,
        "title": ns.title,
    }
    if ns.no_evidence:
        fields["evidence"] = False
    if ns.model_version is not None:
        fields["model_version"] = ns.model_version
    fields.update(baseline_run_id=ns.baseline, repair_strategies=ns.strategies)
    with ProgressBars("analyze") as bars:
        run = c.analyze(on_progress=None if ns.json else bars, timeout=None, **fields)
    return finish(run, st, ns)


def finish(run: Any, st: Any, ns: argparse.Namespace) -> int:
    """Write the report locally, print the summary (or JSON), return the run's exit code."""
    summary: dict[str, Any] = {}
    html_path = ""
    if run.report.uri:
        out = Path(ns.out) / run.run_id
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.html").write_bytes(st.get_bytes(st.key_from_uri(run.report.uri)))
        summary = json.loads(st.get_bytes(st.key_from_uri(run.summary.uri)))
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        html_path = str((out / "report.html").resolve())
    if ns.json:
        doc = {
            "run_id": run.run_id,
            "state": STATE.get(run.state, "unknown"),
            "report_html": html_path,
            "report_uri": run.report.uri,
            "summary": summary,
        }
        if run.error.message:
            doc["error"] = {"code": run.error.code, "message": run.error.message}
        print(json.dumps(doc))
    else:
        for line in format_summary(run, summary):
            print(line)
        if html_path:
            print(f"report: {html_path}")
    return EXIT.get(run.state, EXIT_RUN_FAILED)


def cmd_runs_list(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    wanted = {v: k for k, v in STATE.items()}.get(ns.state or "", 0)
    runs = c.list_runs(state=wanted)
    if ns.json:
        print(
            json.dumps(
                [
                    {"run_id": r.run_id, "state": STATE.get(r.state, "unknown"), "dataset": r.request.dataset_id, "model": r.request.model_id}
                    for r in runs
                ]
            )
        )
        return EXIT_OK
    for r in runs:
        created = r.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        print(f"{r.run_id:22s} {STATE.get(r.state, 'unknown'):10s} {created}  {r.request.model_id} on {r.request.dataset_id}  {r.error.message}")
    return EXIT_OK


def cmd_runs_watch(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    st = context.store(ns, c)
    with ProgressBars(ns.run_id) as bars:
        run = c.watch_run(ns.run_id, on_progress=None if ns.json else bars)
    return finish(run, st, ns)


def cmd_runs_cancel(ns: argparse.Namespace) -> int:
    run = context.client(ns).cancel_run(ns.run_id, timeout=300)
    print(f"run {run.run_id}: {STATE.get(run.state, 'unknown')}", file=sys.stderr)
    return EXIT_OK


def cmd_compare(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    st = context.store(ns, c)
    a, b = c.get_run(ns.run_a), c.get_run(ns.run_b)
    params = {} if ns.min_overlap is None else {"min_overlap": ns.min_overlap}
    doc = compare_summaries(st, load_summary(st, a), load_summary(st, b), a.run_id, b.run_id, **params)
    new = [m for m in doc["introduced"] if ns.fail_on_new_mode is not None and m["error_rate"] >= ns.fail_on_new_mode]
    if ns.json:
        print(json.dumps({**doc, "gate_failed": bool(new)}))
    else:
        for line in format_comparison(doc):
            print(line)
        if new:
            print(f"gate: {len(new)} new failure mode(s) with ER >= {ns.fail_on_new_mode} in run {b.run_id}", file=sys.stderr)
    return EXIT_NEW_FAILURE_MODE if new else EXIT_OK
