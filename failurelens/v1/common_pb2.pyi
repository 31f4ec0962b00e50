import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class CorruptImagePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CORRUPT_IMAGE_POLICY_UNSPECIFIED: _ClassVar[CorruptImagePolicy]
    CORRUPT_IMAGE_POLICY_SKIP_AND_REPORT: _ClassVar[CorruptImagePolicy]
    CORRUPT_IMAGE_POLICY_FAIL: _ClassVar[CorruptImagePolicy]

class ResizeMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESIZE_MODE_UNSPECIFIED: _ClassVar[ResizeMode]
    RESIZE_MODE_STRETCH: _ClassVar[ResizeMode]
    RESIZE_MODE_SHORTER_SIDE_CENTER_CROP: _ClassVar[ResizeMode]

class Grouping(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUPING_UNSPECIFIED: _ClassVar[Grouping]
    GROUPING_LABEL: _ClassVar[Grouping]
    GROUPING_PREDICTION: _ClassVar[Grouping]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
CORRUPT_IMAGE_POLICY_UNSPECIFIED: CorruptImagePolicy
CORRUPT_IMAGE_POLICY_SKIP_AND_REPORT: CorruptImagePolicy
CORRUPT_IMAGE_POLICY_FAIL: CorruptImagePolicy
RESIZE_MODE_UNSPECIFIED: ResizeMode
RESIZE_MODE_STRETCH: ResizeMode
RESIZE_MODE_SHORTER_SIDE_CENTER_CROP: ResizeMode
GROUPING_UNSPECIFIED: Grouping
GROUPING_LABEL: Grouping
GROUPING_PREDICTION: Grouping

class ArtifactRef(_message.Message):
    __slots__ = ("uri", "media_type", "size_bytes", "shape", "dtype", "sha256")
    URI_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    uri: str
    media_type: str
    size_bytes: int
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    sha256: str
    def __init__(self, uri: _Optional[str] = ..., media_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class DatasetRef(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("job_id", "stage", "done", "total", "message", "elapsed_seconds")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    stage: str
    done: int
    total: int
    message: str
    elapsed_seconds: float
    def __init__(self, job_id: _Optional[str] = ..., stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., message: _Optional[str] = ..., elapsed_seconds: _Optional[float] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "service", "method", "state", "progress", "started_at", "finished_at", "error", "result_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    service: str
    method: str
    state: JobState
    progress: Progress
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    error: JobError
    result_id: str
    def __init__(self, job_id: _Optional[str] = ..., service: _Optional[str] = ..., method: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., result_id: _Optional[str] = ...) -> None: ...

class RowError(_message.Message):
    __slots__ = ("row", "uri", "reason")
    ROW_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    row: int
    uri: str
    reason: str
    def __init__(self, row: _Optional[int] = ..., uri: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RowErrors(_message.Message):
    __slots__ = ("rows", "total")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[RowError]
    total: int
    def __init__(self, rows: _Optional[_Iterable[_Union[RowError, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class Preprocessing(_message.Message):
    __slots__ = ("input_height", "input_width", "mean", "std", "resize", "crop_pct", "interpolation")
    INPUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INPUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    CROP_PCT_FIELD_NUMBER: _ClassVar[int]
    INTERPOLATION_FIELD_NUMBER: _ClassVar[int]
    input_height: int
    input_width: int
    mean: _containers.RepeatedScalarFieldContainer[float]
    std: _containers.RepeatedScalarFieldContainer[float]
    resize: ResizeMode
    crop_pct: float
    interpolation: str
    def __init__(self, input_height: _Optional[int] = ..., input_width: _Optional[int] = ..., mean: _Optional[_Iterable[float]] = ..., std: _Optional[_Iterable[float]] = ..., resize: _Optional[_Union[ResizeMode, str]] = ..., crop_pct: _Optional[float] = ..., interpolation: _Optional[str] = ...) -> None: ...

class StringList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class HoldoutStats(_message.Message):
    __slots__ = ("n", "errors", "error_rate", "error_coverage", "accuracy", "p_value", "q_value", "validated")
    N_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    Q_VALUE_FIELD_NUMBER: _ClassVar[int]
    VALIDATED_FIELD_NUMBER: _ClassVar[int]
    n: int
    errors: int
    error_rate: float
    error_coverage: float
    accuracy: float
    p_value: float
    q_value: float
    validated: bool
    def __init__(self, n: _Optional[int] = ..., errors: _Optional[int] = ..., error_rate: _Optional[float] = ..., error_coverage: _Optional[float] = ..., accuracy: _Optional[float] = ..., p_value: _Optional[float] = ..., q_value: _Optional[float] = ..., validated: _Optional[bool] = ...) -> None: ...
