"""Who may call what: bearer tokens with roles, and a per-client rate limit.

Two roles. ``read`` may call the methods the protos mark ``option idempotency_level =
NO_SIDE_EFFECTS`` (Get*, List*, WatchRun, ...: they change nothing), server reflection and health;
``write`` may call everything. A service's own token (``FAILURELENS_AUTH_TOKEN``) has role write:
the services call each other with it. More tokens come from ``FAILURELENS_AUTH_TOKENS_FILE``, one
``ROLE TOKEN`` a line. Tokens are compared in constant time against every known token (no early
exit, so timing tells nothing about which or how much of one matched) and never logged: a principal
is named by its role and line number only.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import time
from collections.abc import Iterable
from pathlib import Path

from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions

from failurelens import errors

READ, WRITE = "read", "write"
ROLES = (READ, WRITE)
#: methods every authenticated caller may use, whatever its role (they change nothing)
ALWAYS_READ = frozenset(
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"}
)


@dataclasses.dataclass(frozen=True)
class Principal:
    """An authenticated caller: its role, a loggable name (never the token) and whether it is the
    stack's own service token."""

    role: str
    name: str
    internal: bool = False


class TokenTable:
    """The tokens a server accepts, each with its role."""

    def __init__(self, entries: Iterable[tuple[str, str, Principal]]) -> None:
        self._entries = [(token.encode(), principal) for _, token, principal in entries]

    @classmethod
    def from_settings(cls, own_token: str, tokens_file: str) -> TokenTable | None:
        """The table of a service's settings; None when neither a token nor a file is set (auth off)."""
        entries = []
        if own_token:
            entries.append((WRITE, own_token, Principal(WRITE, "service token", internal=True)))
        if tokens_file:
            entries += parse_tokens_file(tokens_file)
        return cls(entries) if entries else None

    def lookup(self, token: bytes) -> Principal | None:
        found = None
        for known, principal in self._entries:  # every entry, always: constant time in which one matches
            if hmac.compare_digest(token, known) and found is None:
                found = principal
        return found


def parse_tokens_file(path: str) -> list[tuple[str, str, Principal]]:
    """``(role, token, principal)`` of each ``ROLE TOKEN`` line; errors name the line, never the token."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise errors.FailedPrecondition(f"auth tokens file {path!r} cannot be read: {exc.strerror}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ROLES:
            raise errors.FailedPrecondition(f"auth tokens file {path!r}, line {number}: write 'ROLE TOKEN' with ROLE one of {', '.join(ROLES)}")
        role, token = parts
        out.append((role, token, Principal(role, f"{role} token (line {number})")))
    return out


def read_only_methods(services: Iterable[ServiceDescriptor]) -> frozenset[str]:
    """The full method names (``/pkg.Service/Method``) the protos mark NO_SIDE_EFFECTS."""
    out = set(ALWAYS_READ)
    for svc in services:
        for m in svc.methods:
            if m.GetOptions().idempotency_level == MethodOptions.NO_SIDE_EFFECTS:
                out.add(f"/{svc.full_name}/{m.name}")
    return frozenset(out)


def client_key(authorization: bytes | None, peer: str) -> str:
    """Who a call is from, for the rate limit: a digest of its token, else its address (host only)."""
    if authorization:
        return "token:" + hashlib.sha256(authorization).hexdigest()[:16]
    host = peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer
    return "peer:" + host


class RateLimiter:
    """Token buckets per client: ``rate`` calls a second, ``burst`` at once; the least recently
    seen clients are forgotten beyond ``max_clients``."""

    def __init__(self, rate: float, burst: int, max_clients: int = 10_000) -> None:
        if rate <= 0:
            raise errors.InvalidArgument.about("rate_limit_per_second", f"{rate} must be > 0 for a rate limit")
        self.rate = float(rate)
        self.burst = float(burst if burst > 0 else max(1, round(rate)))
        self.max_clients = max_clients
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the call may go ahead (and it is counted), else the seconds until it could."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait
