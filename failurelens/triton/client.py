"""A small, typed wrapper around ``tritonclient.grpc``.

* every call has a client-side deadline (``timeout_s``, default ``default_timeout_s``);
* only gRPC ``UNAVAILABLE`` is retried, with exponential backoff that never sleeps past
  the deadline;
* every other failure becomes :class:`TritonInferenceError` carrying the gRPC status
  code (``grpc.StatusCode.DEADLINE_EXCEEDED``, ``INVALID_ARGUMENT``, ``NOT_FOUND``, ...).

Optional system shared memory (``use_shared_memory=True``) sends inputs of at least
``shm_threshold_bytes`` through ``/dev/shm`` instead of the gRPC message; it only works
when client and server share a host (the bundled server started by launcher.py).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from failurelens.errors import Error
from failurelens.triton.launcher import ADMIN_KEY_HEADER

__all__ = ["ADMIN_KEY_HEADER", "TritonClient", "TritonInferenceError"]

_log = logging.getLogger(__name__)

T = TypeVar("T")


class TritonInferenceError(Error):
    """A failed Triton call.

    ``code`` is the :class:`grpc.StatusCode` (``grpc.StatusCode.NOT_FOUND``, ...;
    ``UNKNOWN`` for failures raised client-side), ``code_name`` its name (``"NOT_FOUND"``).
    The constructor accepts either form. As a failurelens error it stands for UNAVAILABLE or
    DEADLINE_EXCEEDED when Triton answered so (the caller may retry), else INTERNAL.
    """

    def __init__(self, code: grpc.StatusCode | str, message: str) -> None:
        if isinstance(code, grpc.StatusCode):
            status = code
        else:
            status = getattr(grpc.StatusCode, str(code).rsplit(".", 1)[-1].upper(), grpc.StatusCode.UNKNOWN)
        super().__init__(message)
        self.code: grpc.StatusCode = status

    def __str__(self) -> str:
        return f"Triton call failed: [{self.code.name}] {self.message}"

    @property
    def canonical_code(self) -> str:  # type: ignore[override]
        return self.code.name if self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) else "INTERNAL"

    @property
    def code_name(self) -> str:
        return self.code.name

    @property
    def grpc_code(self) -> grpc.StatusCode:  # alias of ``code``
        return self.code


def _code_of(exc: InferenceServerException) -> str:
    status = exc.status() or ""
    # tritonclient stores str(grpc.StatusCode.X) == "StatusCode.X"; client-side errors have none.
    code = status.rsplit(".", 1)[-1] if status else "UNKNOWN"
    return code or "UNKNOWN"


class _ShmPool:
    """Reusable system shared-memory regions, one lease per in-flight request."""

    def __init__(self, client: TritonClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._free: list[tuple[str, Any, int]] = []
        self._all: list[tuple[str, Any, int]] = []

    def lease(self, nbytes: int, timeout_s: float) -> tuple[str, Any, int]:
        import tritonclient.utils.shared_memory as shm

        with self._lock:
            for i, region in enumerate(self._free):
                if region[2] >= nbytes:
                    return self._free.pop(i)
        size = max(nbytes, 1 << 20)
        name = f"failurelens-{uuid.uuid4().hex[:12]}"
        handle = shm.create_shared_memory_region(name, "/" + name, size)
        try:
            self._client._call(
                lambda t: self._client._grpc.register_system_shared_memory(
                    name, "/" + name, size, headers=self._client.admin_headers, client_timeout=t
                ),
                timeout_s,
            )
        except Exception:
            shm.destroy_shared_memory_region(handle)
            raise
        region = (name, handle, size)
        with self._lock:
            self._all.append(region)
        return region

    def release(self, region: tuple[str, Any, int]) -> None:
        with self._lock:
            if region in self._all:  # not forgotten/closed meanwhile
                self._free.append(region)

    def has_regions(self) -> bool:
        with self._lock:
            return bool(self._all)

    def forget(self) -> None:
        """Drop every region locally without asking the server (it no longer knows them)."""
        import tritonclient.utils.shared_memory as shm

        with self._lock:
            regions, self._all, self._free = self._all, [], []
        for _, handle, _ in regions:
            try:
                shm.destroy_shared_memory_region(handle)
            except Exception:
                pass

    def close(self) -> None:
        import tritonclient.utils.shared_memory as shm

        with self._lock:
            regions, self._all, self._free = self._all, [], []
        for name, handle, _ in regions:
            try:  # retried on UNAVAILABLE within the client's default deadline (a busy server can be slow)
                self._client._call(
                    lambda t, name=name: self._client._grpc.unregister_system_shared_memory(
                        name, headers=self._client.admin_headers, client_timeout=t
                    ),
                    None,
                )
            except Exception as exc:  # the server may be gone; its registrations go with it
                _log.warning("could not unregister shared-memory region %s from %s: %s", name, self._client.url, exc)
            try:
                shm.destroy_shared_memory_region(handle)
            except Exception as exc:
                _log.warning("could not destroy shared-memory region %s: %s", name, exc)


class TritonClient:
    """Thread-safe client for one Triton server (``url`` is ``host:port``, no scheme)."""

    #: monitoring hook: called after each inference call with (model, seconds, succeeded)
    on_request: Callable[[str, float, bool], None] | None = None

    def __init__(
        self,
        url: str,
        default_timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        *,
        use_shared_memory: bool = False,
        shm_threshold_bytes: int = 1 << 20,
        admin_key: str = "",
    ) -> None:
        if url.startswith(("grpc://", "http://")):
            url = url.split("://", 1)[1]
        self.url = url
        self.default_timeout_s = float(default_timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.use_shared_memory = use_shared_memory
        self.shm_threshold_bytes = int(shm_threshold_bytes)
        # reconnect quickly after a server restart (gRPC's default backoff grows to minutes)
        self._grpc = grpcclient.InferenceServerClient(
            url, channel_args=[("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 2000)]
        )
        self._shm = _ShmPool(self) if use_shared_memory else None
        #: the header of Triton's restricted protocols (model control, shared-memory registration)
        # (Triton reads a restricted protocol's gRPC header with the prefix "triton-grpc-protocol-")
        self.admin_headers = {f"triton-grpc-protocol-{ADMIN_KEY_HEADER}": admin_key} if admin_key else None

    # ------------------------------------------------------------------ core
    def _call(self, fn: Callable[[float], T], timeout_s: float | None) -> T:
        """Run ``fn(remaining_seconds)`` with retries on UNAVAILABLE until the deadline."""
        timeout = self.default_timeout_s if timeout_s is None else float(timeout_s)
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TritonInferenceError("DEADLINE_EXCEEDED", f"deadline of {timeout:.3f}s passed before the call")
            try:
                return fn(remaining)
            except InferenceServerException as exc:
                code = _code_of(exc)
                message = exc.message() or str(exc)
                if code == "UNAVAILABLE" and attempt < self.retries:
                    delay = self.backoff_s * (2**attempt)
                    left = deadline - time.monotonic()
                    if delay < left:  # never sleep past the deadline
                        time.sleep(delay)
                        attempt += 1
                        continue
                if code == "UNAVAILABLE" and attempt:
                    message = f"{message} (after {attempt + 1} attempts)"
                raise TritonInferenceError(code, message) from None

    def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
        timeout_s: float | None = None,
        *,
        model_version: str = "",
    ) -> dict[str, np.ndarray]:
        """Run one inference; returns ``{output name: array}`` for the requested outputs.

        ``timeout_s`` (default ``default_timeout_s``) bounds the whole call, retries included.
        """
        timeout = self.default_timeout_s if timeout_s is None else float(timeout_s)
        start = time.monotonic()
        deadline = start + timeout
        ok = False
        try:
            try:
                out = self._infer_once(model, inputs, outputs, deadline, model_version)
            except TritonInferenceError as exc:
                # A restarted server has forgotten our shared-memory registrations: drop them
                # and try once more (re-registering) within the same deadline.
                if self._shm is None or not self._shm.has_regions() or "shared memory" not in exc.message.lower():
                    raise
                self._shm.forget()
                out = self._infer_once(model, inputs, outputs, deadline, model_version)
            ok = True
            return out
        finally:
            if self.on_request is not None:
                self.on_request(model, time.monotonic() - start, ok)

    def _infer_once(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str], deadline: float, model_version: str
    ) -> dict[str, np.ndarray]:
        leases = []
        try:
            infer_inputs = []
            for name, value in inputs.items():
                arr = np.asarray(value)
                if arr.dtype == np.object_ or arr.dtype.kind in "SU":
                    dtype = "BYTES"
                else:
                    arr = np.ascontiguousarray(arr)
                    dtype = np_to_triton_dtype(arr.dtype)
                item = grpcclient.InferInput(name, list(arr.shape), dtype)
                if self._shm is not None and dtype != "BYTES" and arr.nbytes >= self.shm_threshold_bytes:
                    import tritonclient.utils.shared_memory as shm

                    region = self._shm.lease(arr.nbytes, deadline - time.monotonic())
                    leases.append(region)
                    shm.set_shared_memory_region(region[1], [arr])
                    item.set_shared_memory(region[0], arr.nbytes)
                else:
                    item.set_data_from_numpy(arr)
                infer_inputs.append(item)
            requested = [grpcclient.InferRequestedOutput(n) for n in outputs]
            result = self._call(
                lambda t: self._grpc.infer(model, infer_inputs, model_version=model_version, outputs=requested, client_timeout=t),
                deadline - time.monotonic(),
            )
            return {n: result.as_numpy(n) for n in outputs}
        finally:
            if self._shm is not None:
                for region in leases:
                    self._shm.release(region)

    # ------------------------------------------------------------------ management
    def load_model(self, name: str, timeout_s: float | None = None, *, config: str | None = None) -> None:
        """Load (or reload) a model in explicit model-control mode."""
        self._call(lambda t: self._grpc.load_model(name, config=config, headers=self.admin_headers, client_timeout=t), timeout_s)

    def unload_model(self, name: str, timeout_s: float | None = None, *, wait: bool = True) -> None:
        """Unload a model; with ``wait`` poll until it is no longer ready."""
        timeout = self.default_timeout_s if timeout_s is None else float(timeout_s)
        deadline = time.monotonic() + timeout
        self._call(lambda t: self._grpc.unload_model(name, headers=self.admin_headers, client_timeout=t), timeout)
        while wait and self.is_model_ready(name, timeout_s=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                raise TritonInferenceError("DEADLINE_EXCEEDED", f"model {name!r} still ready {timeout:.1f}s after unload")
            time.sleep(0.05)

    def is_model_ready(self, name: str, version: str = "", timeout_s: float | None = None) -> bool:
        return bool(self._call(lambda t: self._grpc.is_model_ready(name, version, client_timeout=t), timeout_s))

    def is_server_ready(self, timeout_s: float | None = None) -> bool:
        try:
            return bool(self._call(lambda t: self._grpc.is_server_ready(client_timeout=t), timeout_s))
        except TritonInferenceError:
            return False

    def wait_ready(self, timeout: float = 30.0, model: str | None = None) -> None:
        """Block until the server (and ``model``, if given) is ready, else raise UNAVAILABLE."""
        deadline = time.monotonic() + timeout
        last = "not ready"
        while True:
            left = deadline - time.monotonic()
            try:
                if self._grpc.is_server_ready(client_timeout=max(0.05, min(1.0, left))):
                    if model is None or self._grpc.is_model_ready(model, client_timeout=max(0.05, min(1.0, left))):
                        return
                    last = f"model {model!r} not ready"
                else:
                    last = "server not ready"
            except InferenceServerException as exc:
                last = f"[{_code_of(exc)}] {exc.message()}"
            if time.monotonic() >= deadline:
                raise TritonInferenceError("UNAVAILABLE", f"{self.url}: not ready after {timeout:.1f}s ({last})")
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def model_metadata(self, name: str, version: str = "", timeout_s: float | None = None) -> dict[str, Any]:
        return self._call(lambda t: self._grpc.get_model_metadata(name, version, as_json=True, client_timeout=t), timeout_s)

    def model_config(self, name: str, version: str = "", timeout_s: float | None = None) -> dict[str, Any]:
        return self._call(lambda t: self._grpc.get_model_config(name, version, as_json=True, client_timeout=t), timeout_s)["config"]

    def max_batch_size(self, name: str, want: int) -> int:
        """``want`` capped by the model's ``max_batch_size`` (a model without batching takes 1)."""
        cfg = self.model_config(name)
        cfg = cfg.get("config", cfg)
        mbs = int(cfg.get("max_batch_size", 0) or 0)
        return max(1, min(want, mbs)) if mbs else 1

    def inference_statistics(self, name: str = "", version: str = "", timeout_s: float | None = None) -> dict[str, Any]:
        """Triton's per-model statistics (``inference_count``, ``execution_count``, ...)."""
        return self._call(lambda t: self._grpc.get_inference_statistics(name, version, as_json=True, client_timeout=t), timeout_s)

    def repository_index(self, timeout_s: float | None = None) -> list[dict[str, Any]]:
        res = self._call(lambda t: self._grpc.get_model_repository_index(headers=self.admin_headers, as_json=True, client_timeout=t), timeout_s)
        return list(res.get("models", []))

    def close(self) -> None:
        if self._shm is not None:
            self._shm.close()
        self._grpc.close()

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
