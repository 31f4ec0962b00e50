"""Server boot shared by every failurelens service.

``serve(name, build, config)`` starts an asyncio gRPC server with: the service's servicers, the
Jobs service, grpc.health.v1 (per-service and overall status), server reflection, explicit
message-size limits, the metrics, auth and error interceptors, a Prometheus ``/metrics`` endpoint, and
graceful shutdown on SIGTERM/SIGINT (health NOT_SERVING, stop with grace, cancel leftover jobs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from failurelens.runtime.auth import RateLimiter, TokenTable, read_only_methods
from failurelens.runtime.config import ServiceConfig
from failurelens.runtime.interceptors import GrpcMetrics, interceptors
from failurelens.runtime.jobs import JobRegistry
from failurelens.runtime.telemetry import Telemetry
from failurelens.v1 import jobs_pb2, jobs_pb2_grpc

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Binding:
    """A servicer and how to add it: ``add(servicer, server)`` from the generated *_pb2_grpc."""

    servicer: Any
    add: Callable[[Any, grpc.aio.Server], None]
    descriptor: ServiceDescriptor
    #: called at shutdown, after the server stopped taking calls (stop background work)
    close: Callable[[], None] | None = None


@dataclasses.dataclass
class ServiceContext:
    """What a service's build function gets."""

    name: str
    config: ServiceConfig
    jobs: JobRegistry
    #: the server's Prometheus registry (served on /metrics): a service adds its own series here
    metrics: CollectorRegistry = dataclasses.field(default_factory=CollectorRegistry)
    #: the series of what the server's work moves (Triton calls, images, bytes written, classes fitted)
    telemetry: Telemetry = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.telemetry = Telemetry(self.metrics)


Build = Callable[[ServiceContext], Sequence[Binding]]


class Server:
    def __init__(self, name: str, build: Build, config: ServiceConfig) -> None:
        self.name = name
        self.config = config
        self.metrics_registry = CollectorRegistry()
        self.jobs = JobRegistry(name, max_workers=max(1, config.workers), metrics=self.metrics_registry)
        self._metrics = GrpcMetrics(self.metrics_registry)
        self.health = health.aio.HealthServicer()
        self._build = build
        self._server: grpc.aio.Server | None = None
        self._http: Any = None
        self.port = 0
        self.metrics_port = 0
        self.service_names: list[str] = []
        self._bindings: list[Binding] = []

    async def start(self) -> None:
        cfg = self.config
        options = [
            ("grpc.max_receive_message_length", cfg.max_receive_message_bytes),
            ("grpc.max_send_message_length", cfg.max_send_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        bindings = list(self._build(ServiceContext(self.name, cfg, self.jobs, self.metrics_registry)))
        bindings.append(Binding(self.jobs, jobs_pb2_grpc.add_JobsServicer_to_server, jobs_pb2.DESCRIPTOR.services_by_name["Jobs"]))
        self._bindings = bindings
        tokens = TokenTable.from_settings(cfg.auth_token, cfg.auth_tokens_file)
        limiter = RateLimiter(cfg.rate_limit_per_second, cfg.rate_limit_burst) if cfg.rate_limit_per_second > 0 else None
        chain = interceptors(self._metrics, tokens, read_only_methods(b.descriptor for b in bindings), limiter, cfg.auth_token)
        server = grpc.aio.server(interceptors=chain, options=options)
        for b in bindings:
            b.add(b.servicer, server)
            self.service_names.append(b.descriptor.full_name)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            self.service_names + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
        )
        credentials = cfg.tls().server_credentials()
        address = f"{cfg.host}:{cfg.port}"
        self.port = server.add_insecure_port(address) if credentials is None else server.add_secure_port(address, credentials)
        if self.port == 0:
            raise RuntimeError(f"could not bind {cfg.host}:{cfg.port}")
        await server.start()
        self._server = server
        if cfg.metrics_port >= 0:
            self._http, _ = start_http_server(cfg.metrics_port, addr=cfg.host, registry=self.metrics_registry)
            self.metrics_port = self._http.server_port
        for svc in self.service_names:
            await self.health.set(svc, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        if cfg.port_file:
            tmp = Path(cfg.port_file + ".tmp")
            tmp.write_text(f"{self.port} {self.metrics_port}\n")
            os.replace(tmp, cfg.port_file)
        log.info(
            "%s serving on %s:%d (metrics :%d, auth %s, %s, rate limit %s)",
            self.name,
            cfg.host,
            self.port,
            self.metrics_port,
            "off" if tokens is None else "on",
            "plaintext" if credentials is None else ("mutual TLS" if cfg.tls_client_ca_file else "TLS"),
            f"{cfg.rate_limit_per_second:g}/s per client" if limiter else "off",
        )

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING first (load balancers drain), then stop with grace, then cancel jobs."""
        if self._server is None:
            return
        grace = self.config.grace_seconds if grace is None else grace
        log.info("%s shutting down (grace %.1fs)", self.name, grace)
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace)
        self.jobs.cancel_all()
        self.jobs.executor.shutdown(wait=False, cancel_futures=True)
        for b in self._bindings:
            if b.close is not None:
                b.close()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self._server = None

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


def setup_logging(name: str, level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def _serve(name: str, build: Build, config: ServiceConfig) -> None:
    server = Server(name, build, config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(name: str, build: Build, argv: Sequence[str] | None = None) -> None:
    """Entry point of a service process: config from env + flags, serve until SIGTERM/SIGINT."""
    config = ServiceConfig.from_args(argv, prog=f"failurelens-{name}")
    setup_logging(name, config.log_level)
    asyncio.run(_serve(name, build, config))
