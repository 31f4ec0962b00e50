"""The artifact store contract.

Every service keeps images and artifacts in one object store. Two implementations share this
interface: :class:`~failurelens.store.s3.S3Store` (MinIO/S3 through the ``minio`` SDK) and
:class:`~failurelens.store.local.LocalStore` (a directory, the embedded default).

Rules every implementation keeps:

* keys are relative, ``/``-separated, validated by :func:`validate_key` (no ``..``, no absolute
  keys, no empty segments, no control characters);
* a write is atomic: readers see either the old object, nothing, or the whole new object;
* large objects stream (``put_stream`` / ``open``) without being held in memory whole;
* arrays are stored as ``.npy`` (never pickled), tables as Parquet, tensors as safetensors.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, Protocol

import numpy as np

from failurelens import errors

MAX_KEY_LENGTH = 1024  # bytes of UTF-8, as in S3
MAX_SEGMENT_LENGTH = 255  # bytes; NAME_MAX of common filesystems
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class StoreError(errors.Internal):
    """Base class of store errors (a failed write or an unreadable object: INTERNAL)."""


class StoreUnavailableError(errors.Unavailable, StoreError):
    """The store cannot be reached (its server is down or unreachable): UNAVAILABLE, retry later."""


class StoreFullError(errors.ResourceExhausted, StoreError):
    """The store has no space left for a write: RESOURCE_EXHAUSTED."""


class InvalidKeyError(errors.InvalidArgument, StoreError):
    """The key or URI is not acceptable (``..``, absolute, wrong bucket, ...)."""


class ConflictError(errors.Aborted, StoreError):
    """A conditional write lost: the object changed (or appeared) since the caller read it."""


class ObjectNotFoundError(errors.NotFound, StoreError, KeyError):
    """No object under that key."""

    def __init__(self, message: str = "object not found", *, key: str = "") -> None:
        super().__init__(message, resource_type="object" if key else "", name=key)

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return self.message


class ReadableStream(Protocol):
    """What ``put_stream`` reads from: any object with ``read(size) -> bytes``."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """One listed or written object; ``is_dir`` marks a folder entry of a non-recursive list."""

    key: str
    size: int
    etag: str = ""
    content_type: str = ""
    is_dir: bool = False


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise :class:`InvalidKeyError`.

    Limits are those of S3 and of common filesystems, so that a key is valid in every store:
    at most :data:`MAX_KEY_LENGTH` UTF-8 bytes, segments of at most :data:`MAX_SEGMENT_LENGTH`.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("object key must be a non-empty string")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKeyError(f"object key {key!r} is not valid UTF-8 text") from None
    if len(encoded) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"object key is {len(encoded)} bytes long; the limit is {MAX_KEY_LENGTH}")
    if key.startswith("/"):
        raise InvalidKeyError(f"object key {key!r} is absolute; use a relative key such as 'datasets/x/a.png'")
    if "\\" in key:
        raise InvalidKeyError(f"object key {key!r} contains a backslash; use '/' as separator")
    if _CONTROL.search(key):
        raise InvalidKeyError(f"object key {key!r} contains control characters")
    if key.endswith("/"):
        raise InvalidKeyError(f"object key {key!r} ends with '/'; name an object, not a folder")
    for part in key.split("/"):
        if part in ("..", "."):
            raise InvalidKeyError(f"object key {key!r} contains a '{part}' segment; keys may not leave their prefix")
        if part == "":
            raise InvalidKeyError(f"object key {key!r} has an empty segment ('//')")
        if len(part.encode("utf-8")) > MAX_SEGMENT_LENGTH:
            raise InvalidKeyError(f"object key {key[:40]!r}... has a segment longer than {MAX_SEGMENT_LENGTH} bytes; split it with '/'")
    return key


def validate_prefix(prefix: str) -> str:
    """Like :func:`validate_key` but allows ``''`` and one trailing ``/``."""
    if prefix == "":
        return prefix
    if not isinstance(prefix, str):
        raise InvalidKeyError("prefix must be a string")
    body = prefix.removesuffix("/")
    if body == "":
        raise InvalidKeyError("prefix '/' is absolute; use '' to name the whole store")
    if body.endswith("/"):
        raise InvalidKeyError(f"prefix {prefix!r} has an empty segment ('//')")
    try:
        validate_key(body)
    except InvalidKeyError as exc:
        raise InvalidKeyError(f"prefix {prefix!r} is not acceptable: {exc}") from None
    return prefix


def check_npy_header(fp: IO[bytes], key: str) -> None:
    """Read the ``.npy`` header at ``fp``'s position and refuse object (pickled) payloads."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            _, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:  # 3.0 (utf-8 field names) has no public reader; np.load still refuses pickles
            return
    except ValueError as exc:
        raise StoreError(f"object {key!r} is not a valid .npy file: {exc}") from None
    if dtype.hasobject:
        raise StoreError(f"object {key!r} holds a pickled (object dtype) array; refusing to unpickle it")


def encode_npy(array: Any) -> bytes:
    """``.npy`` bytes of an array; object arrays are refused (they would need pickle)."""
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise StoreError("object arrays cannot be stored without pickle; convert to a numeric or string dtype")
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True).encode()


def encode_parquet(table: Any) -> bytes:
    """Parquet bytes of a ``pyarrow.Table`` or ``pandas.DataFrame``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


class ArtifactStore(abc.ABC):
    """Object storage used by every service. Implementations are thread-safe."""

    #: writes worth issuing at a time: object stores wait on the network (several); a folder is
    #: bound by the CPU (one)
    write_concurrency: int = 8
    #: hooks (monitoring): called with the size of each object written, and on each failed write
    on_write: Callable[[int], None] | None = None
    on_write_error: Callable[[], None] | None = None

    def _wrote(self, size: int) -> None:
        if self.on_write is not None:
            self.on_write(size)

    def _write_failed(self) -> None:
        if self.on_write_error is not None:
            self.on_write_error()

    #: URI scheme of this store's URIs (``s3`` or ``file``).
    scheme: str

    # --- addressing -------------------------------------------------------------------------
    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """The URI naming ``key`` in this store (``s3://bucket/key`` or ``file:///root/key``)."""

    @abc.abstractmethod
    def key_from_uri(self, uri: str) -> str:
        """Inverse of :meth:`uri`; raises :class:`InvalidKeyError` for a URI of another store."""

    # --- bytes ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def bulk(self) -> Iterator[ArtifactStore]:
        """A view of the store for many writes as one batch, durable together when the block ends
        (a folder store syncs once instead of twice per object). Objects written through the view
        are readable at once; until the block ends a crash may lose them, so write what depends on
        them (records) after it, through the store itself."""
        yield self

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
        """Write ``data`` atomically under ``key`` (replacing any object there)."""

    @abc.abstractmethod
    def put_stream(self, key: str, stream: ReadableStream, length: int = -1, content_type: str = "application/octet-stream") -> ObjectInfo:
        """Write a stream of unknown (``-1``) or known length atomically, without buffering it whole."""

    @abc.abstractmethod
    def put_bytes_if(self, key: str, data: bytes, content_type: str = "application/octet-stream", *, expected_etag: str | None) -> ObjectInfo:
        """Compare-and-set: write ``data`` only if the object's etag is still ``expected_etag``
        (``None``: only if there is no object yet), atomically against every other writer of the
        store, else raise :class:`ConflictError`."""

    @abc.abstractmethod
    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        """A copy of an object under another key, made inside the store (no download)."""

    @abc.abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """A readable binary stream of the object; the caller closes it."""

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def get_bytes_or_none(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` when there is no object under ``key``."""
        try:
            return self.get_bytes(key)
        except ObjectNotFoundError:
            return None

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size and etag of an object; :class:`ObjectNotFoundError` if absent."""

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
            return True
        except ObjectNotFoundError:
            return False

    @abc.abstractmethod
    def list(self, prefix: str = "", recursive: bool = True) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, sorted by key.

        ``recursive=False`` lists like S3 with delimiter ``/``: the objects directly under the
        prefix and one ``is_dir`` entry (key ending with ``/``, size 0) per non-empty sub-folder.
        The prefix is validated eagerly (:class:`InvalidKeyError`), before iteration starts.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove one object; absent objects are not an error."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix`` (which must end with '/'); returns the count."""
        if not prefix.endswith("/"):
            raise InvalidKeyError(f"prefix {prefix!r} must end with '/' so that it names a folder")
        n = 0
        for info in list(self.list(prefix)):
            self.delete(info.key)
            n += 1
        return n

    def _check_key(self, key: str) -> str:
        """Validate ``key`` for this store (implementations may add rules); returns it."""
        return validate_key(key)

    # --- typed helpers (never pickle); keys are checked before any encoding work ----------
    def put_npy(self, key: str, array: np.ndarray) -> ObjectInfo:
        """Store an array as ``.npy``; object arrays are refused (they would need pickle)."""
        self._check_key(key)
        return self.put_bytes(key, encode_npy(array), "application/x-npy")

    def get_npy(self, key: str, mmap: bool = False) -> np.ndarray:
        """Load a ``.npy`` object. Pickled payloads are refused (:class:`StoreError`).

        ``mmap`` maps the file read-only where the store has local files; others ignore it.
        """
        buf = io.BytesIO(self.get_bytes(key))
        check_npy_header(buf, key)
        buf.seek(0)
        try:
            return np.load(buf, allow_pickle=False)
        except ValueError as exc:
            raise StoreError(f"object {key!r} is not a loadable .npy file: {exc}") from None

    def put_json(self, key: str, obj: Any) -> ObjectInfo:
        self._check_key(key)
        return self.put_bytes(key, encode_json(obj), "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def put_parquet(self, key: str, table: Any) -> ObjectInfo:
        """Store a ``pyarrow.Table`` or ``pandas.DataFrame`` as Parquet."""
        self._check_key(key)
        return self.put_bytes(key, encode_parquet(table), "application/vnd.apache.parquet")

    def get_parquet(self, key: str) -> Any:
        """Load a Parquet object as a ``pyarrow.Table``."""
        data = self.get_bytes(key)
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data))

    def put_safetensors(self, key: str, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        self._check_key(key)
        from safetensors.numpy import save

        data = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=dict(metadata or {}))
        return self.put_bytes(key, data, "application/octet-stream")

    def get_safetensors(self, key: str) -> dict[str, np.ndarray]:
        data = self.get_bytes(key)
        from safetensors.numpy import load

        return load(data)
