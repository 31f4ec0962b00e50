from failurelens.v1 import common_pb2 as _common_pb2
from failurelens.v1 import registry_pb2 as _registry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PromptStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROMPT_STRATEGY_UNSPECIFIED: _ClassVar[PromptStrategy]
    PROMPT_STRATEGY_EXPLICIT: _ClassVar[PromptStrategy]
    PROMPT_STRATEGY_FAILURE_BACKGROUNDS: _ClassVar[PromptStrategy]
    PROMPT_STRATEGY_RANDOM_BACKGROUNDS: _ClassVar[PromptStrategy]
    PROMPT_STRATEGY_CLASS_ONLY: _ClassVar[PromptStrategy]
    PROMPT_STRATEGY_FAILURE_CAPTIONS: _ClassVar[PromptStrategy]
PROMPT_STRATEGY_UNSPECIFIED: PromptStrategy
PROMPT_STRATEGY_EXPLICIT: PromptStrategy
PROMPT_STRATEGY_FAILURE_BACKGROUNDS: PromptStrategy
PROMPT_STRATEGY_RANDOM_BACKGROUNDS: PromptStrategy
PROMPT_STRATEGY_CLASS_ONLY: PromptStrategy
PROMPT_STRATEGY_FAILURE_CAPTIONS: PromptStrategy

class Prompt(_message.Message):
    __slots__ = ("label", "class_name", "background", "text", "count")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    label: int
    class_name: str
    background: str
    text: str
    count: int
    def __init__(self, label: _Optional[int] = ..., class_name: _Optional[str] = ..., background: _Optional[str] = ..., text: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("generator", "strategy", "prompts", "assignment_uris", "top_k", "images_per_class", "seed", "base_dataset_id", "output_dataset_name", "split", "overwrite", "captions_uris", "vocabulary_uri", "classes", "template", "by_frequency")
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_URIS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    BASE_DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DATASET_NAME_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_URIS_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_URI_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    BY_FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    generator: str
    strategy: PromptStrategy
    prompts: _containers.RepeatedCompositeFieldContainer[Prompt]
    assignment_uris: _containers.RepeatedScalarFieldContainer[str]
    top_k: int
    images_per_class: int
    seed: int
    base_dataset_id: str
    output_dataset_name: str
    split: str
    overwrite: bool
    captions_uris: _containers.RepeatedScalarFieldContainer[str]
    vocabulary_uri: str
    classes: _containers.RepeatedScalarFieldContainer[int]
    template: str
    by_frequency: bool
    def __init__(self, generator: _Optional[str] = ..., strategy: _Optional[_Union[PromptStrategy, str]] = ..., prompts: _Optional[_Iterable[_Union[Prompt, _Mapping]]] = ..., assignment_uris: _Optional[_Iterable[str]] = ..., top_k: _Optional[int] = ..., images_per_class: _Optional[int] = ..., seed: _Optional[int] = ..., base_dataset_id: _Optional[str] = ..., output_dataset_name: _Optional[str] = ..., split: _Optional[str] = ..., overwrite: _Optional[bool] = ..., captions_uris: _Optional[_Iterable[str]] = ..., vocabulary_uri: _Optional[str] = ..., classes: _Optional[_Iterable[int]] = ..., template: _Optional[str] = ..., by_frequency: _Optional[bool] = ...) -> None: ...

class GenerateResult(_message.Message):
    __slots__ = ("dataset", "prompts", "num_images", "generator", "strategy")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    NUM_IMAGES_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    dataset: _registry_pb2.Dataset
    prompts: _common_pb2.ArtifactRef
    num_images: int
    generator: str
    strategy: PromptStrategy
    def __init__(self, dataset: _Optional[_Union[_registry_pb2.Dataset, _Mapping]] = ..., prompts: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., num_images: _Optional[int] = ..., generator: _Optional[str] = ..., strategy: _Optional[_Union[PromptStrategy, str]] = ...) -> None: ...

class GenerateUpdate(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    result: GenerateResult
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., result: _Optional[_Union[GenerateResult, _Mapping]] = ...) -> None: ...

class ListGeneratorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GeneratorInfo(_message.Message):
    __slots__ = ("name", "description", "width", "height", "backend")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    width: int
    height: int
    backend: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., backend: _Optional[str] = ...) -> None: ...

class ListGeneratorsResponse(_message.Message):
    __slots__ = ("generators",)
    GENERATORS_FIELD_NUMBER: _ClassVar[int]
    generators: _containers.RepeatedCompositeFieldContainer[GeneratorInfo]
    def __init__(self, generators: _Optional[_Iterable[_Union[GeneratorInfo, _Mapping]]] = ...) -> None: ...
