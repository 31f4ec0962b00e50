"""`failurelens up` / `status` / `down` and Ctrl-C as a user runs them: real processes, real ports."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from failurelens.stack import check_health
from failurelens.topology import NAMES as SERVICES
from failurelens.triton.launcher import process_group_members

pytestmark = [pytest.mark.slow, pytest.mark.triton]
CLI = [sys.executable, "-m", "failurelens.cli"]


def _groups(rec: dict) -> list[int]:
    return [s["pid"] for s in rec["services"].values()] + [rec["triton"]["pgid"]]


def _all_gone(groups: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for g in groups for p in process_group_members(g)]
        if not alive:
            return []
        time.sleep(0.2)
    return alive


def test_up_detach_status_down_leaves_no_process(tmp_path: Path):
    state = tmp_path / "state"
    up = subprocess.run(CLI + ["--state-dir", str(state), "up", "--detach"], capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    rec = json.loads((state / "stack.json").read_text())
    assert rec["state"] == "ready" and set(rec["services"]) == set(SERVICES)
    for name, s in rec["services"].items():
        assert check_health(s["address"]) == 1, name
        assert s["address"] in up.stdout
    status = subprocess.run(CLI + ["--state-dir", str(state), "status"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and status.stdout.count("SERVING") == len(SERVICES)
    again = subprocess.run(CLI + ["--state-dir", str(state), "up", "--detach"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already running" in again.stderr
    groups = _groups(rec) + [rec["supervisor_pid"]]
    down = subprocess.run(CLI + ["--state-dir", str(state), "down"], capture_output=True, text=True, timeout=120)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert _all_gone(groups) == []
    assert not (state / "stack.json").exists()
    assert "shutting down" in (state / "logs" / "embedding.log").read_text()  # graceful, not killed


def test_ctrl_c_stops_everything(tmp_path: Path):
    state = tmp_path / "state"
    proc = subprocess.Popen(CLI + ["--state-dir", str(state), "up"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        rec = None
        while time.monotonic() < deadline and proc.poll() is None:
            p = state / "stack.json"
            if p.exists():
                rec = json.loads(p.read_text())
                if rec.get("state") == "ready":
                    break
            time.sleep(0.3)
        assert rec is not None and rec["state"] == "ready", proc.stdout.read() if proc.poll() is not None else "not ready"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "stopped" in out
        assert _all_gone(_groups(rec)) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
