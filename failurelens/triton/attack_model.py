"""Triton python-backend model that runs Barlow's feature attack next to the feature extractor.

Copied to ``<repo>/<name>__attack/1/model.py`` by
:func:`failurelens.triton.repository.write_attack_model`, beside ``model.onnx`` (the feature
extractor's ONNX file) and ``feature_attack.py`` (a verbatim copy of
``failurelens/discovery/attack.py``, pure torch).  It runs inside
``triton_python_backend_stub`` and imports nothing from failurelens.

Behaviour
---------
* ``initialize`` converts ``model.onnx`` to a torch module with ``onnx2torch`` (so gradients
  flow through the very graph the registry serves; batch-norm is already folded into the
  convolutions by the exporter) and loads ``feature_attack.py`` from the version folder.
* Inputs (batched; dims exclude the batch): ``images`` FP32 ``[3,H,W]`` in [0,1] pixel space,
  ``feature`` INT64 ``[1]``, ``steps`` INT32 ``[1]``, ``step_size`` FP32 ``[1]``, ``epsilon``
  FP32 ``[1]``.  Outputs: ``attacked`` FP32 ``[3,H,W]`` in [0,1], ``activation_before`` and
  ``activation_after`` FP32 ``[1]``.
* Config parameters (written by ``write_attack_model``): ``mean``/``std`` (JSON lists, the
  extractor's normalisation), ``feature_output`` (graph output holding the ``[N,D]``
  features), ``torch_threads`` (default 1), ``max_steps`` (default 1000), ``onnx_filename``.
* ``execute`` pools the rows of all requests and runs one attack per group of rows that share
  image size, ``steps``, ``step_size`` and ``epsilon`` (features may differ per row); a bad
  request is answered with an error without failing the others.
* Device: CUDA when the instance kind is GPU and torch sees a GPU (production, NGC image with
  torch installed), else CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

INPUTS = ("images", "feature", "steps", "step_size", "epsilon")
OUTPUTS = ("attacked", "activation_before", "activation_after")


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
    """Feature attack on the torch conversion of ``model.onnx``."""

    def initialize(self, args: dict[str, str]) -> None:
        import onnx
        import torch
        from onnx2torch import convert

        self.torch = torch
        self.model_config = json.loads(args["model_config"])
        self.params = _params(self.model_config)
        threads = int(self.params.get("torch_threads", "1") or 1)
        if threads > 0:
            torch.set_num_threads(threads)
        self.max_steps = int(self.params.get("max_steps", "1000") or 1000)

        version_dir = os.path.join(args["model_repository"], str(args["model_version"]))
        onnx_path = os.path.join(version_dir, self.params.get("onnx_filename", "model.onnx"))
        attack_path = os.path.join(version_dir, "feature_attack.py")
        for path in (onnx_path, attack_path):
            if not os.path.isfile(path):
                raise pb_utils.TritonModelException(f"{path} not found")
        spec = importlib.util.spec_from_file_location("_failurelens_feature_attack", attack_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.feature_attack = module.feature_attack

        graph = onnx.load(onnx_path)
        outputs = [o.name for o in graph.graph.output]
        feature_output = self.params.get("feature_output", "features") or "features"
        if feature_output not in outputs:
            raise pb_utils.TritonModelException(f"feature output {feature_output!r} not in the ONNX outputs {outputs}")
        self.output_index = outputs.index(feature_output) if len(outputs) > 1 else None
        dims = graph.graph.output[outputs.index(feature_output)].type.tensor_type.shape.dim
        self.feature_dim = dims[1].dim_value if len(dims) == 2 and dims[1].HasField("dim_value") else None

        try:
            self.mean = [float(v) for v in json.loads(self.params["mean"])]
            self.std = [float(v) for v in json.loads(self.params["std"])]
        except (KeyError, ValueError, TypeError) as exc:
            raise pb_utils.TritonModelException(f"parameters 'mean' and 'std' must be JSON lists: {exc}") from None

        kind = str(args.get("model_instance_kind", "CPU")).upper()
        device_id = int(args.get("model_instance_device_id", "0") or 0)
        if kind == "GPU" and torch.cuda.is_available():
            self.device = torch.device("cuda", device_id)
        else:
            self.device = torch.device("cpu")
        net = convert(graph).eval()
        for p in net.parameters():
            p.requires_grad_(False)  # gradients are taken w.r.t. the image only
        self.net = net.to(self.device)
        self.output_names = [o["name"] for o in self.model_config.get("output", [])]
        pb_utils.Logger.log_info(
            f"attack_model: {onnx_path} -> onnx2torch on {self.device}, feature output {feature_output!r} "
            f"(dim {self.feature_dim}), threads {torch.get_num_threads()}, max_steps {self.max_steps}"
        )

    # ------------------------------------------------------------------ requests
    def _gather(self, request: Any) -> dict[str, np.ndarray]:
        arrays = {}
        for name in INPUTS:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"missing input '{name}'")
            arrays[name] = tensor.as_numpy()
        images = arrays["images"].astype(np.float32, copy=False)
        n = images.shape[0]
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [N, 3, H, W], got {images.shape}")
        if not np.isfinite(images).all() or images.min(initial=0.0) < -1e-6 or images.max(initial=0.0) > 1 + 1e-6:
            raise ValueError("images must be finite and in [0, 1] pixel space")
        rows = {"images": np.clip(images, 0.0, 1.0)}
        for name, dtype in (("feature", np.int64), ("steps", np.int64), ("step_size", np.float32), ("epsilon", np.float32)):
            arr = np.asarray(arrays[name]).reshape(-1).astype(dtype)
            if arr.shape[0] != n:
                raise ValueError(f"input '{name}' has {arr.shape[0]} rows for {n} images")
            rows[name] = arr
        if ((rows["steps"] < 0) | (rows["steps"] > self.max_steps)).any():
            raise ValueError(f"steps must be in 0..{self.max_steps}")
        for name in ("step_size", "epsilon"):
            if not np.isfinite(rows[name]).all() or (rows[name] < 0).any():
                raise ValueError(f"{name} must be finite and >= 0")
        if (rows["feature"] < 0).any() or (self.feature_dim and (rows["feature"] >= self.feature_dim).any()):
            raise ValueError(f"feature must be in 0..{(self.feature_dim or 0) - 1}")
        return rows

    def _attack(self, images: np.ndarray, feature: np.ndarray, steps: int, step_size: float, epsilon: float) -> tuple[np.ndarray, ...]:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        f = torch.from_numpy(np.ascontiguousarray(feature)).to(self.device)
        attacked, before, after = self.feature_attack(
            self.net, x, f, steps=steps, step_size=step_size, epsilon=epsilon, mean=self.mean, std=self.std, output=self.output_index
        )
        return attacked.cpu().numpy(), before.cpu().numpy(), after.cpu().numpy()

    def _respond(self, request: Any, outputs: dict[str, np.ndarray]) -> Any:
        requested = request.requested_output_names()
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(outputs[name], dtype=np.float32))
            for name in self.output_names
            if not requested or name in requested
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _run(self, members: list[tuple[int, dict[str, np.ndarray]]]) -> dict[int, dict[str, np.ndarray]]:
        """Attack the pooled rows of ``members`` (same image size); results per request index."""
        images = np.concatenate([rows["images"] for _, rows in members])
        keys = np.concatenate([np.stack([rows["steps"].astype(np.float64), rows["step_size"], rows["epsilon"]], 1) for _, rows in members])
        feature = np.concatenate([rows["feature"] for _, rows in members])
        attacked = np.empty_like(images)
        before = np.empty(len(images), np.float32)
        after = np.empty(len(images), np.float32)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        for g, (steps, step_size, epsilon) in enumerate(uniq):
            sel = np.flatnonzero(inverse.reshape(-1) == g)
            a, b, c = self._attack(images[sel], feature[sel], int(steps), float(step_size), float(epsilon))
            attacked[sel], before[sel], after[sel] = a, b, c
        out, start = {}, 0
        for idx, rows in members:
            stop = start + len(rows["images"])
            out[idx] = {
                "attacked": attacked[start:stop],
                "activation_before": before[start:stop, None],
                "activation_after": after[start:stop, None],
            }
            start = stop
        return out

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        groups: dict[tuple, list[tuple[int, dict[str, np.ndarray]]]] = {}
        for idx, request in enumerate(requests):
            try:
                rows = self._gather(request)
            except Exception as exc:
                responses[idx] = pb_utils.InferenceResponse(
                    output_tensors=[], error=_error(f"bad request: {exc}", getattr(pb_utils.TritonError, "INVALID_ARG", None))
                )
                continue
            groups.setdefault(rows["images"].shape[1:], []).append((idx, rows))
        for members in groups.values():
            try:
                results = self._run(members)
            except Exception:
                results = {}
                for idx, rows in members:
                    try:
                        results.update(self._run([(idx, rows)]))
                    except Exception as exc:
                        responses[idx] = pb_utils.InferenceResponse(output_tensors=[], error=_error(f"feature attack failed: {exc}"))
            for idx, outputs in results.items():
                responses[idx] = self._respond(requests[idx], outputs)
        return responses

    def finalize(self) -> None:
        self.net = None
