"""Calls from one service to another (the generation service registers its images with the
registry; the pipeline calls every service).

A peer's address comes from ``FAILURELENS_PEERS`` (``registry=host:port,embedding=host:port``,
as in the compose file) or, on the local stack, from the port file the peer wrote when it
started (``<state_dir>/ports/<name>``), read when it is first needed, so services may start in
any order and keep working when a peer restarts on its port. Calls carry the service's bearer
token and the caller's remaining deadline, over TLS when the service has the peers' CA
(``FAILURELENS_TLS_CA_FILE``), showing its own certificate (mutual TLS).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import grpc

from failurelens import errors, topology
from failurelens.runtime.config import ServiceConfig
from failurelens.transport import open_channel


class _Token(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._md = (("authorization", f"Bearer {token}"),) if token else ()

    def intercept_unary_unary(self, continuation: Any, client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(_Details(client_call_details, self._md), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(_Details(client_call_details, self._md), request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, d: grpc.ClientCallDetails, md: tuple[tuple[str, str], ...]) -> None:
        self.method, self.timeout, self.credentials = d.method, d.timeout, d.credentials
        self.metadata = tuple(d.metadata or ()) + md
        self.wait_for_ready = getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


class Peers:
    """Stubs of the other services of the stack."""

    def __init__(self, config: ServiceConfig) -> None:
        self._explicit = dict(item.split("=", 1) for item in config.peers.split(",") if "=" in item)
        self._ports = Path(config.state_dir) / "ports"
        self._token = config.auth_token
        self._tls = config.tls()
        self._channels: dict[str, tuple[str, grpc.Channel]] = {}
        self._lock = threading.Lock()

    def address(self, name: str) -> str:
        if name in self._explicit:
            return self._explicit[name]
        port_file = self._ports / name
        try:
            port = port_file.read_text().split()[0]
        except (OSError, IndexError):
            raise errors.Unavailable(
                f"no address for the {name} service: set FAILURELENS_PEERS (name=host:port,...) or start the local stack"
            ) from None
        return f"127.0.0.1:{port}"

    def stub(self, name: str) -> Any:
        """The generated stub of service ``name`` (see :data:`failurelens.topology.SERVICES`)."""
        address = self.address(name)
        with self._lock:
            known = self._channels.get(name)
            if known is None or known[0] != address:
                if known is not None:
                    known[1].close()
                channel = grpc.intercept_channel(
                    open_channel(address, self._tls, options=[("grpc.max_reconnect_backoff_ms", 2000)]), _Token(self._token)
                )
                self._channels[name] = known = (address, channel)
        return topology.BY_NAME[name].stub(known[1])

    def close(self) -> None:
        with self._lock:
            for _, channel in self._channels.values():
                channel.close()
            self._channels.clear()
