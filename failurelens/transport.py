"""How failurelens processes reach each other: TLS (optionally mutual) from certificate files, or
plaintext on a trusted network.

One :class:`Tls` describes both ends. A server serves TLS when ``cert_file`` and ``key_file`` are
set, and requires client certificates signed by ``client_ca_file`` when that is set (mutual TLS).
A client speaks TLS when ``ca_file`` (the CA that signed the servers' certificates) is set, and
presents ``cert_file``/``key_file`` as its own certificate when both are set. A service calling
another service is both: it presents its own certificate.

Every setting is read from ``FAILURELENS_TLS_<NAME>`` (see :meth:`Tls.from_env`) or given in code;
the files are read when a channel or the server's credentials are made, so a rotated certificate
takes effect at the next connection.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

ENV_PREFIX = "FAILURELENS_TLS_"


class TlsConfigError(ValueError):
    """A TLS setting that cannot work (a missing file, a certificate without its key)."""


@dataclasses.dataclass(frozen=True)
class Tls:
    #: client: the CA certificate (PEM) that signed the servers' certificates; empty: plaintext
    ca_file: str = ""
    #: server: its certificate chain (PEM); client: its certificate for mutual TLS
    cert_file: str = ""
    #: the private key (PEM) of ``cert_file``
    key_file: str = ""
    #: server: require client certificates signed by this CA (mutual TLS); empty: no client certificates
    client_ca_file: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tls:
        env = os.environ if environ is None else environ
        return cls(**{f.name: env.get(ENV_PREFIX + f.name.upper(), "") for f in dataclasses.fields(cls)})

    def env(self) -> dict[str, str]:
        """The ``FAILURELENS_TLS_*`` variables that say this (for child processes)."""
        return {ENV_PREFIX + f.name.upper(): getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name)}

    @property
    def serves_tls(self) -> bool:
        return bool(self.cert_file or self.key_file)

    @property
    def dials_tls(self) -> bool:
        return bool(self.ca_file)

    def validate(self) -> Tls:
        """Raises :class:`TlsConfigError` naming what is wrong; returns self."""
        if bool(self.cert_file) != bool(self.key_file):
            raise TlsConfigError("TLS: set both FAILURELENS_TLS_CERT_FILE and FAILURELENS_TLS_KEY_FILE, or neither")
        if self.client_ca_file and not self.serves_tls:
            raise TlsConfigError("TLS: FAILURELENS_TLS_CLIENT_CA_FILE (mutual TLS) needs the server's FAILURELENS_TLS_CERT_FILE and KEY_FILE")
        for f in dataclasses.fields(self):
            path = getattr(self, f.name)
            if path and not Path(path).is_file():
                raise TlsConfigError(f"TLS: {ENV_PREFIX}{f.name.upper()}={path!r} is not a readable file")
        return self

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """The server's credentials, or None for plaintext."""
        self.validate()
        if not self.serves_tls:
            return None
        pair = [(Path(self.key_file).read_bytes(), Path(self.cert_file).read_bytes())]
        if self.client_ca_file:
            return grpc.ssl_server_credentials(pair, root_certificates=Path(self.client_ca_file).read_bytes(), require_client_auth=True)
        return grpc.ssl_server_credentials(pair)

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """A client's credentials, or None for plaintext."""
        self.validate()
        if not self.dials_tls:
            return None
        key = Path(self.key_file).read_bytes() if self.key_file else None
        cert = Path(self.cert_file).read_bytes() if self.cert_file else None
        return grpc.ssl_channel_credentials(root_certificates=Path(self.ca_file).read_bytes(), private_key=key, certificate_chain=cert)


def open_channel(address: str, tls: Tls | None = None, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """A synchronous channel to ``address``: TLS when ``tls`` dials it, plaintext otherwise."""
    creds = tls.channel_credentials() if tls is not None else None
    if creds is None:
        return grpc.insecure_channel(address, options=list(options))
    return grpc.secure_channel(address, creds, options=list(options))
