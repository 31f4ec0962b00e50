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

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_EMBED: _ClassVar[Stage]
    STAGE_FAILURE_TREES: _ClassVar[Stage]
    STAGE_FAILURE_DIRECTIONS: _ClassVar[Stage]
    STAGE_EVIDENCE: _ClassVar[Stage]
    STAGE_CAPTIONS: _ClassVar[Stage]
    STAGE_BACKGROUNDS: _ClassVar[Stage]
    STAGE_REPAIR: _ClassVar[Stage]
    STAGE_REPORT: _ClassVar[Stage]
STAGE_UNSPECIFIED: Stage
STAGE_EMBED: Stage
STAGE_FAILURE_TREES: Stage
STAGE_FAILURE_DIRECTIONS: Stage
STAGE_EVIDENCE: Stage
STAGE_CAPTIONS: Stage
STAGE_BACKGROUNDS: Stage
STAGE_REPAIR: Stage
STAGE_REPORT: Stage

class RunPipelineRequest(_message.Message):
    __slots__ = ("request_id", "dataset_id", "model_id", "feature_model_id", "image_text_model_id", "analysis_split", "vocabulary_uri", "holdout_fraction", "seed", "error_modes", "repair", "generator", "images_per_prompt", "evidence", "title", "model_version", "baseline_run_id", "repair_strategies", "peer_model_ids", "sweep_lambdas", "sweep_ks")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_TEXT_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_SPLIT_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_URI_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ERROR_MODES_FIELD_NUMBER: _ClassVar[int]
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_PROMPT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BASELINE_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REPAIR_STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    PEER_MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    SWEEP_LAMBDAS_FIELD_NUMBER: _ClassVar[int]
    SWEEP_KS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    dataset_id: str
    model_id: str
    feature_model_id: str
    image_text_model_id: str
    analysis_split: str
    vocabulary_uri: str
    holdout_fraction: float
    seed: int
    error_modes: int
    repair: bool
    generator: str
    images_per_prompt: int
    evidence: bool
    title: str
    model_version: int
    baseline_run_id: str
    repair_strategies: _containers.RepeatedScalarFieldContainer[str]
    peer_model_ids: _containers.RepeatedScalarFieldContainer[str]
    sweep_lambdas: _containers.RepeatedScalarFieldContainer[float]
    sweep_ks: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, request_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., model_id: _Optional[str] = ..., feature_model_id: _Optional[str] = ..., image_text_model_id: _Optional[str] = ..., analysis_split: _Optional[str] = ..., vocabulary_uri: _Optional[str] = ..., holdout_fraction: _Optional[float] = ..., seed: _Optional[int] = ..., error_modes: _Optional[int] = ..., repair: _Optional[bool] = ..., generator: _Optional[str] = ..., images_per_prompt: _Optional[int] = ..., evidence: _Optional[bool] = ..., title: _Optional[str] = ..., model_version: _Optional[int] = ..., baseline_run_id: _Optional[str] = ..., repair_strategies: _Optional[_Iterable[str]] = ..., peer_model_ids: _Optional[_Iterable[str]] = ..., sweep_lambdas: _Optional[_Iterable[float]] = ..., sweep_ks: _Optional[_Iterable[int]] = ...) -> None: ...

class StageResult(_message.Message):
    __slots__ = ("stage", "state", "key", "message", "seconds", "reused", "skipped")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    stage: Stage
    state: _common_pb2.JobState
    key: str
    message: str
    seconds: float
    reused: bool
    skipped: bool
    def __init__(self, stage: _Optional[_Union[Stage, str]] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., key: _Optional[str] = ..., message: _Optional[str] = ..., seconds: _Optional[float] = ..., reused: _Optional[bool] = ..., skipped: _Optional[bool] = ...) -> None: ...

class PipelineRun(_message.Message):
    __slots__ = ("run_id", "state", "stages", "summary", "report", "request", "created_at", "finished_at", "error", "current_stage", "notes")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STAGE_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: _common_pb2.JobState
    stages: _containers.RepeatedCompositeFieldContainer[StageResult]
    summary: _common_pb2.ArtifactRef
    report: _common_pb2.ArtifactRef
    request: RunPipelineRequest
    created_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    error: _common_pb2.JobError
    current_stage: Stage
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., stages: _Optional[_Iterable[_Union[StageResult, _Mapping]]] = ..., summary: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., report: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., request: _Optional[_Union[RunPipelineRequest, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.JobError, _Mapping]] = ..., current_stage: _Optional[_Union[Stage, str]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class PipelineUpdate(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    result: PipelineRun
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., result: _Optional[_Union[PipelineRun, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("state", "dataset_id", "model_id")
    STATE_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    state: _common_pb2.JobState
    dataset_id: str
    model_id: str
    def __init__(self, state: _Optional[_Union[_common_pb2.JobState, str]] = ..., dataset_id: _Optional[str] = ..., model_id: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[PipelineRun]
    def __init__(self, runs: _Optional[_Iterable[_Union[PipelineRun, _Mapping]]] = ...) -> None: ...
