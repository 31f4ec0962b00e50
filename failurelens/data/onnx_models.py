"""Inspect and validate user-supplied ONNX models before they are handed to Triton.

:func:`inspect_onnx` reads the graph signature (dtypes in Triton spelling, ``-1`` for dynamic
or symbolic dimensions). The ``validate_*`` functions check that a signature fits one of the
roles the services use and say precisely what to change in the export when it does not:

* classifier: one float input ``[N, 3, H, W]`` (N dynamic, H and W fixed), outputs
  ``logits [N, C]`` and ``features [N, D]`` (the penultimate layer);
* image encoder: input ``[N, 3, H, W]``, output ``embeddings [N, D]``;
* text encoder: input ``input_ids`` INT64 ``[N, L]``, output ``embeddings [N, D]``;
* feature extractor: input ``[N, 3, H, W]``, output ``features [N, D]`` and optionally
  ``feature_map [N, D', h, w]``.

:func:`smoke_run` then runs one zero batch of 2 through onnxruntime (CPU) and compares the real
output shapes with the declared ones, which catches graphs that hard-code batch 1 or declare
wrong static dimensions.

Every problem is a :class:`~failurelens.data.errors.ValidationError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from failurelens.data.errors import ValidationError, Violation, ViolationCollector

__all__ = [
    "TensorInfo",
    "OnnxSignature",
    "ClassifierInfo",
    "ImageEncoderInfo",
    "TextEncoderInfo",
    "FeatureExtractorInfo",
    "inspect_onnx",
    "validate_classifier",
    "validate_image_encoder",
    "validate_text_encoder",
    "validate_feature_extractor",
    "run_onnx_inprocess",
    "smoke_run",
    "triton_dtype_to_numpy",
]

#: ONNX TensorProto element type name -> Triton dtype name
ONNX_TO_TRITON = {
    "FLOAT": "FP32",
    "FLOAT16": "FP16",
    "BFLOAT16": "BF16",
    "DOUBLE": "FP64",
    "INT8": "INT8",
    "INT16": "INT16",
    "INT32": "INT32",
    "INT64": "INT64",
    "UINT8": "UINT8",
    "UINT16": "UINT16",
    "UINT32": "UINT32",
    "UINT64": "UINT64",
    "BOOL": "BOOL",
    "STRING": "BYTES",
}
_TRITON_TO_NUMPY = {
    "FP32": np.float32,
    "FP16": np.float16,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
    "BYTES": np.object_,
}
_FLOAT_INPUTS = ("FP32", "FP16")


def triton_dtype_to_numpy(dtype: str) -> np.dtype:
    """numpy dtype of a Triton dtype name (``FP32`` -> ``float32``); KeyError if there is none (BF16)."""
    return np.dtype(_TRITON_TO_NUMPY[dtype])


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """A graph input or output. ``shape`` uses ``-1`` for dynamic/symbolic dims; ``None`` if the
    graph declares no shape (unknown rank)."""

    name: str
    dtype: str  # Triton spelling: FP32, INT64, ...
    shape: tuple[int, ...] | None

    def shape_str(self) -> str:
        if self.shape is None:
            return "[unknown rank]"
        return "[" + ", ".join("N" if (i == 0 and d == -1) else ("?" if d == -1 else str(d)) for i, d in enumerate(self.shape)) + "]"


@dataclasses.dataclass(frozen=True)
class OnnxSignature:
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    opset: int
    ir_version: int
    producer: str = ""

    def input(self, name: str) -> TensorInfo | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorInfo | None:
        return next((t for t in self.outputs if t.name == name), None)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


@dataclasses.dataclass(frozen=True)
class ClassifierInfo:
    input_name: str
    input_hw: tuple[int, int]
    num_classes: int
    feature_dim: int
    input_dtype: str = "FP32"
    logits_name: str = "logits"
    features_name: str = "features"


@dataclasses.dataclass(frozen=True)
class ImageEncoderInfo:
    input_name: str
    input_hw: tuple[int, int]
    embedding_dim: int
    input_dtype: str = "FP32"
    output_name: str = "embeddings"


@dataclasses.dataclass(frozen=True)
class TextEncoderInfo:
    input_name: str
    context_length: int | None  # None: the graph accepts any length (the tokenizer's default is used)
    embedding_dim: int
    output_name: str = "embeddings"


@dataclasses.dataclass(frozen=True)
class FeatureExtractorInfo:
    input_name: str
    input_hw: tuple[int, int]
    feature_dim: int
    feature_map_shape: tuple[int, int, int] | None = None  # (D', h, w) when there is a feature_map output
    input_dtype: str = "FP32"


# --------------------------------------------------------------------------------------------
# inspection
# --------------------------------------------------------------------------------------------
def _not_valid(detail: str) -> ValidationError:
    msg = f"not a valid ONNX model: {detail}"
    return ValidationError(msg, [Violation(field="model", description=msg)])


def _tensor_info(value_info: Any) -> TensorInfo:
    import onnx

    t = value_info.type
    kind = t.WhichOneof("value")
    if kind != "tensor_type":
        return TensorInfo(value_info.name, (kind or "UNKNOWN").upper(), None)
    tt = t.tensor_type
    elem = onnx.TensorProto.DataType.Name(tt.elem_type) if tt.elem_type else "UNDEFINED"
    dtype = ONNX_TO_TRITON.get(elem, elem)
    if not tt.HasField("shape"):
        return TensorInfo(value_info.name, dtype, None)
    dims = []
    for d in tt.shape.dim:
        # dim_value (fixed, 0 allowed) or dim_param / nothing (dynamic)
        dims.append((int(d.dim_value) if d.dim_value >= 0 else -1) if d.HasField("dim_value") else -1)
    return TensorInfo(value_info.name, dtype, tuple(dims))


def inspect_onnx(model_bytes: bytes) -> OnnxSignature:
    """Parse and check an ONNX model (``onnx.checker``) and return its signature.

    Refuses models whose weights live in an external data file (they cannot travel as one
    object); re-export with ``external_data=False`` (models must stay under 2 GB).
    """
    import onnx

    if isinstance(model_bytes, memoryview):
        model_bytes = model_bytes.tobytes()
    if not isinstance(model_bytes, (bytes, bytearray)):
        raise TypeError(f"inspect_onnx takes bytes, not {type(model_bytes).__name__}")
    if not model_bytes:
        raise _not_valid("the file is empty (0 bytes); upload the .onnx file written by torch.onnx.export")
    try:
        model = onnx.load_model_from_string(bytes(model_bytes))
    except Exception as e:
        raise _not_valid(
            f"the bytes do not parse as an ONNX protobuf ({type(e).__name__}: {e}); upload the .onnx file written by torch.onnx.export"
        ) from None
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise _not_valid("the file holds no graph; upload the .onnx file written by torch.onnx.export")
    external = [init.name for init in model.graph.initializer if init.data_location == onnx.TensorProto.EXTERNAL or len(init.external_data) > 0]
    if external:
        locs = sorted({e.value for init in model.graph.initializer for e in init.external_data if e.key == "location"})
        raise _not_valid(
            f"{len(external)} weight tensor(s) (e.g. {external[0]!r}) are stored in an external data file "
            f"{locs[:3]}, which was not uploaded; re-export with torch.onnx.export(..., external_data=False) "
            f"or merge the weights with onnx.save_model(onnx.load(path), path2, save_as_external_data=False) "
            f"(models must be under 2 GB)"
        )
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _not_valid(f"the ONNX checker rejects it: {first}; re-export the model with torch.onnx.export") from None

    init_names = {i.name for i in model.graph.initializer}
    inputs = [_tensor_info(v) for v in model.graph.input if v.name not in init_names]
    outputs = [_tensor_info(v) for v in model.graph.output]
    opset = 0
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            opset = int(imp.version)
    return OnnxSignature(
        inputs=inputs,
        outputs=outputs,
        opset=opset,
        ir_version=int(model.ir_version),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
    )


# --------------------------------------------------------------------------------------------
# role validation
# --------------------------------------------------------------------------------------------
_DYNAMIC_BATCH_HINT = (
    "export with a dynamic batch dimension: torch.onnx.export(..., input_names=[{name!r}], "
    "dynamic_axes={{{name!r}: {{0: 'batch'}}, <each output>: {{0: 'batch'}}}}) (TorchScript exporter) or "
    "dynamic_shapes={{<forward arg>: {{0: torch.export.Dim('batch')}}}} (dynamo exporter)"
)


def _check_image_input(
    sig: OnnxSignature, errs: ViolationCollector, role: str, input_size: Sequence[int] | None
) -> tuple[str, tuple[int, int], str] | None:
    """The single [N,3,H,W] float input; returns (name, (H, W), dtype) when usable."""
    if len(sig.inputs) != 1:
        errs.add(
            "model.inputs",
            f"the ONNX graph has {len(sig.inputs)} inputs {[f'{t.name} {t.dtype}{t.shape_str()}' for t in sig.inputs]}; "
            f"a {role} takes exactly one float image input [N, 3, H, W]; wrap the model so that forward() takes one tensor",
        )
        return None
    t = sig.inputs[0]
    ok = True
    if t.dtype not in _FLOAT_INPUTS:
        errs.add("model.inputs", f"input {t.name!r} has dtype {t.dtype}; a {role} input must be FP32 (float32 NCHW pixels)")
        ok = False
    if t.shape is None or len(t.shape) != 4:
        rank = "unknown rank" if t.shape is None else f"rank {len(t.shape)}"
        errs.add(
            "model.inputs",
            f"input {t.name!r} has shape {t.shape_str()} ({rank}); a {role} input must be [N, 3, H, W] "
            f"(batch, RGB channels, height, width); export with a 4-D example such as torch.zeros(1, 3, 224, 224)",
        )
        return None
    n, c, h, w = t.shape
    if n != -1:
        errs.add(
            "model.inputs",
            f"input {t.name!r} has a fixed batch dimension of {n} (shape {t.shape_str()}); " + _DYNAMIC_BATCH_HINT.format(name=t.name),
        )
        ok = False
    if c != 3:
        if w == 3 and c != 3:
            desc = (
                f"input {t.name!r} has shape {t.shape_str()}, which looks channels-last (NHWC); the input must be "
                f"channels-first [N, 3, H, W]; permute inside the model or export an NCHW model"
            )
        elif c == -1:
            desc = f"input {t.name!r} has a dynamic channel dimension (shape {t.shape_str()}); fix it to 3 (RGB) when exporting"
        else:
            desc = (
                f"input {t.name!r} has {c} channel(s) (shape {t.shape_str()}); the input must take 3 (RGB) channels; "
                f"for a grayscale model wrap it to average the RGB channels (x.mean(1, keepdim=True)) before exporting"
            )
        errs.add("model.inputs", desc)
        ok = False
    if h <= 0 or w <= 0:
        errs.add(
            "model.inputs",
            f"input {t.name!r} has a dynamic or zero height/width (shape {t.shape_str()}); export with a fixed input "
            f"size: make only dimension 0 (batch) dynamic",
        )
        ok = False
    elif input_size is not None and tuple(int(v) for v in input_size) != (h, w):
        hh, ww = (int(v) for v in input_size)
        errs.add(
            "preprocessing.input_size",
            f"the model's input {t.name!r} is {h}x{w} (H x W) but preprocessing.input_size is ({hh}, {ww}); "
            f"set input_size to ({h}, {w}) or re-export the model for {hh}x{ww}",
        )
        ok = False
    return (t.name, (h, w), t.dtype) if ok else None


def _check_matrix_output(sig: OnnxSignature, name: str, dim_name: str, errs: ViolationCollector, role: str) -> int | None:
    """A float output ``name`` of shape [N, K]; returns K when usable."""
    t = sig.output(name)
    if t is None:
        return None  # the caller reports missing outputs together
    if t.dtype not in ("FP32", "FP16", "FP64"):
        errs.add("model.outputs", f"output {name!r} has dtype {t.dtype}; it must be a float tensor (FP32)")
        return None
    if t.shape is None or len(t.shape) != 2:
        extra = ""
        if t.shape is not None and len(t.shape) == 4:
            extra = "; pool and flatten it inside the model (e.g. torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))"
        errs.add(
            "model.outputs",
            f"output {name!r} has shape {t.shape_str()}; a {role} needs {name!r} as [N, {dim_name}] (rank 2){extra}",
        )
        return None
    n, k = t.shape
    ok = True
    if n != -1:
        errs.add(
            "model.outputs",
            f"output {name!r} has a fixed batch dimension of {n} (shape {t.shape_str()}); make dimension 0 of every "
            f"output dynamic (dynamic_axes={{{name!r}: {{0: 'batch'}}}})",
        )
        ok = False
    if k <= 0:
        errs.add(
            "model.outputs",
            f"output {name!r} has a dynamic or zero second dimension (shape {t.shape_str()}); {dim_name} must be a fixed "
            f"positive size: make only dimension 0 dynamic when exporting",
        )
        ok = False
    return k if ok else None


def _missing_outputs(sig: OnnxSignature, required: Mapping[str, str], role: str, errs: ViolationCollector) -> bool:
    missing = [n for n in required if sig.output(n) is None]
    if missing:
        need = " and ".join(f"{n!r} {shape}" for n, shape in required.items())
        errs.add(
            "model.outputs",
            f"the ONNX graph has outputs {sig.output_names}; a {role} needs {need}; missing {missing}; re-export "
            f"with torch.onnx.export(..., output_names={list(required)}) and a forward() that returns "
            f"({', '.join(required)})",
        )
        return True
    return False


def validate_classifier(
    sig: OnnxSignature,
    num_classes: int | None = None,
    *,
    input_size: Sequence[int] | None = None,
) -> ClassifierInfo:
    """Check that ``sig`` is a classifier usable by the services (see the module docstring).

    ``num_classes`` (the dataset's class count) must equal the logits width when given;
    ``input_size`` (the declared preprocessing ``(H, W)``) must equal the graph's input size.
    """
    errs = ViolationCollector()
    role = "classifier"
    inp = _check_image_input(sig, errs, role, input_size)
    required = {"logits": "[N, C]", "features": "[N, D] (penultimate layer)"}
    _missing_outputs(sig, required, role, errs)
    c = _check_matrix_output(sig, "logits", "C", errs, role)
    d = _check_matrix_output(sig, "features", "D", errs, role)
    if c is not None and num_classes is not None and c != num_classes:
        errs.add(
            "model.outputs",
            f"the model's 'logits' output has {c} classes but the dataset has {num_classes} classes; "
            f"use a model trained on this dataset's class list (in the same order)",
        )
    errs.raise_if_any("the ONNX model is not a usable classifier")
    assert inp is not None and c is not None and d is not None
    return ClassifierInfo(input_name=inp[0], input_hw=inp[1], num_classes=c, feature_dim=d, input_dtype=inp[2])


def validate_image_encoder(sig: OnnxSignature, *, input_size: Sequence[int] | None = None) -> ImageEncoderInfo:
    """Input [N, 3, H, W], output ``embeddings`` [N, D]."""
    errs = ViolationCollector()
    role = "image encoder"
    inp = _check_image_input(sig, errs, role, input_size)
    _missing_outputs(sig, {"embeddings": "[N, D]"}, role, errs)
    d = _check_matrix_output(sig, "embeddings", "D", errs, role)
    errs.raise_if_any("the ONNX model is not a usable image encoder")
    assert inp is not None and d is not None
    return ImageEncoderInfo(input_name=inp[0], input_hw=inp[1], embedding_dim=d, input_dtype=inp[2])


def validate_text_encoder(sig: OnnxSignature) -> TextEncoderInfo:
    """Input ``input_ids`` INT64 [N, L], output ``embeddings`` [N, D]."""
    errs = ViolationCollector()
    role = "text encoder"
    context: int | None = None
    ok_input = False
    if len(sig.inputs) != 1:
        errs.add(
            "model.inputs",
            f"the ONNX graph has {len(sig.inputs)} inputs {sig.input_names}; a text encoder takes exactly one input "
            f"'input_ids' INT64 [N, L] (no attention mask); wrap the model so that forward() takes only the token ids",
        )
    else:
        t = sig.inputs[0]
        ok_input = True
        if t.name != "input_ids":
            errs.add(
                "model.inputs",
                f"the text encoder's input is named {t.name!r}; name it 'input_ids' (input_names=['input_ids'])",
            )
            ok_input = False
        if t.dtype != "INT64":
            errs.add(
                "model.inputs",
                f"input {t.name!r} has dtype {t.dtype}; token ids must be INT64 (export with a torch.long example)",
            )
            ok_input = False
        if t.shape is None or len(t.shape) != 2:
            errs.add(
                "model.inputs",
                f"input {t.name!r} has shape {t.shape_str()}; it must be [N, L] (batch, context length)",
            )
            ok_input = False
        else:
            n, length = t.shape
            if n != -1:
                errs.add(
                    "model.inputs",
                    f"input {t.name!r} has a fixed batch dimension of {n}; " + _DYNAMIC_BATCH_HINT.format(name=t.name),
                )
                ok_input = False
            if length == 0:
                errs.add("model.inputs", f"input {t.name!r} has a zero context length; export with L = 77 (CLIP)")
                ok_input = False
            context = length if length > 0 else None
    _missing_outputs(sig, {"embeddings": "[N, D]"}, role, errs)
    d = _check_matrix_output(sig, "embeddings", "D", errs, role)
    errs.raise_if_any("the ONNX model is not a usable text encoder")
    assert ok_input and d is not None
    return TextEncoderInfo(input_name="input_ids", context_length=context, embedding_dim=d)


def validate_feature_extractor(sig: OnnxSignature, *, input_size: Sequence[int] | None = None) -> FeatureExtractorInfo:
    """Input [N, 3, H, W]; output ``features`` [N, D] and optionally ``feature_map`` [N, D', h, w]."""
    errs = ViolationCollector()
    role = "feature extractor"
    inp = _check_image_input(sig, errs, role, input_size)
    _missing_outputs(sig, {"features": "[N, D]"}, role, errs)
    d = _check_matrix_output(sig, "features", "D", errs, role)
    fmap: tuple[int, int, int] | None = None
    t = sig.output("feature_map")
    if t is not None:
        if t.shape is None or len(t.shape) != 4:
            errs.add(
                "model.outputs",
                f"output 'feature_map' has shape {t.shape_str()}; it must be [N, D, h, w] (a spatial feature map)",
            )
        elif t.dtype not in ("FP32", "FP16", "FP64"):
            errs.add("model.outputs", f"output 'feature_map' has dtype {t.dtype}; it must be a float tensor (FP32)")
        else:
            n, dd, hh, ww = t.shape
            if n != -1:
                errs.add(
                    "model.outputs",
                    f"output 'feature_map' has a fixed batch dimension of {n}; make dimension 0 of every output dynamic",
                )
            elif min(dd, hh, ww) <= 0:
                errs.add(
                    "model.outputs",
                    f"output 'feature_map' has shape {t.shape_str()}; D, h and w must be fixed positive sizes",
                )
            else:
                fmap = (dd, hh, ww)
    errs.raise_if_any("the ONNX model is not a usable feature extractor")
    assert inp is not None and d is not None
    return FeatureExtractorInfo(input_name=inp[0], input_hw=inp[1], feature_dim=d, feature_map_shape=fmap, input_dtype=inp[2])


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------
_SESSIONS: OrderedDict[str, Any] = OrderedDict()
_SESSIONS_LOCK = threading.Lock()
_MAX_SESSIONS = 4


def _session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    digest = hashlib.sha256(model_bytes).hexdigest()
    with _SESSIONS_LOCK:
        sess = _SESSIONS.get(digest)
        if sess is not None:
            _SESSIONS.move_to_end(digest)
            return sess
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
    with _SESSIONS_LOCK:
        _SESSIONS[digest] = sess
        while len(_SESSIONS) > _MAX_SESSIONS:
            _SESSIONS.popitem(last=False)
    return sess


def run_onnx_inprocess(model_bytes: bytes, inputs: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run the model once in onnxruntime on the CPU (for parity checks); returns ``{output: array}``.

    Sessions are cached (the last few models, keyed by content hash).
    """
    sess = _session(bytes(model_bytes))
    names = list(output_names) if output_names is not None else [o.name for o in sess.get_outputs()]
    results = sess.run(names, {k: np.asarray(v) for k, v in inputs.items()})
    return dict(zip(names, results))


def _default_dim(rank: int, axis: int, dtype: str) -> int:
    if rank == 4 and axis >= 2:
        return 224
    if rank == 2 and axis == 1 and dtype.startswith(("INT", "UINT")):
        return 77
    return 1


def smoke_run(
    model_bytes: bytes,
    sig: OnnxSignature,
    *,
    batch_size: int = 2,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, np.ndarray]:
    """Run one all-zero batch of ``batch_size`` and check the outputs match the declared shapes.

    Dynamic non-batch input dims get 224 (image H/W), 77 (token length) or 1 unless
    ``input_shapes`` gives the full shape. Returns the outputs.
    """
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 to tell a dynamic batch from a hard-coded 1")
    feeds: dict[str, np.ndarray] = {}
    batch_dynamic = False
    for t in sig.inputs:
        if input_shapes and t.name in input_shapes:
            shape = tuple(int(v) for v in input_shapes[t.name])
        elif t.shape is None:
            raise ValidationError(f"input {t.name!r} has no declared shape; pass input_shapes to smoke_run")
        else:
            shape = tuple((batch_size if i == 0 else _default_dim(len(t.shape), i, t.dtype)) if d == -1 else d for i, d in enumerate(t.shape))
        if t.shape and t.shape[0] == -1:
            batch_dynamic = True
        try:
            np_dtype = triton_dtype_to_numpy(t.dtype)
        except KeyError:
            raise ValidationError(f"input {t.name!r} has dtype {t.dtype}, which cannot be fed from numpy; use FP32 or FP16") from None
        feeds[t.name] = np.zeros(shape, dtype=np_dtype)
    described = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in feeds.items())
    try:
        outs = run_onnx_inprocess(model_bytes, feeds)
    except Exception as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValidationError(
            f"the model fails in onnxruntime on a zero batch ({described}): {text}; the graph probably hard-codes "
            f"a shape (e.g. batch 1 in a reshape: use x.flatten(1) instead of x.view(1, -1)); re-export and test it "
            f"with a batch of {batch_size}"
        ) from None

    errs = ViolationCollector()
    for t in sig.outputs:
        if t.name not in outs:
            continue
        actual = outs[t.name]
        if t.dtype in _TRITON_TO_NUMPY and actual.dtype != triton_dtype_to_numpy(t.dtype):
            errs.add(
                "model.outputs",
                f"output {t.name!r} is declared {t.dtype} but the model returns {actual.dtype}; re-export the model",
            )
        if t.shape is None:
            continue
        if actual.ndim != len(t.shape):
            errs.add(
                "model.outputs",
                f"output {t.name!r} is declared {t.shape_str()} (rank {len(t.shape)}) but the model returns shape "
                f"{list(actual.shape)} for a batch of {batch_size}; the declared shape is wrong; re-export the model",
            )
            continue
        for i, (decl, got) in enumerate(zip(t.shape, actual.shape)):
            if i == 0 and decl == -1 and batch_dynamic and got != batch_size:
                errs.add(
                    "model.outputs",
                    f"output {t.name!r} comes back with batch {got} for an input batch of {batch_size}; the graph "
                    f"hard-codes the batch size (e.g. x.view(1, -1)); use x.flatten(1) and re-export",
                )
                break
            if decl != -1 and decl != got:
                errs.add(
                    "model.outputs",
                    f"output {t.name!r} is declared {t.shape_str()} but the model returns {list(actual.shape)} for a "
                    f"batch of {batch_size}; the declared static shape is wrong; re-export the model (do not edit "
                    f"the graph's output shapes by hand)",
                )
                break
    errs.raise_if_any("the ONNX model does not produce what it declares")
    return outs
