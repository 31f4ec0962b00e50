"""Generic Triton python-backend model that serves ``model.onnx`` with onnxruntime.

This file is copied verbatim to ``<repo>/<model>/<version>/model.py`` by
``failurelens.triton.repository.write_model``.  It runs inside Triton's
``triton_python_backend_stub``, so it must not import anything from failurelens.

Behaviour
---------
* Loads ``<version dir>/<onnx_filename>`` (parameter, default ``model.onnx``).
* Execution provider: CUDA when the instance kind is GPU and onnxruntime has the
  CUDAExecutionProvider, else CPU.  Parameter ``execution_provider`` (``cpu``/``cuda``)
  forces one.
* Threads: parameters ``intra_op_threads``, ``inter_op_threads`` (0 = onnxruntime
  default), ``allow_spinning`` (``0``/``1``), ``graph_optimization_level``
  (``disable``/``basic``/``extended``/``all``).
* ``execute(requests)`` concatenates the inputs of ALL requests along the batch
  dimension (requests whose non-batch dims differ are run as separate groups), runs the
  session once per group, and splits the outputs back per request.  A failing request is
  answered with a ``TritonError`` without failing the others: if a merged run fails,
  each request of the group is retried alone to isolate the culprit.
* Inputs/outputs are those of the model config (any number, any names).  A request may
  ask for a subset of outputs; only those are returned.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

_TRITON_TO_NUMPY = {
    "TYPE_BOOL": np.bool_,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}

_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def _params(model_config: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in (model_config.get("parameters") or {}).items():
        out[key] = value.get("string_value", "") if isinstance(value, dict) else str(value)
    return out


def _error(message: str, code: Any = None) -> Any:
    if code is None:
        return pb_utils.TritonError(message)
    try:
        return pb_utils.TritonError(message, code)
    except TypeError:  # very old python backends: no code argument
        return pb_utils.TritonError(message)


class TritonPythonModel:
    """Serve an ONNX file with onnxruntime, batching all requests of one ``execute``."""

    def initialize(self, args: dict[str, str]) -> None:
        import onnxruntime as ort

        self.model_config = json.loads(args["model_config"])
        self.params = _params(self.model_config)
        self.max_batch_size = int(self.model_config.get("max_batch_size", 0) or 0)
        self.batching = self.max_batch_size > 0

        version_dir = os.path.join(args["model_repository"], str(args["model_version"]))
        onnx_path = os.path.join(version_dir, self.params.get("onnx_filename", "model.onnx"))
        if not os.path.isfile(onnx_path):
            raise pb_utils.TritonModelException(f"ONNX file {onnx_path} not found")

        self.inputs = [(i["name"], _TRITON_TO_NUMPY[i["data_type"]]) for i in self.model_config.get("input", [])]
        self.outputs = [(o["name"], _TRITON_TO_NUMPY[o["data_type"]]) for o in self.model_config.get("output", [])]
        self.output_names = [name for name, _ in self.outputs]

        so = ort.SessionOptions()
        intra = int(self.params.get("intra_op_threads", "0") or 0)
        inter = int(self.params.get("inter_op_threads", "0") or 0)
        if intra > 0:
            so.intra_op_num_threads = intra
        if inter > 0:
            so.inter_op_num_threads = inter
        if "allow_spinning" in self.params:
            so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.params["allow_spinning"] in ("1", "true", "True") else "0")
        level = self.params.get("graph_optimization_level")
        if level:
            so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[level.lower()])

        kind = str(args.get("model_instance_kind", "CPU")).upper()
        device_id = int(args.get("model_instance_device_id", "0") or 0)
        forced = self.params.get("execution_provider", "").lower()
        available = ort.get_available_providers()
        want_cuda = forced == "cuda" or (forced in ("", "auto") and kind == "GPU")
        if want_cuda and "CUDAExecutionProvider" in available:
            providers: list[Any] = [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
        else:
            if forced == "cuda":
                raise pb_utils.TritonModelException(f"execution_provider=cuda requested but onnxruntime offers only {available}")
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(onnx_path, sess_options=so, providers=providers)
        self.providers = self.session.get_providers()

        session_inputs = {i.name for i in self.session.get_inputs()}
        session_outputs = {o.name for o in self.session.get_outputs()}
        missing = [n for n, _ in self.inputs if n not in session_inputs] + [n for n in self.output_names if n not in session_outputs]
        if missing:
            raise pb_utils.TritonModelException(
                f"config names {missing} not in the ONNX graph (inputs {sorted(session_inputs)}, outputs {sorted(session_outputs)})"
            )
        pb_utils.Logger.log_info(
            f"onnx_model: loaded {onnx_path} providers={self.providers} intra_op_threads={intra or 'default'} max_batch_size={self.max_batch_size}"
        )

    # ------------------------------------------------------------------ execute
    def _gather(self, request: Any) -> dict[str, np.ndarray]:
        feeds = {}
        for name, dtype in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"missing input '{name}'")
            arr = tensor.as_numpy()
            if dtype is not np.object_ and arr.dtype != dtype:
                arr = arr.astype(dtype)
            if self.batching and arr.ndim == 0:
                raise ValueError(f"input '{name}' has no batch dimension")
            feeds[name] = arr
        if self.batching:
            sizes = {a.shape[0] for a in feeds.values()}
            if len(sizes) != 1:
                raise ValueError(f"inputs disagree on the batch size: { {k: v.shape[0] for k, v in feeds.items()} }")
        return feeds

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, feeds)

    def _respond(self, request: Any, outputs: dict[str, np.ndarray]) -> Any:
        requested = request.requested_output_names()
        names = [n for n in self.output_names if not requested or n in requested]
        tensors = []
        for name, dtype in self.outputs:
            if name not in names:
                continue
            arr = outputs[name]
            if dtype is not np.object_ and arr.dtype != dtype:
                arr = arr.astype(dtype)
            tensors.append(pb_utils.Tensor(name, np.ascontiguousarray(arr)))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _run_single(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self._run(feeds)))

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        feeds_per_request: dict[int, dict[str, np.ndarray]] = {}
        for idx, request in enumerate(requests):
            try:
                feeds_per_request[idx] = self._gather(request)
            except Exception as exc:
                responses[idx] = pb_utils.InferenceResponse(
                    output_tensors=[], error=_error(f"bad request: {exc}", getattr(pb_utils.TritonError, "INVALID_ARG", None))
                )

        if not self.batching:
            for idx, feeds in feeds_per_request.items():
                responses[idx] = self._answer_alone(requests[idx], feeds)
            return responses

        # Group requests whose non-batch shapes agree; each group is one session run.
        groups: dict[tuple, list[int]] = {}
        for idx, feeds in feeds_per_request.items():
            key = tuple((name, feeds[name].shape[1:]) for name, _ in self.inputs)
            groups.setdefault(key, []).append(idx)

        for members in groups.values():
            if len(members) == 1:
                idx = members[0]
                responses[idx] = self._answer_alone(requests[idx], feeds_per_request[idx])
                continue
            sizes = [next(iter(feeds_per_request[i].values())).shape[0] for i in members]
            total = sum(sizes)
            try:
                merged = {name: np.concatenate([feeds_per_request[i][name] for i in members], axis=0) for name, _ in self.inputs}
                results = self._run(merged)
                for name, arr in zip(self.output_names, results):
                    if arr.ndim == 0 or arr.shape[0] != total:
                        raise RuntimeError(f"output '{name}' has shape {arr.shape}, expected batch {total}")
            except Exception:
                for i in members:
                    responses[i] = self._answer_alone(requests[i], feeds_per_request[i])
                continue
            offsets = np.cumsum(sizes)[:-1]
            split = {name: np.split(arr, offsets, axis=0) for name, arr in zip(self.output_names, results)}
            for pos, i in enumerate(members):
                responses[i] = self._respond(requests[i], {name: parts[pos] for name, parts in split.items()})
        return responses

    def _answer_alone(self, request: Any, feeds: dict[str, np.ndarray]) -> Any:
        try:
            outputs = self._run_single(feeds)
            if self.batching:
                n = next(iter(feeds.values())).shape[0]
                for name, arr in outputs.items():
                    if arr.ndim == 0 or arr.shape[0] != n:
                        raise RuntimeError(f"output '{name}' has shape {arr.shape}, expected batch {n}")
            return self._respond(request, outputs)
        except Exception as exc:
            return pb_utils.InferenceResponse(output_tensors=[], error=_error(f"onnxruntime failed: {exc}"))

    def finalize(self) -> None:
        self.session = None
