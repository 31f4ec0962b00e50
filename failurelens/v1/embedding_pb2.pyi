import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from failurelens.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmbedRequest(_message.Message):
    __slots__ = ("dataset_id", "model_id", "splits", "batch_size", "corrupt_image_policy", "include_feature_map", "embedding_id", "overwrite", "model_version", "rows_uri")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    CORRUPT_IMAGE_POLICY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FEATURE_MAP_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_URI_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    model_id: str
    splits: _containers.RepeatedScalarFieldContainer[str]
    batch_size: int
    corrupt_image_policy: _common_pb2.CorruptImagePolicy
    include_feature_map: bool
    embedding_id: str
    overwrite: bool
    model_version: int
    rows_uri: str
    def __init__(self, dataset_id: _Optional[str] = ..., model_id: _Optional[str] = ..., splits: _Optional[_Iterable[str]] = ..., batch_size: _Optional[int] = ..., corrupt_image_policy: _Optional[_Union[_common_pb2.CorruptImagePolicy, str]] = ..., include_feature_map: _Optional[bool] = ..., embedding_id: _Optional[str] = ..., overwrite: _Optional[bool] = ..., model_version: _Optional[int] = ..., rows_uri: _Optional[str] = ...) -> None: ...

class EmbedUpdate(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    result: EmbeddingSet
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., result: _Optional[_Union[EmbeddingSet, _Mapping]] = ...) -> None: ...

class EmbeddingSet(_message.Message):
    __slots__ = ("embedding_id", "dataset_id", "model_id", "splits", "num_rows", "rows", "labels", "logits", "predictions", "features", "feature_map", "image_embeddings", "skipped_rows", "skipped", "accuracy", "images_per_second", "created_at", "model_version")
    EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LOGITS_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_MAP_FIELD_NUMBER: _ClassVar[int]
    IMAGE_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_ROWS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    embedding_id: str
    dataset_id: str
    model_id: str
    splits: _containers.RepeatedScalarFieldContainer[str]
    num_rows: int
    rows: _common_pb2.ArtifactRef
    labels: _common_pb2.ArtifactRef
    logits: _common_pb2.ArtifactRef
    predictions: _common_pb2.ArtifactRef
    features: _common_pb2.ArtifactRef
    feature_map: _common_pb2.ArtifactRef
    image_embeddings: _common_pb2.ArtifactRef
    skipped_rows: _common_pb2.RowErrors
    skipped: _common_pb2.ArtifactRef
    accuracy: float
    images_per_second: float
    created_at: _timestamp_pb2.Timestamp
    model_version: int
    def __init__(self, embedding_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., model_id: _Optional[str] = ..., splits: _Optional[_Iterable[str]] = ..., num_rows: _Optional[int] = ..., rows: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., labels: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., logits: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., predictions: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., features: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., feature_map: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., image_embeddings: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., skipped_rows: _Optional[_Union[_common_pb2.RowErrors, _Mapping]] = ..., skipped: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., accuracy: _Optional[float] = ..., images_per_second: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model_version: _Optional[int] = ...) -> None: ...

class EmbedTextsRequest(_message.Message):
    __slots__ = ("model_id", "texts", "name")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    name: str
    def __init__(self, model_id: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ...) -> None: ...

class EmbedTextsResponse(_message.Message):
    __slots__ = ("embeddings", "count", "dim")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    embeddings: _common_pb2.ArtifactRef
    count: int
    dim: int
    def __init__(self, embeddings: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., count: _Optional[int] = ..., dim: _Optional[int] = ...) -> None: ...

class GetEmbeddingRequest(_message.Message):
    __slots__ = ("embedding_id",)
    EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    embedding_id: str
    def __init__(self, embedding_id: _Optional[str] = ...) -> None: ...

class ListEmbeddingsRequest(_message.Message):
    __slots__ = ("dataset_id", "model_id")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    model_id: str
    def __init__(self, dataset_id: _Optional[str] = ..., model_id: _Optional[str] = ...) -> None: ...

class ListEmbeddingsResponse(_message.Message):
    __slots__ = ("embeddings",)
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[EmbeddingSet]
    def __init__(self, embeddings: _Optional[_Iterable[_Union[EmbeddingSet, _Mapping]]] = ...) -> None: ...
