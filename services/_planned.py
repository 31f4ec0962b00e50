"""Services whose API is defined but whose methods land with later work: every RPC answers
UNIMPLEMENTED with a note, while health, reflection, metrics and Jobs work as everywhere."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from failurelens.runtime import Binding, ServiceContext, unimplemented


def planned(pb2: ModuleType, pb2_grpc: ModuleType, service: str, note: str) -> Callable[[ServiceContext], list[Binding]]:
    descriptor = pb2.DESCRIPTOR.services_by_name[service]
    base = getattr(pb2_grpc, f"{service}Servicer")
    add = getattr(pb2_grpc, f"add_{service}Servicer_to_server")

    def build(ctx: ServiceContext) -> list[Binding]:
        return [Binding(unimplemented(descriptor, base, note), add, descriptor)]

    return build
