import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from failurelens.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FitFailureTreesRequest(_message.Message):
    __slots__ = ("feature_embedding_id", "prediction_embedding_id", "groupings", "max_depth", "top_k_features", "tau", "delta", "min_leaf_size", "classes", "holdout_fraction", "fdr_alpha", "seed", "report_id", "overwrite", "max_rules_in_response")
    FEATURE_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    GROUPINGS_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FEATURES_FIELD_NUMBER: _ClassVar[int]
    TAU_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    MIN_LEAF_SIZE_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    FDR_ALPHA_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    MAX_RULES_IN_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    feature_embedding_id: str
    prediction_embedding_id: str
    groupings: _containers.RepeatedScalarFieldContainer[_common_pb2.Grouping]
    max_depth: int
    top_k_features: int
    tau: float
    delta: float
    min_leaf_size: int
    classes: _containers.RepeatedScalarFieldContainer[int]
    holdout_fraction: float
    fdr_alpha: float
    seed: int
    report_id: str
    overwrite: bool
    max_rules_in_response: int
    def __init__(self, feature_embedding_id: _Optional[str] = ..., prediction_embedding_id: _Optional[str] = ..., groupings: _Optional[_Iterable[_Union[_common_pb2.Grouping, str]]] = ..., max_depth: _Optional[int] = ..., top_k_features: _Optional[int] = ..., tau: _Optional[float] = ..., delta: _Optional[float] = ..., min_leaf_size: _Optional[int] = ..., classes: _Optional[_Iterable[int]] = ..., holdout_fraction: _Optional[float] = ..., fdr_alpha: _Optional[float] = ..., seed: _Optional[int] = ..., report_id: _Optional[str] = ..., overwrite: _Optional[bool] = ..., max_rules_in_response: _Optional[int] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("feature", "op", "threshold")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    feature: int
    op: str
    threshold: float
    def __init__(self, feature: _Optional[int] = ..., op: _Optional[str] = ..., threshold: _Optional[float] = ...) -> None: ...

class FailureRule(_message.Message):
    __slots__ = ("class_index", "class_name", "grouping", "leaf_id", "conditions", "text", "n", "errors", "error_rate", "error_coverage", "importance", "valid", "holdout")
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    GROUPING_FIELD_NUMBER: _ClassVar[int]
    LEAF_ID_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FIELD_NUMBER: _ClassVar[int]
    class_index: int
    class_name: str
    grouping: _common_pb2.Grouping
    leaf_id: int
    conditions: _containers.RepeatedCompositeFieldContainer[Condition]
    text: str
    n: int
    errors: int
    error_rate: float
    error_coverage: float
    importance: float
    valid: bool
    holdout: _common_pb2.HoldoutStats
    def __init__(self, class_index: _Optional[int] = ..., class_name: _Optional[str] = ..., grouping: _Optional[_Union[_common_pb2.Grouping, str]] = ..., leaf_id: _Optional[int] = ..., conditions: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., text: _Optional[str] = ..., n: _Optional[int] = ..., errors: _Optional[int] = ..., error_rate: _Optional[float] = ..., error_coverage: _Optional[float] = ..., importance: _Optional[float] = ..., valid: _Optional[bool] = ..., holdout: _Optional[_Union[_common_pb2.HoldoutStats, _Mapping]] = ...) -> None: ...

class FailureTree(_message.Message):
    __slots__ = ("class_index", "class_name", "grouping", "n", "errors", "base_error_rate", "aler", "aler_minus_ber", "selected_features", "mutual_information", "leaves", "has_valid_leaf", "skipped_reason")
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    GROUPING_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    BASE_ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    ALER_FIELD_NUMBER: _ClassVar[int]
    ALER_MINUS_BER_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FEATURES_FIELD_NUMBER: _ClassVar[int]
    MUTUAL_INFORMATION_FIELD_NUMBER: _ClassVar[int]
    LEAVES_FIELD_NUMBER: _ClassVar[int]
    HAS_VALID_LEAF_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_REASON_FIELD_NUMBER: _ClassVar[int]
    class_index: int
    class_name: str
    grouping: _common_pb2.Grouping
    n: int
    errors: int
    base_error_rate: float
    aler: float
    aler_minus_ber: float
    selected_features: _containers.RepeatedScalarFieldContainer[int]
    mutual_information: _containers.RepeatedScalarFieldContainer[float]
    leaves: _containers.RepeatedCompositeFieldContainer[FailureRule]
    has_valid_leaf: bool
    skipped_reason: str
    def __init__(self, class_index: _Optional[int] = ..., class_name: _Optional[str] = ..., grouping: _Optional[_Union[_common_pb2.Grouping, str]] = ..., n: _Optional[int] = ..., errors: _Optional[int] = ..., base_error_rate: _Optional[float] = ..., aler: _Optional[float] = ..., aler_minus_ber: _Optional[float] = ..., selected_features: _Optional[_Iterable[int]] = ..., mutual_information: _Optional[_Iterable[float]] = ..., leaves: _Optional[_Iterable[_Union[FailureRule, _Mapping]]] = ..., has_valid_leaf: _Optional[bool] = ..., skipped_reason: _Optional[str] = ...) -> None: ...

class FailureTreesReport(_message.Message):
    __slots__ = ("report_id", "feature_embedding_id", "prediction_embedding_id", "report", "rules_table", "rules", "valid_leaf_fraction", "num_trees", "created_at")
    class ValidLeafFractionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    RULES_TABLE_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    VALID_LEAF_FRACTION_FIELD_NUMBER: _ClassVar[int]
    NUM_TREES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    feature_embedding_id: str
    prediction_embedding_id: str
    report: _common_pb2.ArtifactRef
    rules_table: _common_pb2.ArtifactRef
    rules: _containers.RepeatedCompositeFieldContainer[FailureRule]
    valid_leaf_fraction: _containers.ScalarMap[str, float]
    num_trees: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, report_id: _Optional[str] = ..., feature_embedding_id: _Optional[str] = ..., prediction_embedding_id: _Optional[str] = ..., report: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., rules_table: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., rules: _Optional[_Iterable[_Union[FailureRule, _Mapping]]] = ..., valid_leaf_fraction: _Optional[_Mapping[str, float]] = ..., num_trees: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FailureTreesUpdate(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    result: FailureTreesReport
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., result: _Optional[_Union[FailureTreesReport, _Mapping]] = ...) -> None: ...

class FitFailureDirectionsRequest(_message.Message):
    __slots__ = ("clip_embedding_id", "prediction_embedding_id", "classes", "c_grid", "cv_folds", "top_k", "holdout_fraction", "fdr_alpha", "seed", "report_id", "overwrite", "error_modes")
    CLIP_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    C_GRID_FIELD_NUMBER: _ClassVar[int]
    CV_FOLDS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    FDR_ALPHA_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MODES_FIELD_NUMBER: _ClassVar[int]
    clip_embedding_id: str
    prediction_embedding_id: str
    classes: _containers.RepeatedScalarFieldContainer[int]
    c_grid: _containers.RepeatedScalarFieldContainer[float]
    cv_folds: int
    top_k: int
    holdout_fraction: float
    fdr_alpha: float
    seed: int
    report_id: str
    overwrite: bool
    error_modes: int
    def __init__(self, clip_embedding_id: _Optional[str] = ..., prediction_embedding_id: _Optional[str] = ..., classes: _Optional[_Iterable[int]] = ..., c_grid: _Optional[_Iterable[float]] = ..., cv_folds: _Optional[int] = ..., top_k: _Optional[int] = ..., holdout_fraction: _Optional[float] = ..., fdr_alpha: _Optional[float] = ..., seed: _Optional[int] = ..., report_id: _Optional[str] = ..., overwrite: _Optional[bool] = ..., error_modes: _Optional[int] = ...) -> None: ...

class FailureDirection(_message.Message):
    __slots__ = ("class_index", "class_name", "n", "errors", "direction", "decision_values", "rows", "c", "cv_balanced_accuracy", "holdout_balanced_accuracy", "top_aligned_rows", "top_antialigned_rows", "top_aligned_accuracy", "low_confidence_accuracy", "holdout", "skipped_reason", "mode", "mode_errors")
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    DECISION_VALUES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    C_FIELD_NUMBER: _ClassVar[int]
    CV_BALANCED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_BALANCED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TOP_ALIGNED_ROWS_FIELD_NUMBER: _ClassVar[int]
    TOP_ANTIALIGNED_ROWS_FIELD_NUMBER: _ClassVar[int]
    TOP_ALIGNED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LOW_CONFIDENCE_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_REASON_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MODE_ERRORS_FIELD_NUMBER: _ClassVar[int]
    class_index: int
    class_name: str
    n: int
    errors: int
    direction: _common_pb2.ArtifactRef
    decision_values: _common_pb2.ArtifactRef
    rows: _common_pb2.ArtifactRef
    c: float
    cv_balanced_accuracy: float
    holdout_balanced_accuracy: float
    top_aligned_rows: _containers.RepeatedScalarFieldContainer[int]
    top_antialigned_rows: _containers.RepeatedScalarFieldContainer[int]
    top_aligned_accuracy: float
    low_confidence_accuracy: float
    holdout: _common_pb2.HoldoutStats
    skipped_reason: str
    mode: int
    mode_errors: int
    def __init__(self, class_index: _Optional[int] = ..., class_name: _Optional[str] = ..., n: _Optional[int] = ..., errors: _Optional[int] = ..., direction: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., decision_values: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., rows: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., c: _Optional[float] = ..., cv_balanced_accuracy: _Optional[float] = ..., holdout_balanced_accuracy: _Optional[float] = ..., top_aligned_rows: _Optional[_Iterable[int]] = ..., top_antialigned_rows: _Optional[_Iterable[int]] = ..., top_aligned_accuracy: _Optional[float] = ..., low_confidence_accuracy: _Optional[float] = ..., holdout: _Optional[_Union[_common_pb2.HoldoutStats, _Mapping]] = ..., skipped_reason: _Optional[str] = ..., mode: _Optional[int] = ..., mode_errors: _Optional[int] = ...) -> None: ...

class FailureDirectionsReport(_message.Message):
    __slots__ = ("report_id", "clip_embedding_id", "prediction_embedding_id", "report", "directions", "created_at")
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIP_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    clip_embedding_id: str
    prediction_embedding_id: str
    report: _common_pb2.ArtifactRef
    directions: _containers.RepeatedCompositeFieldContainer[FailureDirection]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, report_id: _Optional[str] = ..., clip_embedding_id: _Optional[str] = ..., prediction_embedding_id: _Optional[str] = ..., report: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., directions: _Optional[_Iterable[_Union[FailureDirection, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FailureDirectionsUpdate(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    result: FailureDirectionsReport
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., result: _Optional[_Union[FailureDirectionsReport, _Mapping]] = ...) -> None: ...

class RenderFeatureEvidenceRequest(_message.Message):
    __slots__ = ("report_id", "features", "feature_model_id", "top_k", "heatmaps", "feature_attack", "attack_steps", "attack_step_size", "attack_epsilon", "rules_per_class")
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    HEATMAPS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_ATTACK_FIELD_NUMBER: _ClassVar[int]
    ATTACK_STEPS_FIELD_NUMBER: _ClassVar[int]
    ATTACK_STEP_SIZE_FIELD_NUMBER: _ClassVar[int]
    ATTACK_EPSILON_FIELD_NUMBER: _ClassVar[int]
    RULES_PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    features: _containers.RepeatedScalarFieldContainer[int]
    feature_model_id: str
    top_k: int
    heatmaps: bool
    feature_attack: bool
    attack_steps: int
    attack_step_size: float
    attack_epsilon: float
    rules_per_class: int
    def __init__(self, report_id: _Optional[str] = ..., features: _Optional[_Iterable[int]] = ..., feature_model_id: _Optional[str] = ..., top_k: _Optional[int] = ..., heatmaps: _Optional[bool] = ..., feature_attack: _Optional[bool] = ..., attack_steps: _Optional[int] = ..., attack_step_size: _Optional[float] = ..., attack_epsilon: _Optional[float] = ..., rules_per_class: _Optional[int] = ...) -> None: ...

class FeatureEvidence(_message.Message):
    __slots__ = ("feature", "top_rows", "activations", "top_images", "heatmaps", "attacks", "montage")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_ROWS_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    TOP_IMAGES_FIELD_NUMBER: _ClassVar[int]
    HEATMAPS_FIELD_NUMBER: _ClassVar[int]
    ATTACKS_FIELD_NUMBER: _ClassVar[int]
    MONTAGE_FIELD_NUMBER: _ClassVar[int]
    feature: int
    top_rows: _containers.RepeatedScalarFieldContainer[int]
    activations: _containers.RepeatedScalarFieldContainer[float]
    top_images: _containers.RepeatedCompositeFieldContainer[_common_pb2.ArtifactRef]
    heatmaps: _containers.RepeatedCompositeFieldContainer[_common_pb2.ArtifactRef]
    attacks: _containers.RepeatedCompositeFieldContainer[_common_pb2.ArtifactRef]
    montage: _common_pb2.ArtifactRef
    def __init__(self, feature: _Optional[int] = ..., top_rows: _Optional[_Iterable[int]] = ..., activations: _Optional[_Iterable[float]] = ..., top_images: _Optional[_Iterable[_Union[_common_pb2.ArtifactRef, _Mapping]]] = ..., heatmaps: _Optional[_Iterable[_Union[_common_pb2.ArtifactRef, _Mapping]]] = ..., attacks: _Optional[_Iterable[_Union[_common_pb2.ArtifactRef, _Mapping]]] = ..., montage: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class FeatureEvidenceReport(_message.Message):
    __slots__ = ("report_id", "features", "index")
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    features: _containers.RepeatedCompositeFieldContainer[FeatureEvidence]
    index: _common_pb2.ArtifactRef
    def __init__(self, report_id: _Optional[str] = ..., features: _Optional[_Iterable[_Union[FeatureEvidence, _Mapping]]] = ..., index: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class FeatureEvidenceUpdate(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    result: FeatureEvidenceReport
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., result: _Optional[_Union[FeatureEvidenceReport, _Mapping]] = ...) -> None: ...

class GetReportRequest(_message.Message):
    __slots__ = ("report_id",)
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    def __init__(self, report_id: _Optional[str] = ...) -> None: ...

class SplitDebugSetRequest(_message.Message):
    __slots__ = ("prediction_embedding_id", "seed_fraction", "seed", "name")
    PREDICTION_EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    prediction_embedding_id: str
    seed_fraction: float
    seed: int
    name: str
    def __init__(self, prediction_embedding_id: _Optional[str] = ..., seed_fraction: _Optional[float] = ..., seed: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class DebugSplit(_message.Message):
    __slots__ = ("name", "debug_seed_rows", "debug_heldout_rows", "num_failures", "num_seed", "num_heldout")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEBUG_SEED_ROWS_FIELD_NUMBER: _ClassVar[int]
    DEBUG_HELDOUT_ROWS_FIELD_NUMBER: _ClassVar[int]
    NUM_FAILURES_FIELD_NUMBER: _ClassVar[int]
    NUM_SEED_FIELD_NUMBER: _ClassVar[int]
    NUM_HELDOUT_FIELD_NUMBER: _ClassVar[int]
    name: str
    debug_seed_rows: _common_pb2.ArtifactRef
    debug_heldout_rows: _common_pb2.ArtifactRef
    num_failures: int
    num_seed: int
    num_heldout: int
    def __init__(self, name: _Optional[str] = ..., debug_seed_rows: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., debug_heldout_rows: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., num_failures: _Optional[int] = ..., num_seed: _Optional[int] = ..., num_heldout: _Optional[int] = ...) -> None: ...

class CompareFailuresRequest(_message.Message):
    __slots__ = ("prediction_embedding_ids",)
    PREDICTION_EMBEDDING_IDS_FIELD_NUMBER: _ClassVar[int]
    prediction_embedding_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prediction_embedding_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class FailureOverlap(_message.Message):
    __slots__ = ("embedding_ids", "iou", "num_failures")
    EMBEDDING_IDS_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    NUM_FAILURES_FIELD_NUMBER: _ClassVar[int]
    embedding_ids: _containers.RepeatedScalarFieldContainer[str]
    iou: _containers.RepeatedScalarFieldContainer[float]
    num_failures: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, embedding_ids: _Optional[_Iterable[str]] = ..., iou: _Optional[_Iterable[float]] = ..., num_failures: _Optional[_Iterable[int]] = ...) -> None: ...
