from failurelens.v1 import common_pb2 as _common_pb2
from failurelens.v1 import registry_pb2 as _registry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetrainHeadRequest(_message.Message):
    __slots__ = ("model_id", "model_version", "train_embedding_id", "debug_train_embedding_id", "lam", "epochs", "lr", "momentum", "weight_decay", "batch_size", "init", "standardize", "seed", "eval_sets", "dry_run")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRAIN_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    DEBUG_TRAIN_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    LAM_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    MOMENTUM_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    STANDARDIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EVAL_SETS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_version: int
    train_embedding_id: str
    debug_train_embedding_id: str
    lam: float
    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    init: str
    standardize: bool
    seed: int
    eval_sets: _containers.RepeatedCompositeFieldContainer[EvalSet]
    dry_run: bool
    def __init__(self, model_id: _Optional[str] = ..., model_version: _Optional[int] = ..., train_embedding_id: _Optional[str] = ..., debug_train_embedding_id: _Optional[str] = ..., lam: _Optional[float] = ..., epochs: _Optional[int] = ..., lr: _Optional[float] = ..., momentum: _Optional[float] = ..., weight_decay: _Optional[float] = ..., batch_size: _Optional[int] = ..., init: _Optional[str] = ..., standardize: _Optional[bool] = ..., seed: _Optional[int] = ..., eval_sets: _Optional[_Iterable[_Union[EvalSet, _Mapping]]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class EvalSet(_message.Message):
    __slots__ = ("name", "embedding_id", "rows_uri")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    ROWS_URI_FIELD_NUMBER: _ClassVar[int]
    name: str
    embedding_id: str
    rows_uri: str
    def __init__(self, name: _Optional[str] = ..., embedding_id: _Optional[str] = ..., rows_uri: _Optional[str] = ...) -> None: ...

class EpochMetrics(_message.Message):
    __slots__ = ("epoch", "loss", "train_accuracy", "debug_train_accuracy")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    DEBUG_TRAIN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    loss: float
    train_accuracy: float
    debug_train_accuracy: float
    def __init__(self, epoch: _Optional[int] = ..., loss: _Optional[float] = ..., train_accuracy: _Optional[float] = ..., debug_train_accuracy: _Optional[float] = ...) -> None: ...

class EvalResult(_message.Message):
    __slots__ = ("name", "n", "accuracy", "accuracy_before")
    NAME_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_BEFORE_FIELD_NUMBER: _ClassVar[int]
    name: str
    n: int
    accuracy: float
    accuracy_before: float
    def __init__(self, name: _Optional[str] = ..., n: _Optional[int] = ..., accuracy: _Optional[float] = ..., accuracy_before: _Optional[float] = ...) -> None: ...

class HeadEvaluation(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EvalResult]
    def __init__(self, results: _Optional[_Iterable[_Union[EvalResult, _Mapping]]] = ...) -> None: ...

class RetrainHeadResult(_message.Message):
    __slots__ = ("model", "version", "head", "history", "evaluation", "reused")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    model: _registry_pb2.Model
    version: _registry_pb2.ModelVersion
    head: _common_pb2.ArtifactRef
    history: _containers.RepeatedCompositeFieldContainer[EpochMetrics]
    evaluation: HeadEvaluation
    reused: bool
    def __init__(self, model: _Optional[_Union[_registry_pb2.Model, _Mapping]] = ..., version: _Optional[_Union[_registry_pb2.ModelVersion, _Mapping]] = ..., head: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., history: _Optional[_Iterable[_Union[EpochMetrics, _Mapping]]] = ..., evaluation: _Optional[_Union[HeadEvaluation, _Mapping]] = ..., reused: _Optional[bool] = ...) -> None: ...

class RetrainHeadUpdate(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    result: RetrainHeadResult
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., result: _Optional[_Union[RetrainHeadResult, _Mapping]] = ...) -> None: ...

class EvaluateHeadRequest(_message.Message):
    __slots__ = ("model_id", "model_version", "eval_sets")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVAL_SETS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_version: int
    eval_sets: _containers.RepeatedCompositeFieldContainer[EvalSet]
    def __init__(self, model_id: _Optional[str] = ..., model_version: _Optional[int] = ..., eval_sets: _Optional[_Iterable[_Union[EvalSet, _Mapping]]] = ...) -> None: ...
