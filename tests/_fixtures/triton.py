"""Pytest fixtures around the real bundled ``tritonserver`` (no mocks).

Use from a test module or a conftest::

    from tests._fixtures.triton import triton_server, triton_client, triton_repo  # noqa: F401

* ``triton_server`` (session): a started :class:`~failurelens.triton.launcher.TritonServer`
  in explicit model-control mode over an empty repository.  Write models with
  ``failurelens.triton.repository.write_model(triton_server.model_repository, ...)`` and
  load them with the client.  Tests should unload what they load.
* ``triton_repo`` (session): ``Path`` of that repository.
* ``triton_client`` (session): a :class:`~failurelens.triton.client.TritonClient` on it.

The server is shared even if this module is imported under two names (``tests._fixtures``
and ``_fixtures``) or registered both as a plugin and by import: the instance is cached
on the pytest config object.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from failurelens.triton.client import TritonClient
from failurelens.triton.launcher import TritonServer

_SERVER_ATTR = "_failurelens_triton_server"


@pytest.fixture(scope="session")
def triton_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    cached = getattr(request.config, _SERVER_ATTR, None)
    if cached is not None:
        yield cached
        return
    base = tmp_path_factory.mktemp("triton")
    repo = base / "repo"
    repo.mkdir()
    server = TritonServer(repo, work_dir=base / "work", log_path=base / "tritonserver.log", model_control="explicit")
    server.start(timeout=120)
    setattr(request.config, _SERVER_ATTR, server)
    try:
        yield server
    finally:
        setattr(request.config, _SERVER_ATTR, None)
        server.stop()


@pytest.fixture(scope="session")
def triton_repo(triton_server: TritonServer) -> Path:
    return triton_server.model_repository


@pytest.fixture(scope="session")
def triton_client(triton_server: TritonServer) -> Iterator[TritonClient]:
    client = TritonClient(triton_server.grpc_url, default_timeout_s=60)
    try:
        yield client
    finally:
        client.close()
