"""Python client of the failurelens services, for MLOps pipelines.

    from failurelens.clients import FailureLensClient
    fl = FailureLensClient.from_stack(".state")            # or FailureLensClient({"registry": "host:port", ...})
    ds = fl.register_dataset(name="pets", manifest_uri="s3://bucket/pets/manifest.csv", class_names=[...])
    emb = fl.embed(dataset_id="pets", model_id="resnet", on_progress=print)

The raw generated stubs are there too (``fl.registry``, ``fl.embedding``, ...); every call carries
the bearer token and a default deadline. Streaming jobs are consumed by :meth:`run_job`, which
passes each Progress to a callback and returns the final result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from failurelens import topology
from failurelens.transport import Tls, open_channel
from failurelens.v1 import jobs_pb2_grpc
from failurelens.workflow.calls import DETAIL_TYPES, FailureLensError, ProgressCallback, ServiceCalls, describe_error, unpack_details

__all__ = ["DETAIL_TYPES", "FailureLensClient", "Tls", "token_from_env", "FailureLensError", "ProgressCallback", "describe_error", "unpack_details"]


class _CallDefaults(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the bearer token and a default deadline to every call."""

    def __init__(self, token: str | None, timeout: float | None) -> None:
        self._md = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout

    def _details(self, d: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        md = tuple(d.metadata or ()) + self._md
        timeout = d.timeout if d.timeout is not None else self._timeout
        return _Details(d.method, timeout, md, d.credentials, getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


def token_from_env() -> str | None:
    """``FAILURELENS_AUTH_TOKEN``, else the contents of the file ``FAILURELENS_AUTH_TOKEN_FILE`` names."""
    if os.environ.get("FAILURELENS_AUTH_TOKEN"):
        return os.environ["FAILURELENS_AUTH_TOKEN"]
    file = os.environ.get("FAILURELENS_AUTH_TOKEN_FILE")
    return Path(file).read_text().strip() or None if file else None


class FailureLensClient(ServiceCalls):
    """One channel per service named in ``addresses`` (see :data:`failurelens.topology.SERVICES`),
    each with its generated stub as an attribute of the service's name."""

    def __init__(
        self,
        addresses: Mapping[str, str],
        token: str | None = None,
        timeout: float | None = 600.0,
        max_message_bytes: int = 16 * 1024 * 1024,
        tls: Tls | None = None,
    ) -> None:
        """``token``: the bearer token (default: ``FAILURELENS_AUTH_TOKEN``, else the file named by
        ``FAILURELENS_AUTH_TOKEN_FILE``). ``tls``: the CA of the servers' certificates and, for mutual
        TLS, this client's certificate (default: ``FAILURELENS_TLS_*``; plaintext when no CA is set)."""
        self.addresses = dict(addresses)
        self.token = token if token is not None else token_from_env()
        self.tls = tls if tls is not None else Tls.from_env()
        self._channels: dict[str, grpc.Channel] = {}
        opts = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # reconnect within seconds when a service comes back (the stack restarts crashed ones)
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        defaults = _CallDefaults(self.token, timeout)
        for name, addr in self.addresses.items():
            self._channels[name] = grpc.intercept_channel(open_channel(addr, self.tls, options=opts), defaults)
        self._stubs = {s.name: s.stub(self._channels[s.name]) for s in topology.SERVICES if s.name in self._channels}
        self.store_uri: str = ""

    @classmethod
    def from_stack(cls, state_dir: str | os.PathLike[str] = ".state", **kw: Any) -> FailureLensClient:
        path = Path(state_dir) / "stack.json"
        if not path.exists():
            raise FileNotFoundError(f"no running stack recorded in {path}; start one with `failurelens up`")
        rec = json.loads(path.read_text())
        if rec.get("tls_ca_file") and "tls" not in kw and not Tls.from_env().dials_tls:
            kw["tls"] = Tls(ca_file=rec["tls_ca_file"])
        client = cls({n: s["address"] for n, s in rec["services"].items()}, **kw)
        client.store_uri = rec.get("store", "")
        return client

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()

    def __enter__(self) -> FailureLensClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stub(self, name: str) -> Any:
        try:
            return self._stubs[name]
        except KeyError:
            raise FailureLensError.local(grpc.StatusCode.FAILED_PRECONDITION, f"this client has no address for the {name} service") from None

    def health(self, service: str, timeout: float = 3.0) -> str:
        resp = health_pb2_grpc.HealthStub(self._channels[service]).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    def jobs(self, service: str) -> jobs_pb2_grpc.JobsStub:
        return jobs_pb2_grpc.JobsStub(self._channels[service])
