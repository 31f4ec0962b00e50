"""Records of registered entities and typed artifacts, kept in the artifact store.

Layout (every record is the API message as JSON, never a pickle)::

    datasets/<id>/dataset.json            the Dataset record (its presence = registered)
    datasets/<id>/<version>/manifest.parquet, class_names.json, unreadable.parquet
    models/<id>/model.json                the Model record
    models/<id>/<version>/model.onnx [, text.onnx]
    embeddings/<id>/embedding.json        the EmbeddingSet record
    embeddings/<id>/<version>/*.npy, skipped.parquet
    trees/<id>/report.json                a FailureTreesReport; <version>/report.json, rules.parquet
    directions/<id>/report.json           a FailureDirectionsReport; <version>/class-<c>/*.npy
    evidence/<id>/report.json             a FeatureEvidenceReport; <version>/feature-<f>/*.png
    debugsplits/<name>/split.json         a DebugSplit; <version>/*.npy
    texts/<model_id>/<id>.npy             text embeddings; captions/... caption documents

Artifacts of a new version are written first and the record last (:meth:`Catalog.writing`), so
readers never see a half-written entity and an overwrite switches atomically; a failed write
removes what it wrote. Services never assemble artifact references by hand: the typed ``put_*``
helpers return :class:`~failurelens.v1.common_pb2.ArtifactRef` with media type, size, shape and
dtype filled in, and :func:`derived_id` is the one way to name something after its inputs.
"""

from __future__ import annotations

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
from failurelens.store.base import ArtifactStore, InvalidKeyError, ObjectInfo
from failurelens.v1 import common_pb2, embedding_pb2, registry_pb2, slice_discovery_pb2

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NPY, JSON, PARQUET, PNG, ONNX = "application/x-npy", "application/json", "application/vnd.apache.parquet", "image/png", "application/onnx"


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
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def _png(image: Any) -> bytes:
    if isinstance(image, bytes):
        return image
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.asarray(image, dtype=np.uint8))).save(buf, format="PNG")
    return buf.getvalue()


class Catalog:
    """The records and artifacts of one store; every service's only way to read and write them."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    # --- typed artifacts ------------------------------------------------------------------
    def ref(self, info: ObjectInfo, media_type: str, shape: tuple[int, ...] = (), dtype: str = "") -> common_pb2.ArtifactRef:
        return common_pb2.ArtifactRef(uri=self.store.uri(info.key), media_type=media_type, size_bytes=info.size, shape=list(shape), dtype=dtype)

    def put_npy(self, key: str, array: Any) -> common_pb2.ArtifactRef:
        a = np.asarray(array)
        return self.ref(self.store.put_npy(key, a), NPY, a.shape, str(a.dtype))

    def put_json(self, key: str, obj: Any) -> common_pb2.ArtifactRef:
        return self.ref(self.store.put_json(key, obj), JSON)

    def put_parquet(self, key: str, table: Any) -> common_pb2.ArtifactRef:
        return self.ref(self.store.put_parquet(key, table), PARQUET)

    def put_png(self, key: str, image: Any) -> common_pb2.ArtifactRef:
        """A PNG from encoded bytes or a uint8 image array."""
        return self.ref(self.store.put_bytes(key, _png(image), PNG), PNG)

    def put_bytes(self, key: str, data: bytes, media_type: str) -> common_pb2.ArtifactRef:
        return self.ref(self.store.put_bytes(key, data, media_type), media_type)

    def put_file(
        self, key: str, path: str | os.PathLike[str], media_type: str, shape: tuple[int, ...] = (), dtype: str = ""
    ) -> common_pb2.ArtifactRef:
        """A local file, streamed (never whole in memory)."""
        with open(path, "rb") as f:
            return self.ref(self.store.put_stream(key, f, os.path.getsize(path), media_type), media_type, shape, dtype)

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

    def delete(self, kind: str, entity_id: str) -> bool:
        if not self.exists(kind, entity_id):
            return False
        self.store.delete(self._record_key(kind, entity_id))
        self.store.delete_prefix(f"{KINDS[kind].folder}/{entity_id}/")
        return True

    def ensure_free(self, kind: str, entity_id: str, overwrite: bool) -> str:
        """``entity_id``, unless an entity of that name exists and ``overwrite`` is not set."""
        if not overwrite and self.exists(kind, entity_id):
            raise errors.AlreadyExists.resource(kind, entity_id)
        return entity_id

    def put_record(self, kind: str, entity_id: str, record: message.Message) -> None:
        """Write a record as it is (tools and tests; services write through :meth:`writing`)."""
        data = json_format.MessageToJson(record, preserving_proto_field_name=True, indent=2)
        self.store.put_bytes(self._record_key(kind, entity_id), data.encode(), JSON)

    @contextlib.contextmanager
    def writing(self, kind: str, entity_id: str, overwrite: bool) -> Iterator[Version]:
        """A new version of an entity: write its artifacts through the yielded :class:`Version`,
        then :meth:`Version.commit` the record. On error what was written is removed; after the
        commit older versions are."""
        self.ensure_free(kind, entity_id, overwrite)
        folder = KINDS[kind].folder
        version = Version(self, kind, entity_id, f"{folder}/{entity_id}/{new_version()}/")
        try:
            yield version
            if not version.committed:
                raise errors.Internal(f"{kind} {entity_id!r}: the version was written but its record never committed")
        except BaseException:
            self.store.delete_prefix(version.prefix)
            raise
        for info in list(self.store.list(f"{folder}/{entity_id}/")):
            if len(info.key.split("/")) > 3 and not info.key.startswith(version.prefix):
                self.store.delete(info.key)

    # --- typed records --------------------------------------------------------------------
    def dataset(self, dataset_id: str, field: str = "dataset_id") -> registry_pb2.Dataset:
        return self.get("dataset", dataset_id, field)  # type: ignore[no-any-return]

    def model(self, model_id: str, field: str = "model_id") -> registry_pb2.Model:
        return self.get("model", model_id, field)  # type: ignore[no-any-return]

    def embedding(self, embedding_id: str, field: str = "embedding_id") -> embedding_pb2.EmbeddingSet:
        return self.get("embedding set", embedding_id, field)  # type: ignore[no-any-return]


class Version:
    """The artifacts of one version of an entity, under its own prefix (see :meth:`Catalog.writing`)."""

    def __init__(self, catalog: Catalog, kind: str, entity_id: str, prefix: str) -> None:
        self.catalog, self.kind, self.entity_id, self.prefix = catalog, kind, entity_id, prefix
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

    def commit(self, record: message.Message) -> None:
        """Write the record (last): from now on readers see this version."""
        self.catalog.put_record(self.kind, self.entity_id, record)
        self.committed = True
