"""A real S3-protocol server on loopback: moto's ``ThreadedMotoServer`` in a child process.

The child keeps the server's memory out of the test process (so tests can measure their own
memory with tracemalloc) and exits when the parent closes its stdin or dies.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

ACCESS_KEY = "failurelens-test-access"
SECRET_KEY = "failurelens-test-secret"

#: (endpoint "127.0.0.1:PORT", access key, secret key)
S3Endpoint = tuple[str, str, str]


@contextlib.contextmanager
def s3_server(start_timeout: float = 60.0) -> Iterator[S3Endpoint]:
    """Run a moto S3 server on 127.0.0.1 (a free port) for the duration of the block."""
    with tempfile.TemporaryFile() as log:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        env["PYTHONUNBUFFERED"] = "1"
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )
        try:
            assert proc.stdout is not None
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                ready = sel.select(start_timeout)
            line = proc.stdout.readline().decode().strip() if ready else ""
            if not line.isdigit():
                proc.kill()
                proc.wait()
                log.seek(0)
                raise RuntimeError(f"moto S3 server did not start (got {line!r}):\n{log.read().decode(errors='replace')[-4000:]}")
            yield f"127.0.0.1:{line}", ACCESS_KEY, SECRET_KEY
        finally:
            if proc.stdin is not None:
                proc.stdin.close()  # the child stops when its stdin closes
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """(endpoint, access_key, secret_key) of a moto S3 server shared by the session."""
    with s3_server() as endpoint:
        yield endpoint


def _serve() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    try:
        sys.stdin.read()  # until the parent closes the pipe (or dies)
    finally:
        server.stop()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
