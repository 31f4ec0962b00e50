"""The artifact store contract, checked on LocalStore and on S3Store against a real S3 server (moto)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from failurelens.store import (
    ArtifactStore,
    InvalidKeyError,
    LocalStore,
    ObjectInfo,
    ObjectNotFoundError,
    S3Store,
    StoreError,
    open_store,
    validate_key,
    validate_prefix,
)

try:
    from tests._fixtures.s3server import s3_endpoint  # pytest fixture, used by name
except ImportError:  # pragma: no cover - tests/ itself on sys.path instead of the repo root
    from _fixtures.s3server import s3_endpoint  # type: ignore[no-redef]  # noqa: F401

MiB = 1 << 20
S3_PART = 5 * MiB  # the smallest part S3 allows: multipart kicks in early and memory stays low


def _new_bucket() -> str:
    return f"t-{uuid.uuid4().hex[:20]}"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield LocalStore(tmp_path / "store")
        return
    endpoint, access_key, secret_key = request.getfixturevalue("s3_endpoint")
    s3 = S3Store(endpoint, access_key, secret_key, _new_bucket(), part_size=S3_PART)
    yield s3
    for info in list(s3.list()):  # keep the shared server's memory small
        s3.delete(info.key)


def _keys(store: ArtifactStore, prefix: str = "", recursive: bool = True) -> list[str]:
    return [info.key for info in store.list(prefix, recursive=recursive)]


def _temp_files(store: ArtifactStore) -> list[str]:
    assert isinstance(store, LocalStore)
    return [os.path.join(d, f) for d, _, files in os.walk(store.root) for f in files if f.startswith(".tmp-")]


def _pending_uploads(store: ArtifactStore) -> int:
    """Temp files (local) or unfinished multipart uploads (S3): writes in flight."""
    if isinstance(store, LocalStore):
        return len(_temp_files(store))
    assert isinstance(store, S3Store)
    return len(store.client._list_multipart_uploads(store.bucket).uploads)


class _Source:
    """A generated stream of ``total`` bytes in ``chunk`` pieces; optionally raises after ``fail_after``."""

    def __init__(
        self,
        total: int,
        chunk: int = 256 * 1024,
        fail_after: int | None = None,
        before_fail: Callable[[], None] | None = None,
    ) -> None:
        self.total, self.chunk, self.fail_after, self.before_fail = total, chunk, fail_after, before_fail
        self.sent = 0
        self.sha = hashlib.sha256()
        self._block = os.urandom(chunk)

    def read(self, size: int = -1, /) -> bytes:
        if self.fail_after is not None and self.sent >= self.fail_after:
            if self.before_fail is not None:
                self.before_fail()
            raise RuntimeError("source failed midway")
        n = min(self.chunk, self.total - self.sent, self.chunk if size is None or size < 0 else size)
        if n <= 0:
            return b""
        data = self.sent.to_bytes(8, "little") + self._block[8:n] if n >= 8 else self._block[:n]
        self.sent += n
        self.sha.update(data)
        return data


# --- roundtrips -------------------------------------------------------------------------------
def test_bytes_roundtrip_and_overwrite(store: ArtifactStore) -> None:
    info = store.put_bytes("a/b.bin", b"hello", content_type="text/plain")
    assert (info.key, info.size, info.content_type) == ("a/b.bin", 5, "text/plain")
    assert info.etag
    assert store.get_bytes("a/b.bin") == b"hello"
    store.put_bytes("a/b.bin", b"replaced!")
    assert store.get_bytes("a/b.bin") == b"replaced!"
    st = store.stat("a/b.bin")
    assert st.size == 9 and st.etag and st.etag != info.etag
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b"" and store.stat("empty").size == 0


def test_npy_roundtrip(store: ArtifactStore) -> None:
    arrays = {
        "f32.npy": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        "i64.npy": np.array([-(2**62), 0, 2**62], dtype=np.int64),
        "bool.npy": np.array([[True, False]]),
        "str.npy": np.array(["cat", "dög", ""], dtype="<U4"),
        "fortran.npy": np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3)),
        "scalar.npy": np.array(3.5),
    }
    for key, array in arrays.items():
        store.put_npy(key, array)
    for key, array in arrays.items():
        for mmap in (False, True):
            got = store.get_npy(key, mmap=mmap)
            assert got.dtype == array.dtype and got.shape == array.shape, key
            np.testing.assert_array_equal(got, array)


def test_npy_object_arrays_refused_on_write(store: ArtifactStore) -> None:
    with pytest.raises(StoreError, match="pickle"):
        store.put_npy("obj.npy", np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(StoreError, match="pickle"):
        store.put_npy("rec.npy", np.zeros(2, dtype=[("x", "f4"), ("o", "O")]))
    assert not store.exists("obj.npy") and not store.exists("rec.npy")


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npy_with_pickled_payload_refused_on_read(store: ArtifactStore, version: tuple[int, int]) -> None:
    header = {"descr": "|O", "fortran_order": False, "shape": (1,)}
    buf = io.BytesIO()
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, header)
    else:
        np.lib.format.write_array_header_2_0(buf, header)
    # Hand-assembled pickle opcodes (PROTO 2, EMPTY_LIST, BININT1 1, APPEND, STOP) = [1].
    buf.write(b"\x80\x02]K\x01a.")
    store.put_bytes("evil.npy", buf.getvalue())
    for mmap in (False, True):
        with pytest.raises(StoreError, match="pickle"):
            store.get_npy("evil.npy", mmap=mmap)


def test_npy_garbage_refused(store: ArtifactStore) -> None:
    store.put_bytes("junk.npy", b"not an npy file at all")
    with pytest.raises(StoreError):
        store.get_npy("junk.npy")


def test_json_and_safetensors_roundtrip(store: ArtifactStore) -> None:
    doc = {"name": "run-1", "scores": [0.5, 1.0], "nested": {"ok": True, "none": None}, "ü": "ß"}
    store.put_json("meta/run.json", doc)
    assert store.get_json("meta/run.json") == doc

    tensors: dict[str, np.ndarray] = {"w": np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "b": np.arange(3, dtype=np.int64)}
    store.put_safetensors("model/weights.safetensors", tensors, metadata={"arch": "tiny"})
    loaded = store.get_safetensors("model/weights.safetensors")
    assert set(loaded) == {"w", "b"}
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded[name], value)
    raw = store.get_bytes("model/weights.safetensors")
    header_len = int.from_bytes(raw[:8], "little")
    assert b'"arch":"tiny"' in raw[8 : 8 + header_len]


def test_parquet_roundtrip(store: ArtifactStore) -> None:
    # exc_type: a pyarrow built for numpy 2 raises ImportError (not ModuleNotFoundError) under numpy 1
    pa = pytest.importorskip("pyarrow", exc_type=ImportError)
    pd = pytest.importorskip("pandas", exc_type=ImportError)
    table = pa.table({"id": [1, 2, 3], "label": ["cat", "dog", None], "score": [0.1, 0.2, 0.3]})
    store.put_parquet("tables/t.parquet", table)
    assert store.get_parquet("tables/t.parquet").equals(table)
    frame = pd.DataFrame({"x": [1.5, 2.5], "y": ["a", "b"]})
    store.put_parquet("tables/df.parquet", frame)
    got = store.get_parquet("tables/df.parquet").to_pandas()
    assert got["x"].tolist() == [1.5, 2.5] and got["y"].tolist() == ["a", "b"]
    assert store.get_bytes("tables/t.parquet")[:4] == b"PAR1"


# --- keys and URIs ----------------------------------------------------------------------------
BAD_KEYS = [
    "",
    "..",
    "../x",
    "a/../../x",
    "a/./b",
    "/abs/x",
    "a//b",
    "a\\b",
    "a\x00b",
    "a\nb",
    "a\x7fb",
    "dir/",
    "x" * 1025,
    "a/" + "b" * 256,
    "bad\udc80surrogate",
]


def _key_calls(store: ArtifactStore, key: str) -> list[tuple[str, Callable[[], object]]]:
    return [
        ("uri", lambda: store.uri(key)),
        ("put_bytes", lambda: store.put_bytes(key, b"x")),
        ("put_stream", lambda: store.put_stream(key, io.BytesIO(b"x"))),
        ("put_stream_len", lambda: store.put_stream(key, io.BytesIO(b"x"), length=1)),
        ("open", lambda: store.open(key)),
        ("get_bytes", lambda: store.get_bytes(key)),
        ("stat", lambda: store.stat(key)),
        ("exists", lambda: store.exists(key)),
        ("delete", lambda: store.delete(key)),
        ("put_npy", lambda: store.put_npy(key, np.zeros(2))),
        ("get_npy", lambda: store.get_npy(key)),
        ("put_json", lambda: store.put_json(key, {})),
        ("get_json", lambda: store.get_json(key)),
        ("put_parquet", lambda: store.put_parquet(key, {"a": [1]})),  # the key is refused before the table is read
        ("get_parquet", lambda: store.get_parquet(key)),
        ("put_safetensors", lambda: store.put_safetensors(key, {"a": np.zeros(1)})),
        ("get_safetensors", lambda: store.get_safetensors(key)),
        ("put_bytes_if", lambda: store.put_bytes_if(key, b"x", expected_etag=None)),
        ("copy_from", lambda: store.copy(key, "ok/x")),
        ("copy_to", lambda: store.copy("ok/x", key)),
    ]


@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: repr(k)[:24])
def test_bad_keys_refused_by_every_method(store: ArtifactStore, key: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)
    for name, call in _key_calls(store, key):
        with pytest.raises(InvalidKeyError):
            call()
            pytest.fail(f"{name} accepted {key!r}")
    assert _keys(store) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == (["store"] if isinstance(store, LocalStore) else [])


@pytest.mark.parametrize("prefix", ["/", "/a", "../", "a/../", "a//", "a\\", "a\x01/", "x" * 1100])
def test_bad_prefixes_refused(store: ArtifactStore, prefix: str) -> None:
    with pytest.raises(InvalidKeyError):
        store.list(prefix)  # eagerly, before iteration
    with pytest.raises(InvalidKeyError):
        store.list(prefix, recursive=False)
    with pytest.raises(InvalidKeyError):
        store.delete_prefix(prefix if prefix.endswith("/") else prefix + "/")


def test_good_keys_accepted() -> None:
    for key in ["a", "a/b.c", "ü/x y/z.png", ".hidden", "a..b", "x/...", "-", "a" * 255]:
        assert validate_key(key) == key
    for prefix in ["", "a", "a/", "a/b", "datasets/x/"]:
        assert validate_prefix(prefix) == prefix


def test_longest_key_roundtrip(store: ArtifactStore) -> None:
    key = "/".join(["s" * 200] * 5) + "/" + "t" * 19  # 1024 bytes, segments <= 255
    assert len(key.encode()) == 1024
    store.put_bytes(key, b"deep")
    assert store.get_bytes(key) == b"deep" and _keys(store) == [key]
    with pytest.raises(InvalidKeyError):
        store.put_bytes(key + "u", b"too long")


def test_uri_roundtrip_and_foreign_uris(store: ArtifactStore, tmp_path: Path) -> None:
    key = "a b/c%d/ü.npy"
    store.put_bytes(key, b"payload")
    uri = store.uri(key)
    assert store.key_from_uri(uri) == key
    if isinstance(store, LocalStore):
        assert uri == store.root.as_uri() + "/a%20b/c%25d/%C3%BC.npy"
        assert Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path)).read_bytes() == b"payload"
        assert store.key_from_uri("file://localhost" + urllib.parse.urlsplit(uri).path) == key
        foreign = [
            (tmp_path / "other").as_uri() + "/x",
            store.root.as_uri() + "2/x",  # a sibling whose name extends the root's
            store.root.as_uri() + "/../escape",
            store.root.as_uri() + "/",
            store.root.as_uri(),
            "file://otherhost" + store.root.as_posix() + "/x",
            "s3://bucket/x",
            "file:///etc/passwd",
        ]
    else:
        assert isinstance(store, S3Store)
        assert uri == f"s3://{store.bucket}/{key}"
        foreign = [
            f"s3://{store.bucket}x/k",
            f"s3://other/{key}",
            f"s3://{store.bucket}/",
            f"s3://{store.bucket}/../x",
            f"s3://{store.bucket}//x",
            f"file:///{store.bucket}/{key}",
            f"S3://{store.bucket}/{key}x",
        ]
    for other in foreign:
        with pytest.raises(InvalidKeyError) as err:
            store.key_from_uri(other)
        assert str(err.value), other
    with pytest.raises(InvalidKeyError, match="start with"):
        store.key_from_uri("gs://bucket/x")


def test_local_symlink_escape_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (store.root / "link").symlink_to(outside, target_is_directory=True)
    (store.root / "file-link").symlink_to(outside / "secret")
    for key in ["link/secret", "link/new", "file-link"]:
        for name, call in _key_calls(store, key):
            if name == "uri":
                continue  # naming a key is not touching it
            with pytest.raises(InvalidKeyError, match="outside"):
                call()
                pytest.fail(f"{name} followed a symlink out of the root for {key!r}")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"
    assert _keys(store) == [] and _keys(store, "link/") == []


def test_local_reserved_temp_names_and_hidden_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(InvalidKeyError, match="reserved"):
        store.put_bytes("a/.tmp-x", b"x")
    store.put_bytes("a/real", b"x")
    (store.root / "a" / ".tmp-stray").write_bytes(b"partial")
    (store.root / "only-temp").mkdir()
    (store.root / "only-temp" / ".tmp-stray").write_bytes(b"partial")
    assert _keys(store) == ["a/real"]
    assert _keys(store, "", recursive=False) == ["a/"]


def test_local_object_folder_conflict(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.put_bytes("a/b", b"x")
    with pytest.raises(StoreError, match="folder"):
        store.put_bytes("a", b"y")
    store.put_bytes("f", b"x")
    with pytest.raises(StoreError, match="parent"):
        store.put_bytes("f/g", b"y")
    assert _keys(store) == ["a/b", "f"] and _temp_files(store) == []


# --- atomicity and streaming ------------------------------------------------------------------
def test_failed_put_stream_leaves_nothing(store: ArtifactStore) -> None:
    store.put_bytes("obj", b"old contents")
    in_flight: list[int] = []
    for key in ("obj", "fresh"):
        # 7 MiB then an error: on S3 one 5 MiB part is already uploaded when the source fails.
        src = _Source(total=20 * MiB, chunk=MiB, fail_after=7 * MiB, before_fail=lambda: in_flight.append(_pending_uploads(store)))
        with pytest.raises(RuntimeError, match="midway"):
            store.put_stream(key, src)
    assert in_flight == [1, 1], "the write was not in flight when the source failed; the test proves nothing"
    assert store.get_bytes("obj") == b"old contents"
    assert not store.exists("fresh")
    assert _keys(store) == ["obj"]
    assert _pending_uploads(store) == 0  # temp file removed / multipart upload aborted


def test_put_stream_known_length(store: ArtifactStore) -> None:
    info = store.put_stream("exact", io.BytesIO(b"abcdef"), length=6)
    assert info.size == 6 and store.get_bytes("exact") == b"abcdef"
    assert store.put_stream("empty", io.BytesIO(b"")).size == 0 and store.get_bytes("empty") == b""
    store.put_stream("prefix-only", io.BytesIO(b"abcdef"), length=4)
    assert store.get_bytes("prefix-only") == b"abcd"
    store.put_bytes("short", b"old")
    for length in (10, 7 * MiB):
        with pytest.raises(StoreError, match="length"):
            store.put_stream("short", _Source(total=length - 3), length=length)
    assert store.get_bytes("short") == b"old"
    assert _keys(store) == ["empty", "exact", "prefix-only", "short"] and _pending_uploads(store) == 0


def test_stream_40mib_with_bounded_memory(store: ArtifactStore) -> None:
    total = 40 * MiB
    src = _Source(total=total, chunk=256 * 1024)
    tracemalloc.start()
    try:
        info = store.put_stream("big/blob.bin", src, length=-1)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        sha = hashlib.sha256()
        read = 0
        with store.open("big/blob.bin") as f:
            while chunk := f.read(MiB):
                assert len(chunk) <= MiB
                sha.update(chunk)
                read += len(chunk)
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == total and store.stat("big/blob.bin").size == total and read == total
    assert sha.hexdigest() == src.sha.hexdigest()
    assert put_peak < 20 * MiB, f"put_stream held {put_peak / MiB:.1f} MiB"
    assert get_peak < 8 * MiB, f"open/read held {get_peak / MiB:.1f} MiB"
    if isinstance(store, S3Store):
        assert info.etag.endswith("-8"), f"expected an 8-part multipart upload, etag {info.etag}"


def test_open_reads_in_pieces(store: ArtifactStore) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    store.put_bytes("piece", data)
    with store.open("piece") as f:
        assert isinstance(f, io.BufferedIOBase) and f.readable()
        assert f.read(10) == data[:10]
        buf = bytearray(100)
        assert f.readinto(buf) == 100 and bytes(buf) == data[10:110]
        assert f.read() == data[110:]
        assert f.read(5) == b""
    assert f.closed
    for _ in range(20):  # abandon reads midway; connections must be released, not exhausted
        with store.open("piece") as f:
            assert f.read(3) == data[:3]
    assert store.get_bytes("piece") == data


# --- listing, deleting, missing objects -------------------------------------------------------
LAYOUT = {"b.txt": b"b", "a/1": b"11", "a/2/x": b"x", "a/2/y": b"yy", "a-b": b"ab", "a/3": b"333", "c/d/e": b"e"}


def test_list_sorted_prefix_and_non_recursive(store: ArtifactStore) -> None:
    for key in reversed(list(LAYOUT)):
        store.put_bytes(key, LAYOUT[key])
    everything = store.list()
    assert all(isinstance(i, ObjectInfo) and not i.is_dir for i in everything)
    infos = list(store.list())
    assert [i.key for i in infos] == ["a-b", "a/1", "a/2/x", "a/2/y", "a/3", "b.txt", "c/d/e"]  # UTF-8 byte order
    assert {i.key: i.size for i in infos} == {k: len(v) for k, v in LAYOUT.items()}
    assert _keys(store, "a/") == ["a/1", "a/2/x", "a/2/y", "a/3"]
    assert _keys(store, "a") == ["a-b", "a/1", "a/2/x", "a/2/y", "a/3"]
    assert _keys(store, "a/2") == ["a/2/x", "a/2/y"]
    assert _keys(store, "zzz") == [] and _keys(store, "nothing/") == []

    top = list(store.list("", recursive=False))
    assert [(i.key, i.is_dir) for i in top] == [("a-b", False), ("a/", True), ("b.txt", False), ("c/", True)]
    assert [(i.key, i.is_dir) for i in store.list("a/", recursive=False)] == [("a/1", False), ("a/2/", True), ("a/3", False)]
    assert _keys(store, "a/2", recursive=False) == ["a/2/"]
    assert _keys(store, "c/d/", recursive=False) == ["c/d/e"]

    store.delete("c/d/e")  # an emptied folder disappears from listings
    assert _keys(store, "", recursive=False) == ["a-b", "a/", "b.txt"]


def test_delete_delete_prefix_exists_stat(store: ArtifactStore) -> None:
    for key, data in LAYOUT.items():
        store.put_bytes(key, data)
    assert store.exists("a/3") and store.stat("a/3").size == 3
    store.delete("a/3")
    assert not store.exists("a/3")
    store.delete("a/3")  # absent: not an error
    store.delete("never/was")
    assert store.delete_prefix("a/") == 3
    assert _keys(store) == ["a-b", "b.txt", "c/d/e"]
    assert store.delete_prefix("a/") == 0
    with pytest.raises(InvalidKeyError, match="end with"):
        store.delete_prefix("c")
    assert store.delete_prefix("c/") == 1
    assert _keys(store) == ["a-b", "b.txt"]
    store.put_bytes("a/again", b"new")  # a pruned folder can be written again
    assert store.get_bytes("a/again") == b"new"


def test_missing_objects(store: ArtifactStore) -> None:
    store.put_bytes("dir/child", b"x")
    for key in ["missing", "dir", "dir/missing", "missing/deeper", "dir/child/under-an-object"]:
        calls = (store.open, store.get_bytes, store.stat, store.get_npy, store.get_json, store.get_parquet, store.get_safetensors)
        for call in calls:
            with pytest.raises(ObjectNotFoundError) as err:
                call(key)
            assert isinstance(err.value, KeyError) and key in str(err.value)
        assert not store.exists(key)


def test_missing_bucket_reads_as_missing(s3_endpoint: tuple[str, str, str]) -> None:
    endpoint, access_key, secret_key = s3_endpoint
    s3 = S3Store(endpoint, access_key, secret_key, _new_bucket(), create_bucket=False)
    with pytest.raises(ObjectNotFoundError):
        s3.stat("x")
    with pytest.raises(ObjectNotFoundError):
        s3.get_bytes("x")
    with pytest.raises(StoreError, match="does not exist"):
        s3.put_bytes("x", b"x")


# --- concurrency ------------------------------------------------------------------------------
def test_concurrent_writers_never_tear(store: ArtifactStore) -> None:
    writers, rounds = 6, 4
    payloads = [bytes([i]) * (300 * 1024 + i * 1024) for i in range(writers)]
    payloads[0] = b"\x00" * (6 * MiB)  # streamed in two parts on S3
    known = {hashlib.sha256(p).hexdigest(): i for i, p in enumerate(payloads)}
    store.put_bytes("shared", payloads[1])
    errors: list[str] = []
    seen: set[int] = set()
    done = threading.Event()

    def write(i: int) -> None:
        try:
            for _ in range(rounds):
                if i % 2 == 0:
                    store.put_stream("shared", io.BytesIO(payloads[i]))
                else:
                    store.put_bytes("shared", payloads[i])
        except Exception as exc:
            errors.append(f"writer {i}: {exc!r}")

    def read() -> None:
        while not done.is_set():
            try:
                data = store.get_bytes("shared")
            except Exception as exc:
                errors.append(f"reader: {exc!r}")
                return
            which = known.get(hashlib.sha256(data).hexdigest())
            if which is None:
                errors.append(f"reader saw a torn object of {len(data)} bytes")
                return
            seen.add(which)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers + threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert errors == []
    assert seen, "readers never completed a read"
    assert hashlib.sha256(store.get_bytes("shared")).hexdigest() in known
    assert _keys(store) == ["shared"] and _pending_uploads(store) == 0


# --- open_store -------------------------------------------------------------------------------
def test_open_store_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "with space"
    a = open_store(target.as_uri())
    assert isinstance(a, LocalStore) and a.root == target.resolve()
    b = open_store(str(tmp_path / "plain"))
    assert isinstance(b, LocalStore) and b.root == (tmp_path / "plain").resolve()
    assert isinstance(open_store(tmp_path / "pathlike"), LocalStore)
    monkeypatch.setenv("FAILURELENS_STORE", (tmp_path / "from-env").as_uri())
    c = open_store()
    assert isinstance(c, LocalStore) and c.root == (tmp_path / "from-env").resolve()
    monkeypatch.delenv("FAILURELENS_STORE")
    monkeypatch.chdir(tmp_path)
    d = open_store(None)
    assert isinstance(d, LocalStore) and d.root == (tmp_path / ".state" / "store").resolve()
    a.put_bytes("k", b"v")
    assert open_store(target.as_uri()).get_bytes("k") == b"v"


def test_open_store_s3(s3_endpoint: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, access_key, secret_key = s3_endpoint
    for name in ("FAILURELENS_S3_ACCESS_KEY", "FAILURELENS_S3_SECRET_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    bucket = _new_bucket()
    uri = f"s3://{bucket}?endpoint={endpoint}&secure=false"
    with pytest.raises(ValueError, match="FAILURELENS_S3_ACCESS_KEY"):
        open_store(uri)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    s3 = open_store(uri)
    assert isinstance(s3, S3Store) and s3.bucket == bucket
    s3.put_bytes("k", b"v")
    monkeypatch.setenv("FAILURELENS_S3_ACCESS_KEY", access_key)
    monkeypatch.setenv("FAILURELENS_S3_SECRET_KEY", secret_key)
    monkeypatch.setenv("FAILURELENS_STORE", f"s3://{bucket}/?endpoint={endpoint}&region=us-east-1&create_bucket=false")
    again = open_store()
    assert isinstance(again, S3Store) and again.get_bytes("k") == b"v"
    assert again.uri("k") == f"s3://{bucket}/k"
    s3.delete("k")


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "   ",
        "s3://",
        "s3:bucket",
        "s3://bucket",
        "s3://bucket?endpoint=",
        "s3://bucket?endpoint=http://host:9000",
        "s3://bucket?endpoint=host:9000&secure=maybe",
        "s3://bucket?endpoint=host:9000&create_bucket=2",
        "s3://bucket/some/prefix?endpoint=host:9000",
        "s3://bucket?endpoint=host:9000&bogus=1",
        "s3://bucket?endpoint=host:9000&endpoint=other:1",
        "s3://bucket?endpoint=host:9000#frag",
        "s3://bucket?noequals",
        "gs://bucket/x",
        "http://host/x",
        "file://remotehost/srv/store",
        "file:relative/path",
        "file:///tmp/x?query=1",
    ],
)
def test_open_store_malformed(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILURELENS_S3_ACCESS_KEY", "k")
    monkeypatch.setenv("FAILURELENS_S3_SECRET_KEY", "s")
    with pytest.raises(ValueError) as err:
        open_store(uri)
    assert len(str(err.value)) > 20


# --------------------------------------------------------------------- compare-and-set, copies
def test_conditional_writes_and_copies(store: ArtifactStore) -> None:
    from failurelens.store.base import ConflictError

    first = store.put_bytes_if("cas/record.json", b"1", expected_etag=None)
    with pytest.raises(ConflictError):
        store.put_bytes_if("cas/record.json", b"2", expected_etag=None)  # create-only: it exists
    with pytest.raises(ConflictError):
        store.put_bytes_if("cas/record.json", b"2", expected_etag="not-the-etag")
    second = store.put_bytes_if("cas/record.json", b"3", expected_etag=first.etag)
    assert store.get_bytes("cas/record.json") == b"3" and second.etag != first.etag
    with pytest.raises(ConflictError):
        store.put_bytes_if("cas/record.json", b"4", expected_etag=first.etag)  # stale etag
    copied = store.copy("cas/record.json", "cas/copy.json")
    assert copied.key == "cas/copy.json" and store.get_bytes("cas/copy.json") == b"3"
    store.put_bytes("cas/record.json", b"5")  # a later write of the source leaves the copy as it was
    assert store.get_bytes("cas/copy.json") == b"3"
    with pytest.raises(ObjectNotFoundError):
        store.copy("cas/missing.json", "cas/x.json")


def test_one_of_eight_concurrent_creators_wins(store: ArtifactStore) -> None:
    from failurelens.store.base import ConflictError

    barrier = threading.Barrier(8)
    wins, losses = [], []

    def create(i: int) -> None:
        barrier.wait()
        try:
            store.put_bytes_if("race/record.json", str(i).encode(), expected_etag=None)
            wins.append(i)
        except ConflictError:
            losses.append(i)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # an S3 emulation may let two creators through; the catalog's read-back settles those
    assert len(wins) >= 1 and len(wins) + len(losses) == 8
    assert store.get_bytes("race/record.json") in {str(i).encode() for i in wins}
    if isinstance(store, LocalStore):
        assert len(wins) == 1


def test_bulk_writes_are_readable_at_once_and_a_folder_syncs_once(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    fsyncs, syncs = [], []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    monkeypatch.setattr(os, "sync", lambda: syncs.append(1))
    with store.bulk() as batch:
        for i in range(20):
            batch.put_bytes(f"bulk/{i}.bin", bytes([i]) * 10)
        assert store.get_bytes("bulk/7.bin") == bytes([7]) * 10
    assert sorted(o.key for o in store.list("bulk/")) == sorted(f"bulk/{i}.bin" for i in range(20))
    if isinstance(store, LocalStore):
        assert fsyncs == [] and syncs == [1]  # one sync for the batch, none per object
        store.put_bytes("bulk/after.bin", b"x")
        assert len(fsyncs) == 2  # the store itself still syncs every write (file + folder)


def test_writes_and_failed_writes_reach_the_monitoring_hooks(store: ArtifactStore) -> None:
    written, failed = [], []
    store.on_write, store.on_write_error = written.append, lambda: failed.append(1)
    store.put_bytes("hooks/a.bin", b"x" * 10)
    store.put_stream("hooks/b.bin", io.BytesIO(b"y" * 7), 7)
    with store.bulk() as batch:
        batch.put_bytes("hooks/c.bin", b"z" * 3)
    assert written == [10, 7, 3] and failed == []
    with pytest.raises(StoreError):
        store.put_stream("hooks/short.bin", io.BytesIO(b"only 9 b"), 100)  # shorter than announced
    assert failed == [1]


def test_s3_body_cut_off_mid_read_is_unavailable_naming_the_store() -> None:
    """The server answers 200 for a 1 MiB object, sends 10 bytes and hangs up: reading the body
    raises StoreUnavailableError (gRPC UNAVAILABLE), like a request that never reached it."""
    import socket

    from failurelens.store import StoreUnavailableError

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n" + b"x" * 10)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        store = S3Store(f"127.0.0.1:{port}", "key", "secret", "bucket", region="us-east-1", create_bucket=False)
        for read in (lambda: store.get_bytes("a/b.bin"), lambda: store.open("a/b.bin").read(4096 * 64)):
            with pytest.raises(StoreUnavailableError) as e:
                read()
            assert "unreachable" in str(e.value) and f"127.0.0.1:{port}" in str(e.value)
    finally:
        srv.close()
        t.join(5)
