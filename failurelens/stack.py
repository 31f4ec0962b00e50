"""The local stack: Triton and every failurelens service as processes on loopback, supervised.

``Stack.start()`` starts tritonserver (explicit model control, every model in the repository
loaded, HTTP off, model control and shared-memory registration behind a key the stack generates
and gives only to the services), then each service as ``python -m <module>`` (the table in
:mod:`failurelens.topology`), waits until each answers grpc.health.v1 SERVING, writes
``<state_dir>/stack.json`` (addresses, pids, store, restarts; never the key) and starts a
supervisor thread: a process that dies is restarted on the same ports, with bounded exponential
backoff (:data:`MAX_RESTARTS` within :data:`RESTART_WINDOW_S`, then it stays down and the record
says so); a dead Triton is reaped, its orphaned python-backend stubs killed and their shared
memory removed before it starts again. Logs go to ``<state_dir>/logs/``. ``Stack.stop()`` (or
``stop_recorded(state_dir)`` from another process) stops the supervisor, sends SIGTERM (services
shut down gracefully), waits, then SIGKILLs what is left, process group by process group.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from failurelens import topology
from failurelens.transport import Tls, open_channel
from failurelens.triton.launcher import TritonServer, process_group_members

log = logging.getLogger(__name__)

STACK_FILE = "stack.json"
#: restarts of one process allowed within RESTART_WINDOW_S before the supervisor gives up on it
MAX_RESTARTS = 5
RESTART_WINDOW_S = 600.0
#: backoff before the n-th restart within the window: min(BACKOFF_MAX_S, BACKOFF_S * 2**(n-1))
BACKOFF_S = 0.5
BACKOFF_MAX_S = 30.0


class StackError(RuntimeError):
    pass


def _tail(path: Path, n: int = 30) -> str:
    if not path.exists():
        return ""
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(deque(f, maxlen=n))


def check_health(address: str, timeout: float = 2.0, service: str = "", tls: Tls | None = None) -> int:
    """The grpc.health.v1 status of a server (0 UNKNOWN, 1 SERVING, 2 NOT_SERVING); raises grpc.RpcError."""
    with open_channel(address, tls) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return int(resp.status)


def triton_health(grpc_url: str, timeout: float = 2.0) -> tuple[bool, bool]:
    """(live, ready) of a Triton server; (False, False) when it does not answer."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(grpc_url)
    try:
        return bool(client.is_server_live(client_timeout=timeout)), bool(client.is_server_ready(client_timeout=timeout))
    except InferenceServerException:
        return False, False
    finally:
        client.close()


@dataclasses.dataclass
class ServiceProcess:
    name: str
    address: str
    metrics_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    port_file: Path | None = None


@dataclasses.dataclass
class _Restarts:
    """Restart bookkeeping of one supervised process."""

    times: deque[float] = dataclasses.field(default_factory=deque)
    total: int = 0
    given_up: bool = False
    next_try: float = 0.0

    def due(self, now: float) -> bool:
        while self.times and now - self.times[0] > RESTART_WINDOW_S:
            self.times.popleft()
        if self.given_up:
            return False
        if len(self.times) >= MAX_RESTARTS:
            self.given_up = True
            return False
        if not self.next_try:
            self.next_try = now + min(BACKOFF_MAX_S, BACKOFF_S * 2 ** len(self.times))
        return now >= self.next_try

    def record(self, now: float) -> None:
        self.times.append(now)
        self.total += 1
        self.next_try = 0.0


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
        supervise: bool = True,
        tls: Tls | None = None,
    ) -> None:
        """``tls``: serve every service over TLS with ``cert_file``/``key_file`` (one certificate for
        the host: it is also what the services show each other and the stack's health checks), the
        services trusting ``ca_file``; ``client_ca_file`` makes it mutual TLS."""
        self.state_dir = Path(state_dir).resolve()
        self.log_dir = self.state_dir / "logs"
        self.repo_dir = self.state_dir / "triton_repository"
        self.store = store or f"file://{self.state_dir / 'store'}"
        self.host = host
        self.base_port = base_port
        self.auth_token = auth_token
        self.services = services
        self.extra_env = dict(extra_env or {})
        self.supervise = supervise
        self.tls = tls.validate() if tls is not None else None
        #: how the stack itself dials the services (health checks): their CA, its certificate for mutual TLS
        self.dial_tls = Tls(ca_file=tls.ca_file, cert_file=tls.cert_file, key_file=tls.key_file) if tls is not None else None
        self.triton: TritonServer | None = None
        self.procs: dict[str, ServiceProcess] = {}
        self.restarts: dict[str, _Restarts] = {}
        self._env: dict[str, str] = {}
        self._triton_key = secrets.token_hex(16)
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._lock = threading.RLock()

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
                load_models=self._models_to_load(),
                admin_key=self._triton_key,
                allow_http=False,
            )
            self.triton.start(timeout=timeout)
            self._env = dict(os.environ)
            self._env.update(self.extra_env)
            self._env.update(
                {
                    "FAILURELENS_STORE": self.store,
                    "FAILURELENS_TRITON_URL": self.triton.grpc_url,
                    "FAILURELENS_TRITON_KEY": self._triton_key,
                    "FAILURELENS_TRITON_REPOSITORY": str(self.repo_dir),
                    "FAILURELENS_STATE_DIR": str(self.state_dir),
                    "FAILURELENS_AUTH_TOKEN": self.auth_token,
                    "PYTHONUNBUFFERED": "1",
                    "FAILURELENS_TRITON_SHARED_MEMORY": "1",  # same host: inputs through /dev/shm, not the gRPC message
                }
            )
            if self.tls is not None:
                self._env.update(self.tls.env())
            (self.state_dir / "ports").mkdir(exist_ok=True)
            fixed = topology.ports(self.base_port)
            for name in self.services:
                # without a base port each service binds port 0 itself and reports what it got in
                # its port file: no window in which another process can take a port picked for it
                port, mport = fixed[name] if self.base_port else (0, 0)
                self.procs[name] = self._spawn(name, port, mport)
                self.restarts[name] = _Restarts()
            self.restarts["triton"] = _Restarts()
            self._wait_healthy(dict(self.procs), timeout)
            self.write_record("ready")
        except BaseException:
            self.stop()
            raise
        if self.supervise:
            self._supervisor = threading.Thread(target=self._supervise, name="failurelens-stack-supervisor", daemon=True)
            self._supervisor.start()
        return self

    def _models_to_load(self) -> tuple[str, ...]:
        return ("*",) if any(self.repo_dir.iterdir()) else ()

    def _spawn(self, name: str, port: int, metrics_port: int) -> ServiceProcess:
        port_file = self.state_dir / "ports" / name
        port_file.unlink(missing_ok=True)
        log_path = self.log_dir / f"{name}.log"
        args = [sys.executable, "-m", topology.BY_NAME[name].module, "--host", self.host, "--port", str(port)]
        args += ["--metrics-port", str(metrics_port), "--port-file", str(port_file)]
        with open(log_path, "ab") as fh:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, env=self._env, start_new_session=True, close_fds=True
            )
        return ServiceProcess(name, f"{self.host}:{port}", metrics_port, proc, log_path, port_file)

    def _wait_healthy(self, procs: dict[str, ServiceProcess], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(procs)
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
                    if check_health(sp.address, timeout=1.0, tls=self.dial_tls) == health_pb2.HealthCheckResponse.SERVING:
                        del pending[name]
            if pending and time.monotonic() > deadline:
                name = next(iter(pending))
                raise StackError(f"service {name} not healthy after {timeout:.0f}s; last log lines:\n{_tail(pending[name].log_path)}")
            if pending:
                time.sleep(0.2)

    # --- supervision ------------------------------------------------------------------------
    def _supervise(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self._supervise_once()
            except Exception:
                log.exception("stack supervisor: a restart failed; trying again later")

    def _supervise_once(self) -> None:
        now = time.monotonic()
        changed = False
        triton = self.triton
        if triton is not None and not triton.is_running() and self.restarts["triton"].due(now):
            log.warning("tritonserver exited (code %s); restarting it", triton._proc.returncode if triton._proc else None)
            self.restarts["triton"].record(now)
            with self._lock:
                if self._stop.is_set():
                    return
                triton.load_models = self._models_to_load()
                triton.restart(timeout=120)
            changed = True
        for name, sp in list(self.procs.items()):
            if sp.proc.poll() is None or not self.restarts[name].due(now):
                continue
            log.warning("service %s exited with code %s; restarting it (log: %s)", name, sp.proc.returncode, sp.log_path)
            self.restarts[name].record(now)
            port = int(sp.address.rsplit(":", 1)[1])
            with self._lock:
                if self._stop.is_set():
                    return
                fresh = self._spawn(name, port, sp.metrics_port)  # the same ports: clients keep their addresses
                self.procs[name] = fresh
                self.write_record("ready")  # the new pid and the restart, before it is even healthy
            with contextlib.suppress(StackError):
                self._wait_healthy({name: fresh}, 60)
            changed = True
        if changed or any(r.given_up for r in self.restarts.values()):
            self.write_record("ready")

    # --- record -----------------------------------------------------------------------------
    def record(self, state: str) -> dict[str, Any]:
        t = self.triton
        return {
            "state": state,
            "supervisor_pid": os.getpid(),
            "store": self.store,
            "auth": bool(self.auth_token),
            # the CA clients need to dial the services (a public certificate, not a secret)
            "tls_ca_file": self.tls.ca_file if self.tls is not None else "",
            "log_dir": str(self.log_dir),
            "triton": None
            if t is None or t.pid is None
            else {"grpc": t.grpc_url, "metrics": t.metrics_url, "pgid": t.pgid, "restarts": self.restarts.get("triton", _Restarts()).total},
            "services": {
                n: {
                    "address": sp.address,
                    "metrics": f"http://{self.host}:{sp.metrics_port}/metrics",
                    "pid": sp.proc.pid,
                    "restarts": self.restarts.get(n, _Restarts()).total,
                }
                for n, sp in self.procs.items()
            },
            "given_up": sorted(n for n, r in self.restarts.items() if r.given_up),
        }

    def write_record(self, state: str) -> None:
        path = self.state_dir / STACK_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record(state), indent=2))
        os.replace(tmp, path)

    def addresses(self) -> dict[str, str]:
        return {n: sp.address for n, sp in self.procs.items()}

    def stop(self, grace: float = 15.0) -> None:
        """Stop supervising, SIGTERM every service (graceful), then Triton; SIGKILL whatever
        outlives ``grace``."""
        self._stop.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=grace + 130)
        with self._lock:
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
        return json.loads(path.read_text())  # type: ignore[no-any-return]
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
