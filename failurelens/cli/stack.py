"""``failurelens up | down | status``: the local stack (Triton and every service on loopback)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from failurelens import topology
from failurelens.cli.console import print_stack
from failurelens.clients.client import token_from_env
from failurelens.transport import Tls


def add_commands(sub: Any) -> None:
    up = sub.add_parser("up", help="start Triton and every service")
    up.add_argument("--detach", action="store_true", help="return once healthy; stop later with `failurelens down`")
    last = max(s.port_offset for s in topology.SERVICES)
    up.add_argument(
        "--base-port",
        type=int,
        default=0,
        help=f"services on BASE..BASE+{last}, metrics BASE+{topology.METRICS_OFFSET}.., Triton BASE+{topology.TRITON_OFFSET}..+2 "
        "(default: free ports)",
    )
    up.add_argument(
        "--auth-token-file",
        default="",
        help="require the bearer token in this file on every RPC (or env FAILURELENS_AUTH_TOKEN / FAILURELENS_AUTH_TOKEN_FILE); "
        "more tokens with roles: FAILURELENS_AUTH_TOKENS_FILE. TLS: FAILURELENS_TLS_CERT_FILE, _KEY_FILE, _CA_FILE, _CLIENT_CA_FILE",
    )
    up.add_argument("--timeout", type=float, default=180.0)
    up.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop the running stack").set_defaults(fn=cmd_down)
    sub.add_parser("status", help="health of every service").set_defaults(fn=cmd_status)


def cmd_up(ns: argparse.Namespace) -> int:
    from failurelens.stack import Stack, alive, read_record

    rec = read_record(ns.state_dir)
    if rec is not None and alive(rec.get("supervisor_pid", 0)):
        print(f"a stack is already running from {ns.state_dir} (pid {rec['supervisor_pid']}); `failurelens down` first", file=sys.stderr)
        return 1
    if ns.detach:
        return _up_detached(ns)
    token = Path(ns.auth_token_file).read_text().strip() if ns.auth_token_file else token_from_env() or ""
    tls = Tls.from_env()
    stack = Stack(ns.state_dir, store=ns.store, base_port=ns.base_port, auth_token=token, tls=tls if tls.serves_tls else None)
    stop = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stack.start(timeout=ns.timeout)
    print_stack(stack.record("ready"))
    print("stack is up (a process that dies is restarted); Ctrl-C or `failurelens down` stops it", flush=True)
    try:
        while not stop["flag"]:
            time.sleep(0.3)
    finally:
        print("stopping the stack ...", flush=True)
        stack.stop()
        print("stopped", flush=True)
    return 0


def _up_detached(ns: argparse.Namespace) -> int:
    from failurelens.stack import read_record

    log = Path(ns.state_dir) / "logs" / "supervisor.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "failurelens.cli", "--state-dir", ns.state_dir] + (["--store", ns.store] if ns.store else [])
    args += ["up", "--timeout", str(ns.timeout), "--base-port", str(ns.base_port)]
    env = dict(os.environ)
    if ns.auth_token_file:
        env["FAILURELENS_AUTH_TOKEN_FILE"] = ns.auth_token_file
    with open(log, "ab") as fh:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.monotonic() + ns.timeout + 30
    while time.monotonic() < deadline:
        rec = read_record(ns.state_dir)
        if rec is not None and rec.get("state") == "ready" and rec.get("supervisor_pid") == proc.pid:
            print_stack(rec)
            return 0
        if proc.poll() is not None:
            print(f"the stack failed to start; see {log}:\n" + log.read_text()[-3000:], file=sys.stderr)
            return 1
        time.sleep(0.3)
    proc.terminate()
    print(f"the stack did not become ready in {ns.timeout}s; see {log}", file=sys.stderr)
    return 1


def cmd_down(ns: argparse.Namespace) -> int:
    from failurelens.stack import stop_recorded

    if not stop_recorded(ns.state_dir):
        print(f"no stack recorded in {ns.state_dir}")
        return 0
    print("stopped")
    return 0


def cmd_status(ns: argparse.Namespace) -> int:
    from failurelens.stack import check_health, read_record, triton_health

    rec = read_record(ns.state_dir)
    if rec is None:
        print(f"no stack recorded in {ns.state_dir}")
        return 1
    tls = Tls.from_env()
    tls = tls if tls.dials_tls else Tls(ca_file=rec.get("tls_ca_file", ""))
    bad = 0
    if rec.get("triton"):
        t = rec["triton"]
        live, ready = triton_health(t["grpc"])
        state = "READY" if ready else ("LIVE, NOT READY" if live else "DOWN")
        bad += not ready
        print(f"{'triton':16s} {t['grpc']:22s} {state}" + (f"  (restarted {t['restarts']}x)" if t.get("restarts") else ""))
    for name, s in rec["services"].items():
        try:
            status = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING"}.get(check_health(s["address"], tls=tls), "?")
        except Exception as exc:
            status = f"DOWN ({type(exc).__name__})"
        bad += status != "SERVING"
        print(f"{name:16s} {s['address']:22s} {status}" + (f"  (restarted {s['restarts']}x)" if s.get("restarts") else ""))
    for name in rec.get("given_up", []):
        print(f"{name}: restarted too often; the supervisor gave up (see {rec['log_dir']})")
    return 1 if bad else 0
