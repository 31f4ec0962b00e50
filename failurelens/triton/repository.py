"""Write Triton model folders that serve one ONNX file in two deployments.

Layout written by :func:`write_model` (see ``triton_models/README.md``)::

    <repo>/<model>/config.pbtxt              # bundled tritonserver: backend "python"
    <repo>/<model>/configs/onnxruntime.pbtxt # NGC image: backend "onnxruntime", KIND_GPU
    <repo>/<model>/1/model.onnx              # the one ONNX file, used by both
    <repo>/<model>/1/model.py                # copy of failurelens/triton/onnx_model.py

Production starts the NGC tritonserver with ``--model-config-name=onnxruntime`` (flag
present in Triton 2.51, checked against ``tritonserver --help``), which makes it read
``configs/onnxruntime.pbtxt`` instead of ``config.pbtxt``; the python backend files are
then unused.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failurelens.data.onnx_models import ONNX_TO_TRITON

__all__ = [
    "DTYPES",
    "ONNXRUNTIME_CONFIG_NAME",
    "TensorSpec",
    "TritonModelSpec",
    "model_py_source",
    "remove_model",
    "render_onnxruntime_config",
    "render_python_config",
    "spec_from_onnx",
    "validate_model_name",
    "write_model",
]

ONNXRUNTIME_CONFIG_NAME = "onnxruntime"
"""Value for ``tritonserver --model-config-name`` selecting ``configs/onnxruntime.pbtxt``."""

_NAME_RE = re.compile(r"^[a-zA-Z0-9_.-]+$")

# Triton tensor dtypes as the inference API spells them (``FP32``) -> config enum.
DTYPES: dict[str, str] = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BF16": "TYPE_BF16",
    "BYTES": "TYPE_STRING",
}
_DTYPE_ALIASES = {"STRING": "BYTES", "FLOAT32": "FP32", "FLOAT16": "FP16", "FLOAT64": "FP64", "FLOAT": "FP32", "DOUBLE": "FP64"}

# onnx TensorProto.DataType names -> Triton dtype

# Parameters that only mean something to the python-backend wrapper (onnx_model.py).
_PYTHON_ONLY_PARAMS = {"onnx_filename", "allow_spinning", "execution_provider", "graph_optimization_level"}
# Wrapper parameter -> onnxruntime backend parameter with the same meaning.
_ORT_PARAM_NAMES = {"intra_op_threads": "intra_op_thread_count", "inter_op_threads": "inter_op_thread_count"}
_INSTANCE_KINDS = ("KIND_CPU", "KIND_GPU")
_GPU_ACCELERATORS = ("tensorrt", "cuda")


def validate_model_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise ValueError(f"invalid Triton model name {name!r}: use letters, digits, '_', '.', '-' only")
    return name


def _norm_dtype(dtype: str) -> str:
    d = str(dtype).upper()
    if d.startswith("TYPE_"):
        d = d[5:]
        d = "BYTES" if d == "STRING" else d
    d = _DTYPE_ALIASES.get(d, d)
    if d not in DTYPES:
        raise ValueError(f"unsupported Triton dtype {dtype!r}; expected one of {sorted(DTYPES)}")
    return d


@dataclass(frozen=True)
class TensorSpec:
    """One model input/output.  ``dims`` exclude the batch dimension; -1 = variable."""

    name: str
    dtype: str
    dims: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in '"\\\n'):
            raise ValueError(f"invalid tensor name {self.name!r}")
        object.__setattr__(self, "dtype", _norm_dtype(self.dtype))
        dims = tuple(int(d) for d in self.dims)
        if any(d == 0 or d < -1 for d in dims):
            raise ValueError(f"tensor {self.name!r}: dims must be positive or -1, got {dims}")
        object.__setattr__(self, "dims", dims)

    @property
    def config_dtype(self) -> str:
        return DTYPES[self.dtype]


@dataclass(frozen=True)
class TritonModelSpec:
    """Everything needed to render both configs of one model.

    ``python_instance_kind`` is the instance kind of the python-backend config (KIND_CPU
    by default; KIND_GPU makes onnx_model.py pick the CUDA provider).  The onnxruntime
    config always uses ``gpu_instances`` x KIND_GPU.  ``gpu_accelerator`` ("tensorrt"
    or "cuda") adds an execution accelerator to the onnxruntime config (off by default).
    """

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int = 64
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 2000
    cpu_instances: int = 1
    gpu_instances: int = 1
    parameters: Mapping[str, str] = field(default_factory=dict)
    python_instance_kind: str = "KIND_CPU"
    gpu_accelerator: str | None = None
    tensorrt_precision: str = "FP32"

    def __post_init__(self) -> None:
        validate_model_name(self.name)
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "preferred_batch_sizes", tuple(int(b) for b in self.preferred_batch_sizes))
        object.__setattr__(self, "parameters", {str(k): str(v) for k, v in dict(self.parameters).items()})
        if not self.inputs or not self.outputs:
            raise ValueError(f"model {self.name!r} needs at least one input and one output")
        names = [t.name for t in self.inputs] + [t.name for t in self.outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name!r}: duplicate tensor names in {names}")
        if self.max_batch_size < 0:
            raise ValueError("max_batch_size must be >= 0 (0 = no batching)")
        bad = [b for b in self.preferred_batch_sizes if b < 1 or b > self.max_batch_size]
        if bad:
            raise ValueError(f"preferred_batch_sizes {bad} outside 1..max_batch_size={self.max_batch_size}")
        if self.max_queue_delay_us < 0:
            raise ValueError("max_queue_delay_us must be >= 0")
        if self.cpu_instances < 1 or self.gpu_instances < 1:
            raise ValueError("instance counts must be >= 1")
        if self.python_instance_kind not in _INSTANCE_KINDS:
            raise ValueError(f"python_instance_kind must be one of {_INSTANCE_KINDS}")
        if self.gpu_accelerator is not None and self.gpu_accelerator not in _GPU_ACCELERATORS:
            raise ValueError(f"gpu_accelerator must be None or one of {_GPU_ACCELERATORS}")
        if self.tensorrt_precision not in ("FP32", "FP16"):
            raise ValueError("tensorrt_precision must be FP32 or FP16")
        for key in self.parameters:
            if not key or any(c in key for c in '"\\\n'):
                raise ValueError(f"invalid parameter key {key!r}")


# ---------------------------------------------------------------------- rendering
def _q(text: str) -> str:
    """A protobuf text-format string literal."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\%03o" % ord(ch))
        else:
            out.append(ch)  # non-ASCII stays raw UTF-8, valid in text format
    return '"' + "".join(out) + '"'


def _tensor_block(kind: str, tensors: Iterable[TensorSpec], batching: bool) -> list[str]:
    lines = [f"{kind} ["]
    items = []
    for t in tensors:
        dims = t.dims
        body = [f"    name: {_q(t.name)}", f"    data_type: {t.config_dtype}"]
        if not dims:
            if not batching:
                raise ValueError(f"tensor {t.name!r}: scalar tensors need max_batch_size > 0")
            # Per-sample scalar ([batch] tensor): Triton wants dims [1] reshaped to [].
            body += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
        else:
            body.append("    dims: [ " + ", ".join(str(d) for d in dims) + " ]")
        items.append("  {\n" + "\n".join(body) + "\n  }")
    lines.append(",\n".join(items))
    lines.append("]")
    return lines


def _batching_lines(spec: TritonModelSpec) -> list[str]:
    if spec.max_batch_size == 0:
        return []
    lines = ["dynamic_batching {"]
    if spec.preferred_batch_sizes:
        lines.append("  preferred_batch_size: [ " + ", ".join(str(b) for b in spec.preferred_batch_sizes) + " ]")
    lines.append(f"  max_queue_delay_microseconds: {spec.max_queue_delay_us}")
    lines.append("}")
    return lines


def _parameter_lines(params: Mapping[str, str]) -> list[str]:
    lines = []
    for key in sorted(params):
        lines.append(f"parameters {{ key: {_q(key)} value: {{ string_value: {_q(params[key])} }} }}")
    return lines


def _header(spec: TritonModelSpec, variant: str) -> list[str]:
    return [
        f"# Generated by failurelens.triton.repository ({variant}); edit the spec, not this file.",
        f"name: {_q(spec.name)}",
    ]


def render_python_config(spec: TritonModelSpec) -> str:
    """``config.pbtxt`` for the bundled tritonserver (python backend + onnx_model.py)."""
    batching = spec.max_batch_size > 0
    count = spec.cpu_instances if spec.python_instance_kind == "KIND_CPU" else spec.gpu_instances
    lines = _header(spec, "python backend, bundled tritonserver")
    lines += ['backend: "python"', f"max_batch_size: {spec.max_batch_size}"]
    lines += _tensor_block("input", spec.inputs, batching)
    lines += _tensor_block("output", spec.outputs, batching)
    lines += _batching_lines(spec)
    lines += ["instance_group [", f"  {{ count: {count}, kind: {spec.python_instance_kind} }}", "]"]
    lines += _parameter_lines(spec.parameters)
    return "\n".join(lines) + "\n"


def render_onnxruntime_config(spec: TritonModelSpec) -> str:
    """``configs/onnxruntime.pbtxt`` for the NGC image (onnxruntime backend, KIND_GPU)."""
    batching = spec.max_batch_size > 0
    lines = _header(spec, "onnxruntime backend, NGC tritonserver --model-config-name=onnxruntime")
    lines += ['platform: "onnxruntime_onnx"', 'backend: "onnxruntime"', 'default_model_filename: "model.onnx"']
    lines += [f"max_batch_size: {spec.max_batch_size}"]
    lines += _tensor_block("input", spec.inputs, batching)
    lines += _tensor_block("output", spec.outputs, batching)
    lines += _batching_lines(spec)
    lines += ["instance_group [", f"  {{ count: {spec.gpu_instances}, kind: KIND_GPU }}", "]"]
    if spec.gpu_accelerator == "tensorrt":
        lines += [
            "optimization { execution_accelerators {",
            "  gpu_execution_accelerator: [ {",
            '    name: "tensorrt"',
            f'    parameters {{ key: "precision_mode" value: {_q(spec.tensorrt_precision)} }}',
            "  } ]",
            "} }",
        ]
    elif spec.gpu_accelerator == "cuda":
        lines += ['optimization { execution_accelerators { gpu_execution_accelerator: [ { name: "cuda" } ] } }']
    params = {}
    for key, value in spec.parameters.items():
        if key in _PYTHON_ONLY_PARAMS:
            continue
        params[_ORT_PARAM_NAMES.get(key, key)] = value
    lines += _parameter_lines(params)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- ONNX -> spec
def _load_onnx(src: Any):
    import onnx

    if isinstance(src, onnx.ModelProto):
        return src
    if isinstance(src, (bytes, bytearray, memoryview)):
        return onnx.load_model_from_string(bytes(src))
    return onnx.load(os.fspath(src), load_external_data=False)


def spec_from_onnx(name: str, onnx_model: Any, **kw: Any) -> TritonModelSpec:
    """Build a :class:`TritonModelSpec` from the graph's inputs/outputs.

    ``onnx_model``: path, bytes or ``onnx.ModelProto``.  With batching
    (``max_batch_size`` > 0, the default 64) the first dimension of every input and
    output must be dynamic (a ``dim_param`` or unset); it is dropped from ``dims``.
    Other symbolic dims become -1.  ``inputs=``/``outputs=`` in ``kw`` override what is
    read from the graph; remaining ``kw`` go to :class:`TritonModelSpec`.
    """
    import onnx

    validate_model_name(name)
    model = _load_onnx(onnx_model)
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    batching = int(kw.get("max_batch_size", 64)) > 0

    def convert(values, kind: str) -> tuple[TensorSpec, ...]:
        out = []
        for v in values:
            if v.name in initializers:
                continue  # old exporters list weights as graph inputs
            ttype = v.type.tensor_type
            if not v.type.HasField("tensor_type"):
                raise ValueError(f"{kind} {v.name!r} is not a tensor (sequence/map types are not supported)")
            elem = onnx.TensorProto.DataType.Name(ttype.elem_type)
            if elem not in ONNX_TO_TRITON:
                raise ValueError(f"{kind} {v.name!r} has unsupported ONNX element type {elem}")
            if not ttype.HasField("shape"):
                raise ValueError(f"{kind} {v.name!r} has no shape information; pass {kind}s=[TensorSpec(...)] explicitly")
            dims = []
            for d in ttype.shape.dim:
                dims.append(d.dim_value if d.HasField("dim_value") else -1)
            if batching:
                if not dims:
                    raise ValueError(f"{kind} {v.name!r} is a scalar; it cannot carry a batch dimension (use max_batch_size=0)")
                if dims[0] != -1:
                    raise ValueError(
                        f"{kind} {v.name!r} has a fixed batch dimension of {dims[0]} (shape {dims}); Triton batching "
                        "needs a dynamic first dimension: re-export with dynamic batch "
                        "(torch.onnx.export(..., dynamic_axes={name: {0: 'batch'}}) or dynamic_shapes), "
                        "or pass max_batch_size=0 to serve it without batching"
                    )
                dims = dims[1:]
            out.append(TensorSpec(v.name, ONNX_TO_TRITON[elem], tuple(dims)))
        return tuple(out)

    inputs = kw.pop("inputs", None) or convert(graph.input, "input")
    outputs = kw.pop("outputs", None) or convert(graph.output, "output")
    return TritonModelSpec(name=name, inputs=tuple(inputs), outputs=tuple(outputs), **kw)


# ---------------------------------------------------------------------- writing
def model_py_source() -> str:
    """Source of the generic python-backend wrapper (``onnx_model.py``)."""
    return (Path(__file__).with_name("onnx_model.py")).read_text(encoding="utf-8")


def _default_mode(is_dir: bool) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if is_dir else 0o666) & ~umask


def _staging_dir(repo: Path, name: str, tag: str) -> Path:
    """A temp dir on the same filesystem as ``repo`` that Triton will not scan.

    Preferably beside the repository (Triton treats every subfolder of the repository,
    dot-folders included, as a model); inside it (dot-prefixed) when the parent is not
    writable or is another filesystem.
    """
    parent = repo.parent
    try:
        d = Path(tempfile.mkdtemp(prefix=f".{repo.name}.{name}.{tag}-", dir=parent))
        if os.stat(d).st_dev == os.stat(repo).st_dev:
            return d
        d.rmdir()
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix=f".{name}.{tag}-", dir=repo))


_libc = None


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = _libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    rc = fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _install(staging: Path, final: Path) -> None:
    """Move ``staging`` to ``final``; an existing ``final`` is replaced (swapped atomically where possible)."""
    try:
        os.rename(staging, final)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            raise
    if _rename_exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)  # staging now holds the old folder
        return
    old = staging.with_name(staging.name + ".old")
    os.rename(final, old)
    try:
        os.rename(staging, final)
    except OSError:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_model(
    repo_dir: str | os.PathLike[str],
    spec: TritonModelSpec,
    onnx_model: bytes | str | os.PathLike[str] | Any | None,
    version: int = 1,
    *,
    model_py: str | None = None,
) -> Path:
    """Write ``<repo_dir>/<spec.name>/`` with both configs, ``<version>/model.onnx`` and ``model.py``.

    The folder is built in a temp dir beside it and renamed into place, so Triton never
    sees a half-written model; an existing folder of that name is replaced as a whole.
    ``onnx_model`` may be a path, bytes or ``onnx.ModelProto``.  ``model_py`` (source
    text) replaces the generic onnx_model.py wrapper, e.g. for pure python models; with
    ``onnx_model=None`` no ONNX file and no onnxruntime config are written.
    Returns the model folder.
    """
    if not isinstance(spec, TritonModelSpec):
        raise TypeError("spec must be a TritonModelSpec")
    if isinstance(version, bool) or int(version) < 1:
        raise ValueError(f"version must be an integer >= 1, got {version!r}")
    version = int(version)
    if onnx_model is None and model_py is None:
        raise ValueError("need an ONNX model (or model_py for a pure python model)")
    repo = Path(repo_dir)
    repo.mkdir(parents=True, exist_ok=True)
    final = repo / validate_model_name(spec.name)

    python_config = render_python_config(spec)
    ort_config = render_onnxruntime_config(spec) if onnx_model is not None else None
    source = model_py if model_py is not None else model_py_source()

    staging = _staging_dir(repo, spec.name, "staging")
    try:
        vdir = staging / str(version)
        vdir.mkdir()
        (staging / "config.pbtxt").write_text(python_config, encoding="utf-8")
        if ort_config is not None:
            (staging / "configs").mkdir()
            (staging / "configs" / f"{ONNXRUNTIME_CONFIG_NAME}.pbtxt").write_text(ort_config, encoding="utf-8")
        (vdir / "model.py").write_text(source, encoding="utf-8")
        if onnx_model is not None:
            target = vdir / "model.onnx"
            if isinstance(onnx_model, (bytes, bytearray, memoryview)):
                target.write_bytes(bytes(onnx_model))
            elif hasattr(onnx_model, "SerializeToString"):
                target.write_bytes(onnx_model.SerializeToString())
            else:
                shutil.copyfile(os.fspath(onnx_model), target)
        _publish(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def _publish(staging: Path, final: Path) -> None:
    """Make a staged model folder readable by a server running as another user (mkdtemp makes
    0700 dirs) and move it into place."""
    dmode, fmode = _default_mode(True), _default_mode(False)
    for root, _dirs, files in os.walk(staging):
        os.chmod(root, dmode)
        for f in files:
            os.chmod(os.path.join(root, f), fmode)
    _install(staging, final)


def remove_model(repo_dir: str | os.PathLike[str], name: str) -> bool:
    """Delete ``<repo_dir>/<name>`` (renamed away first, so it disappears atomically).

    Returns False if it did not exist.  Unload the model from a running server first.
    """
    repo = Path(repo_dir)
    final = repo / validate_model_name(name)
    if not final.exists():
        return False
    trash = _staging_dir(repo, name, "trash")
    gone = trash / "model"
    try:
        os.rename(final, gone)
    except FileNotFoundError:
        shutil.rmtree(trash, ignore_errors=True)
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


# ---------------------------------------------------------------------- feature attack model
ATTACK_SUFFIX = "__attack"


def attack_model_py_source() -> str:
    """Source of the python-backend feature-attack model (``attack_model.py``)."""
    return (Path(__file__).with_name("attack_model.py")).read_text(encoding="utf-8")


def feature_attack_source() -> str:
    """Source of the pure-torch attack (``failurelens/discovery/attack.py``), copied beside it."""
    return (Path(__file__).resolve().parent.parent / "discovery" / "attack.py").read_text(encoding="utf-8")


def attack_model_spec(
    name: str,
    mean: Iterable[float],
    std: Iterable[float],
    input_hw: tuple[int, int],
    feature_output: str = "features",
    max_batch_size: int = 16,
    *,
    instance_kind: str = "KIND_CPU",
    torch_threads: int = 1,
    max_steps: int = 1000,
) -> TritonModelSpec:
    """Spec of ``<name>__attack`` (see :func:`write_attack_model`); ``name`` is the extractor's."""
    import json

    h, w = (int(v) for v in input_hw)
    if h < 1 or w < 1:
        raise ValueError(f"input_hw must be positive, got {input_hw}")
    if int(max_batch_size) < 1:
        raise ValueError("the attack model needs batching: max_batch_size >= 1")
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    if len(mean) != 3 or len(std) != 3 or any(s == 0 for s in std):
        raise ValueError(f"mean and std need 3 values each (std non-zero), got {mean} / {std}")
    one = (1,)
    return TritonModelSpec(
        name=validate_model_name(name + ATTACK_SUFFIX),
        inputs=(
            TensorSpec("images", "FP32", (3, h, w)),
            TensorSpec("feature", "INT64", one),
            TensorSpec("steps", "INT32", one),
            TensorSpec("step_size", "FP32", one),
            TensorSpec("epsilon", "FP32", one),
        ),
        outputs=(
            TensorSpec("attacked", "FP32", (3, h, w)),
            TensorSpec("activation_before", "FP32", one),
            TensorSpec("activation_after", "FP32", one),
        ),
        max_batch_size=int(max_batch_size),
        python_instance_kind=instance_kind,
        parameters={
            "mean": json.dumps(mean),
            "std": json.dumps(std),
            "feature_output": feature_output,
            "torch_threads": str(int(torch_threads)),
            "max_steps": str(int(max_steps)),
            "onnx_filename": "model.onnx",
        },
    )


def write_attack_model(
    repo_dir: str | os.PathLike[str],
    name: str,
    onnx_path: str | os.PathLike[str] | bytes | Any,
    mean: Iterable[float],
    std: Iterable[float],
    input_hw: tuple[int, int],
    feature_output: str = "features",
    max_batch_size: int = 16,
    *,
    torch_threads: int = 1,
    max_steps: int = 1000,
) -> Path:
    """Write ``<repo_dir>/<name>__attack/``: Barlow's feature attack served beside extractor ``name``.

    Layout (written in a staging folder and renamed into place, like :func:`write_model`)::

        <name>__attack/config.pbtxt               # python backend, KIND_CPU (bundled tritonserver)
        <name>__attack/configs/onnxruntime.pbtxt  # the same python-backend model, KIND_GPU
        <name>__attack/1/model.py                 # copy of failurelens/triton/attack_model.py
        <name>__attack/1/feature_attack.py        # copy of failurelens/discovery/attack.py
        <name>__attack/1/model.onnx               # the extractor's ONNX (converted by onnx2torch)

    Inputs ``images`` FP32 [3,H,W] in [0,1], ``feature`` INT64 [1], ``steps`` INT32 [1],
    ``step_size`` FP32 [1], ``epsilon`` FP32 [1]; outputs ``attacked`` FP32 [3,H,W],
    ``activation_before`` / ``activation_after`` FP32 [1].  ``mean``/``std`` (the extractor's
    normalisation) and ``feature_output`` (its ``[N,D]`` output) go into config parameters.

    ``onnx_path``: path (copied as is), bytes or ``onnx.ModelProto`` of the extractor.

    Production note: there is no onnxruntime-backend equivalent of a gradient loop, so the NGC
    image runs this same python-backend model (its image has torch; onnx2torch must be
    installed next to it).  ``configs/onnxruntime.pbtxt`` - the file that
    ``tritonserver --model-config-name=onnxruntime`` selects for every model - is therefore the
    python-backend config with a KIND_GPU instance, on which model.py moves the converted
    network to CUDA.  The ONNX file is checked here: it must have ``feature_output`` as a
    ``[N, D]`` output and one 4-D image input.
    """
    import dataclasses

    model = _load_onnx(onnx_path)
    graph = model.graph
    outputs = {o.name: o for o in graph.output}
    if feature_output not in outputs:
        raise ValueError(f"ONNX model has no output {feature_output!r} (outputs {sorted(outputs)})")
    if len(outputs[feature_output].type.tensor_type.shape.dim) != 2:
        raise ValueError(f"output {feature_output!r} must be [N, D] features")
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 4:
        raise ValueError("the feature extractor must have exactly one [N, 3, H, W] image input")
    cpu = attack_model_spec(name, mean, std, input_hw, feature_output, max_batch_size, torch_threads=torch_threads, max_steps=max_steps)
    gpu = dataclasses.replace(cpu, python_instance_kind="KIND_GPU")

    repo = Path(repo_dir)
    repo.mkdir(parents=True, exist_ok=True)
    final = repo / cpu.name
    staging = _staging_dir(repo, cpu.name, "staging")
    try:
        vdir = staging / "1"
        vdir.mkdir()
        (staging / "config.pbtxt").write_text(render_python_config(cpu), encoding="utf-8")
        (staging / "configs").mkdir()
        (staging / "configs" / f"{ONNXRUNTIME_CONFIG_NAME}.pbtxt").write_text(render_python_config(gpu), encoding="utf-8")
        (vdir / "model.py").write_text(attack_model_py_source(), encoding="utf-8")
        (vdir / "feature_attack.py").write_text(feature_attack_source(), encoding="utf-8")
        if isinstance(onnx_path, (str, os.PathLike)):
            shutil.copyfile(os.fspath(onnx_path), vdir / "model.onnx")  # the served bytes, unchanged
        else:
            (vdir / "model.onnx").write_bytes(
                bytes(onnx_path) if isinstance(onnx_path, (bytes, bytearray, memoryview)) else model.SerializeToString()
            )
        _publish(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


__all__ += ["ATTACK_SUFFIX", "attack_model_py_source", "attack_model_spec", "feature_attack_source", "write_attack_model"]


# ---------------------------------------------------------------------- versions of a model
VERSION_POLICY_ALL = "version_policy: { all { } }"


def model_versions(repo_dir: str | os.PathLike[str], name: str) -> list[int]:
    """The version folders of a model in the repository, ascending."""
    folder = Path(repo_dir) / validate_model_name(name)
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()) if folder.is_dir() else []


def add_version(repo_dir: str | os.PathLike[str], name: str, version: int, onnx_model: bytes) -> Path:
    """Publish ``onnx_model`` as version ``version`` of an existing model, every version served.

    The whole model folder is rebuilt beside the repository (the existing versions, the new one
    with the model's python-backend wrapper, both configs with ``version_policy: { all { } }``)
    and swapped in atomically, so Triton never sees a half-written version; reload the model to
    serve it. An existing folder of that version is refused (versions never change)."""
    repo = Path(repo_dir)
    final = repo / validate_model_name(name)
    if not final.is_dir():
        raise FileNotFoundError(f"model {name!r} is not in the repository {repo}")
    if isinstance(version, bool) or int(version) < 1:
        raise ValueError(f"version must be an integer >= 1, got {version!r}")
    existing = model_versions(repo, name)
    if int(version) in existing:
        raise FileExistsError(f"version {version} of model {name!r} exists already; versions never change")
    staging = _staging_dir(repo, name, "version")
    try:
        shutil.rmtree(staging)
        shutil.copytree(final, staging, symlinks=False)
        vdir = staging / str(int(version))
        vdir.mkdir()
        template = staging / str(existing[-1]) / "model.py" if existing else None
        if template is not None and template.exists():
            shutil.copyfile(template, vdir / "model.py")
        (vdir / "model.onnx").write_bytes(bytes(onnx_model))
        for config in [staging / "config.pbtxt", *sorted((staging / "configs").glob("*.pbtxt"))]:
            text = config.read_text(encoding="utf-8")
            if "version_policy" not in text:
                config.write_text(text.rstrip("\n") + "\n" + VERSION_POLICY_ALL + "\n", encoding="utf-8")
        _publish(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final / str(int(version))


@contextlib.contextmanager
def model_lock(repo_dir: str | os.PathLike[str], name: str) -> Iterator[None]:
    """Exclusive use of one model's folder among every process sharing the repository (an
    flock in a folder beside it, which Triton does not scan): registration, new versions,
    deletion."""
    repo = Path(repo_dir)
    folder = repo.parent / f".{repo.name}.locks"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{validate_model_name(name)}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_version(repo_dir: str | os.PathLike[str], name: str, version: int) -> bool:
    """Take one version out of a model folder (rebuilt beside the repository and swapped in
    atomically); reload the model afterwards. False if there was no such version."""
    repo = Path(repo_dir)
    final = repo / validate_model_name(name)
    if not (final / str(int(version))).is_dir():
        return False
    staging = _staging_dir(repo, name, "unversion")
    try:
        shutil.rmtree(staging)
        shutil.copytree(final, staging, symlinks=False)
        shutil.rmtree(staging / str(int(version)))
        _publish(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return True
