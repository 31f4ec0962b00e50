"""Run a failurelens runtime Server in a background thread (real gRPC on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from failurelens.runtime import Server, ServiceConfig
from failurelens.runtime.server import Build


class ThreadedServer:
    def __init__(self, name: str, build: Build, config: ServiceConfig) -> None:
        self.server = Server(name, build, config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ThreadedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        return self

    @property
    def address(self) -> str:
        return f"{self.server.config.host}:{self.server.port}"

    def stop(self, grace: float = 1.0) -> None:
        if self.server._server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(grace), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@contextlib.contextmanager
def running(name: str, build: Build, **config: object) -> Iterator[ThreadedServer]:
    cfg = ServiceConfig(**{"port": 0, "metrics_port": 0, **config})  # type: ignore[arg-type]
    ts = ThreadedServer(name, build, cfg).start()
    try:
        yield ts
    finally:
        ts.stop()
