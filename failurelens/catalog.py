"""Records of registered entities and typed artifacts, kept in the artifact store.

Layout (every record is the API message as JSON, never a pickle)::

    datasets/<id>/dataset.json            the Dataset record (its presence = registered)
    datasets/<id>/<version>/manifest.parquet, class_names.json, unreadable.parquet, images/...
    models/<id>/model.json                the Model record
    models/<id>/<version>/model.onnx [, text.onnx]
    embeddings/<id>/embedding.json        the EmbeddingSet record
    embeddings/<id>/<version>/*.npy, skipped.parquet
    trees/<id>/report.json                a FailureTreesReport; <version>/report.json, rules.parquet
    directions/<id>/report.json           a FailureDirectionsReport; <version>/class-<c>/*.npy
    evidence/<id>/report.json             a FeatureEvidenceReport; <version>/feature-<f>/*.png
    debugsplits/<name>/split.json         a DebugSplit; <version>/*.npy
    texts/<model_id>/<id>.npy             text embeddings; captions/... caption documents

What a record points to never changes: every version of an entity lives under its own prefix
(``<folder>/<id>/<version>/``), written first; the record is written last with compare-and-set
against the record the writer started from (:meth:`Catalog.writing`), so readers never see a
half-written entity, an overwrite switches atomically, and of two concurrent writers of one id
exactly one wins: the other gets ABORTED (or ALREADY_EXISTS) and removes its own version. A
version is deleted only once no committed record refers to it (the winner removes the version
it replaced; versions older than :data:`ORPHAN_AGE_SECONDS` that no record refers to, left by
crashed writers, are swept). Services never assemble artifact references by hand: the typed
``put_*`` helpers return :class:`~failurelens.v1.common_pb2.ArtifactRef` with media type,
size, shape, dtype and SHA-256 filled in, and :func:`derived_id` is the one way to name
something after its inputs.
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
from google.protobuf import json_format, message

from failurelens import errors
from failurelens.store.base import (
    ArtifactStore,
    ConflictError,
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    encode_json,
    encode_npy,
    encode_parquet,
)
from failurelens.v1 import common_pb2, embedding_pb2, registry_pb2, slice_discovery_pb2

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{8}$")
NPY, JSON, PARQUET, PNG, ONNX = "application/x-npy", "application/json", "application/vnd.apache.parquet", "image/png", "application/onnx"
#: a version no record refers to is a crashed writer's leftover once it is this old
ORPHAN_AGE_SECONDS = 6 * 3600


@dataclasses.dataclass(frozen=True)
class Kind:
    folder: str
    record_name: str
    message: type[message.Message]
    hint: str


KINDS = {
    "dataset": Kind(
        "datasets", "dataset.json", registry_pb2.Dataset, "register it with `failurelens dataset register` or ListDatasets to see what exists"
    ),
    "model": Kind("models", "model.json", registry_pb2.Model, "register it with `failurelens model register` or ListModels to see what exists"),
    "embedding set": Kind("embeddings", "embedding.json", embedding_pb2.EmbeddingSet, "create it with Embed or ListEmbeddings to see what exists"),
    "failure-trees report": Kind("trees", "report.json", slice_discovery_pb2.FailureTreesReport, "create it with FitFailureTrees"),
    "failure-directions report": Kind(
        "directions", "report.json", slice_discovery_pb2.FailureDirectionsReport, "create it with FitFailureDirections"
    ),
    "feature-evidence report": Kind("evidence", "report.json", slice_discovery_pb2.FeatureEvidenceReport, "create it with RenderFeatureEvidence"),
    "debug split": Kind("debugsplits", "split.json", slice_discovery_pb2.DebugSplit, "create it with SplitDebugSet"),
}


def validate_id(kind: str, value: str, field: str) -> str:
    """``value`` if it is a valid entity name, else InvalidArgument about ``field``."""
    if not value:
        raise errors.InvalidArgument.about(field, f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} name is required")
    if not _ID.match(value) or ".." in value:
        raise errors.InvalidArgument.about(
            field, f"{value!r} is not a valid {kind} name: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return value


def validate_model_name(name: str, field: str) -> str:
    """A model name: an entity name that cannot take over the Triton names derived from other
    models (``<model>__image``, ``<model>__text``, ``<model>__attack``): no ``__``."""
    validate_id("model", name, field)
    if "__" in name:
        raise errors.InvalidArgument.about(
            field, f"{name!r} contains '__', which is reserved for the Triton names derived from models (e.g. '<model>__text'); choose another name"
        )
    return name


def model_version(model: registry_pb2.Model, version: int | None, field: str = "model_version") -> int:
    """The version of a model a request names (None: its latest); NotFound for one it lacks.
    Version 1 is the registered ONNX; retrained heads add later ones (``Model.versions``)."""
    known = [v.version for v in model.versions] or [1]
    if version is None:
        return max(known)
    if version not in known:
        raise errors.NotFound(
            f"model {model.model_id!r} has no version {version}; its versions are {sorted(known)}",
            resource_type="model version",
            name=f"{model.model_id}/{version}",
        )
    return int(version)


def derived_id(prefix: str, *parts: Any) -> str:
    """``<prefix>-<12 hex digits>`` naming something after its inputs: the same inputs (messages,
    strings, numbers, lists of them) give the same id."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, message.Message):
            data = part.SerializeToString(deterministic=True)
        elif isinstance(part, bytes):
            data = part
        else:
            data = json.dumps(part, sort_keys=True, default=str).encode()
        h.update(len(data).to_bytes(8, "little") + data)
    return f"{prefix}-{h.hexdigest()[:12]}"


def new_version() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def version_age_seconds(version: str) -> float:
    """Seconds since a version was started (0 for a name that is not a version)."""
    if not _VERSION.match(version):
        return 0.0
    return time.time() - calendar.timegm(time.strptime(version[:15], "%Y%m%dT%H%M%S"))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _png(image: Any) -> bytes:
    if isinstance(image, bytes):
        return image
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.asarray(image, dtype=np.uint8))).save(buf, format="PNG")
    return buf.getvalue()


class _HashingReader:
    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.hash.update(data)
        return data


class Catalog:
    """The records and artifacts of one store; every service's only way to read and write them."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    # --- typed artifacts ------------------------------------------------------------------
    def ref(self, info: ObjectInfo, media_type: str, sha256: str, shape: tuple[int, ...] = (), dtype: str = "") -> common_pb2.ArtifactRef:
        return common_pb2.ArtifactRef(
            uri=self.store.uri(info.key), media_type=media_type, size_bytes=info.size, shape=list(shape), dtype=dtype, sha256=sha256
        )

    def put_bytes(self, key: str, data: bytes, media_type: str, shape: tuple[int, ...] = (), dtype: str = "") -> common_pb2.ArtifactRef:
        return self.ref(self.store.put_bytes(key, data, media_type), media_type, sha256_hex(data), shape, dtype)

    def put_npy(self, key: str, array: Any) -> common_pb2.ArtifactRef:
        a = np.asarray(array)
        return self.put_bytes(key, encode_npy(a), NPY, a.shape, str(a.dtype))

    def put_json(self, key: str, obj: Any) -> common_pb2.ArtifactRef:
        return self.put_bytes(key, encode_json(obj), JSON)

    def put_parquet(self, key: str, table: Any) -> common_pb2.ArtifactRef:
        return self.put_bytes(key, encode_parquet(table), PARQUET)

    def put_png(self, key: str, image: Any) -> common_pb2.ArtifactRef:
        """A PNG from encoded bytes or a uint8 image array."""
        return self.put_bytes(key, _png(image), PNG)

    def put_file(
        self, key: str, path: str | os.PathLike[str], media_type: str, shape: tuple[int, ...] = (), dtype: str = ""
    ) -> common_pb2.ArtifactRef:
        """A local file, streamed (never whole in memory) and hashed on the way."""
        with open(path, "rb") as f:
            reader = _HashingReader(f)
            info = self.store.put_stream(key, reader, os.path.getsize(path), media_type)
        return self.ref(info, media_type, reader.hash.hexdigest(), shape, dtype)

    def load_array(self, ref: common_pb2.ArtifactRef) -> np.ndarray:
        return self.store.get_npy(self.store.key_from_uri(ref.uri))

    def load_json(self, ref: common_pb2.ArtifactRef) -> Any:
        return self.store.get_json(self.store.key_from_uri(ref.uri))

    def load_table(self, ref: common_pb2.ArtifactRef) -> Any:  # -> pandas.DataFrame
        return self.store.get_parquet(self.store.key_from_uri(ref.uri)).to_pandas()

    def open(self, ref: common_pb2.ArtifactRef) -> IO[bytes]:
        return self.store.open(self.store.key_from_uri(ref.uri))

    def load_manifest(self, dataset: registry_pb2.Dataset) -> Any:  # -> pandas.DataFrame
        return self.load_table(dataset.manifest)

    def verify(self, ref: common_pb2.ArtifactRef) -> bool:
        """True if the artifact exists with its recorded size and SHA-256."""
        h = hashlib.sha256()
        n = 0
        try:
            with self.open(ref) as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    n += len(chunk)
        except ObjectNotFoundError:
            return False
        return n == ref.size_bytes and (not ref.sha256 or h.hexdigest() == ref.sha256)

    # --- objects named in requests --------------------------------------------------------
    def key(self, uri: str, field: str) -> str:
        """The store key of a URI given in request field ``field``."""
        if not uri:
            raise errors.InvalidArgument.about(field, "a URI is required (s3://bucket/key or file:///path of this server's store)")
        try:
            return self.store.key_from_uri(uri)
        except InvalidKeyError as exc:
            raise exc.for_field(field) from None

    def read(self, uri: str, field: str, hint: str = "upload it to the store first") -> bytes:
        """The bytes of the object a request field names; NotFound says which field."""
        data = self.store.get_bytes_or_none(self.key(uri, field))
        if data is None:
            raise errors.NotFound.resource("object", uri, f"{hint} ({field})")
        return data

    def read_json(self, uri: str, field: str, hint: str = "upload the JSON file first") -> Any:
        data = self.read(uri, field, hint)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise errors.InvalidArgument.about(field, f"{uri!r} is not valid JSON: {exc}") from None

    def read_npy(self, uri: str, field: str, hint: str) -> np.ndarray:
        key = self.key(uri, field)
        if not self.store.exists(key):
            raise errors.NotFound.resource("artifact", uri, hint)
        return self.store.get_npy(key)

    # --- records --------------------------------------------------------------------------
    def _record_key(self, kind: str, entity_id: str) -> str:
        k = KINDS[kind]
        return f"{k.folder}/{entity_id}/{k.record_name}"

    def exists(self, kind: str, entity_id: str) -> bool:
        return self.store.exists(self._record_key(kind, entity_id))

    def get(self, kind: str, entity_id: str, field: str = "") -> Any:
        k = KINDS[kind]
        validate_id(kind, entity_id, field or f"{kind.replace(' ', '_')}_id")
        data = self.store.get_bytes_or_none(self._record_key(kind, entity_id))
        if data is None:
            raise errors.NotFound.resource(kind, entity_id, k.hint)
        return json_format.Parse(data, k.message(), ignore_unknown_fields=True)

    def list(self, kind: str) -> list[Any]:
        k = KINDS[kind]
        out = []
        for info in self.store.list(f"{k.folder}/"):
            parts = info.key.split("/")
            if len(parts) == 3 and parts[2] == k.record_name:
                data = self.store.get_bytes_or_none(info.key)
                if data is not None:  # deleted while listing
                    out.append(json_format.Parse(data, k.message(), ignore_unknown_fields=True))
        return out

    def ensure_free(self, kind: str, entity_id: str, overwrite: bool) -> str:
        """``entity_id``, unless an entity of that name exists and ``overwrite`` is not set (the
        early check before a job starts; the commit checks again, atomically)."""
        if not overwrite and self.exists(kind, entity_id):
            raise errors.AlreadyExists.resource(kind, entity_id)
        return entity_id

    def put_record(self, kind: str, entity_id: str, record: message.Message) -> None:
        """Write a record as it is (tools and tests; services write through :meth:`writing`)."""
        self.store.put_bytes(self._record_key(kind, entity_id), _record_bytes(record), JSON)

    def _head(self, kind: str, entity_id: str) -> tuple[str, bytes] | None:
        """(etag, bytes) of the record as it is now, or None."""
        key = self._record_key(kind, entity_id)
        for _ in range(5):  # the record may be replaced between the stat and the read
            try:
                etag = self.store.stat(key).etag
                data = self.store.get_bytes(key)
                if self.store.stat(key).etag == etag:
                    return etag, data
            except ObjectNotFoundError:
                return None
        raise errors.Aborted(f"{kind} {entity_id!r} keeps changing under concurrent writers; retry", resource_type=kind, name=entity_id)

    def versions_in(self, kind: str, entity_id: str, record: bytes | None) -> set[str]:
        """The versions of an entity that a record's text refers to."""
        if not record:
            return set()
        pattern = re.compile(re.escape(f"{KINDS[kind].folder}/{entity_id}/") + r"(\d{8}T\d{6}-[0-9a-f]{8})/")
        return set(pattern.findall(record.decode("utf-8", "replace")))

    def _sweep(self, kind: str, entity_id: str, keep: set[str], replaced: set[str]) -> None:
        """Remove versions no committed record refers to: ``replaced`` (what a commit or a delete
        replaced) and crashed writers' leftovers older than ORPHAN_AGE_SECONDS; never ``keep``."""
        folder = f"{KINDS[kind].folder}/{entity_id}/"
        for info in self.store.list(folder, recursive=False):
            version = info.key[len(folder) :].rstrip("/")
            if info.is_dir and version not in keep and (version in replaced or version_age_seconds(version) > ORPHAN_AGE_SECONDS):
                self.store.delete_prefix(info.key)

    def delete(self, kind: str, entity_id: str) -> bool:
        """Remove the record, then the version it referred to (versions being written by
        concurrent calls stay theirs: their commit fails and removes them)."""
        head = self._head(kind, entity_id)
        if head is None:
            return False
        self.store.delete(self._record_key(kind, entity_id))
        self._sweep(kind, entity_id, set(), self.versions_in(kind, entity_id, head[1]))
        return True

    @contextlib.contextmanager
    def writing(self, kind: str, entity_id: str, overwrite: bool) -> Iterator[Version]:
        """A new version of an entity: write its artifacts through the yielded :class:`Version`,
        then :meth:`Version.commit` the record (compare-and-set against the record seen here). On
        any error, a lost race included, what this version wrote is removed; after the commit
        the version it replaced is."""
        head = self._head(kind, entity_id)
        if head is not None and not overwrite:
            raise errors.AlreadyExists.resource(kind, entity_id)
        name = new_version()
        version = Version(self, kind, entity_id, name, head, overwrite)
        try:
            yield version
            if not version.committed:
                raise errors.Internal(f"{kind} {entity_id!r}: the version was written but its record never committed")
        except BaseException:
            self.store.delete_prefix(version.prefix)
            raise
        self._sweep(kind, entity_id, {name}, self.versions_in(kind, entity_id, head[1] if head else None))

    def _commit(self, version: Version, record: message.Message) -> None:
        kind, entity_id = version.kind, version.entity_id
        key = self._record_key(kind, entity_id)
        try:
            self.store.put_bytes_if(key, _record_bytes(record), JSON, expected_etag=version.base[0] if version.base else None)
        except ConflictError:
            if version.base is None and not version.overwrite:
                raise errors.AlreadyExists.resource(kind, entity_id) from None
            raise errors.Aborted(
                f"{kind} {entity_id!r} was written by a concurrent call while this one ran; nothing of this call was kept, retry it",
                resource_type=kind,
                name=entity_id,
            ) from None
        # stores whose conditional writes are not atomic (some S3 emulations) can let two writers
        # through: the writer whose version the record ends up naming won
        if version.name not in self.versions_in(kind, entity_id, self.store.get_bytes_or_none(key)):
            raise errors.Aborted(f"{kind} {entity_id!r} was written by a concurrent call; retry", resource_type=kind, name=entity_id)

    # --- typed records --------------------------------------------------------------------
    def dataset(self, dataset_id: str, field: str = "dataset_id") -> registry_pb2.Dataset:
        return self.get("dataset", dataset_id, field)  # type: ignore[no-any-return]

    def model(self, model_id: str, field: str = "model_id") -> registry_pb2.Model:
        return self.get("model", model_id, field)  # type: ignore[no-any-return]

    def embedding(self, embedding_id: str, field: str = "embedding_id") -> embedding_pb2.EmbeddingSet:
        return self.get("embedding set", embedding_id, field)  # type: ignore[no-any-return]


def _record_bytes(record: message.Message) -> bytes:
    return json_format.MessageToJson(record, preserving_proto_field_name=True, indent=2).encode()


class Version:
    """The artifacts of one version of an entity, under its own prefix (see :meth:`Catalog.writing`)."""

    def __init__(self, catalog: Catalog, kind: str, entity_id: str, name: str, base: tuple[str, bytes] | None, overwrite: bool) -> None:
        self.catalog, self.kind, self.entity_id, self.name = catalog, kind, entity_id, name
        self.prefix = f"{KINDS[kind].folder}/{entity_id}/{name}/"
        self.base, self.overwrite = base, overwrite
        self.committed = False

    def npy(self, name: str, array: Any) -> common_pb2.ArtifactRef:
        return self.catalog.put_npy(self.prefix + name, array)

    def json(self, name: str, obj: Any) -> common_pb2.ArtifactRef:
        return self.catalog.put_json(self.prefix + name, obj)

    def parquet(self, name: str, table: Any) -> common_pb2.ArtifactRef:
        return self.catalog.put_parquet(self.prefix + name, table)

    def png(self, name: str, image: Any) -> common_pb2.ArtifactRef:
        return self.catalog.put_png(self.prefix + name, image)

    def bytes(self, name: str, data: bytes, media_type: str) -> common_pb2.ArtifactRef:
        return self.catalog.put_bytes(self.prefix + name, data, media_type)

    def file(self, name: str, path: str | os.PathLike[str], media_type: str, shape: tuple[int, ...] = (), dtype: str = "") -> common_pb2.ArtifactRef:
        return self.catalog.put_file(self.prefix + name, path, media_type, shape, dtype)

    def copy(self, name: str, src_key: str) -> str:
        """An object of the store copied into this version (its own immutable copy); its key."""
        return self.catalog.store.copy(src_key, self.prefix + name).key

    def commit(self, record: message.Message) -> None:
        """Write the record (last, compare-and-set): from now on readers see this version.
        ALREADY_EXISTS / ABORTED when a concurrent call committed first."""
        self.catalog._commit(self, record)
        self.committed = True
