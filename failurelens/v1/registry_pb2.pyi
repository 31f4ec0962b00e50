import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from failurelens.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_KIND_UNSPECIFIED: _ClassVar[ModelKind]
    MODEL_KIND_CLASSIFIER: _ClassVar[ModelKind]
    MODEL_KIND_FEATURE_EXTRACTOR: _ClassVar[ModelKind]
    MODEL_KIND_IMAGE_TEXT: _ClassVar[ModelKind]
MODEL_KIND_UNSPECIFIED: ModelKind
MODEL_KIND_CLASSIFIER: ModelKind
MODEL_KIND_FEATURE_EXTRACTOR: ModelKind
MODEL_KIND_IMAGE_TEXT: ModelKind

class RegisterDatasetRequest(_message.Message):
    __slots__ = ("name", "manifest_uri", "class_names", "class_names_uri", "image_root_uri", "corrupt_image_policy", "verify_images", "overwrite", "max_pixels")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_URI_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_URI_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ROOT_URI_FIELD_NUMBER: _ClassVar[int]
    CORRUPT_IMAGE_POLICY_FIELD_NUMBER: _ClassVar[int]
    VERIFY_IMAGES_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    MAX_PIXELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    manifest_uri: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    class_names_uri: str
    image_root_uri: str
    corrupt_image_policy: _common_pb2.CorruptImagePolicy
    verify_images: bool
    overwrite: bool
    max_pixels: int
    def __init__(self, name: _Optional[str] = ..., manifest_uri: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., class_names_uri: _Optional[str] = ..., image_root_uri: _Optional[str] = ..., corrupt_image_policy: _Optional[_Union[_common_pb2.CorruptImagePolicy, str]] = ..., verify_images: _Optional[bool] = ..., overwrite: _Optional[bool] = ..., max_pixels: _Optional[int] = ...) -> None: ...

class RegisterDatasetUpdate(_message.Message):
    __slots__ = ("progress", "dataset")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    dataset: Dataset
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("dataset_id", "manifest", "class_names_artifact", "class_names", "num_rows", "split_counts", "metadata_columns", "unreadable_rows", "unreadable", "created_at")
    class SplitCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_COUNTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_ROWS_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    manifest: _common_pb2.ArtifactRef
    class_names_artifact: _common_pb2.ArtifactRef
    class_names: _containers.RepeatedScalarFieldContainer[str]
    num_rows: int
    split_counts: _containers.ScalarMap[str, int]
    metadata_columns: _containers.RepeatedScalarFieldContainer[str]
    unreadable_rows: _common_pb2.RowErrors
    unreadable: _common_pb2.ArtifactRef
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, dataset_id: _Optional[str] = ..., manifest: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., class_names_artifact: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ..., num_rows: _Optional[int] = ..., split_counts: _Optional[_Mapping[str, int]] = ..., metadata_columns: _Optional[_Iterable[str]] = ..., unreadable_rows: _Optional[_Union[_common_pb2.RowErrors, _Mapping]] = ..., unreadable: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class Tokenizer(_message.Message):
    __slots__ = ("kind", "context_length")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    kind: str
    context_length: int
    def __init__(self, kind: _Optional[str] = ..., context_length: _Optional[int] = ...) -> None: ...

class RegisterModelRequest(_message.Message):
    __slots__ = ("name", "kind", "onnx_uri", "text_onnx_uri", "preprocessing", "class_names", "dataset_id", "tokenizer", "max_batch_size", "overwrite", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ONNX_URI_FIELD_NUMBER: _ClassVar[int]
    TEXT_ONNX_URI_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: ModelKind
    onnx_uri: str
    text_onnx_uri: str
    preprocessing: _common_pb2.Preprocessing
    class_names: _containers.RepeatedScalarFieldContainer[str]
    dataset_id: str
    tokenizer: Tokenizer
    max_batch_size: int
    overwrite: bool
    labels: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[ModelKind, str]] = ..., onnx_uri: _Optional[str] = ..., text_onnx_uri: _Optional[str] = ..., preprocessing: _Optional[_Union[_common_pb2.Preprocessing, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ..., dataset_id: _Optional[str] = ..., tokenizer: _Optional[_Union[Tokenizer, _Mapping]] = ..., max_batch_size: _Optional[int] = ..., overwrite: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("model_id", "kind", "preprocessing", "class_names", "num_classes", "feature_dim", "embedding_dim", "triton_models", "onnx", "text_onnx", "tokenizer", "has_feature_map", "labels", "created_at", "versions")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_DIM_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    TRITON_MODELS_FIELD_NUMBER: _ClassVar[int]
    ONNX_FIELD_NUMBER: _ClassVar[int]
    TEXT_ONNX_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    HAS_FEATURE_MAP_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    kind: ModelKind
    preprocessing: _common_pb2.Preprocessing
    class_names: _containers.RepeatedScalarFieldContainer[str]
    num_classes: int
    feature_dim: int
    embedding_dim: int
    triton_models: _containers.RepeatedScalarFieldContainer[str]
    onnx: _common_pb2.ArtifactRef
    text_onnx: _common_pb2.ArtifactRef
    tokenizer: Tokenizer
    has_feature_map: bool
    labels: _containers.ScalarMap[str, str]
    created_at: _timestamp_pb2.Timestamp
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    def __init__(self, model_id: _Optional[str] = ..., kind: _Optional[_Union[ModelKind, str]] = ..., preprocessing: _Optional[_Union[_common_pb2.Preprocessing, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ..., num_classes: _Optional[int] = ..., feature_dim: _Optional[int] = ..., embedding_dim: _Optional[int] = ..., triton_models: _Optional[_Iterable[str]] = ..., onnx: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., text_onnx: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., tokenizer: _Optional[_Union[Tokenizer, _Mapping]] = ..., has_feature_map: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("version", "parent_version", "onnx", "head", "train_embedding_id", "debug_train_embedding_id", "params", "metrics", "request_digest", "created_at")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ONNX_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    TRAIN_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    DEBUG_TRAIN_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    version: int
    parent_version: int
    onnx: _common_pb2.ArtifactRef
    head: _common_pb2.ArtifactRef
    train_embedding_id: str
    debug_train_embedding_id: str
    params: _containers.ScalarMap[str, str]
    metrics: _containers.ScalarMap[str, float]
    request_digest: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[int] = ..., parent_version: _Optional[int] = ..., onnx: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., head: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., train_embedding_id: _Optional[str] = ..., debug_train_embedding_id: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., request_digest: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: ModelKind
    def __init__(self, kind: _Optional[_Union[ModelKind, str]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...
