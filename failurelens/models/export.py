"""Export real, full-size models (your weights) to the ONNX contract of the failurelens registry.

Three export paths, one contract per registry kind (checked by the validators in
:mod:`failurelens.data.onnx_models` before anything is written):

* :func:`export_robust_resnet50` -> ``feature_extractor``: input ``images`` float32
  ``[N, 3, 224, 224]``; outputs ``features [N, 2048]`` (the global-average-pooled penultimate
  layer, the input of ``fc``) and ``feature_map [N, 2048, 7, 7]`` (``layer4``'s output, the last
  conv map, for CAM heatmaps). Reads MadryLab ``robustness`` checkpoints and plain torchvision
  state dicts.
* :func:`export_open_clip` -> ``image_text``: two files, the image encoder (``images`` ->
  ``embeddings [N, E]``) and the text encoder (``input_ids`` int64 ``[N, L]`` -> ``embeddings
  [N, E]``, L fixed to the model's context length, 77 for CLIP); the CLIP BPE tokenizer runs on
  the service side (:class:`failurelens.data.tokenizer.ClipTokenizer`).
* :func:`export_classifier` -> ``classifier``: ``images`` -> ``logits [N, C]`` (exactly the
  model's output) and ``features [N, D]`` (the penultimate representation: the input of the
  final linear layer), for torchvision models (``"torchvision:resnet18"``), timm models
  (``"timm:convnext_atto"``) and any ``nn.Module``.

Decisions that hold for every export
-----------------------------------
* **Normalisation is NOT baked into the graph** (by default). The graph takes pixels already
  scaled and normalised; the mean/std to declare at registration come back in
  :attr:`ExportResult.preprocessing` (printed by the CLI). ``export_robust_resnet50(...,
  bake_normalizer=True)`` puts the checkpoint's normaliser into the graph instead; the returned
  preprocessing then says mean 0 / std 1, which is what must be declared.
* **Embeddings are NOT L2-normalised in the graph**: the image and text encoders return the raw
  projected embeddings (open_clip's ``encode_image``/``encode_text`` with ``normalize=False``);
  the services normalise. The model's ``logit_scale`` (already exponentiated, the factor applied
  to cosine similarities: 100 for trained CLIP) is stored in both files' ONNX ``metadata_props``
  (key ``logit_scale``; ``logit_bias`` too for SigLIP-style models) and in
  :attr:`ExportResult.metadata`.
* Dynamic batch axis (``batch``) on every input and output; everything else fixed. Opset 17,
  TorchScript exporter (``dynamo=False``: an order of magnitude faster than dynamo for these
  graphs), weights inside the ``.onnx`` file (no external data: the registry refuses it).
* Deterministic: the same weights give the same bytes.
* Parity: before a file is written, the graph runs in onnxruntime (CPU) on a random batch of 3
  (a different size from the batch of 2 used for tracing, which proves the batch axis is really
  dynamic) and its outputs are compared with the PyTorch model's; ``logits`` are compared with
  the *original* model's output, so a wrong wrapper fails too. A max abs difference of
  :data:`PARITY_TOLERANCE` (1e-4) or more raises :class:`ParityError` and nothing is written.

Checkpoints are always read with ``torch.load(..., weights_only=True)`` (or safetensors): no
arbitrary unpickling. Nothing here downloads anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from failurelens.data.images import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

__all__ = [
    "OPSET",
    "PARITY_TOLERANCE",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "ExportError",
    "ParityError",
    "ExportResult",
    "load_checkpoint_file",
    "load_robust_resnet50",
    "make_robustness_checkpoint",
    "export_robust_resnet50",
    "export_open_clip",
    "export_classifier",
    "build_classifier",
]

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-4
PARITY_BATCH = 3  # differs from the tracing batch (2): a graph that hard-codes the batch fails parity
TRACE_BATCH = 2
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SOT_ID = 49406
CLIP_EOT_ID = 49407
CLIP_VOCAB_SIZE = 49408
_MAX_ONNX_BYTES = 2**31 - 1  # protobuf limit; larger models would need external data, which the registry refuses


class ExportError(RuntimeError):
    """The model or checkpoint cannot be exported as asked (the message says what to change)."""


class ParityError(ExportError):
    """onnxruntime's outputs differ from PyTorch's by :data:`PARITY_TOLERANCE` or more."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What an export wrote and what to declare when registering it.

    * ``kind``: the registry kind (``classifier``, ``feature_extractor``, ``image_text``);
    * ``paths``: ``{"model": path}``, or ``{"image": path, "text": path}`` for ``image_text``;
    * ``outputs``: per file (same keys as ``paths``), output name -> shape (``-1`` = batch);
    * ``dims``: ``num_classes`` / ``feature_dim`` / ``feature_map_shape`` / ``embedding_dim`` /
      ``context_length`` ... as they apply;
    * ``preprocessing``: :meth:`failurelens.data.images.Preprocessing.to_dict` of what to declare;
    * ``max_abs_diff``: the worst torch-vs-onnxruntime difference over every output;
      ``diffs`` per ``"<file>/<output>"``;
    * ``metadata``: the ``metadata_props`` written into the ONNX file(s);
    * ``seconds``: wall time of the whole export; ``tolerance``: the parity tolerance used;
    * ``magnitudes``: max |PyTorch output| on the check batch per ``"<file>/<output>"`` (a parity
      figure means little for outputs that are ~0, e.g. random-init nets whose activations vanish).
    """

    kind: str
    paths: dict[str, Path]
    outputs: dict[str, dict[str, tuple[int, ...]]]
    dims: dict[str, Any]
    preprocessing: dict[str, Any]
    max_abs_diff: float
    diffs: dict[str, float]
    metadata: dict[str, str]
    seconds: float = 0.0
    tolerance: float = PARITY_TOLERANCE
    magnitudes: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The (image) model file."""
        return self.paths.get("model") or self.paths["image"]

    @property
    def text_path(self) -> Path | None:
        return self.paths.get("text")

    def preprocessing_obj(self) -> Preprocessing:
        return Preprocessing(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in self.preprocessing.items()})

    def register_command(self, name: str = "NAME") -> str:
        """The ``failurelens model register`` command line that declares this export's preprocessing."""
        pp = self.preprocessing
        parts = ["failurelens model register", str(self.path), f"--name {name}", f"--kind {self.kind}"]
        if self.text_path is not None:
            parts += [f"--text-onnx {self.text_path}", f"--context-length {self.dims['context_length']}"]
        parts += [
            "--input-size {} {}".format(*pp["input_size"]),
            "--mean " + " ".join(_fmt(v) for v in pp["mean"]),
            "--std " + " ".join(_fmt(v) for v in pp["std"]),
            "--resize " + ("center_crop" if pp["resize"] == "shorter_side_center_crop" else "stretch"),
        ]
        if pp["resize"] == "shorter_side_center_crop":
            parts.append(f"--crop-pct {_fmt(pp['crop_pct'])}")
        parts.append(f"--interpolation {pp['interpolation']}")
        return " ".join(parts)

    def summary(self) -> str:
        lines = [f"exported {self.kind} in {self.seconds:.1f}s"]
        for key, path in self.paths.items():
            size = path.stat().st_size / 2**20 if path.exists() else float("nan")
            outs = ", ".join(f"{n} {_shape_str(s)}" for n, s in self.outputs[key].items())
            lines.append(f"  {key:5s} {path} ({size:.1f} MiB): {outs}")
        lines.append("  dims: " + ", ".join(f"{k}={v}" for k, v in self.dims.items()))
        pp = self.preprocessing
        lines.append(
            f"  preprocessing to declare: input_size {pp['input_size'][0]}x{pp['input_size'][1]}, "
            f"mean ({', '.join(_fmt(v) for v in pp['mean'])}), std ({', '.join(_fmt(v) for v in pp['std'])}), "
            f"resize {pp['resize']}"
            + (f" (crop_pct {_fmt(pp['crop_pct'])})" if pp["resize"] == "shorter_side_center_crop" else "")
            + f", interpolation {pp['interpolation']}"
        )
        if "logit_scale" in self.metadata:
            lines.append(f"  logit_scale {self.metadata['logit_scale']} (embeddings are NOT normalised in the graph)")
        lines.append(
            f"  parity torch vs onnxruntime: max abs diff {self.max_abs_diff:.3g} (tolerance {self.tolerance:g}; "
            + ", ".join(f"{k} {v:.2g}" + (f" of max |y| {self.magnitudes[k]:.3g}" if k in self.magnitudes else "") for k, v in self.diffs.items())
            + ")"
        )
        return "\n".join(lines)


def _fmt(v: float) -> str:
    return f"{float(v):.8g}"


def _shape_str(shape: Sequence[int]) -> str:
    return "[" + ", ".join("N" if (i == 0 and d == -1) else str(d) for i, d in enumerate(shape)) + "]"


# ============================================================================================
# checkpoints
# ============================================================================================
def load_checkpoint_file(path: str | os.PathLike[str]) -> Any:
    """Read a checkpoint without unpickling arbitrary objects.

    ``.safetensors`` through safetensors; anything else through ``torch.load(path,
    map_location="cpu", weights_only=True)`` (tensors, dicts, lists, numbers, strings only).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist or is not a file")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p), device="cpu")
    try:
        return torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportError(
            f"cannot read checkpoint {str(p)!r} with torch.load(weights_only=True): {first}. Only tensors, dicts, "
            f"lists, numbers and strings can be read safely; if the file pickles other objects (an argparse "
            f"Namespace, an optimizer schedule, a whole nn.Module), extract the weights once in a trusted "
            f"environment: torch.save(torch.load(path, weights_only=False)['model'], 'weights.pt') "
            f"(or model.state_dict())"
        ) from None


_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "weights")


def _is_tensor_mapping(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _unwrap_state_dict(obj: Any, what: str) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a checkpoint (``{"state_dict": ...}`` etc.); ``module.`` stripped."""
    if isinstance(obj, nn.Module):  # defensive: weights_only never yields modules
        obj = obj.state_dict()
    sd = obj
    if not _is_tensor_mapping(sd) and isinstance(sd, Mapping):
        for key in _STATE_DICT_KEYS:
            inner = sd.get(key)
            if _is_tensor_mapping(inner):
                sd = inner
                break
        else:
            tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
            sd = tensors if len(tensors) > len(sd) // 2 else None
    if not _is_tensor_mapping(sd):
        keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise ExportError(
            f"{what}: no state dict found (top-level keys {keys}); expected a mapping of parameter names to "
            f"tensors, possibly under one of {list(_STATE_DICT_KEYS)}"
        )
    sd = dict(sd)
    while sd and all(k.startswith("module.") for k in sd):  # DataParallel / DDP
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _load_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if mismatched:
            parts.append(f"{len(mismatched)} with another shape (checkpoint vs model, e.g. {mismatched[:3]})")
        raise ExportError(f"{what}: the checkpoint does not fit the architecture: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


# ============================================================================================
# the ONNX core: export, metadata, parity, validation, atomic write
# ============================================================================================
@contextlib.contextmanager
def _export_mode() -> Iterator[None]:
    """no_grad, MHA fast path off (``aten::_native_multi_head_attention`` has no ONNX symbolic),
    exporter deprecation chatter silenced."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx.*")
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _to_onnx(
    module: nn.Module,
    example: torch.Tensor,
    input_name: str,
    output_names: Sequence[str],
    metadata: Mapping[str, str],
    opset: int,
) -> bytes:
    """TorchScript-export ``module`` (one input, dynamic batch on everything) to serialized bytes."""
    import onnx

    module.eval()
    buf = io.BytesIO()
    names = [input_name, *output_names]
    with _export_mode():
        try:
            torch.onnx.export(
                module,
                (example,),
                buf,
                input_names=[input_name],
                output_names=list(output_names),
                dynamic_axes={n: {0: "batch"} for n in names},
                opset_version=opset,
                do_constant_folding=True,
                export_params=True,
                dynamo=False,
            )
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ExportError(f"torch.onnx.export failed ({type(e).__name__}): {first}") from e
    # Append the metadata as a second serialized ModelProto: protobuf merges concatenated messages
    # (repeated fields append, set scalars override), which spares a parse + re-serialisation of a
    # several-hundred-MB model. Only metadata_props and doc_string are set in the tail.
    tail = onnx.ModelProto()
    for key, value in sorted(metadata.items()):
        entry = tail.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    tail.doc_string = f"failurelens export: {metadata.get('failurelens.source', '')}".strip()
    data = buf.getvalue() + tail.SerializeToString()
    del buf
    if len(data) > _MAX_ONNX_BYTES:
        raise ExportError(f"the model is {len(data) / 2**30:.2f} GiB; the registry takes self-contained files under 2 GiB")
    return data


def _ort_session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def _parity(
    label: str,
    model_bytes: bytes,
    feed: tuple[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    tolerance: float = PARITY_TOLERANCE,
    float64_reference: Callable[[], Mapping[str, np.ndarray]] | None = None,
    magnitudes: dict[str, float] | None = None,
) -> dict[str, float]:
    """Max abs torch-vs-onnxruntime difference per output; ParityError at or above ``tolerance``.

    On failure, ``float64_reference`` (the same model run in float64) tells float32 rounding
    (torch's own float32 output is as far from float64 as onnxruntime's) from a broken export.
    """
    sess = _ort_session(model_bytes)
    names = list(reference)
    try:
        got = dict(zip(names, sess.run(names, {feed[0]: feed[1]})))
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ParityError(f"{label}: onnxruntime cannot run the exported graph on a batch of {feed[1].shape[0]}: {first}") from None
    finally:
        del sess
    diffs: dict[str, float] = {}
    for name in names:
        ref, out = reference[name], got[name]
        if out.shape != ref.shape:
            raise ParityError(
                f"{label}: output {name!r} has shape {list(out.shape)} in onnxruntime but {list(ref.shape)} in PyTorch "
                f"(batch {feed[1].shape[0]}); the graph probably hard-codes a size"
            )
        if not np.all(np.isfinite(ref)):
            raise ExportError(f"{label}: PyTorch output {name!r} is not finite on the random check batch")
        diffs[f"{label}/{name}"] = float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64))))
        if magnitudes is not None:
            magnitudes[f"{label}/{name}"] = float(np.max(np.abs(ref)))
    bad = {k: f"{v:.3g}" for k, v in diffs.items() if not v < tolerance}
    if bad:
        scale = {n: f"{float(np.max(np.abs(reference[n]))):.3g}" for n in names}
        diagnosis = ""
        if float64_reference is not None:
            try:
                ref64 = float64_reference()
                parts = []
                for n in names:
                    t32 = float(np.max(np.abs(reference[n].astype(np.float64) - ref64[n])))
                    o64 = float(np.max(np.abs(got[n].astype(np.float64) - ref64[n])))
                    parts.append(f"{n}: torch float32 vs float64 {t32:.3g}, onnxruntime vs float64 {o64:.3g}")
                diagnosis = (
                    " Against a float64 run of the same model: " + "; ".join(parts) + ". When onnxruntime is no "
                    "further from float64 than torch's own float32 output, the difference is float32 rounding "
                    "(deep networks amplify it), not an export error: pass a larger tolerance (--tolerance)."
                )
            except Exception:
                pass
        raise ParityError(
            f"torch vs onnxruntime parity failed: max abs diff {bad} >= tolerance {tolerance:g} (output magnitudes "
            f"{scale}); nothing was written.{diagnosis} Otherwise check for ops that behave differently when "
            f"traced (data-dependent Python control flow, in-place ops on views, train-mode layers)"
        )
    return diffs


def _float64_outputs(module: nn.Module, x: torch.Tensor, names: Sequence[str]) -> Callable[[], dict[str, np.ndarray]]:
    """A thunk running a float64 deep copy of ``module`` on ``x`` (only called when parity fails)."""

    def run() -> dict[str, np.ndarray]:
        import copy

        m64 = copy.deepcopy(module).double().eval()
        with _export_mode():
            out = m64(x.double() if x.is_floating_point() else x)
        if isinstance(out, torch.Tensor):
            out = (out,)
        return {n: o.detach().double().numpy() for n, o in zip(names, out)}

    return run


def _inspect_and_fix_dims(data: bytes, ref: Mapping[str, np.ndarray]) -> tuple[bytes, Any]:
    """``inspect_onnx`` (the registry's own checks), after declaring fixed non-batch output dims.

    The TorchScript exporter leaves some output dims symbolic when they come out of reshapes
    (ViTs: ``features [N, ?]``); the registry needs them fixed. They are set from the PyTorch
    outputs of the parity batch (which onnxruntime has just reproduced); batch stays dynamic.
    Only such graphs are re-serialised.
    """
    import onnx

    from failurelens.data.onnx_models import inspect_onnx

    sig = inspect_onnx(data)
    todo = {t.name for t in sig.outputs if t.name in ref and (t.shape is None or len(t.shape) != ref[t.name].ndim or any(d < 0 for d in t.shape[1:]))}
    if not todo:
        return data, sig
    model = onnx.load_model_from_string(data)
    for out in model.graph.output:
        if out.name not in todo:
            continue
        shape = out.type.tensor_type.shape
        actual = ref[out.name].shape
        if len(shape.dim) != len(actual):
            del shape.dim[:]
            for _ in actual:
                shape.dim.add()
        for i, d in enumerate(shape.dim):
            if i == 0:
                d.dim_param = "batch"
            else:
                d.dim_value = int(actual[i])
    data = model.SerializeToString()
    del model
    return data, inspect_onnx(data)


def _output_shapes(sig: Any) -> dict[str, tuple[int, ...]]:
    return {t.name: tuple(t.shape or ()) for t in sig.outputs}


def _write_atomic(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU RNG inside the block without disturbing the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _random_images(n: int, hw: tuple[int, int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, hw[0], hw[1], generator=g)


def _random_inputs(n: int, pp: Preprocessing, seed: int) -> torch.Tensor:
    """What the graph sees in service: uniform random pixels in [0, 1] normalised with the
    declared mean/std (so a graph with a baked normaliser gets raw [0, 1] pixels)."""
    h, w = pp.input_size
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 3, h, w, generator=g)
    mean = torch.tensor(pp.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pp.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (u - mean) / std


def _f32(v: Any) -> float:
    """A float32 checkpoint value as the shortest decimal that round-trips (0.485, not 0.48500001)."""
    return float(str(np.float32(v)))


def _torch_outputs(module: nn.Module, x: torch.Tensor, names: Sequence[str]) -> dict[str, np.ndarray]:
    with _export_mode():
        out = module(x)
    if isinstance(out, torch.Tensor):
        out = (out,)
    if len(out) != len(names):
        raise ExportError(f"the wrapped model returns {len(out)} tensors; expected {len(names)} ({list(names)})")
    return {n: o.detach().float().numpy() for n, o in zip(names, out)}


def _base_metadata(kind: str, source: str, pp: Preprocessing, opset: int, **extra: Any) -> dict[str, str]:
    md = {
        "failurelens.kind": kind,
        "failurelens.source": source,
        "failurelens.preprocessing": json.dumps(pp.to_dict(), sort_keys=True),
        "failurelens.exporter": f"torch {torch.__version__} torchscript opset {opset}",
    }
    md.update({k: str(v) for k, v in extra.items()})
    return md


# ============================================================================================
# robust ResNet-50 (MadryLab robustness) -> feature_extractor
# ============================================================================================
_ROBUST_MODEL = "module.model."
_ROBUST_ATTACKER = "module.attacker.model."
_ROBUST_NORMALIZER = "module.normalizer."


class _ResNetFeatures(nn.Module):
    """torchvision ResNet -> (``features`` [N, D] pooled penultimate, ``feature_map`` [N, D, h, w] layer4)."""

    def __init__(self, resnet: nn.Module, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.resnet = resnet
        self.bake = mean is not None
        if self.bake:
            self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.resnet
        if self.bake:
            x = (x - self.mean) / self.std
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        fmap = r.layer4(r.layer3(r.layer2(r.layer1(x))))
        features = torch.flatten(r.avgpool(fmap), 1)
        return features, fmap


def load_robust_resnet50(checkpoint_path: str | os.PathLike[str]) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...], dict[str, Any]]:
    """A torchvision ``resnet50`` (eval mode) with a checkpoint's weights, plus its normaliser.

    Accepts (a) the MadryLab ``robustness`` format ``{"model": state_dict, "epoch": ...}`` with keys
    ``module.model.*`` (the classifier; loaded), ``module.attacker.model.*`` (the attacker's copy;
    used only when the classifier keys are absent) and ``module.normalizer.new_mean/new_std``
    (the input normaliser, [3, 1, 1]); (b) a plain torchvision state dict (optionally under
    ``state_dict``/``model`` and/or ``module.``-prefixed), whose normaliser is ImageNet's.
    Returns ``(model, mean, std, info)``; ``info`` has ``format``, ``num_classes``, ``epoch``.
    """
    import torchvision

    path = str(checkpoint_path)
    raw = load_checkpoint_file(path)
    info: dict[str, Any] = {}
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    sd_in = raw.get("model") if isinstance(raw, Mapping) and _is_tensor_mapping(raw.get("model")) else raw
    if _is_tensor_mapping(sd_in) and any(k.startswith((_ROBUST_MODEL, _ROBUST_ATTACKER)) for k in sd_in):
        prefix = _ROBUST_MODEL if any(k.startswith(_ROBUST_MODEL) for k in sd_in) else _ROBUST_ATTACKER
        sd = {k[len(prefix) :]: v for k, v in sd_in.items() if k.startswith(prefix)}
        nm, ns = sd_in.get(_ROBUST_NORMALIZER + "new_mean"), sd_in.get(_ROBUST_NORMALIZER + "new_std")
        if nm is None or ns is None:
            nm = sd_in.get("module.attacker.normalizer.new_mean")
            ns = sd_in.get("module.attacker.normalizer.new_std")
        if nm is not None and ns is not None:
            if nm.numel() != 3 or ns.numel() != 3:
                raise ExportError(f"{path}: the normaliser has {nm.numel()}/{ns.numel()} values; expected 3 (RGB) each")
            mean = tuple(_f32(v) for v in nm.flatten())
            std = tuple(_f32(v) for v in ns.flatten())
        info["format"] = "robustness"
        info["weights_prefix"] = prefix
        if isinstance(raw, Mapping) and isinstance(raw.get("epoch"), (int, float)):
            info["epoch"] = raw["epoch"]
    else:
        sd = _unwrap_state_dict(raw, path)
        info["format"] = "torchvision"
    if "fc.weight" not in sd:
        raise ExportError(
            f"{path}: no 'fc.weight' among the weights ({len(sd)} tensors, e.g. {list(sd)[:3]}); expected a "
            f"torchvision ResNet-50 state dict or a robustness checkpoint (keys 'module.model.*')"
        )
    num_classes = int(sd["fc.weight"].shape[0])
    info["num_classes"] = num_classes
    model = torchvision.models.resnet50(weights=None, num_classes=num_classes)
    _load_strict(model, sd, f"{path} (ResNet-50)")
    return model.eval(), mean, std, info


def _calibrate_batchnorm(model: nn.Module, hw: tuple[int, int], seed: int, batch: int = 8) -> None:
    """Give random-init BatchNorm layers running statistics from one random batch, so activations
    have the scale of a trained network (random init + identity statistics grows them ~100x)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch sets the statistics exactly
    was_training = model.training
    model.train()
    with torch.no_grad():
        model(_random_images(batch, hw, seed))
    model.train(was_training)
    for m, (mom, _) in zip(bns, saved):
        m.momentum = mom


def make_robustness_checkpoint(
    path: str | os.PathLike[str],
    seed: int = 0,
    *,
    num_classes: int = 1000,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    epoch: int = 90,
    residual_scale: float = 0.2,
) -> Path:
    """Write a fake MadryLab ``robustness`` checkpoint of a random-init ResNet-50 (for tests).

    Same layout as the real files: ``{"model": {...}, "epoch": epoch}`` with ``module.model.*``,
    ``module.attacker.model.*`` (the same tensors: in robustness the attacker wraps the same
    module, so ``torch.save`` stores them once), ``module.normalizer.new_mean/new_std`` and
    ``module.attacker.normalizer.new_mean/new_std`` ([3, 1, 1]).

    To look like a trained network rather than a chaotic random one, the scale of each residual
    branch's last BatchNorm (``bn3``) is multiplied by ``residual_scale`` (trained ResNets learn
    small values there) and the running statistics are calibrated on one random batch. With unit
    scales and identity statistics a random ResNet-50 amplifies float32 rounding ~50x over its
    16 blocks (torch's own float32 output is then ~1e-3 away from float64 on ``feature_map``),
    which would make any 1e-4 parity check meaningless.
    """
    import torchvision

    with _seeded(seed):
        model = torchvision.models.resnet50(weights=None, num_classes=num_classes)
    with torch.no_grad():
        for block in model.modules():
            if isinstance(block, torchvision.models.resnet.Bottleneck):
                block.bn3.weight.mul_(residual_scale)
    _calibrate_batchnorm(model, (224, 224), seed)
    sd = model.eval().state_dict()
    nm = torch.tensor(list(mean), dtype=torch.float32).view(3, 1, 1)
    ns = torch.tensor(list(std), dtype=torch.float32).view(3, 1, 1)
    out: dict[str, torch.Tensor] = {
        _ROBUST_NORMALIZER + "new_mean": nm,
        _ROBUST_NORMALIZER + "new_std": ns,
    }
    out.update({_ROBUST_MODEL + k: v for k, v in sd.items()})
    out["module.attacker.normalizer.new_mean"] = nm
    out["module.attacker.normalizer.new_std"] = ns
    out.update({_ROBUST_ATTACKER + k: v for k, v in sd.items()})
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": out, "epoch": int(epoch)}, str(p))
    return p


def export_robust_resnet50(
    checkpoint_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    bake_normalizer: bool = False,
    input_size: tuple[int, int] = (224, 224),
    opset: int = OPSET,
    seed: int = 0,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportResult:
    """Export a (robust) ResNet-50 checkpoint as a ``feature_extractor``.

    Outputs ``features [N, 2048]`` (``avgpool(layer4)`` flattened: the penultimate layer, the
    input of ``fc``; ``fc`` itself is not exported) and ``feature_map [N, 2048, 7, 7]``
    (``layer4``'s output at 224x224).

    Normaliser: NOT baked by default; the returned preprocessing carries the checkpoint's
    mean/std (``robustness`` stores them; ImageNet's for plain state dicts), resize 256 +
    centre crop 224 (``shorter_side_center_crop``, ``crop_pct`` 0.875, bilinear: robustness's
    ImageNet test transform). ``bake_normalizer=True`` puts ``(x - mean) / std`` into the graph
    and the preprocessing to declare becomes mean 0, std 1.
    """
    t0 = time.monotonic()
    model, mean, std, info = load_robust_resnet50(checkpoint_path)
    hw = (int(input_size[0]), int(input_size[1]))
    wrapper = _ResNetFeatures(model, mean, std) if bake_normalizer else _ResNetFeatures(model)
    pp = Preprocessing(
        input_size=hw,
        mean=(0.0, 0.0, 0.0) if bake_normalizer else mean,
        std=(1.0, 1.0, 1.0) if bake_normalizer else std,
        resize="shorter_side_center_crop",
        crop_pct=0.875,
        interpolation="bilinear",
    )
    extra = {
        "failurelens.normalizer_baked": str(bool(bake_normalizer)).lower(),
        "failurelens.checkpoint_mean": json.dumps(list(mean)),
        "failurelens.checkpoint_std": json.dumps(list(std)),
    }
    res = export_feature_extractor(
        wrapper,
        out_path,
        preprocessing=pp,
        source=f"resnet50 ({info['format']} checkpoint {Path(checkpoint_path).name})",
        metadata=extra,
        opset=opset,
        seed=seed,
        tolerance=tolerance,
    )
    res.dims.update({k: v for k, v in info.items() if k in ("num_classes", "epoch")})
    return dataclasses.replace(res, seconds=time.monotonic() - t0)


def export_feature_extractor(
    module: nn.Module,
    out_path: str | os.PathLike[str],
    *,
    preprocessing: Preprocessing,
    source: str = "custom module",
    metadata: Mapping[str, str] | None = None,
    opset: int = OPSET,
    seed: int = 0,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportResult:
    """Export any module whose forward returns ``(features [N,D], feature_map [N,D,h,w])`` as a
    ``feature_extractor`` (input ``images``), with the parity check and the registry's validation."""
    t0 = time.monotonic()
    pp = preprocessing
    md = _base_metadata("feature_extractor", source, pp, opset, **dict(metadata or {}))
    names = ["features", "feature_map"]
    data = _to_onnx(module, _random_inputs(TRACE_BATCH, pp, seed), "images", names, md, opset)
    x = _random_inputs(PARITY_BATCH, pp, seed + 1)
    mags: dict[str, float] = {}
    ref = _torch_outputs(module, x, names)
    diffs = _parity("model", data, ("images", x.numpy()), ref, tolerance, _float64_outputs(module, x, names), mags)

    from failurelens.data.onnx_models import validate_feature_extractor

    data, sig = _inspect_and_fix_dims(data, ref)  # the registry's own checks (onnx.checker, signature)
    fe = validate_feature_extractor(sig, input_size=pp.input_size)
    path = _write_atomic(Path(out_path), data)
    return ExportResult(
        kind="feature_extractor",
        paths={"model": path},
        outputs={"model": _output_shapes(sig)},
        dims={"feature_dim": fe.feature_dim, "feature_map_shape": fe.feature_map_shape},
        preprocessing=pp.to_dict(),
        max_abs_diff=max(diffs.values()),
        diffs=diffs,
        metadata=md,
        seconds=time.monotonic() - t0,
        tolerance=tolerance,
        magnitudes=mags,
    )


# ============================================================================================
# open_clip -> image_text (two files)
# ============================================================================================
class _ImageEncoder(nn.Module):
    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images, normalize=False)


class _TextEncoder(nn.Module):
    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(input_ids, normalize=False)


def _clip_token_batch(n: int, context_length: int, seed: int) -> torch.Tensor:
    """Token ids shaped like ClipTokenizer's: [SOT, ids..., EOT, 0...], varied lengths (incl. full)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(n, context_length, dtype=torch.long)
    lengths = [context_length - 1] + [int(torch.randint(1, context_length - 1, (1,), generator=g)) for _ in range(n - 1)]
    for i, length in enumerate(lengths[:n]):  # `length` = index of the EOT token
        ids[i, 0] = CLIP_SOT_ID
        if length > 1:
            ids[i, 1:length] = torch.randint(1, CLIP_SOT_ID, (length - 1,), generator=g)
        ids[i, length] = CLIP_EOT_ID
    return ids


def _resolve_open_clip_config(
    model_name: str, model_config: Mapping[str, Any] | str | os.PathLike[str] | None, tmp: Path
) -> tuple[str, dict[str, Any]]:
    """(name to give open_clip.create_model, model config) without touching the network.

    A custom config (dict or JSON file; either a bare model config or an
    ``open_clip_config.json`` with ``model_cfg``/``preprocess_cfg``) is written to a temporary
    ``local-dir:`` folder, so open_clip's global config registry is not modified.
    """
    import open_clip

    if model_name.startswith("hf-hub:"):
        raise ExportError(
            f"{model_name!r}: hf-hub models would be downloaded; download the files once and pass "
            f"'local-dir:/path/to/folder' (open_clip_config.json + weights) or a built-in name + --checkpoint"
        )
    if model_config is not None:
        if isinstance(model_config, (str, os.PathLike)):
            cfg_all = json.loads(Path(model_config).read_text(encoding="utf-8"))
        else:
            cfg_all = json.loads(json.dumps(dict(model_config)))  # deep copy, JSON-able check
        model_cfg = cfg_all.get("model_cfg", cfg_all)
        preprocess_cfg = cfg_all.get("preprocess_cfg", {})
        missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
        if missing:
            raise ExportError(f"open_clip model config for {model_name!r} lacks {missing}; it needs embed_dim, vision_cfg, text_cfg")
        folder = tmp / "open_clip_cfg"
        folder.mkdir()
        (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}), encoding="utf-8")
        return f"local-dir:{folder}", model_cfg
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise ExportError(
            f"unknown open_clip model {model_name!r}; use a built-in name ({', '.join(open_clip.list_models()[:6])}, ...), "
            f"'local-dir:/path' or pass model_config (a dict or JSON file) for a custom model"
        )
    return model_name, cfg


def _check_clip_text_tower(model_name: str, cfg: Mapping[str, Any]) -> None:
    text = cfg.get("text_cfg", {})
    if "hf_model_name" in text or "hf_tokenizer_name" in text:
        raise ExportError(
            f"{model_name!r} uses a Hugging Face text tower/tokenizer ({text.get('hf_tokenizer_name') or text.get('hf_model_name')}); "
            f"the services tokenize with the CLIP BPE tokenizer, so only CLIP-BPE text towers can be exported"
        )
    vocab = int(text.get("vocab_size", CLIP_VOCAB_SIZE))
    if vocab < CLIP_VOCAB_SIZE:
        raise ExportError(
            f"{model_name!r}: the text tower's vocab_size is {vocab}; the CLIP BPE tokenizer emits ids up to "
            f"{CLIP_VOCAB_SIZE - 1}, so vocab_size must be at least {CLIP_VOCAB_SIZE}"
        )
    pool = text.get("pool_type", "argmax")
    eos = text.get("eos_id", CLIP_EOT_ID)
    if pool not in ("argmax", "first") and not (pool == "eos" and eos == CLIP_EOT_ID):
        raise ExportError(
            f"{model_name!r}: text pool_type {pool!r} does not work with the service tokenizer's zero padding; "
            f"use 'argmax' (CLIP) or 'eos' with eos_id {CLIP_EOT_ID}"
        )


def _clip_preprocessing(model: nn.Module, hw: tuple[int, int]) -> tuple[Preprocessing, str | None]:
    import open_clip

    cfg = dict(open_clip.get_model_preprocess_cfg(model) or {})
    mean = tuple(float(v) for v in cfg.get("mean", OPENAI_CLIP_MEAN))
    std = tuple(float(v) for v in cfg.get("std", OPENAI_CLIP_STD))
    interp = cfg.get("interpolation", "bicubic")
    note = None
    if interp not in ("bilinear", "bicubic"):
        note = f"open_clip interpolation {interp!r} declared as bicubic"
        interp = "bicubic"
    mode = cfg.get("resize_mode", "shortest")
    if mode == "squash":
        resize = "stretch"
    else:
        resize = "shorter_side_center_crop"
        if mode != "shortest":
            note = f"open_clip resize_mode {mode!r} (letterbox) approximated by shorter_side_center_crop"
    pp = Preprocessing(input_size=hw, mean=mean, std=std, resize=resize, interpolation=interp, crop_pct=1.0)
    return pp, note


def export_open_clip(
    model_name: str,
    checkpoint_path: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    model_config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    image_filename: str = "image_encoder.onnx",
    text_filename: str = "text_encoder.onnx",
    opset: int = OPSET,
    seed: int = 0,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportResult:
    """Export an open_clip model as an ``image_text`` pair: ``<out_dir>/image_encoder.onnx`` and
    ``<out_dir>/text_encoder.onnx``.

    * ``model_name``: a built-in open_clip architecture (``"ViT-B-32"``), ``"local-dir:/folder"``
      (``open_clip_config.json`` + weights, open_clip's own format), or any name together with
      ``model_config`` (a dict or JSON file: a bare model config ``{"embed_dim", "vision_cfg",
      "text_cfg"}`` or an ``open_clip_config.json`` with ``model_cfg``/``preprocess_cfg``) for a
      custom architecture.
    * ``checkpoint_path``: a local weights file (``.pt``/``.bin``/``.safetensors``; open_clip
      training checkpoints with ``state_dict`` and ``module.`` prefixes work), loaded with
      ``weights_only=True`` through open_clip's own loader; ``None``: random init. Pretrained
      *tags* (``"openai"``, ...) are refused: they would download.

    Image encoder: ``images [N, 3, H, W]`` -> ``embeddings [N, E]``; text encoder: ``input_ids``
    int64 ``[N, L]`` -> ``embeddings [N, E]`` with L fixed to the model's context length (77 for
    CLIP; the positional embedding has that length) and a dynamic batch; the EOT position is the
    arg-max token id, computed in the graph per row. Embeddings are NOT L2-normalised in the
    graph (the services normalise); ``logit_scale`` (exponentiated) is in both files'
    ``metadata_props`` and in the result's ``metadata``/``dims``.
    Returns preprocessing (input size, mean, std: OpenAI CLIP's unless the config says
    otherwise, bicubic, shorter side + centre crop) and ``dims['context_length']``.
    """
    import open_clip

    t0 = time.monotonic()
    if checkpoint_path is not None:
        cp = Path(checkpoint_path)
        if not cp.is_file():
            raise FileNotFoundError(
                f"open_clip checkpoint {str(cp)!r} is not a file (pretrained tags such as 'openai' are not accepted: "
                f"nothing is downloaded; pass a local weights file)"
            )
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="failurelens-openclip-") as td:
        create_name, cfg = _resolve_open_clip_config(model_name, model_config, Path(td))
        _check_clip_text_tower(model_name, cfg)
        kwargs: dict[str, Any] = dict(pretrained_image=False, pretrained_text=False, precision="fp32", device="cpu")
        with _seeded(seed), warnings.catch_warnings(), _quiet_logger("root", logging.ERROR):
            warnings.simplefilter("ignore")
            try:
                if create_name.startswith("local-dir:"):
                    model = open_clip.create_model(create_name, **kwargs)
                    if checkpoint_path is not None:
                        open_clip.load_checkpoint(model, str(checkpoint_path), strict=True, weights_only=True)
                else:
                    model = open_clip.create_model(create_name, pretrained=str(checkpoint_path) if checkpoint_path is not None else None, **kwargs)
            except Exception as e:
                first = " ".join(line.strip() for line in str(e).strip().splitlines())[:400] or type(e).__name__
                raise ExportError(
                    f"cannot build open_clip {model_name!r}"
                    + (f" with weights {str(checkpoint_path)!r}" if checkpoint_path is not None else "")
                    + f": {type(e).__name__}: {first}. The checkpoint must match the architecture (a state dict, "
                    f"optionally under 'state_dict', readable with torch.load(weights_only=True) or safetensors)"
                ) from e
    model.eval()
    if not hasattr(model, "encode_text") or not hasattr(model, "encode_image"):
        raise ExportError(f"{model_name!r}: open_clip returned {type(model).__name__}, which has no encode_image/encode_text")
    context_length = int(getattr(model, "context_length", 0) or cfg["text_cfg"].get("context_length", 77))
    image_size = getattr(model.visual, "image_size", cfg["vision_cfg"].get("image_size", 224))
    hw = (int(image_size), int(image_size)) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    pp, note = _clip_preprocessing(model, hw)
    logit_scale = float(model.logit_scale.detach().float().exp().reshape(-1)[0])
    extra: dict[str, Any] = {
        "logit_scale": f"{logit_scale:.8g}",
        "embeddings_normalized": "false",
        "context_length": context_length,
        "tokenizer": "clip_bpe",
    }
    if getattr(model, "logit_bias", None) is not None:
        extra["logit_bias"] = f"{float(model.logit_bias.detach().float().reshape(-1)[0]):.8g}"
    if note:
        extra["failurelens.preprocessing_note"] = note
    source = f"open_clip {model_name}" + (f" ({Path(checkpoint_path).name})" if checkpoint_path else " (random init)")

    from failurelens.data.onnx_models import validate_image_encoder, validate_text_encoder

    # image encoder
    img = _ImageEncoder(model)
    md_img = _base_metadata("image_text", source, pp, opset, **extra, **{"failurelens.role": "image_encoder"})
    data = _to_onnx(img, _random_inputs(TRACE_BATCH, pp, seed), "images", ["embeddings"], md_img, opset)
    x = _random_inputs(PARITY_BATCH, pp, seed + 1)
    mags: dict[str, float] = {}
    ref = _torch_outputs(img, x, ["embeddings"])
    diffs = _parity("image", data, ("images", x.numpy()), ref, tolerance, _float64_outputs(img, x, ["embeddings"]), mags)
    data, sig = _inspect_and_fix_dims(data, ref)
    ie = validate_image_encoder(sig, input_size=hw)
    outputs = {"image": _output_shapes(sig)}
    image_path = _write_atomic(out / image_filename, data)
    del data

    # text encoder
    txt = _TextEncoder(model)
    md_txt = _base_metadata("image_text", source, pp, opset, **extra, **{"failurelens.role": "text_encoder"})
    data = _to_onnx(txt, _clip_token_batch(TRACE_BATCH, context_length, seed), "input_ids", ["embeddings"], md_txt, opset)
    ids = _clip_token_batch(PARITY_BATCH, context_length, seed + 1)
    ref = _torch_outputs(txt, ids, ["embeddings"])
    diffs.update(_parity("text", data, ("input_ids", ids.numpy()), ref, tolerance, _float64_outputs(txt, ids, ["embeddings"]), mags))
    data, sig = _inspect_and_fix_dims(data, ref)
    te = validate_text_encoder(sig)
    if te.context_length != context_length or te.embedding_dim != ie.embedding_dim:
        raise ExportError(
            f"text encoder is [N, {te.context_length}] -> [N, {te.embedding_dim}] but the model's context length is "
            f"{context_length} and the image embeddings are {ie.embedding_dim}-d"
        )
    outputs["text"] = _output_shapes(sig)
    text_path = _write_atomic(out / text_filename, data)
    del data

    return ExportResult(
        kind="image_text",
        paths={"image": image_path, "text": text_path},
        outputs=outputs,
        dims={
            "embedding_dim": ie.embedding_dim,
            "context_length": context_length,
            "vocab_size": int(getattr(model, "vocab_size", CLIP_VOCAB_SIZE)),
            "logit_scale": logit_scale,
        },
        preprocessing=pp.to_dict(),
        max_abs_diff=max(diffs.values()),
        diffs=diffs,
        metadata=md_img | {"failurelens.role": "image_encoder,text_encoder"},
        seconds=time.monotonic() - t0,
        tolerance=tolerance,
        magnitudes=mags,
    )


@contextlib.contextmanager
def _quiet_logger(name: str, level: int) -> Iterator[None]:
    """open_clip logs 'No pretrained weights loaded ... initialized randomly' at WARNING on root."""
    logger = logging.getLogger() if name == "root" else logging.getLogger(name)
    old = logger.level
    logger.setLevel(max(level, old))
    try:
        yield
    finally:
        logger.setLevel(old)


# ============================================================================================
# classifiers: torchvision / timm / any nn.Module -> (logits, features)
# ============================================================================================
class _Tap(nn.Module):
    """Wraps the final linear layer and remembers its input (the penultimate representation)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.captured: torch.Tensor | None = None
        self.output: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.captured = x
        self.output = self.inner(x)
        return self.output


class _TapClassifier(nn.Module):
    """``logits = model(x)``; ``features`` = the input of ``head`` (flattened to [N, D])."""

    def __init__(self, model: nn.Module, tap: _Tap) -> None:
        super().__init__()
        self.model = model
        self._tap = [tap]  # not a submodule twice (it lives inside model)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tap = self._tap[0]
        tap.captured = tap.output = None
        logits = self.model(x)
        feats = tap.captured
        tap.captured = tap.output = None
        if feats is None:
            raise ExportError("the final linear layer did not run during forward()")
        return logits, feats.flatten(1)


class _TimmClassifier(nn.Module):
    """timm: ``features = forward_head(forward_features(x), pre_logits=True)``; ``logits = get_classifier()(features)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.model.forward_features(x)
        feats = self.model.forward_head(f, pre_logits=True)
        logits = self.model.get_classifier()(feats)
        return logits, feats.flatten(1)


class _TupleClassifier(nn.Module):
    """A model whose forward already returns ``(logits, features)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, feats = self.model(x)[:2]
        return logits, feats.flatten(1)


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    if isinstance(parent, (nn.Sequential, nn.ModuleList)) and attr.isdigit():
        parent[int(attr)] = new
    else:
        setattr(parent, attr, new)


def _find_head(model: nn.Module, num_classes: int | None, head: str | None) -> str:
    if head is not None:
        try:
            model.get_submodule(head)
        except AttributeError:
            raise ExportError(f"the model has no submodule {head!r}") from None
        return head
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if num_classes is not None:
        linears = [(n, m) for n, m in linears if m.out_features == num_classes]
    if not linears:
        raise ExportError(
            f"{type(model).__name__}: no nn.Linear head"
            + (f" with {num_classes} outputs" if num_classes is not None else "")
            + " found; pass head='<module name>' (the module whose input is the penultimate representation), or a "
            "module whose forward returns (logits, features)"
        )
    return linears[-1][0]


def _load_weights_into(model: nn.Module, checkpoint_path: str | os.PathLike[str], what: str) -> None:
    sd = _unwrap_state_dict(load_checkpoint_file(checkpoint_path), str(checkpoint_path))
    _load_strict(model, sd, what)


def _checkpoint_classes(checkpoint_path: str | os.PathLike[str], head_param: str) -> int | None:
    """Class count read off a checkpoint's head weight (``fc.weight`` -> its rows)."""
    sd = _unwrap_state_dict(load_checkpoint_file(checkpoint_path), str(checkpoint_path))
    w = sd.get(head_param + ".weight")
    return int(w.shape[0]) if w is not None and w.dim() >= 1 else None


def _torchvision_preprocessing(name: str, hw: tuple[int, int] | None) -> Preprocessing:
    """From the torchvision weights enum's transforms (metadata only: nothing is downloaded)."""
    import torchvision

    crop, resize, mean, std, interp = 224, 256, IMAGENET_MEAN, IMAGENET_STD, "bilinear"
    try:
        t = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        crop = int(t.crop_size[0])
        resize = int(t.resize_size[0])
        mean, std = tuple(float(v) for v in t.mean), tuple(float(v) for v in t.std)
        interp = "bicubic" if "BICUBIC" in str(t.interpolation).upper() else "bilinear"
    except Exception:
        pass
    size = hw or (crop, crop)
    return Preprocessing(
        input_size=size,
        mean=mean,
        std=std,
        resize="shorter_side_center_crop",
        crop_pct=min(1.0, crop / resize),
        interpolation=interp,
    )


def _timm_preprocessing(model: nn.Module, hw: tuple[int, int] | None) -> Preprocessing:
    import timm.data

    cfg = timm.data.resolve_model_data_config(model)
    size = hw or (int(cfg["input_size"][1]), int(cfg["input_size"][2]))
    mode = cfg.get("crop_mode", "center")
    interp = cfg.get("interpolation", "bicubic")
    return Preprocessing(
        input_size=size,
        mean=tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in cfg.get("std", IMAGENET_STD)),
        resize="stretch" if mode == "squash" else "shorter_side_center_crop",
        crop_pct=min(1.0, float(cfg.get("crop_pct", 0.875))),
        interpolation=interp if interp in ("bilinear", "bicubic") else "bicubic",
    )


def build_classifier(
    model: nn.Module | str,
    checkpoint_path: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    *,
    input_size: Sequence[int] | None = None,
    head: str | None = None,
    seed: int = 0,
) -> tuple[nn.Module, nn.Module, Preprocessing, str]:
    """``(original model, (logits, features) wrapper, default preprocessing, family)`` in eval mode.

    Families and what ``features`` is:

    * ``timm`` (``"timm:NAME"`` or a timm model instance): ``forward_head(forward_features(x),
      pre_logits=True)`` -- timm's own pre-logits (pooled, normed where the model norms before its
      head), and ``logits = get_classifier()(features)``;
    * ``torchvision`` (``"torchvision:NAME"``) and ``module`` (any ``nn.Module``): the input of the
      final ``nn.Linear`` (the last one registered with ``num_classes`` outputs, or ``head``):
      resnet/regnet/resnext: ``avgpool`` output flattened (512/2048); efficientnet: pooled 1280;
      mobilenet_v3: the 1024-d hidden layer after Hardswish; convnext: the LayerNorm'ed pooled
      vector; vit/swin: the class token / pooled token after the final norm; vgg/alexnet: the
      4096-d hidden layer;
    * ``tuple``: a module whose forward returns ``(logits, features)`` is used as it is.
    """
    family: str
    if isinstance(model, str):
        spec = model
        if ":" not in spec:
            raise ExportError(f"model {spec!r}: use 'torchvision:NAME' or 'timm:NAME' (or pass an nn.Module)")
        lib, name = spec.split(":", 1)
        if lib == "torchvision":
            import torchvision

            if name not in torchvision.models.list_models():
                raise ExportError(f"unknown torchvision model {name!r}; see torchvision.models.list_models()")
            extra: dict[str, Any] = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}

            def make(**kw: Any) -> nn.Module:
                with _seeded(seed):
                    return torchvision.models.get_model(name, weights=None, **extra, **kw)

            pp = _torchvision_preprocessing(name, tuple(input_size) if input_size else None)  # type: ignore[arg-type]
            family = "torchvision"
        elif lib == "timm":
            import timm

            def make(**kw: Any) -> nn.Module:
                with _seeded(seed):
                    return timm.create_model(name, pretrained=False, **kw)

            pp = None  # from the model's data config, below
            family = "timm"
        else:
            raise ExportError(f"model {spec!r}: unknown library {lib!r}; use 'torchvision:NAME' or 'timm:NAME'")
        try:
            net = make(**({"num_classes": int(num_classes)} if num_classes is not None else {}))
        except Exception as e:
            raise ExportError(f"cannot build {spec}: {type(e).__name__}: {e}") from e
        if num_classes is None and checkpoint_path is not None:
            # the head size comes from the checkpoint (e.g. fc.weight [10, 512] -> 10 classes)
            head_name = _head_name(net, family, head)
            rows = _checkpoint_classes(checkpoint_path, head_name) if head_name else None
            if rows is not None and rows != _out_features(net.get_submodule(head_name)):
                net = make(num_classes=rows)
        if pp is None:
            pp = _timm_preprocessing(net, tuple(input_size) if input_size else None)  # type: ignore[arg-type]
        if checkpoint_path is not None:
            _load_weights_into(net, checkpoint_path, f"{spec} ({checkpoint_path})")
    elif isinstance(model, nn.Module):
        net = model
        if checkpoint_path is not None:
            _load_weights_into(net, checkpoint_path, f"{type(net).__name__} ({checkpoint_path})")
        hw = tuple(int(v) for v in input_size) if input_size else (224, 224)
        if _is_timm_model(net):
            pp = _timm_preprocessing(net, hw)  # type: ignore[arg-type]
            family = "timm"
        else:
            pp = Preprocessing(input_size=hw, resize="shorter_side_center_crop", crop_pct=0.875)  # type: ignore[arg-type]
            family = "module"
    else:
        raise TypeError(f"model must be an nn.Module or 'torchvision:NAME' / 'timm:NAME', not {type(model).__name__}")

    net.eval()
    hw = pp.input_size
    probe_x = _random_inputs(TRACE_BATCH, pp, seed + 7)
    with _export_mode():
        try:
            ref = net(probe_x)
        except Exception as e:
            raise ExportError(f"the model fails on a batch of {list(probe_x.shape)}: {type(e).__name__}: {e}") from e
    if isinstance(ref, (tuple, list)) and len(ref) >= 2 and all(isinstance(t, torch.Tensor) for t in ref[:2]) and head is None:
        return net, _TupleClassifier(net).eval(), pp, "tuple"
    if not isinstance(ref, torch.Tensor) or ref.dim() != 2:
        raise ExportError(
            f"the model returns {type(ref).__name__}"
            + (f" of shape {list(ref.shape)}" if isinstance(ref, torch.Tensor) else "")
            + "; a classifier must return logits [N, C] (or a tuple (logits, features))"
        )
    if family == "timm" and head is None:
        wrapper: nn.Module = _TimmClassifier(net).eval()
        try:
            with _export_mode():
                logits, feats = wrapper(probe_x)
            if logits.shape == ref.shape and torch.allclose(logits, ref, rtol=1e-4, atol=1e-5) and feats.dim() == 2:
                return net, wrapper, pp, family
        except Exception:
            pass
        log.info("timm pre_logits path does not reproduce the model's logits; tapping the final linear layer")
    head_name = _find_head(net, int(ref.shape[1]) if head is None else None, head)
    tap = _Tap(net.get_submodule(head_name))
    _set_submodule(net, head_name, tap)
    wrapper = _TapClassifier(net, tap).eval()
    with _export_mode():
        tap.output = None
        out = net(probe_x)
        ran = tap.output
    if ran is None or ran is not out:
        _set_submodule(net, head_name, tap.inner)
        raise ExportError(
            f"{type(net).__name__}: the layer {head_name!r} is not the last operation of forward() (its output is not "
            f"the model's output); pass head='<name>' of the final classification layer, or wrap the model so that "
            f"forward() returns (logits, features)"
        )
    return net, wrapper, pp, family


def _head_name(net: nn.Module, family: str, head: str | None) -> str | None:
    if head is not None:
        return head
    if family == "timm":
        clf = net.get_classifier()
        name = next((n for n, m in net.named_modules() if m is clf and n), None)
        if name:
            return name
    try:
        return _find_head(net, None, None)
    except ExportError:
        return None


def _out_features(m: nn.Module) -> int | None:
    w = getattr(m, "weight", None)
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.dim() >= 1 else None


def _is_timm_model(net: nn.Module) -> bool:
    return all(hasattr(net, a) for a in ("forward_features", "forward_head", "get_classifier")) and type(net).__module__.startswith("timm.")


def export_classifier(
    model: nn.Module | str,
    checkpoint_path: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    out_path: str | os.PathLike[str] | None = None,
    input_size: Sequence[int] | None = None,
    *,
    head: str | None = None,
    preprocessing: Preprocessing | Mapping[str, Any] | None = None,
    opset: int = OPSET,
    seed: int = 0,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportResult:
    """Export a classifier: ``images [N, 3, H, W]`` -> ``logits [N, C]``, ``features [N, D]``.

    ``model``: ``"torchvision:NAME"`` (built with ``weights=None``), ``"timm:NAME"``
    (``pretrained=False``) or an ``nn.Module``. ``checkpoint_path``: a local state dict
    (``weights_only``; ``state_dict``/``model`` wrappers and ``module.`` prefixes are handled);
    ``None`` keeps the random init. ``num_classes``: the head size (default: read off the
    checkpoint's head where the family is known, else the library default, 1000).
    ``input_size``: ``(H, W)`` of the graph (default: the family's evaluation size, 224).
    ``head``: name of the final classification layer when it cannot be found automatically.
    ``preprocessing`` overrides what is returned for registration (default: the torchvision
    weights' transforms, timm's data config, or ImageNet mean/std with resize 256 / crop 224).
    ``logits`` are exactly the model's output; ``features`` is the penultimate representation
    (see :func:`build_classifier` for each family).
    """
    if out_path is None:
        raise TypeError("export_classifier needs out_path (the .onnx file to write)")
    t0 = time.monotonic()
    net, wrapper, pp, family = build_classifier(model, checkpoint_path, num_classes, input_size=input_size, head=head, seed=seed)
    if preprocessing is not None:
        pp = preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing(**dict(preprocessing))
        if input_size and tuple(pp.input_size) != tuple(int(v) for v in input_size):
            raise ExportError(f"preprocessing.input_size {pp.input_size} differs from input_size {tuple(input_size)}")
    hw = pp.input_size
    names = ["logits", "features"]
    source = model if isinstance(model, str) else f"{type(model).__module__}.{type(model).__name__}"
    md = _base_metadata(
        "classifier",
        str(source) + (f" ({Path(checkpoint_path).name})" if checkpoint_path else " (random init)"),
        pp,
        opset,
        **{"failurelens.features": f"{family}: {_features_doc(family)}"},
    )
    try:
        data = _to_onnx(wrapper, _random_inputs(TRACE_BATCH, pp, seed), "images", names, md, opset)
        x = _random_inputs(PARITY_BATCH, pp, seed + 1)
        ref = _torch_outputs(wrapper, x, names)
        with _export_mode():
            original = net(x)  # logits must equal the unwrapped model's output
        ref["logits"] = (original[0] if isinstance(original, (tuple, list)) else original).float().numpy()
        mags: dict[str, float] = {}
        diffs = _parity("model", data, ("images", x.numpy()), ref, tolerance, _float64_outputs(wrapper, x, names), mags)
    finally:
        _untap(net)

    from failurelens.data.onnx_models import validate_classifier

    data, sig = _inspect_and_fix_dims(data, ref)
    ci = validate_classifier(sig, input_size=hw)
    outputs = {"model": _output_shapes(sig)}
    path = _write_atomic(Path(out_path), data)
    return ExportResult(
        kind="classifier",
        paths={"model": path},
        outputs=outputs,
        dims={"num_classes": ci.num_classes, "feature_dim": ci.feature_dim, "family": family},
        preprocessing=pp.to_dict(),
        max_abs_diff=max(diffs.values()),
        diffs=diffs,
        metadata=md,
        seconds=time.monotonic() - t0,
        tolerance=tolerance,
        magnitudes=mags,
    )


def _untap(net: nn.Module) -> None:
    """Put the original head back (the caller's module is left as it was given)."""
    for name, m in list(net.named_modules()):
        if isinstance(m, _Tap):
            _set_submodule(net, name, m.inner)


def _features_doc(family: str) -> str:
    return {
        "timm": "forward_head(forward_features(x), pre_logits=True)",
        "torchvision": "input of the final linear layer",
        "module": "input of the final linear layer",
        "tuple": "second output of the model",
    }.get(family, family)
