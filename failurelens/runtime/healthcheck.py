"""A container's health probe: ``python -m failurelens.runtime.healthcheck`` exits 0 when the
service configured by this environment (``FAILURELENS_*``, as the service itself reads it) answers
grpc.health.v1 SERVING on its port, over TLS with its own certificate when it serves TLS."""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from failurelens.runtime.config import ServiceConfig
from failurelens.transport import Tls, open_channel


def probe(config: ServiceConfig, timeout: float = 3.0) -> int:
    """grpc.health.v1 status of the service on this host (1 SERVING); raises grpc.RpcError."""
    tls = None
    if config.tls_cert_file:
        # the CA that signed its certificate; its own certificate as the client one (mutual TLS)
        ca = config.tls_client_ca_file or config.tls_ca_file
        tls = Tls(ca_file=ca, cert_file=config.tls_cert_file, key_file=config.tls_key_file)
    with open_channel(f"127.0.0.1:{config.port}", tls) as channel:
        return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout).status)


def main() -> int:
    try:
        status = probe(ServiceConfig.from_env())
    except grpc.RpcError as exc:
        print(f"unhealthy: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    if status != health_pb2.HealthCheckResponse.SERVING:
        print(f"unhealthy: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
