from failurelens.v1 import common_pb2 as _common_pb2
from failurelens.v1 import slice_discovery_pb2 as _slice_discovery_pb2
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
    STAGE_GENERATE: _ClassVar[Stage]
    STAGE_RETRAIN: _ClassVar[Stage]
STAGE_UNSPECIFIED: Stage
STAGE_EMBED: Stage
STAGE_FAILURE_TREES: Stage
STAGE_FAILURE_DIRECTIONS: Stage
STAGE_EVIDENCE: Stage
STAGE_CAPTIONS: Stage
STAGE_BACKGROUNDS: Stage
STAGE_GENERATE: Stage
STAGE_RETRAIN: Stage

class RunPipelineRequest(_message.Message):
    __slots__ = ("run_id", "dataset_id", "model_id", "feature_model_id", "image_text_model_id", "stages", "analysis_split", "train_split", "trees", "directions", "generator", "images_per_prompt")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_TEXT_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_SPLIT_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SPLIT_FIELD_NUMBER: _ClassVar[int]
    TREES_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_PROMPT_FIELD_NUMBER: _ClassVar[int]
    LAMBDA_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    dataset_id: str
    model_id: str
    feature_model_id: str
    image_text_model_id: str
    stages: _containers.RepeatedScalarFieldContainer[Stage]
    analysis_split: str
    train_split: str
    trees: _slice_discovery_pb2.FitFailureTreesRequest
    directions: _slice_discovery_pb2.FitFailureDirectionsRequest
    generator: str
    images_per_prompt: int
    def __init__(self, run_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., model_id: _Optional[str] = ..., feature_model_id: _Optional[str] = ..., image_text_model_id: _Optional[str] = ..., stages: _Optional[_Iterable[_Union[Stage, str]]] = ..., analysis_split: _Optional[str] = ..., train_split: _Optional[str] = ..., trees: _Optional[_Union[_slice_discovery_pb2.FitFailureTreesRequest, _Mapping]] = ..., directions: _Optional[_Union[_slice_discovery_pb2.FitFailureDirectionsRequest, _Mapping]] = ..., generator: _Optional[str] = ..., images_per_prompt: _Optional[int] = ..., **kwargs) -> None: ...

class StageResult(_message.Message):
    __slots__ = ("stage", "state", "result_id", "message", "seconds")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    stage: Stage
    state: _common_pb2.JobState
    result_id: str
    message: str
    seconds: float
    def __init__(self, stage: _Optional[_Union[Stage, str]] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., result_id: _Optional[str] = ..., message: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class PipelineRun(_message.Message):
    __slots__ = ("run_id", "state", "stages", "summary")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: _common_pb2.JobState
    stages: _containers.RepeatedCompositeFieldContainer[StageResult]
    summary: _common_pb2.ArtifactRef
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., stages: _Optional[_Iterable[_Union[StageResult, _Mapping]]] = ..., summary: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

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
