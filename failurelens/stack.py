"""The local stack: Triton and every failurelens service as processes on loopback.

``Stack.start()`` starts tritonserver (explicit model control, every model in the repository
loaded), then each service as ``python -m failurelens.services.<name>``, waits until each answers
grpc.health.v1 SERVING, and writes ``<state_dir>/stack.json`` (addresses, pids, store). Logs go
to ``<state_dir>/logs/``. ``Stack.stop()`` (or ``stop_recorded(state_dir)`` from another process)
sends SIGTERM (services shut down gracefully), waits, then SIGKILLs what is left, process group by
process group, so no process survives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from failurelens import topology
from failurelens.triton.launcher import TritonServer, process_group_members

log = logging.getLogger(__name__)

STACK_FILE = "stack.json"


class StackError(RuntimeError):
    pass


def _tail(path: Path, n: int = 30) -> str:
    if not path.exists():
        return ""
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(deque(f, maxlen=n))


def check_health(address: str, timeout: float = 2.0, service: str = "") -> int:
    """The grpc.health.v1 status of a server (0 UNKNOWN, 1 SERVING, 2 NOT_SERVING); raises grpc.RpcError."""
    with grpc.insecure_channel(address) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return resp.status


@dataclasses.dataclass
class ServiceProcess:
    name: str
    address: str
    metrics_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    port_file: Path | None = None


class Stack:
    def __init__(
        self,
        state_dir: str | os.PathLike[str] = ".state",
        store: str = "",
        host: str = "127.0.0.1",
        base_port: int = 0,
        auth_token: str = "",
        services: tuple[str, ...] = topology.NAMES,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.log_dir = self.state_dir / "logs"
        self.repo_dir = self.state_dir / "triton_repository"
        self.store = store or f"file://{self.state_dir / 'store'}"
        self.host = host
        self.base_port = base_port
        self.auth_token = auth_token
        self.services = services
        self.extra_env = dict(extra_env or {})
        self.triton: TritonServer | None = None
        self.procs: dict[str, ServiceProcess] = {}

    def _port(self, offset: int) -> int | None:
        """A fixed port under --base-port, else None (the process binds a free one itself)."""
        return self.base_port + offset if self.base_port else None

    def start(self, timeout: float = 180.0) -> Stack:
        for d in (self.log_dir, self.repo_dir):
            d.mkdir(parents=True, exist_ok=True)
        if self.store.startswith("file://"):
            Path(self.store[len("file://") :]).mkdir(parents=True, exist_ok=True)
        try:
            t = topology.TRITON_OFFSET
            self.triton = TritonServer(
                self.repo_dir,
                http_port=self._port(t),
                grpc_port=self._port(t + 1),
                metrics_port=self._port(t + 2),
                log_path=self.log_dir / "tritonserver.log",
                work_dir=self.state_dir / "triton_work",
                model_control="explicit",
                load_models=("*",) if any(self.repo_dir.iterdir()) else (),
            )
            self.triton.start(timeout=timeout)
            env = dict(os.environ)
            env.update(self.extra_env)
            env.update(
                {
                    "FAILURELENS_STORE": self.store,
                    "FAILURELENS_TRITON_URL": self.triton.grpc_url,
                    "FAILURELENS_TRITON_REPOSITORY": str(self.repo_dir),
                    "FAILURELENS_STATE_DIR": str(self.state_dir),
                    "FAILURELENS_AUTH_TOKEN": self.auth_token,
                    "PYTHONUNBUFFERED": "1",
                    "FAILURELENS_TRITON_SHARED_MEMORY": "1",  # same host: inputs through /dev/shm, not the gRPC message
                }
            )
            port_dir = self.state_dir / "ports"
            port_dir.mkdir(exist_ok=True)
            fixed = topology.ports(self.base_port)
            for name in self.services:
                # without a base port each service binds port 0 itself and reports what it got in
                # its port file: no window in which another process can take a port picked for it
                port, mport = fixed[name] if self.base_port else (0, 0)
                port_file = port_dir / name
                port_file.unlink(missing_ok=True)
                log_path = self.log_dir / f"{name}.log"
                fh = open(log_path, "ab")
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        topology.BY_NAME[name].module,
                        "--host",
                        self.host,
                        "--port",
                        str(port),
                        "--metrics-port",
                        str(mport),
                        "--port-file",
                        str(port_file),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                )
                fh.close()
                self.procs[name] = ServiceProcess(name, f"{self.host}:{port}", mport, proc, log_path, port_file)
            self._wait_healthy(timeout)
            self.write_record("ready")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(self.procs)
        while pending:
            for name, sp in list(pending.items()):
                if sp.proc.poll() is not None:
                    raise StackError(f"service {name} exited with code {sp.proc.returncode} during start; last log lines:\n{_tail(sp.log_path)}")
                if sp.port_file is not None and sp.address.endswith(":0"):
                    if not sp.port_file.exists():
                        continue
                    port, mport = (int(v) for v in sp.port_file.read_text().split())
                    sp.address, sp.metrics_port = f"{self.host}:{port}", mport
                with contextlib.suppress(grpc.RpcError):
                    if check_health(sp.address, timeout=1.0) == health_pb2.HealthCheckResponse.SERVING:
                        del pending[name]
            if pending and time.monotonic() > deadline:
                name = next(iter(pending))
                raise StackError(f"service {name} not healthy after {timeout:.0f}s; last log lines:\n{_tail(pending[name].log_path)}")
            if pending:
                time.sleep(0.2)

    def record(self, state: str) -> dict[str, Any]:
        t = self.triton
        return {
            "state": state,
            "supervisor_pid": os.getpid(),
            "store": self.store,
            "auth": bool(self.auth_token),
            "log_dir": str(self.log_dir),
            "triton": None if t is None or t.pid is None else {"grpc": t.grpc_url, "http": t.http_url, "metrics": t.metrics_url, "pgid": t.pgid},
            "services": {
                n: {"address": sp.address, "metrics": f"http://{self.host}:{sp.metrics_port}/metrics", "pid": sp.proc.pid}
                for n, sp in self.procs.items()
            },
        }

    def write_record(self, state: str) -> None:
        path = self.state_dir / STACK_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record(state), indent=2))
        os.replace(tmp, path)

    def addresses(self) -> dict[str, str]:
        return {n: sp.address for n, sp in self.procs.items()}

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every service (graceful), then Triton; SIGKILL whatever outlives ``grace``."""
        for sp in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sp.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for sp in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                sp.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _kill_group(sp.proc.pid, 0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sp.proc.wait(timeout=5)
        self.procs.clear()
        if self.triton is not None:
            self.triton.stop(grace=grace)
            self.triton = None
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / STACK_FILE).unlink()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_group(pgid: int, grace: float) -> None:
    """SIGTERM a process group, wait up to ``grace``, then SIGKILL what remains."""
    if grace > 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while process_group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
    if process_group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while process_group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)


def read_record(state_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    path = Path(state_dir) / STACK_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def stop_recorded(state_dir: str | os.PathLike[str], grace: float = 20.0) -> bool:
    """Stop a stack started by another process (``failurelens down``). False if none is recorded."""
    rec = read_record(state_dir)
    if rec is None:
        return False
    sup = rec.get("supervisor_pid")
    if sup and sup != os.getpid() and alive(sup):
        # the supervisor (`failurelens up`) stops everything cleanly on SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup, signal.SIGTERM)
        deadline = time.monotonic() + grace + 10
        while alive(sup) and time.monotonic() < deadline:
            time.sleep(0.1)
    groups = [s["pid"] for s in rec.get("services", {}).values()]
    if rec.get("triton"):
        groups.append(rec["triton"]["pgid"])
    for pgid in groups:  # whatever the supervisor did not stop
        _kill_group(pgid, grace=5)
    with contextlib.suppress(FileNotFoundError):
        (Path(state_dir) / STACK_FILE).unlink()
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
