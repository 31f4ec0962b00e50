"""Artifact store: one object store for images and artifacts (S3/MinIO or a local directory).

``open_store(uri)`` picks the implementation from a URI:

* ``file:///abs/path`` or a bare path: :class:`LocalStore`;
* ``s3://BUCKET?endpoint=HOST:PORT&secure=false&region=REGION&create_bucket=true``: :class:`S3Store`,
  with credentials from ``FAILURELENS_S3_ACCESS_KEY`` / ``FAILURELENS_S3_SECRET_KEY``
  (else ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``);
* ``None``: the URI in ``FAILURELENS_STORE``, else a :class:`LocalStore` at ``./.state/store``.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from .base import (
    MAX_KEY_LENGTH,
    MAX_SEGMENT_LENGTH,
    ArtifactStore,
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    ReadableStream,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
    validate_key,
    validate_prefix,
)
from .local import LocalStore
from .s3 import S3Store

__all__ = [
    "DEFAULT_STORE",
    "MAX_KEY_LENGTH",
    "MAX_SEGMENT_LENGTH",
    "STORE_ENV",
    "ArtifactStore",
    "InvalidKeyError",
    "LocalStore",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ReadableStream",
    "S3Store",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "open_store",
    "validate_key",
    "validate_prefix",
]

STORE_ENV = "FAILURELENS_STORE"
DEFAULT_STORE = "./.state/store"
_S3_PARAMS = ("endpoint", "secure", "region", "create_bucket")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def open_store(uri: str | os.PathLike[str] | None = None) -> ArtifactStore:
    """The store named by ``uri`` (see the module docstring); ``None`` reads ``FAILURELENS_STORE``."""
    if uri is None:
        uri = os.environ.get(STORE_ENV) or DEFAULT_STORE
    if isinstance(uri, os.PathLike):
        return LocalStore(uri)
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"store URI must be a non-empty string such as 'file:///srv/store' or 's3://bucket?endpoint=host:9000', not {uri!r}")
    uri = uri.strip()
    if uri.startswith("file:"):
        return _open_file(uri)
    if uri.startswith("s3:"):
        return _open_s3(uri)
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise ValueError(f"store URI {uri!r} has unsupported scheme {scheme!r}; use file:///PATH, a plain path, or s3://BUCKET?endpoint=HOST:PORT")
    return LocalStore(uri)


def _open_file(uri: str) -> LocalStore:
    parts = urllib.parse.urlsplit(uri)
    if not uri.startswith("file://") or parts.netloc not in ("", "localhost"):
        raise ValueError(f"store URI {uri!r} is malformed; write an absolute local path as file:///abs/path")
    if parts.query or parts.fragment:
        raise ValueError(f"store URI {uri!r}: file:// store URIs take no '?' or '#' part")
    path = urllib.parse.unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(f"store URI {uri!r} has no absolute path; write file:///abs/path")
    return LocalStore(path)


def _parse_bool(name: str, value: str, uri: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"store URI {uri!r}: {name}={value!r} is not a boolean; use true or false")


def _secret(name: str) -> str | None:
    """``name`` from the environment, else the contents of the file ``<name>_FILE`` names (a secret)."""
    value = os.environ.get(name)
    if value:
        return value
    file = os.environ.get(f"{name}_FILE")
    if not file:
        return None
    try:
        return Path(file).read_text().strip() or None
    except OSError as exc:
        raise ValueError(f"{name}_FILE={file!r} cannot be read: {exc.strerror}") from None


def _credentials() -> tuple[str | None, str | None]:
    """The FAILURELENS_S3_* pair (each from the environment or a ``*_FILE``) if its access key is set,
    else the AWS_* pair."""
    access_key = _secret("FAILURELENS_S3_ACCESS_KEY")
    if access_key:
        return access_key, _secret("FAILURELENS_S3_SECRET_KEY")
    return os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")


def _open_s3(uri: str) -> S3Store:
    example = "s3://BUCKET?endpoint=HOST:PORT&secure=false"
    parts = urllib.parse.urlsplit(uri)
    if not uri.startswith("s3://") or not parts.netloc:
        raise ValueError(f"store URI {uri!r} names no bucket; write {example}")
    if parts.path not in ("", "/"):
        raise ValueError(f"store URI {uri!r}: a store is a whole bucket, key prefixes are not supported; write {example}")
    if parts.fragment:
        raise ValueError(f"store URI {uri!r}: remove the '#{parts.fragment}' part")
    try:
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError(f"store URI {uri!r} has a malformed query; write {example}") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in _S3_PARAMS:
            raise ValueError(f"store URI {uri!r}: unknown parameter {name!r}; accepted: {', '.join(_S3_PARAMS)}")
        if name in params:
            raise ValueError(f"store URI {uri!r}: parameter {name!r} given twice")
        params[name] = value
    endpoint = params.get("endpoint", "")
    if not endpoint:
        raise ValueError(f"store URI {uri!r} has no endpoint; write {example}")
    if "://" in endpoint or "/" in endpoint:
        raise ValueError(f"store URI {uri!r}: endpoint must be HOST:PORT without scheme or path (use secure=true for https)")
    access_key, secret_key = _credentials()
    if not access_key or not secret_key:
        raise ValueError(
            f"store URI {uri!r} needs credentials: set FAILURELENS_S3_ACCESS_KEY and FAILURELENS_S3_SECRET_KEY "
            "(or their *_FILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    return S3Store(
        endpoint,
        access_key,
        secret_key,
        parts.netloc,
        secure=_parse_bool("secure", params.get("secure", "false"), uri),
        region=params.get("region") or None,
        create_bucket=_parse_bool("create_bucket", params.get("create_bucket", "true"), uri),
    )
