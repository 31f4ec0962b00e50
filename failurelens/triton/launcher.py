"""Start and stop the ``tritonserver`` binary bundled in the ``nvidia-pytriton`` wheel.

The wheel ships Triton 2.51 with only the python backend.  To run it outside of
PyTriton three things are needed (all done by :class:`TritonServer`):

* a private copy of ``backends/`` with the python backend stub matching the running
  interpreter (``python_backend_stubs/X.Y/triton_python_backend_stub``) copied into
  ``backends/python/`` -- site-packages is never modified;
* the wheel's ``nvidia_pytriton.libs`` directory on ``LD_LIBRARY_PATH``;
* the interpreter's ``bin`` directory first on ``PATH`` (the stub embeds Python and
  must see the same environment, with numpy/onnxruntime, as this process).

The server runs in its own session / process group so that :meth:`TritonServer.stop`
can reap the python backend stubs too.  Nothing here imports failurelens-internal
modules; the CLI (``failurelens up``) is wired on top of this API.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TritonInstallation",
    "TritonNotFoundError",
    "TritonServer",
    "TritonStartError",
    "find_tritonserver",
    "process_group_members",
]

_LOOPBACK = "127.0.0.1"
_MODEL_CONTROL_MODES = ("none", "poll", "explicit")
#: the gRPC metadata key (HTTP header) that carries the key of Triton's restricted protocols
ADMIN_KEY_HEADER = "failurelens-triton-key"
#: the protocols that need the key: model control, shared-memory registration, server settings
RESTRICTED_PROTOCOLS = ("model-repository", "shared-memory", "trace", "logging")
_SHM_DIR = Path("/dev/shm")
_STUB_REGION = re.compile(r"triton_python_backend_shm_region_[0-9A-Za-z_-]+")


class TritonNotFoundError(RuntimeError):
    """The bundled tritonserver (or one of its parts) could not be located."""


class TritonStartError(RuntimeError):
    """tritonserver exited or did not become ready; the message holds the log tail."""

    def __init__(self, message: str, log_tail: str = "", error_lines: Sequence[str] = ()) -> None:
        text = message
        if error_lines:
            text += "\n--- error lines of the tritonserver log ---\n" + "\n".join(error_lines)
        if log_tail:
            text += f"\n--- last lines of the tritonserver log ---\n{log_tail}"
        super().__init__(text)
        self.log_tail = log_tail
        self.error_lines = list(error_lines)


@dataclass(frozen=True)
class TritonInstallation:
    """Where the parts of a runnable tritonserver live."""

    binary: Path
    backends_dir: Path
    stub: Path
    libs_dir: Path | None
    python_bin_dir: Path
    python_version: str


def _pytriton_root() -> Path | None:
    # find_spec does not import pytriton (which would pull in a lot of modules).
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_tritonserver(root: str | os.PathLike[str] | None = None, python_version: str | None = None) -> TritonInstallation:
    """Locate the tritonserver binary, its backends, the python stub and the bundled libs.

    ``root`` is a directory laid out like ``pytriton/tritonserver`` (``bin/tritonserver``,
    ``backends/python``, ``python_backend_stubs/X.Y``).  Defaults to the environment
    variable ``FAILURELENS_TRITONSERVER_ROOT``, then the installed ``nvidia-pytriton``.
    Raises :class:`TritonNotFoundError` naming exactly what is missing.
    """
    python_version = python_version or f"{sys.version_info[0]}.{sys.version_info[1]}"
    libs_dir: Path | None = None
    if root is None and os.environ.get("FAILURELENS_TRITONSERVER_ROOT"):
        root = os.environ["FAILURELENS_TRITONSERVER_ROOT"]
    if root is None:
        pkg = _pytriton_root()
        if pkg is None:
            raise TritonNotFoundError(
                "tritonserver not found: the 'nvidia-pytriton' package is not installed in "
                f"{sys.prefix} (pip install 'nvidia-pytriton>=0.7,<0.8'), and "
                "FAILURELENS_TRITONSERVER_ROOT is not set"
            )
        root_path = pkg / "tritonserver"
        candidate_libs = pkg.parent / "nvidia_pytriton.libs"
        libs_dir = candidate_libs if candidate_libs.is_dir() else None
    else:
        root_path = Path(root)
        for candidate in (root_path / "libs", root_path / "lib", root_path.parent / "nvidia_pytriton.libs"):
            if candidate.is_dir():
                libs_dir = candidate
                break

    binary = root_path / "bin" / "tritonserver"
    backends = root_path / "backends"
    stub = root_path / "python_backend_stubs" / python_version / "triton_python_backend_stub"
    problems = []
    if not binary.is_file():
        problems.append(f"binary {binary} is missing")
    elif not os.access(binary, os.X_OK):
        problems.append(f"binary {binary} is not executable")
    if not (backends / "python" / "libtriton_python.so").is_file():
        problems.append(f"python backend {backends / 'python' / 'libtriton_python.so'} is missing")
    if not stub.is_file():
        have = sorted(p.name for p in (root_path / "python_backend_stubs").glob("*")) if (root_path / "python_backend_stubs").is_dir() else []
        problems.append(f"python backend stub for Python {python_version} ({stub}) is missing; available: {have or 'none'}")
    if problems:
        raise TritonNotFoundError("tritonserver installation under " + str(root_path) + " is unusable: " + "; ".join(problems))
    # The python stub embeds the interpreter; it must find this environment's packages.
    python_bin = Path(sysconfig.get_path("scripts") or Path(sys.executable).parent)
    return TritonInstallation(
        binary=binary,
        backends_dir=backends,
        stub=stub,
        libs_dir=libs_dir,
        python_bin_dir=python_bin,
        python_version=python_version,
    )


def _free_ports(n: int, host: str = _LOOPBACK) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, pgid) of a process from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(")") + 2 :].split()
    return rest[0], int(rest[2])


def process_group_members(pgid: int, include_zombies: bool = False) -> list[int]:
    """PIDs whose process group is ``pgid`` (a /proc scan; no psutil)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _proc_stat(int(entry))
        if st is None or st[1] != pgid:
            continue
        if st[0] in ("Z", "X") and not include_zombies:
            continue
        members.append(int(entry))
    return sorted(members)


# Strong references: a started server that the caller forgot must still be stopped at exit.
_LIVE_SERVERS: set[TritonServer] = set()


@atexit.register
def _stop_all_at_exit() -> None:  # pragma: no cover - interpreter shutdown
    for server in list(_LIVE_SERVERS):
        with contextlib.suppress(Exception):
            server.stop(grace=5)


class TritonServer:
    """A tritonserver child process bound to loopback ports.

    >>> with TritonServer("/path/to/repo") as server:   # doctest: +SKIP
    ...     TritonClient(server.grpc_url).infer(...)

    Ports left as ``None`` are picked free on 127.0.0.1 at :meth:`start` (re-picked if
    another process wins the race for one).  ``work_dir`` (a temp dir when ``None``,
    removed on :meth:`stop`) receives the private backends copy and, unless ``log_path``
    is given, ``tritonserver.log`` (server stdout+stderr; after a failed start it is kept
    in the temp dir and its path is named in the error).

    Extras beyond the basic arguments: ``model_config_name`` (``--model-config-name``,
    e.g. "onnxruntime" on the NGC image), ``load_models`` (``--load-model`` in explicit
    mode), ``exit_timeout_s`` (``--exit-timeout-secs``), python backend shared-memory
    sizes, extra ``env``.
    """

    def __init__(
        self,
        model_repository: str | os.PathLike[str],
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        work_dir: str | os.PathLike[str] | None = None,
        model_control: str = "explicit",
        extra_args: Sequence[str] = (),
        *,
        host: str = _LOOPBACK,
        load_models: Iterable[str] = (),
        model_config_name: str | None = None,
        exit_timeout_s: int = 10,
        python_shm_default_bytes: int = 64 << 20,
        python_shm_growth_bytes: int = 64 << 20,
        env: dict[str, str] | None = None,
        installation: TritonInstallation | None = None,
        admin_key: str = "",
        allow_http: bool = True,
    ) -> None:
        if model_control not in _MODEL_CONTROL_MODES:
            raise ValueError(f"model_control must be one of {_MODEL_CONTROL_MODES}, got {model_control!r}")
        self.model_repository = Path(model_repository).resolve()
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self._ports_requested = (http_port, grpc_port, metrics_port)
        self._log_path_arg = Path(log_path) if log_path is not None else None
        self.log_path: Path | None = self._log_path_arg
        self._work_dir_arg = Path(work_dir) if work_dir is not None else None
        self.work_dir: Path | None = None
        self.model_control = model_control
        self.extra_args = tuple(extra_args)
        self.host = host
        self.load_models = tuple(load_models)
        self.model_config_name = model_config_name
        self.exit_timeout_s = int(exit_timeout_s)
        self.python_shm_default_bytes = int(python_shm_default_bytes)
        self.python_shm_growth_bytes = int(python_shm_growth_bytes)
        self._extra_env = dict(env or {})
        self.admin_key = admin_key
        self.allow_http = allow_http
        self._installation = installation
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh = None
        self._owns_work_dir = False
        self._log_start = 0
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def pgid(self) -> int | None:
        """Process group of the server and its python stubs (== pid: own session)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def grpc_url(self) -> str:
        """``host:port`` as tritonclient.grpc expects it (no scheme)."""
        if self.grpc_port is None:
            raise RuntimeError("server not started: grpc port not chosen yet")
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        if self.http_port is None:
            raise RuntimeError("server not started: http port not chosen yet")
        return f"{self.host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        if self.metrics_port is None:
            raise RuntimeError("server not started: metrics port not chosen yet")
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def process_group_pids(self, include_zombies: bool = False) -> list[int]:
        """Live PIDs of the server's process group (server + python backend stubs)."""
        if self._proc is None:
            return []
        return process_group_members(self._proc.pid, include_zombies=include_zombies)

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _startup_error_lines(self, limit: int = 10) -> list[str]:
        """Error-looking lines logged since the last launch (usage text can push them out of the tail)."""
        if self.log_path is None or not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as fh:
            fh.seek(self._log_start)
            text = fh.read().decode("utf-8", "replace")
        pattern = re.compile(r"^E\d{4} |unrecognized option|^error|: error|failed to", re.IGNORECASE)
        benign = ("CudaDriverHelper has not been initialized",)  # logged on every CPU-only start
        return [ln for ln in text.splitlines() if pattern.search(ln) and not any(b in ln for b in benign)][:limit]

    def _start_error(self, message: str) -> TritonStartError:
        return TritonStartError(message, self.log_tail(40), self._startup_error_lines())

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))

    # ------------------------------------------------------------------ lifecycle
    def _prepare_backends(self, inst: TritonInstallation) -> Path:
        assert self.work_dir is not None
        dst = self.work_dir / "backends"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(inst.backends_dir, dst, ignore=shutil.ignore_patterns("__pycache__", "triton_python_backend_stub"))
        stub_dst = dst / "python" / "triton_python_backend_stub"
        shutil.copy2(inst.stub, stub_dst)
        stub_dst.chmod(0o755)
        return dst

    def _env(self, inst: TritonInstallation) -> dict[str, str]:
        env = os.environ.copy()
        if inst.libs_dir is not None:
            old = env.get("LD_LIBRARY_PATH")
            env["LD_LIBRARY_PATH"] = str(inst.libs_dir) + (":" + old if old else "")
        env["PATH"] = str(inst.python_bin_dir) + os.pathsep + env.get("PATH", "")
        env.update(self._extra_env)
        return env

    def command(self, backends_dir: Path, binary: Path) -> list[str]:
        args = [
            str(binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends_dir}",
            f"--allow-http={'true' if self.allow_http else 'false'}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            f"--model-control-mode={self.model_control}",
            "--strict-readiness=true",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--log-verbose=0",
            # The python stub talks to the server through /dev/shm; bigger regions avoid
            # many 1 MiB growth steps for image batches.
            f"--backend-config=python,shm-default-byte-size={self.python_shm_default_bytes}",
            f"--backend-config=python,shm-growth-byte-size={self.python_shm_growth_bytes}",
        ]
        if self.model_config_name:
            args.append(f"--model-config-name={self.model_config_name}")
        if self.admin_key:
            # model control, shared-memory registration and the server's own settings need the key
            restricted = ",".join(RESTRICTED_PROTOCOLS)
            args.append(f"--grpc-restricted-protocol={restricted}:{ADMIN_KEY_HEADER}={self.admin_key}")
            if self.allow_http:
                args.append(f"--http-restricted-api={restricted}:{ADMIN_KEY_HEADER}={self.admin_key}")
        for name in self.load_models:
            args.append(f"--load-model={name}")
        args.extend(self.extra_args)
        return args

    def start(self, timeout: float = 120.0) -> TritonServer:
        """Start the server and block until it reports ready over gRPC.

        Raises :class:`TritonStartError` (with the last 40 log lines) if the process
        exits or is not ready within ``timeout`` seconds.
        """
        with self._lock:
            if self.is_running():
                return self
            if self._proc is not None:  # died on its own: reap it and its stubs first
                self._terminate(grace=0)
            inst = self._installation or find_tritonserver()
            if not self.model_repository.is_dir():
                raise FileNotFoundError(f"model repository {self.model_repository} does not exist")
            if self._work_dir_arg is not None:
                self.work_dir = self._work_dir_arg
                self.work_dir.mkdir(parents=True, exist_ok=True)
                self._owns_work_dir = False
            else:
                self.work_dir = Path(tempfile.mkdtemp(prefix="failurelens-triton-"))
                self._owns_work_dir = True
            self.log_path = self._log_path_arg if self._log_path_arg is not None else self.work_dir / "tritonserver.log"
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            backends = self._prepare_backends(inst)
            env = self._env(inst)

            auto_ports = any(p is None for p in self._ports_requested)
            attempts = 3 if auto_ports else 1
            for attempt in range(attempts):
                self._choose_ports()
                try:
                    self._launch(inst, backends, env)
                    self._wait_ready(timeout)
                    _LIVE_SERVERS.add(self)
                    return self
                except TritonStartError as exc:
                    logged = (exc.log_tail + "\n".join(exc.error_lines)).lower()
                    self._terminate(grace=5)
                    port_clash = "already in use" in logged
                    if auto_ports and port_clash and attempt + 1 < attempts:
                        continue  # another process grabbed a port between probe and bind
                    self._cleanup_work_dir(keep_log=True)
                    if self.log_path is not None and self.log_path.exists():
                        exc.args = (f"{exc.args[0]}\n(full log: {self.log_path})",)
                    raise
                except BaseException:
                    self._terminate(grace=5)
                    self._cleanup_work_dir(keep_log=True)
                    raise
            raise AssertionError("unreachable")

    def _choose_ports(self) -> None:
        want = [p is None for p in self._ports_requested]
        fresh = iter(_free_ports(sum(want), self.host if self.host not in ("0.0.0.0", "") else _LOOPBACK))
        self.http_port, self.grpc_port, self.metrics_port = (next(fresh) if w else p for p, w in zip(self._ports_requested, want))

    def _launch(self, inst: TritonInstallation, backends: Path, env: dict[str, str]) -> None:
        assert self.log_path is not None
        self._log_fh = open(self.log_path, "ab", buffering=0)
        self._log_fh.write(f"\n===== failurelens: starting tritonserver at {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n".encode())
        self._log_start = self._log_fh.tell()
        self._proc = subprocess.Popen(
            self.command(backends, inst.binary),
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(self.work_dir),
            start_new_session=True,  # own session + process group: stop() reaps the stubs too
            close_fds=True,
        )

    def _wait_ready(self, timeout: float) -> None:
        import tritonclient.grpc as grpcclient  # local import: keep module import light
        from tritonclient.utils import InferenceServerException

        assert self._proc is not None
        deadline = time.monotonic() + timeout
        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            while True:
                rc = self._proc.poll()
                if rc is not None:
                    raise self._start_error(f"tritonserver exited with code {rc} during startup")
                try:
                    if client.is_server_ready(client_timeout=1.0):
                        return
                except InferenceServerException:
                    pass
                if time.monotonic() > deadline:
                    raise self._start_error(f"tritonserver not ready after {timeout:.0f}s")
                time.sleep(0.1)
        finally:
            client.close()

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the server, wait up to ``grace`` s, then SIGKILL its whole process group.

        Returns only when no live process of the group (server, python stubs) is left.
        """
        with self._lock:
            _LIVE_SERVERS.discard(self)
            self._terminate(grace)
            self._cleanup_work_dir()

    def _stub_regions(self) -> set[str]:
        """The shared-memory regions of this server's python-backend stubs (named in their
        command lines), which a killed server leaves behind in /dev/shm."""
        regions: set[str] = set()
        if self._proc is None:
            return regions
        for pid in process_group_members(self._proc.pid, include_zombies=True):
            with contextlib.suppress(OSError):
                regions.update(_STUB_REGION.findall(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")))
        return regions

    def restart(self, timeout: float = 120.0) -> TritonServer:
        """Start again after a crash, on the same ports (clients keep their addresses), after
        reaping the dead server, killing its orphaned stubs and removing their shared memory."""
        with self._lock:
            self._ports_requested = (self.http_port, self.grpc_port, self.metrics_port)
            if self.is_running():
                return self
            self._terminate(grace=0)
            return self.start(timeout)

    def _terminate(self, grace: float) -> None:
        proc = self._proc
        if proc is None:
            return
        regions = self._stub_regions()
        pgid = proc.pid
        if proc.poll() is None:
            # Graceful: only the server gets SIGTERM, so it can unload models and let its
            # stubs finalize; then anything left in the group is killed.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Stubs normally exit with the server; whatever is left gets TERM, then KILL.
        deadline = time.monotonic() + 5.0
        sig = signal.SIGTERM
        while True:
            left = process_group_members(pgid)
            if not left:
                break
            if time.monotonic() > deadline:
                sig = signal.SIGKILL
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            if time.monotonic() > deadline + 5.0:
                raise RuntimeError(f"processes {left} of tritonserver group {pgid} survive SIGKILL")
            time.sleep(0.05)
        for region in regions:  # a clean stop removes them itself; a killed server does not
            with contextlib.suppress(OSError):
                (_SHM_DIR / region).unlink()
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def _cleanup_work_dir(self, keep_log: bool = False) -> None:
        """Remove a work dir we created.  Its log goes with it after a clean stop; after a
        failed start it is kept (moved to the temp dir) for post-mortems."""
        if self._owns_work_dir and self.work_dir is not None:
            if keep_log and self.log_path is not None and self.work_dir in self.log_path.parents and self.log_path.exists():
                kept = Path(tempfile.gettempdir()) / f"failurelens-tritonserver-{self.pid}.log"
                with contextlib.suppress(OSError):
                    shutil.move(str(self.log_path), kept)
                    self.log_path = kept
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self._owns_work_dir = False

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"TritonServer(repo={str(self.model_repository)!r}, grpc={self.host}:{self.grpc_port}, pid={self.pid}, {state})"
