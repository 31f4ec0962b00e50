"""A directory as artifact store (the embedded default)."""

from __future__ import annotations

import builtins
import contextlib
import copy
import errno
import fcntl
import hashlib
import mimetypes
import os
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from .base import (
    ArtifactStore,
    ConflictError,
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    ReadableStream,
    StoreError,
    StoreFullError,
    check_npy_header,
    validate_key,
    validate_prefix,
)

CHUNK_SIZE = 1 << 20
TEMP_PREFIX = ".tmp-"

_CONTENT_TYPES = {
    ".npy": "application/x-npy",
    ".parquet": "application/vnd.apache.parquet",
    ".json": "application/json",
    ".safetensors": "application/octet-stream",
}


def _content_type(key: str) -> str:
    ext = os.path.splitext(key)[1].lower()
    return _CONTENT_TYPES.get(ext) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def _etag(st: os.stat_result) -> str:
    """Changes with every write: each write renames a fresh file (new inode) into place."""
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalStore(ArtifactStore):
    """Objects are files under ``root``; writes go to a ``.tmp-*`` file, are fsynced, then renamed.

    Key segments starting with ``.tmp-`` are reserved. Symlinks are followed only while they
    stay inside ``root`` and are not listed.
    """

    scheme = "file"

    _sync = True  # fsync every write (a bulk() view batches them)
    write_concurrency = 1

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.root.is_dir():
            raise StoreError(f"store root {self.root} is not a directory")
        self._root_uri = self.root.as_uri().rstrip("/") + "/"

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # --- paths ------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        validate_key(key)
        for part in key.split("/"):
            if part.startswith(TEMP_PREFIX):
                raise InvalidKeyError(f"object key {key!r}: segments starting with {TEMP_PREFIX!r} are reserved")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidKeyError(f"object key {key!r} resolves to {path}, outside the store root {self.root}")
        return path

    def _check_key(self, key: str) -> str:
        self._path(key)
        return key

    # --- addressing -------------------------------------------------------------------------
    def uri(self, key: str) -> str:
        validate_key(key)
        return self._root_uri + urllib.parse.quote(key, safe="/")

    def key_from_uri(self, uri: str) -> str:
        if not isinstance(uri, str) or not uri.startswith("file:"):
            raise InvalidKeyError(f"{uri!r} is not a file:// URI; this store's URIs start with {self._root_uri}")
        parsed = urllib.parse.urlsplit(uri)
        if parsed.netloc not in ("", "localhost") or parsed.query or parsed.fragment:
            raise InvalidKeyError(f"{uri!r} is not a local file URI; this store's URIs start with {self._root_uri}")
        path = urllib.parse.unquote(parsed.path)
        root = self.root.as_posix().rstrip("/") + "/"
        if not path.startswith(root):
            raise InvalidKeyError(f"{uri!r} lies outside this store; its URIs start with {self._root_uri}")
        key = path[len(root) :]
        validate_key(key)
        return key

    # --- writing ----------------------------------------------------------------------------
    def _write(self, key: str, chunks: Iterable[bytes | memoryview]) -> ObjectInfo:
        """Write ``chunks`` to a temp file next to ``key``'s path, fsync, then rename over it."""
        path = self._path(key)
        for attempt in range(5):  # a concurrent delete may prune the parent between mkdir and mkstemp
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
                break
            except FileNotFoundError:
                if attempt == 4:
                    raise
            except (FileExistsError, NotADirectoryError):
                raise StoreError(f"cannot write {key!r}: a parent of it is an object, not a folder") from None
            except OSError as exc:
                self._write_failed()
                raise self._full(exc, key) from exc
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                f.flush()
                os.fchmod(f.fileno(), 0o644)
                if self._sync:
                    os.fsync(f.fileno())
            try:
                os.replace(tmp, path)
            except IsADirectoryError:
                raise StoreError(f"cannot write {key!r}: a folder of that name exists") from None
        except BaseException as exc:
            self._write_failed()
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            if isinstance(exc, OSError):
                raise self._full(exc, key) from exc
            raise
        if self._sync:
            _fsync_dir(path.parent)
        st = path.stat()
        self._wrote(st.st_size)
        return ObjectInfo(key, st.st_size, _etag(st), "")

    def _full(self, exc: OSError, key: str) -> OSError | StoreFullError:
        """``exc`` as :class:`StoreFullError` when the filesystem is out of space (or quota)."""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StoreFullError(f"artifact store {self.root} is out of space writing {key!r}: free space or grow its volume")
        return exc

    @contextlib.contextmanager
    def bulk(self) -> Iterator[ArtifactStore]:
        """A view whose writes skip their own fsyncs; one ``sync`` makes them durable at the end."""
        view = copy.copy(self)
        view._sync = False
        try:
            yield view
        finally:
            os.sync()

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
        info = self._write(key, (memoryview(data),))
        return ObjectInfo(key, info.size, info.etag, content_type)

    def put_stream(self, key: str, stream: ReadableStream, length: int = -1, content_type: str = "application/octet-stream") -> ObjectInfo:
        self._path(key)  # validate before reading anything

        def chunks() -> Iterator[bytes]:
            left = length
            while left != 0:
                chunk = stream.read(CHUNK_SIZE if left < 0 else min(CHUNK_SIZE, left))
                if not chunk:
                    if left > 0:
                        raise StoreError(f"stream for {key!r} ended {left} bytes short of its length {length}")
                    return
                if left > 0:
                    left -= len(chunk)
                yield chunk

        info = self._write(key, chunks())
        return ObjectInfo(key, info.size, info.etag, content_type)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """An exclusive lock on ``key`` among every process using this store folder (flock)."""
        folder = self.root / (TEMP_PREFIX + "locks")
        folder.mkdir(exist_ok=True)
        fd = os.open(folder / hashlib.sha256(key.encode()).hexdigest(), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def put_bytes_if(self, key: str, data: bytes, content_type: str = "application/octet-stream", *, expected_etag: str | None) -> ObjectInfo:
        self._path(key)
        with self._locked(key):
            try:
                current: str | None = self.stat(key).etag
            except ObjectNotFoundError:
                current = None
            if current != expected_etag:
                raise ConflictError(f"{key!r} changed since it was read (a concurrent writer won)")
            return self.put_bytes(key, data, content_type)

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        """A hard link where the filesystem allows (writes always replace files, never change
        them in place, so the copy keeps its content), else a byte copy."""
        src, dst = self._path(src_key), self._path(dst_key)
        if not src.is_file():
            raise ObjectNotFoundError(f"no object {src_key!r} in {self.root}", key=src_key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.parent / f"{TEMP_PREFIX}{os.urandom(6).hex()}"
        try:
            os.link(src, tmp)
        except OSError:
            with open(src, "rb") as f:
                return self.put_stream(dst_key, f, os.path.getsize(src), _content_type(dst_key))
        os.replace(tmp, dst)
        return self.stat(dst_key)

    # --- reading ----------------------------------------------------------------------------
    def open(self, key: str) -> IO[bytes]:
        path = self._path(key)
        try:
            return open(path, "rb")  # the caller closes it
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object {key!r} in {self.root}") from None

    def get_npy(self, key: str, mmap: bool = False) -> np.ndarray:
        if not mmap:
            return super().get_npy(key)
        with self.open(key) as f:
            check_npy_header(f, key)
        try:
            return np.load(self._path(key), mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise StoreError(f"object {key!r} is not a loadable .npy file: {exc}") from None

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object {key!r} in {self.root}") from None
        if not path.is_file():
            raise ObjectNotFoundError(f"no object {key!r} in {self.root} ({key!r} is a folder)")
        return ObjectInfo(key, st.st_size, _etag(st), _content_type(key))

    # --- listing and deleting ---------------------------------------------------------------
    def list(self, prefix: str = "", recursive: bool = True) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        return self._list(prefix, recursive)

    def _list(self, prefix: str, recursive: bool) -> Iterator[ObjectInfo]:
        folder, _, partial = prefix.rpartition("/")
        base = self.root / folder if folder else self.root
        if folder:
            resolved = base.resolve()
            if not resolved.is_relative_to(self.root) or base.is_symlink():
                return
        found: builtins.list[ObjectInfo] = []
        self._scan(base, folder + "/" if folder else "", partial, recursive, found)
        found.sort(key=lambda info: info.key)
        yield from found

    def _scan(self, directory: Path, rel: str, partial: str, recursive: bool, out: builtins.list[ObjectInfo]) -> None:
        try:
            with os.scandir(directory) as it:
                entries = builtins.list(it)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            name = entry.name
            if name.startswith(TEMP_PREFIX) or not name.startswith(partial):
                continue
            key = rel + name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        self._scan(Path(entry.path), key + "/", "", True, out)
                    elif _has_object(entry.path):
                        out.append(ObjectInfo(key + "/", 0, "", "", is_dir=True))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    out.append(ObjectInfo(key, st.st_size, _etag(st), _content_type(key)))
            except FileNotFoundError:  # deleted while listing
                continue

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            if path.is_dir():
                return
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove empty folders from ``directory`` up to (not including) the root."""
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


def _has_object(directory: str) -> bool:
    """True if ``directory`` holds at least one object (a non-temp regular file) at any depth."""
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.name.startswith(TEMP_PREFIX):
                    continue
                if entry.is_file(follow_symlinks=False):
                    return True
                if entry.is_dir(follow_symlinks=False) and _has_object(entry.path):
                    return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    return False
