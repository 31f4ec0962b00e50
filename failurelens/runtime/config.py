"""Service configuration from environment variables, overridable by command-line flags.

Every setting has an environment variable ``FAILURELENS_<NAME>`` and, except the secrets, a flag
``--<name>``. Secrets (:data:`SECRETS`: the bearer token, Triton's key) come only from the
environment or from a file named by ``FAILURELENS_<NAME>_FILE`` (a compose/Kubernetes secret), never
from the command line, where every user of the host could read them; they are never logged.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from failurelens.transport import Tls

#: settings read only from the environment or a file (``FAILURELENS_<NAME>_FILE``), never from flags
SECRETS = ("auth_token", "triton_key")


@dataclasses.dataclass
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port (printed and written to the port file)
    metrics_port: int = 0  # 0: pick a free port; -1: no /metrics endpoint
    auth_token: str = ""  # secret: this service's own token (role write; it calls the other services with it); empty: auth off
    auth_tokens_file: str = ""  # more bearer tokens with roles, one "ROLE TOKEN" a line (roles: read, write); '#' starts a comment
    rate_limit_per_second: float = 0.0  # calls a second per client (its token, else its address); 0: no limit
    rate_limit_burst: int = 0  # calls a client may make at once above the rate (0: one second's worth)
    tls_cert_file: str = ""  # serve TLS with this certificate chain (PEM) and tls_key_file; also the certificate shown to peers
    tls_key_file: str = ""
    tls_client_ca_file: str = ""  # mutual TLS: require client certificates signed by this CA
    tls_ca_file: str = ""  # the CA of the other services' certificates (calls to peers over TLS)
    max_receive_message_bytes: int = 4 * 1024 * 1024
    max_send_message_bytes: int = 16 * 1024 * 1024
    grace_seconds: float = 10.0
    log_level: str = "INFO"
    store: str = ""  # artifact store URI (see failurelens.store.open_store); empty: FAILURELENS_STORE or ./.state/store
    triton_url: str = "127.0.0.1:8001"
    peers: str = ""  # addresses of the other services, "registry=host:port,..." (local stack: its port files)
    triton_key: str = ""  # secret: the key of Triton's restricted protocols (model control, shared memory); the stack generates it
    triton_shared_memory: int = 0  # 1: send large inputs to Triton through system shared memory (same host only)
    triton_repository: str = ""  # local Triton model repository folder the registry writes into
    state_dir: str = ".state"
    port_file: str = ""  # if set, "port metrics_port" is written here once serving
    workers: int = 2  # threads for blocking job work
    discovery_jobs: int = 0  # worker processes for per-class discovery fitting (0: all cores)
    world_config: str = ""  # generation: the world config JSON of the "world" generator (empty: the built-in default world)
    diffusers_pipelines: str = ""  # generation: diffusers pipelines from local folders, "name=/path,..." (e.g. sd15=/models/sd15)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServiceConfig:
        env = os.environ if environ is None else environ
        cfg = cls()
        for f in dataclasses.fields(cls):
            raw = env.get(f"FAILURELENS_{f.name.upper()}")
            if raw is not None:
                setattr(cfg, f.name, _convert(f.type, raw))
        for name in SECRETS:
            file = env.get(f"FAILURELENS_{name.upper()}_FILE")
            if not getattr(cfg, name) and file:
                setattr(cfg, name, Path(file).read_text().strip())
        return cfg

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, prog: str | None = None) -> ServiceConfig:
        cfg = cls.from_env()
        ap = argparse.ArgumentParser(prog=prog, allow_abbrev=False, description="failurelens service (every flag also reads FAILURELENS_<NAME>)")
        for f in dataclasses.fields(cls):
            if f.name in SECRETS:
                continue
            ap.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=getattr(cfg, f.name), type=_argtype(f.type))
        ns = ap.parse_args(argv)
        return dataclasses.replace(cfg, **vars(ns))

    def tls(self) -> Tls:
        """This service's TLS settings, as a server and as a client of its peers."""
        return Tls(ca_file=self.tls_ca_file, cert_file=self.tls_cert_file, key_file=self.tls_key_file, client_ca_file=self.tls_client_ca_file)

    def resolved_triton_repository(self) -> Path:
        return Path(self.triton_repository) if self.triton_repository else Path(self.state_dir) / "triton_repository"


def _argtype(t: object):
    return {"int": int, "float": float}.get(str(t), str)


def _convert(t: object, raw: str) -> object:
    return _argtype(t)(raw)
