"""The services of failurelens, in one table.

Each entry names a service (the process name, ``python -m <module>``), the gRPC service it hosts,
its generated client stub, its port offset under a fixed base port and a one-line summary. The
local stack, the Python client, the CLI and the compose-consistency test all read this table;
adding a service is one entry here plus its module under ``services/``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from failurelens.v1 import (
    captioning_pb2_grpc,
    embedding_pb2_grpc,
    generation_pb2_grpc,
    pipeline_pb2_grpc,
    registry_pb2_grpc,
    retraining_pb2_grpc,
    slice_discovery_pb2_grpc,
)

#: Offsets under a fixed ``--base-port``: services at BASE+offset, their /metrics at
#: BASE+METRICS_OFFSET+offset, Triton's gRPC/HTTP/metrics at BASE+TRITON_OFFSET+0..2.
METRICS_OFFSET = 50
TRITON_OFFSET = 100


@dataclasses.dataclass(frozen=True)
class Service:
    name: str
    grpc_service: str
    stub: type
    port_offset: int
    summary: str

    @property
    def module(self) -> str:
        """The service's module (``python -m`` runs it; its ``build`` binds the servicer)."""
        return f"failurelens.services.{self.name}"

    def build(self) -> Any:
        """The service module's ``build(ctx) -> [Binding]`` (imports the server side)."""
        return importlib.import_module(self.module).build


SERVICES: tuple[Service, ...] = (
    Service("registry", "failurelens.v1.Registry", registry_pb2_grpc.RegistryStub, 0, "datasets and models (ONNX into Triton)"),
    Service("embedding", "failurelens.v1.Embedding", embedding_pb2_grpc.EmbeddingStub, 1, "models over datasets through Triton; text embeddings"),
    Service(
        "slice_discovery",
        "failurelens.v1.SliceDiscovery",
        slice_discovery_pb2_grpc.SliceDiscoveryStub,
        2,
        "failure trees, failure directions, visual evidence, debug splits",
    ),
    Service("captioning", "failurelens.v1.Captioning", captioning_pb2_grpc.CaptioningStub, 3, "captions of failure modes, backgrounds"),
    Service("generation", "failurelens.v1.Generation", generation_pb2_grpc.GenerationStub, 4, "targeted synthetic images"),
    Service("retraining", "failurelens.v1.Retraining", retraining_pb2_grpc.RetrainingStub, 5, "linear-head retraining on frozen features"),
    Service("pipeline", "failurelens.v1.Pipeline", pipeline_pb2_grpc.PipelineStub, 6, "the whole workflow as one job"),
)

BY_NAME = {s.name: s for s in SERVICES}
NAMES = tuple(BY_NAME)


def ports(base_port: int) -> dict[str, tuple[int, int]]:
    """(service port, metrics port) of every service under a fixed base port."""
    return {s.name: (base_port + s.port_offset, base_port + METRICS_OFFSET + s.port_offset) for s in SERVICES}
