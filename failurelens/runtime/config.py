"""Service configuration from environment variables, overridable by command-line flags.

Every setting has an environment variable ``FAILURELENS_<NAME>`` and a flag ``--<name>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path


@dataclasses.dataclass
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port (printed and written to the port file)
    metrics_port: int = 0  # 0: pick a free port; -1: no /metrics endpoint
    auth_token: str = ""  # empty: auth off
    max_receive_message_bytes: int = 4 * 1024 * 1024
    max_send_message_bytes: int = 16 * 1024 * 1024
    grace_seconds: float = 10.0
    log_level: str = "INFO"
    store: str = ""  # artifact store URI (see failurelens.store.open_store); empty: FAILURELENS_STORE or ./.state/store
    triton_url: str = "127.0.0.1:8001"
    peers: str = ""  # addresses of the other services, "registry=host:port,..." (local stack: its port files)
    triton_key: str = ""  # the key of Triton's restricted protocols (model control, shared memory); the stack generates it
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
        if not cfg.auth_token and env.get("FAILURELENS_AUTH_TOKEN_FILE"):
            cfg.auth_token = Path(env["FAILURELENS_AUTH_TOKEN_FILE"]).read_text().strip()
        return cfg

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, prog: str | None = None) -> ServiceConfig:
        cfg = cls.from_env()
        ap = argparse.ArgumentParser(prog=prog, description="failurelens service (every flag also reads FAILURELENS_<NAME>)")
        for f in dataclasses.fields(cls):
            ap.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=getattr(cfg, f.name), type=_argtype(f.type))
        ns = ap.parse_args(argv)
        return cls(**vars(ns))

    def resolved_triton_repository(self) -> Path:
        return Path(self.triton_repository) if self.triton_repository else Path(self.state_dir) / "triton_repository"


def _argtype(t: object):
    return {"int": int, "float": float}.get(str(t), str)


def _convert(t: object, raw: str) -> object:
    return _argtype(t)(raw)
