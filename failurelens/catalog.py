"""Records of registered datasets, models and embedding sets, kept in the artifact store.

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
    texts/<model_id>/<sha>.npy            text embeddings

Artifacts of a new version are written first and the record last, so readers never see a
half-written entity and an overwrite switches atomically; the previous version is removed after
the switch, and a failed write removes what it wrote.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from typing import Iterator, TypeVar

from google.protobuf import json_format, message

from failurelens.runtime import errors
from failurelens.store.base import ArtifactStore, ObjectInfo
from failurelens.v1 import common_pb2, embedding_pb2, registry_pb2, slice_discovery_pb2

M = TypeVar("M", bound=message.Message)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

KINDS = {
    "dataset": ("datasets", "dataset.json", registry_pb2.Dataset, "register it with `failurelens dataset register` or ListDatasets to see what exists"),
    "model": ("models", "model.json", registry_pb2.Model, "register it with `failurelens model register` or ListModels to see what exists"),
    "embedding set": ("embeddings", "embedding.json", embedding_pb2.EmbeddingSet, "create it with Embed or ListEmbeddings to see what exists"),
    "failure-trees report": ("trees", "report.json", slice_discovery_pb2.FailureTreesReport, "create it with FitFailureTrees"),
    "failure-directions report": ("directions", "report.json", slice_discovery_pb2.FailureDirectionsReport, "create it with FitFailureDirections"),
    "feature-evidence report": ("evidence", "report.json", slice_discovery_pb2.FeatureEvidenceReport, "create it with RenderFeatureEvidence"),
    "debug split": ("debugsplits", "split.json", slice_discovery_pb2.DebugSplit, "create it with SplitDebugSet"),
}


def validate_id(kind: str, value: str, field: str) -> str:
    if not value:
        raise errors.InvalidArgument.field(field, f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} name is required")
    if not _ID.match(value) or ".." in value:
        raise errors.InvalidArgument.field(
            field, f"{value!r} is not a valid {kind} name: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return value


def new_version() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def artifact(store: ArtifactStore, info: ObjectInfo, media_type: str = "", shape: tuple[int, ...] = (), dtype: str = "") -> common_pb2.ArtifactRef:
    return common_pb2.ArtifactRef(uri=store.uri(info.key), media_type=media_type or info.content_type, size_bytes=info.size, shape=list(shape), dtype=dtype)


class Catalog:
    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    # --- records --------------------------------------------------------------------------
    def _record_key(self, kind: str, entity_id: str) -> str:
        folder, name, _, _ = KINDS[kind]
        return f"{folder}/{entity_id}/{name}"

    def exists(self, kind: str, entity_id: str) -> bool:
        return self.store.exists(self._record_key(kind, entity_id))

    def get(self, kind: str, entity_id: str, field: str = "") -> message.Message:
        folder, _, cls, hint = KINDS[kind]
        validate_id(kind, entity_id, field or f"{kind.replace(' ', '_')}_id")
        key = self._record_key(kind, entity_id)
        try:
            data = self.store.get_bytes(key)
        except KeyError:
            raise errors.NotFound.resource(kind, entity_id, hint) from None
        return json_format.Parse(data, cls(), ignore_unknown_fields=True)

    def put(self, kind: str, entity_id: str, record: message.Message) -> None:
        data = json_format.MessageToJson(record, preserving_proto_field_name=True, indent=2)
        self.store.put_bytes(self._record_key(kind, entity_id), data.encode(), "application/json")

    def list(self, kind: str) -> list[message.Message]:
        folder, name, cls, _ = KINDS[kind]
        out = []
        for info in self.store.list(f"{folder}/"):
            parts = info.key.split("/")
            if len(parts) == 3 and parts[2] == name:
                out.append(json_format.Parse(self.store.get_bytes(info.key), cls(), ignore_unknown_fields=True))
        return out

    def delete(self, kind: str, entity_id: str) -> bool:
        folder, _, _, _ = KINDS[kind]
        if not self.exists(kind, entity_id):
            return False
        self.store.delete(self._record_key(kind, entity_id))
        self.store.delete_prefix(f"{folder}/{entity_id}/")
        return True

    @contextlib.contextmanager
    def writing(self, kind: str, entity_id: str, overwrite: bool) -> Iterator[str]:
        """Yield a fresh version prefix for a new entity; on error remove it, on success drop old versions.

        The caller writes its artifacts under the prefix and calls :meth:`put` last.
        """
        folder, _, _, _ = KINDS[kind]
        if self.exists(kind, entity_id) and not overwrite:
            raise errors.AlreadyExists.resource(kind, entity_id)
        version = new_version()
        prefix = f"{folder}/{entity_id}/{version}/"
        try:
            yield prefix
        except BaseException:
            self.store.delete_prefix(prefix)
            raise
        # the record now points at `version`; remove older versions
        for info in list(self.store.list(f"{folder}/{entity_id}/")):
            parts = info.key.split("/")
            if len(parts) > 3 and parts[2] != version:
                self.store.delete(info.key)

    # --- typed accessors ----------------------------------------------------------------------
    def dataset(self, dataset_id: str, field: str = "dataset_id") -> registry_pb2.Dataset:
        return self.get("dataset", dataset_id, field)  # type: ignore[return-value]

    def model(self, model_id: str, field: str = "model_id") -> registry_pb2.Model:
        return self.get("model", model_id, field)  # type: ignore[return-value]

    def embedding(self, embedding_id: str, field: str = "embedding_id") -> embedding_pb2.EmbeddingSet:
        return self.get("embedding set", embedding_id, field)  # type: ignore[return-value]

    def load_manifest(self, dataset: registry_pb2.Dataset):  # -> pandas.DataFrame
        return self.store.get_parquet(self.store.key_from_uri(dataset.manifest.uri)).to_pandas()

    def load_array(self, ref: common_pb2.ArtifactRef):  # -> np.ndarray
        return self.store.get_npy(self.store.key_from_uri(ref.uri))
