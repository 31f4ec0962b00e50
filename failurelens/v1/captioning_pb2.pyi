from failurelens.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DirectionCaptionMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_CAPTION_METHOD_UNSPECIFIED: _ClassVar[DirectionCaptionMethod]
    DIRECTION_CAPTION_METHOD_TEXT_SCORE: _ClassVar[DirectionCaptionMethod]
    DIRECTION_CAPTION_METHOD_ALIGNED_IMAGES: _ClassVar[DirectionCaptionMethod]
DIRECTION_CAPTION_METHOD_UNSPECIFIED: DirectionCaptionMethod
DIRECTION_CAPTION_METHOD_TEXT_SCORE: DirectionCaptionMethod
DIRECTION_CAPTION_METHOD_ALIGNED_IMAGES: DirectionCaptionMethod

class CaptionVocabulary(_message.Message):
    __slots__ = ("templates", "attributes", "vocabulary_uri")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.StringList
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.StringList, _Mapping]] = ...) -> None: ...
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_URI_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedScalarFieldContainer[str]
    attributes: _containers.MessageMap[str, _common_pb2.StringList]
    vocabulary_uri: str
    def __init__(self, templates: _Optional[_Iterable[str]] = ..., attributes: _Optional[_Mapping[str, _common_pb2.StringList]] = ..., vocabulary_uri: _Optional[str] = ...) -> None: ...

class Caption(_message.Message):
    __slots__ = ("text", "score", "attribute", "value", "nearest_accuracy", "validated")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    NEAREST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    VALIDATED_FIELD_NUMBER: _ClassVar[int]
    text: str
    score: float
    attribute: str
    value: str
    nearest_accuracy: float
    validated: bool
    def __init__(self, text: _Optional[str] = ..., score: _Optional[float] = ..., attribute: _Optional[str] = ..., value: _Optional[str] = ..., nearest_accuracy: _Optional[float] = ..., validated: _Optional[bool] = ...) -> None: ...

class CaptionDirectionsRequest(_message.Message):
    __slots__ = ("report_id", "text_model_id", "vocabulary", "top_k", "classes", "method", "aligned_images", "nearest_images")
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ALIGNED_IMAGES_FIELD_NUMBER: _ClassVar[int]
    NEAREST_IMAGES_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    text_model_id: str
    vocabulary: CaptionVocabulary
    top_k: int
    classes: _containers.RepeatedScalarFieldContainer[int]
    method: DirectionCaptionMethod
    aligned_images: int
    nearest_images: int
    def __init__(self, report_id: _Optional[str] = ..., text_model_id: _Optional[str] = ..., vocabulary: _Optional[_Union[CaptionVocabulary, _Mapping]] = ..., top_k: _Optional[int] = ..., classes: _Optional[_Iterable[int]] = ..., method: _Optional[_Union[DirectionCaptionMethod, str]] = ..., aligned_images: _Optional[int] = ..., nearest_images: _Optional[int] = ...) -> None: ...

class ClassCaptions(_message.Message):
    __slots__ = ("class_index", "class_name", "positive", "negative", "mode")
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    class_index: int
    class_name: str
    positive: _containers.RepeatedCompositeFieldContainer[Caption]
    negative: _containers.RepeatedCompositeFieldContainer[Caption]
    mode: int
    def __init__(self, class_index: _Optional[int] = ..., class_name: _Optional[str] = ..., positive: _Optional[_Iterable[_Union[Caption, _Mapping]]] = ..., negative: _Optional[_Iterable[_Union[Caption, _Mapping]]] = ..., mode: _Optional[int] = ...) -> None: ...

class CaptionDirectionsResponse(_message.Message):
    __slots__ = ("classes", "captions")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedCompositeFieldContainer[ClassCaptions]
    captions: _common_pb2.ArtifactRef
    def __init__(self, classes: _Optional[_Iterable[_Union[ClassCaptions, _Mapping]]] = ..., captions: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class CaptionRulesRequest(_message.Message):
    __slots__ = ("report_id", "text_model_id", "clip_embedding_id", "vocabulary", "top_k", "nearest_images")
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    CLIP_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    NEAREST_IMAGES_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    text_model_id: str
    clip_embedding_id: str
    vocabulary: CaptionVocabulary
    top_k: int
    nearest_images: int
    def __init__(self, report_id: _Optional[str] = ..., text_model_id: _Optional[str] = ..., clip_embedding_id: _Optional[str] = ..., vocabulary: _Optional[_Union[CaptionVocabulary, _Mapping]] = ..., top_k: _Optional[int] = ..., nearest_images: _Optional[int] = ...) -> None: ...

class RuleCaptions(_message.Message):
    __slots__ = ("class_index", "grouping", "leaf_id", "captions")
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    GROUPING_FIELD_NUMBER: _ClassVar[int]
    LEAF_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    class_index: int
    grouping: int
    leaf_id: int
    captions: _containers.RepeatedCompositeFieldContainer[Caption]
    def __init__(self, class_index: _Optional[int] = ..., grouping: _Optional[int] = ..., leaf_id: _Optional[int] = ..., captions: _Optional[_Iterable[_Union[Caption, _Mapping]]] = ...) -> None: ...

class CaptionRulesResponse(_message.Message):
    __slots__ = ("rules", "captions")
    RULES_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[RuleCaptions]
    captions: _common_pb2.ArtifactRef
    def __init__(self, rules: _Optional[_Iterable[_Union[RuleCaptions, _Mapping]]] = ..., captions: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class ValidateCaptionRequest(_message.Message):
    __slots__ = ("text_model_id", "clip_embedding_id", "prediction_embedding_id", "class_index", "hard_caption", "easy_caption", "k")
    TEXT_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    CLIP_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    HARD_CAPTION_FIELD_NUMBER: _ClassVar[int]
    EASY_CAPTION_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    text_model_id: str
    clip_embedding_id: str
    prediction_embedding_id: str
    class_index: int
    hard_caption: str
    easy_caption: str
    k: int
    def __init__(self, text_model_id: _Optional[str] = ..., clip_embedding_id: _Optional[str] = ..., prediction_embedding_id: _Optional[str] = ..., class_index: _Optional[int] = ..., hard_caption: _Optional[str] = ..., easy_caption: _Optional[str] = ..., k: _Optional[int] = ...) -> None: ...

class CaptionValidation(_message.Message):
    __slots__ = ("hard_accuracy", "easy_accuracy", "k", "hard_rows", "easy_rows")
    HARD_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    EASY_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    HARD_ROWS_FIELD_NUMBER: _ClassVar[int]
    EASY_ROWS_FIELD_NUMBER: _ClassVar[int]
    hard_accuracy: float
    easy_accuracy: float
    k: int
    hard_rows: _containers.RepeatedScalarFieldContainer[int]
    easy_rows: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, hard_accuracy: _Optional[float] = ..., easy_accuracy: _Optional[float] = ..., k: _Optional[int] = ..., hard_rows: _Optional[_Iterable[int]] = ..., easy_rows: _Optional[_Iterable[int]] = ...) -> None: ...

class LlmConfig(_message.Message):
    __slots__ = ("base_url", "model", "api_key_env", "temperature", "timeout_seconds")
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ENV_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    base_url: str
    model: str
    api_key_env: str
    temperature: float
    timeout_seconds: float
    def __init__(self, base_url: _Optional[str] = ..., model: _Optional[str] = ..., api_key_env: _Optional[str] = ..., temperature: _Optional[float] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class ProposeBackgroundsRequest(_message.Message):
    __slots__ = ("class_names", "llm", "vocabulary_uri", "per_class", "text_model_id", "dedup_threshold")
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    LLM_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_URI_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    TEXT_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DEDUP_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    class_names: _containers.RepeatedScalarFieldContainer[str]
    llm: LlmConfig
    vocabulary_uri: str
    per_class: int
    text_model_id: str
    dedup_threshold: float
    def __init__(self, class_names: _Optional[_Iterable[str]] = ..., llm: _Optional[_Union[LlmConfig, _Mapping]] = ..., vocabulary_uri: _Optional[str] = ..., per_class: _Optional[int] = ..., text_model_id: _Optional[str] = ..., dedup_threshold: _Optional[float] = ...) -> None: ...

class ClassBackgrounds(_message.Message):
    __slots__ = ("class_name", "backgrounds")
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    BACKGROUNDS_FIELD_NUMBER: _ClassVar[int]
    class_name: str
    backgrounds: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, class_name: _Optional[str] = ..., backgrounds: _Optional[_Iterable[str]] = ...) -> None: ...

class ProposeBackgroundsResponse(_message.Message):
    __slots__ = ("classes", "source", "num_duplicates_removed")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NUM_DUPLICATES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedCompositeFieldContainer[ClassBackgrounds]
    source: str
    num_duplicates_removed: int
    def __init__(self, classes: _Optional[_Iterable[_Union[ClassBackgrounds, _Mapping]]] = ..., source: _Optional[str] = ..., num_duplicates_removed: _Optional[int] = ...) -> None: ...

class AssignBackgroundsRequest(_message.Message):
    __slots__ = ("clip_embedding_id", "prediction_embedding_id", "text_model_id", "backgrounds", "rows_uri", "top_k", "template", "vocabulary")
    CLIP_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    BACKGROUNDS_FIELD_NUMBER: _ClassVar[int]
    ROWS_URI_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    clip_embedding_id: str
    prediction_embedding_id: str
    text_model_id: str
    backgrounds: _containers.RepeatedCompositeFieldContainer[ClassBackgrounds]
    rows_uri: str
    top_k: int
    template: str
    vocabulary: CaptionVocabulary
    def __init__(self, clip_embedding_id: _Optional[str] = ..., prediction_embedding_id: _Optional[str] = ..., text_model_id: _Optional[str] = ..., backgrounds: _Optional[_Iterable[_Union[ClassBackgrounds, _Mapping]]] = ..., rows_uri: _Optional[str] = ..., top_k: _Optional[int] = ..., template: _Optional[str] = ..., vocabulary: _Optional[_Union[CaptionVocabulary, _Mapping]] = ...) -> None: ...

class BackgroundCount(_message.Message):
    __slots__ = ("background", "count")
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    background: str
    count: int
    def __init__(self, background: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ClassBackgroundCounts(_message.Message):
    __slots__ = ("class_index", "class_name", "top")
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    class_index: int
    class_name: str
    top: _containers.RepeatedCompositeFieldContainer[BackgroundCount]
    def __init__(self, class_index: _Optional[int] = ..., class_name: _Optional[str] = ..., top: _Optional[_Iterable[_Union[BackgroundCount, _Mapping]]] = ...) -> None: ...

class BackgroundAssignment(_message.Message):
    __slots__ = ("assignments", "classes")
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    assignments: _common_pb2.ArtifactRef
    classes: _containers.RepeatedCompositeFieldContainer[ClassBackgroundCounts]
    def __init__(self, assignments: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., classes: _Optional[_Iterable[_Union[ClassBackgroundCounts, _Mapping]]] = ...) -> None: ...

class AssignBackgroundsUpdate(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    result: BackgroundAssignment
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., result: _Optional[_Union[BackgroundAssignment, _Mapping]] = ...) -> None: ...
