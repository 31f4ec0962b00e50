"""S3 / MinIO as artifact store, through the ``minio`` SDK."""

from __future__ import annotations

import builtins
import inspect
import io
import os
from collections.abc import Iterator
from typing import IO, Any, BinaryIO, cast

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from urllib3.util.retry import Retry

from .base import (
    ArtifactStore,
    ConflictError,
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    ReadableStream,
    StoreError,
    StoreUnavailableError,
    validate_key,
    validate_prefix,
)

MiB = 1 << 20
MIN_PART_SIZE = 5 * MiB  # S3's limit for every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB
READ_BUFFER_SIZE = 1 * MiB
_MISSING_KEY = ("NoSuchKey", "NoSuchObject", "ResourceNotFound")


def _unavailable(store: S3Store, exc: Exception) -> StoreUnavailableError:
    """The error for a connection failure (``exc``, from urllib3) while talking to ``store``."""
    reason = getattr(exc, "reason", None) or exc
    return StoreUnavailableError(f"artifact store {store!r} is unreachable ({type(reason).__name__}); try again once it is back")


class _Reachable:
    """The SDK client with connection failures (the server down or unreachable, after the HTTP
    client's retries) raised as :class:`StoreUnavailableError` naming the store, also while a
    listing is iterated."""

    def __init__(self, client: Minio, store: S3Store) -> None:
        self._client = client
        self._store = store

    def _iterate(self, items: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from items
        except urllib3.exceptions.HTTPError as exc:
            raise _unavailable(self._store, exc) from exc

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = attr(*args, **kwargs)
            except urllib3.exceptions.HTTPError as exc:
                raise _unavailable(self._store, exc) from exc
            return self._iterate(result) if inspect.isgenerator(result) else result

        return call


class S3Store(ArtifactStore):
    """Objects in one S3 bucket.

    Single PUTs and multipart uploads are atomic on S3: a ``put_stream`` that fails midway is
    aborted by the SDK and leaves nothing visible. Streaming uploads hold at most about
    three parts (``part_size``) in memory.
    """

    scheme = "s3"

    def __init__(
        self,
        endpoint: str,
        access_key: str | None,
        secret_key: str | None,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        create_bucket: bool = True,
        part_size: int = 16 * MiB,
        max_connections: int = 32,
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes, not {part_size}")
        self.endpoint = endpoint
        self.bucket = bucket
        self.part_size = part_size
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=30, read=300),
            maxsize=max_connections,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=Retry(total=5, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = cast(
            Minio, _Reachable(Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region, http_client=http), self)
        )
        self._prefix = f"s3://{bucket}/"
        if create_bucket:
            self._ensure_bucket(region)

    def __repr__(self) -> str:
        return f"S3Store(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    def _ensure_bucket(self, region: str | None) -> None:
        try:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket, location=region)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):  # lost a creation race
                raise StoreError(f"cannot create bucket {self.bucket!r} at {self.endpoint}: {exc.code}: {exc.message}") from exc

    def _error(self, exc: S3Error, key: str, reading: bool) -> StoreError:
        if exc.code in _MISSING_KEY:
            return ObjectNotFoundError(f"no object {key!r} in bucket {self.bucket!r}")
        if exc.code == "NoSuchBucket":
            if reading:
                return ObjectNotFoundError(f"no object {key!r}: bucket {self.bucket!r} does not exist")
            return StoreError(f"bucket {self.bucket!r} does not exist at {self.endpoint}; create it or pass create_bucket=True")
        return StoreError(f"S3 request for {key!r} in bucket {self.bucket!r} failed: {exc.code}: {exc.message}")

    # --- addressing -------------------------------------------------------------------------
    def uri(self, key: str) -> str:
        return self._prefix + validate_key(key)

    def key_from_uri(self, uri: str) -> str:
        if not isinstance(uri, str) or not uri.startswith(self._prefix):
            raise InvalidKeyError(f"{uri!r} does not name an object of this store; its URIs start with {self._prefix}")
        return validate_key(uri[len(self._prefix) :])

    # --- writing ----------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
        validate_key(key)
        data = bytes(data)
        try:
            result = self.client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
                part_size=self.part_size,
                num_parallel_uploads=1,
            )
        except S3Error as exc:
            self._write_failed()
            raise self._error(exc, key, reading=False) from exc
        self._wrote(len(data))
        return ObjectInfo(key, len(data), result.etag or "", content_type)

    def put_bytes_if(self, key: str, data: bytes, content_type: str = "application/octet-stream", *, expected_etag: str | None) -> ObjectInfo:
        """S3 conditional writes (``If-None-Match: *`` / ``If-Match: <etag>``), which MinIO and AWS
        evaluate atomically."""
        validate_key(key)
        data = bytes(data)
        condition = {"If-None-Match": "*"} if expected_etag is None else {"If-Match": f'"{expected_etag}"'}
        try:
            result = self.client._put_object(self.bucket, key, data, {"Content-Type": content_type, **condition})
        except S3Error as exc:
            if exc.code in ("PreconditionFailed", "ConditionalRequestConflict") or (expected_etag is not None and exc.code in _MISSING_KEY):
                raise ConflictError(f"{key!r} changed since it was read (a concurrent writer won)") from None
            self._write_failed()
            raise self._error(exc, key, reading=False) from exc
        self._wrote(len(data))
        return ObjectInfo(key, len(data), result.etag or "", content_type)

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        validate_key(src_key)
        validate_key(dst_key)
        try:
            self.client.copy_object(self.bucket, dst_key, CopySource(self.bucket, src_key))
        except S3Error as exc:
            raise self._error(exc, src_key, reading=True) from exc
        return self.stat(dst_key)

    def put_stream(self, key: str, stream: ReadableStream, length: int = -1, content_type: str = "application/octet-stream") -> ObjectInfo:
        validate_key(key)
        reader = _FillingReader(stream, length, key)
        try:
            # One part at a time: the SDK's parallel mode queues parts in memory and leaks its
            # worker threads when the source raises.
            result = self.client.put_object(
                self.bucket,
                key,
                cast(BinaryIO, reader),
                length,
                content_type=content_type,
                part_size=self.part_size,
                num_parallel_uploads=1,
            )
        except S3Error as exc:
            self._write_failed()
            raise self._error(exc, key, reading=False) from exc
        except BaseException:
            self._write_failed()
            raise
        self._wrote(reader.count)
        return ObjectInfo(key, reader.count, result.etag or "", content_type)

    # --- reading ----------------------------------------------------------------------------
    def open(self, key: str) -> IO[bytes]:
        validate_key(key)
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            raise self._error(exc, key, reading=True) from exc
        return io.BufferedReader(_ResponseReader(response, self), buffer_size=READ_BUFFER_SIZE)

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        try:
            obj = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            raise self._error(exc, key, reading=True) from exc
        return ObjectInfo(key, int(obj.size or 0), obj.etag or "", obj.content_type or "")

    # --- listing and deleting ---------------------------------------------------------------
    def list(self, prefix: str = "", recursive: bool = True) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        return self._list(prefix, recursive)

    def _list(self, prefix: str, recursive: bool) -> Iterator[ObjectInfo]:
        try:
            objects = self.client.list_objects(self.bucket, prefix=prefix or None, recursive=recursive)
            infos = (
                ObjectInfo(str(o.object_name), 0, "", "", is_dir=True)
                if o.is_dir
                else ObjectInfo(str(o.object_name), int(o.size or 0), o.etag or "", "")
                for o in objects
            )
            if recursive:  # S3 lists keys in UTF-8 byte order, which is str order
                yield from infos
            else:  # contents and common prefixes come as two sorted runs per page
                yield from sorted(infos, key=lambda info: info.key)
        except S3Error as exc:
            raise self._error(exc, prefix or "<all>", reading=False) from exc

    def delete(self, key: str) -> None:
        validate_key(key)
        try:
            self.client.remove_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING_KEY or exc.code == "NoSuchBucket":
                return
            raise self._error(exc, key, reading=False) from exc

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix`` with batched DeleteObjects requests."""
        if not prefix.endswith("/"):
            raise InvalidKeyError(f"prefix {prefix!r} must end with '/' so that it names a folder")
        keys = [info.key for info in self.list(prefix)]
        if not keys:
            return 0
        errors = builtins.list(self.client.remove_objects(self.bucket, (DeleteObject(k) for k in keys)))
        if errors:
            first = errors[0]
            raise StoreError(f"could not delete {len(errors)} objects under {prefix!r}, e.g. {first.name!r}: {first.message}")
        return len(keys)


class _FillingReader:
    """Wraps a source stream: fills every ``read(n)``, counts bytes and enforces a known length."""

    def __init__(self, stream: ReadableStream, length: int, key: str) -> None:
        if not callable(getattr(stream, "read", None)):
            raise TypeError(f"put_stream needs a binary stream with read(), not {type(stream).__name__}")
        self._stream = stream
        self._length = length
        self._key = key
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        if self._length >= 0:
            left = self._length - self.count
            size = left if size is None or size < 0 else min(size, left)
        chunks: list[bytes] = []
        got = 0
        while size is None or size < 0 or got < size:
            chunk = self._stream.read(-1 if size is None or size < 0 else size - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = chunks[0] if len(chunks) == 1 and isinstance(chunks[0], bytes) else b"".join(chunks)
        self.count += len(data)
        if self._length >= 0 and size is not None and size >= 0 and got < size:
            raise StoreError(f"stream for {self._key!r} ended after {self.count} bytes; its length was given as {self._length}")
        return data


class _ResponseReader(io.RawIOBase):
    """A raw stream over a ``get_object`` response; closing it releases the connection. The
    server going away while the body is read (a read timeout, a cut connection) is raised as
    :class:`StoreUnavailableError` naming the store, like a failed request."""

    def __init__(self, response: Any, store: S3Store) -> None:
        self._response = response
        self._store = store

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._response.read(len(view))
        except urllib3.exceptions.HTTPError as exc:
            raise _unavailable(self._store, exc) from exc
        n = len(data)
        view[:n] = data
        return n

    def readall(self) -> bytes:
        try:
            return cast(bytes, self._response.read())
        except urllib3.exceptions.HTTPError as exc:
            raise _unavailable(self._store, exc) from exc

    def close(self) -> None:
        if not self.closed:
            try:
                self._response.close()
                self._response.release_conn()
            finally:
                super().close()
