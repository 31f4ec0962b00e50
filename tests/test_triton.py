"""failurelens.triton against the real bundled tritonserver binary (no mocks).

Runs on CPU: models are served by the python backend (onnx_model.py + onnxruntime).
"""

from __future__ import annotations

import io
import socket
import stat
import threading
import time
import warnings
from pathlib import Path

import grpc
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import model_config_pb2

from failurelens.triton.client import TritonClient, TritonInferenceError
from failurelens.triton.launcher import (
    TritonNotFoundError,
    TritonServer,
    TritonStartError,
    find_tritonserver,
    process_group_members,
)
from failurelens.triton.repository import (
    ONNXRUNTIME_CONFIG_NAME,
    TensorSpec,
    TritonModelSpec,
    remove_model,
    render_onnxruntime_config,
    render_python_config,
    spec_from_onnx,
    write_model,
)

try:  # the lead's conftest may also register these; the server instance is shared either way
    from tests._fixtures.triton import triton_client, triton_repo, triton_server
except ImportError:  # pragma: no cover - tests/ not importable as a package
    from _fixtures.triton import triton_client, triton_repo, triton_server  # noqa: F401

pytestmark = pytest.mark.triton


# ---------------------------------------------------------------------- model builders
def tiny_onnx(seed: int = 0, batch_dim: str | int = "N") -> onnx.ModelProto:
    """x FP32 [N,8], k INT64 [N,3] -> y = relu(x @ W) [N,4], label = argmax(y) [N], k2 = k*k [N,3]."""
    w = np.random.default_rng(seed).standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["mm"]),
            helper.make_node("Relu", ["mm"], ["y"]),
            helper.make_node("ArgMax", ["y"], ["label"], axis=1, keepdims=0),
            helper.make_node("Mul", ["k", "k"], ["k2"]),
        ],
        "tiny",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, 8]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [batch_dim, 3]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch_dim, 4]),
            helper.make_tensor_value_info("label", TensorProto.INT64, [batch_dim]),
            helper.make_tensor_value_info("k2", TensorProto.INT64, [batch_dim, 3]),
        ],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def gather_onnx() -> onnx.ModelProto:
    """idx INT64 [N,1] -> rows of a 10x4 table [N,1,4]; an index >= 10 makes onnxruntime fail."""
    table = np.arange(40, dtype=np.float32).reshape(10, 4)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["rows"], axis=0)],
        "gather",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["N", 1])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["N", 1, 4])],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def torch_cnn_onnx() -> bytes:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    ).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # legacy exporter: fast, explicit dynamic axes
        torch.onnx.export(
            net,
            (torch.randn(2, 3, 16, 16),),
            buf,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return buf.getvalue()


SLEEP_MODEL_PY = """
import time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        time.sleep(1.5)
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "x").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("y", x.copy())]))
        return out
"""


def parse_config(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """True if /proc/<pid> exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except FileNotFoundError:
        return False
    return data[data.rfind(")") + 2] not in "ZX"


# ---------------------------------------------------------------------- pure tests
def test_rendered_configs_are_valid_model_config_protobuf():
    spec = TritonModelSpec(
        name="emb-v1.2",
        inputs=(TensorSpec("images", "FP32", (3, 224, 224)),),
        outputs=(TensorSpec("emb", "TYPE_FP32", (512,)), TensorSpec("label", "INT64", ())),
        max_batch_size=32,
        preferred_batch_sizes=(8, 32),
        max_queue_delay_us=1500,
        cpu_instances=2,
        gpu_instances=3,
        parameters={"intra_op_threads": "2", "allow_spinning": "0", "note": 'a "quoted"\nvalue\\'},
    )
    py = parse_config(render_python_config(spec))
    assert py.name == "emb-v1.2" and py.backend == "python" and py.max_batch_size == 32
    assert [i.name for i in py.input] == ["images"] and list(py.input[0].dims) == [3, 224, 224]
    assert py.input[0].data_type == model_config_pb2.TYPE_FP32
    assert list(py.output[1].dims) == [1] and list(py.output[1].reshape.shape) == []  # per-sample scalar
    assert list(py.dynamic_batching.preferred_batch_size) == [8, 32]
    assert py.dynamic_batching.max_queue_delay_microseconds == 1500
    assert [(g.kind, g.count) for g in py.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 2)]
    assert py.parameters["note"].string_value == 'a "quoted"\nvalue\\'
    assert py.parameters["intra_op_threads"].string_value == "2"

    ort_cfg = parse_config(render_onnxruntime_config(spec))
    assert ort_cfg.backend == "onnxruntime" and ort_cfg.platform == "onnxruntime_onnx"
    assert ort_cfg.default_model_filename == "model.onnx"
    assert ort_cfg.input == py.input and ort_cfg.output == py.output and ort_cfg.dynamic_batching == py.dynamic_batching
    assert [(g.kind, g.count) for g in ort_cfg.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_GPU, 3)]
    assert not ort_cfg.optimization.execution_accelerators.gpu_execution_accelerator  # off by default
    # wrapper-only knobs are dropped, thread knobs translated to the onnxruntime backend's names
    assert "allow_spinning" not in ort_cfg.parameters and "intra_op_threads" not in ort_cfg.parameters
    assert ort_cfg.parameters["intra_op_thread_count"].string_value == "2"

    trt = parse_config(render_onnxruntime_config(TritonModelSpec(**{**spec.__dict__, "gpu_accelerator": "tensorrt", "tensorrt_precision": "FP16"})))
    (acc,) = trt.optimization.execution_accelerators.gpu_execution_accelerator
    assert acc.name == "tensorrt" and acc.parameters["precision_mode"] == "FP16"
    cuda = parse_config(render_onnxruntime_config(TritonModelSpec(**{**spec.__dict__, "gpu_accelerator": "cuda"})))
    assert cuda.optimization.execution_accelerators.gpu_execution_accelerator[0].name == "cuda"

    gpu_py = parse_config(render_python_config(TritonModelSpec(**{**spec.__dict__, "python_instance_kind": "KIND_GPU"})))
    assert [(g.kind, g.count) for g in gpu_py.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_GPU, 3)]

    unbatched = TritonModelSpec("plain", (TensorSpec("a", "INT32", (-1, 4)),), (TensorSpec("b", "BOOL", (1,)),), max_batch_size=0)
    for text in (render_python_config(unbatched), render_onnxruntime_config(unbatched)):
        cfg = parse_config(text)
        assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
        assert list(cfg.input[0].dims) == [-1, 4]


def test_spec_validation_and_spec_from_onnx():
    spec = spec_from_onnx("tiny", tiny_onnx(), max_batch_size=16, cpu_instances=2)
    assert spec.inputs == (TensorSpec("x", "FP32", (8,)), TensorSpec("k", "INT64", (3,)))
    assert spec.outputs == (TensorSpec("y", "FP32", (4,)), TensorSpec("label", "INT64", ()), TensorSpec("k2", "INT64", (3,)))
    assert spec.max_batch_size == 16 and spec.cpu_instances == 2
    # same from bytes and from a path
    assert spec_from_onnx("tiny", tiny_onnx().SerializeToString(), max_batch_size=16, cpu_instances=2) == spec

    with pytest.raises(ValueError, match="fixed batch dimension of 4"):
        spec_from_onnx("fixed", tiny_onnx(batch_dim=4))
    unbatched = spec_from_onnx("fixed", tiny_onnx(batch_dim=4), max_batch_size=0)
    assert unbatched.inputs[0].dims == (4, 8)

    for bad in ("", "a/b", "../x", "white space", "ünï"):
        with pytest.raises(ValueError, match="invalid Triton model name"):
            spec_from_onnx(bad, tiny_onnx())
    with pytest.raises(ValueError, match="preferred_batch_sizes"):
        TritonModelSpec("m", (TensorSpec("a", "FP32", (1,)),), (TensorSpec("b", "FP32", (1,)),), max_batch_size=8, preferred_batch_sizes=(16,))
    with pytest.raises(ValueError, match="unsupported Triton dtype"):
        TensorSpec("a", "COMPLEX64", (1,))


def test_write_model_layout_atomic_replace_and_remove(tmp_path: Path):
    repo = tmp_path / "repo"
    spec = spec_from_onnx("tiny", tiny_onnx(seed=0))
    folder = write_model(repo, spec, tiny_onnx(seed=0))
    assert folder == repo / "tiny"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "1",
        "1/model.onnx",
        "1/model.py",
        "config.pbtxt",
        "configs",
        f"configs/{ONNXRUNTIME_CONFIG_NAME}.pbtxt",
    ]
    assert "class TritonPythonModel" in (folder / "1" / "model.py").read_text()
    assert "failurelens" not in "".join(line for line in (folder / "1" / "model.py").read_text().splitlines() if line.startswith(("import", "from")))
    assert parse_config((folder / "config.pbtxt").read_text()).backend == "python"
    assert parse_config((folder / "configs" / "onnxruntime.pbtxt").read_text()).backend == "onnxruntime"
    assert stat.S_IMODE(folder.stat().st_mode) & 0o005 == 0o005  # readable by a server running as another user

    # replace with a different model (and a path source): the whole folder is swapped
    other = tmp_path / "other.onnx"
    onnx.save(tiny_onnx(seed=1), other)
    (folder / "1" / "stale.txt").write_text("x")
    assert write_model(repo, spec, other) == folder
    assert not (folder / "1" / "stale.txt").exists()
    assert (folder / "1" / "model.onnx").read_bytes() == other.read_bytes()
    # no staging/trash leftovers next to or inside the repository
    assert sorted(p.name for p in repo.iterdir()) == ["tiny"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.onnx", "repo"]

    assert remove_model(repo, "tiny") is True
    assert remove_model(repo, "tiny") is False
    assert list(repo.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["other.onnx", "repo"]


def test_find_tritonserver_and_clear_error(tmp_path: Path):
    inst = find_tritonserver()
    assert inst.binary.is_file() and (inst.backends_dir / "python" / "libtriton_python.so").is_file()
    assert inst.stub.is_file() and inst.libs_dir is not None and inst.libs_dir.is_dir()
    with pytest.raises(TritonNotFoundError, match="binary .* is missing"):
        find_tritonserver(tmp_path)
    with pytest.raises(TritonNotFoundError, match=r"stub for Python 2\.7"):
        find_tritonserver(python_version="2.7")


def test_triton_inference_error_carries_grpc_status_code():
    for given in ("DEADLINE_EXCEEDED", "StatusCode.DEADLINE_EXCEEDED", grpc.StatusCode.DEADLINE_EXCEEDED):
        err = TritonInferenceError(given, "too slow")
        assert err.code is grpc.StatusCode.DEADLINE_EXCEEDED and err.code_name == "DEADLINE_EXCEEDED"
        assert str(err) == "Triton call failed: [DEADLINE_EXCEEDED] too slow" and err.message == "too slow"
        assert err.canonical_code == "DEADLINE_EXCEEDED"
    assert TritonInferenceError("NOT_FOUND", "x").canonical_code == "INTERNAL"
    assert TritonInferenceError("NOT_A_CODE", "x").code is grpc.StatusCode.UNKNOWN


# ---------------------------------------------------------------------- live server
def test_infer_matches_inprocess_onnxruntime(triton_server, triton_repo, triton_client):
    tiny = tiny_onnx()
    cnn = torch_cnn_onnx()
    write_model(triton_repo, spec_from_onnx("tiny", tiny, parameters={"intra_op_threads": "1"}), tiny)
    write_model(triton_repo, spec_from_onnx("cnn", cnn, max_batch_size=8), cnn)
    rng = np.random.default_rng(1)
    try:
        for name in ("tiny", "cnn"):
            assert not triton_client.is_model_ready(name)
            triton_client.load_model(name)
            assert triton_client.is_model_ready(name)

        meta = triton_client.model_metadata("tiny")
        assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [("x", "FP32", ["-1", "8"]), ("k", "INT64", ["-1", "3"])]

        sess = ort.InferenceSession(tiny.SerializeToString(), providers=["CPUExecutionProvider"])
        x = rng.standard_normal((5, 8)).astype(np.float32)
        k = rng.integers(-100, 100, (5, 3))
        got = triton_client.infer("tiny", {"x": x, "k": k}, ["y", "label", "k2"])
        y, label, k2 = sess.run(["y", "label", "k2"], {"x": x, "k": k})
        assert got["y"].dtype == np.float32 and np.max(np.abs(got["y"] - y)) < 1e-5
        assert np.array_equal(got["label"].reshape(-1), label) and got["label"].shape == (5, 1)  # [N] served as [N,1]
        assert got["k2"].dtype == np.int64 and np.array_equal(got["k2"], k2)
        # a subset of the outputs
        assert set(triton_client.infer("tiny", {"x": x, "k": k}, ["k2"])) == {"k2"}
        # inputs through system shared memory give the same answer; close() unregisters the regions
        with TritonClient(triton_server.grpc_url, use_shared_memory=True, shm_threshold_bytes=0) as shm_client:
            for _ in range(2):  # second call reuses the leased regions
                via_shm = shm_client.infer("tiny", {"x": x, "k": k}, ["y", "k2"])
                assert np.max(np.abs(via_shm["y"] - y)) < 1e-5 and np.array_equal(via_shm["k2"], k2)
            assert len(shm_client._grpc.get_system_shared_memory_status(as_json=True).get("regions", {})) == 2
        assert not triton_client._grpc.get_system_shared_memory_status(as_json=True).get("regions")

        sess = ort.InferenceSession(cnn, providers=["CPUExecutionProvider"])
        for n in (1, 3, 8):
            images = rng.standard_normal((n, 3, 16, 16)).astype(np.float32)
            got = triton_client.infer("cnn", {"images": images}, ["logits"])["logits"]
            ref = sess.run(["logits"], {"images": images})[0]
            assert got.shape == (n, 5) and np.max(np.abs(got - ref)) < 1e-5
    finally:
        for name in ("tiny", "cnn"):
            triton_client.unload_model(name)
    assert not triton_client.is_model_ready("tiny")


def test_concurrent_requests_are_batched_and_split_back(triton_repo, triton_client):
    model = tiny_onnx(seed=3)
    write_model(triton_repo, spec_from_onnx("batched", model, max_batch_size=64, max_queue_delay_us=300_000), model)
    triton_client.load_model("batched")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    n_requests = 16
    barrier = threading.Barrier(n_requests)
    results: dict[int, object] = {}

    def worker(i: int) -> None:
        rows = 1 + i % 3  # mixed request sizes: the split back must respect them
        x = np.random.default_rng(i).standard_normal((rows, 8)).astype(np.float32)
        k = np.full((rows, 3), i, dtype=np.int64)
        barrier.wait()
        try:
            results[i] = (x, k, triton_client.infer("batched", {"x": x, "k": k}, ["y", "k2"]))
        except Exception as exc:
            results[i] = exc

    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_requests)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == n_requests
        for i, res in results.items():
            assert not isinstance(res, Exception), res
            x, k, got = res
            y, k2 = sess.run(["y", "k2"], {"x": x, "k": k})
            assert np.max(np.abs(got["y"] - y)) < 1e-5 and np.array_equal(got["k2"], k2), f"request {i} got another request's rows"

        stats = triton_client.inference_statistics("batched")["model_stats"][0]
        n_rows = sum(1 + i % 3 for i in range(n_requests))
        assert int(stats["inference_count"]) == n_rows
        assert int(stats["inference_stats"]["success"]["count"]) == n_requests
        # fewer executions than requests, and some execution larger than any single request
        assert int(stats["execution_count"]) < n_requests
        assert max(int(b["batch_size"]) for b in stats["batch_stats"]) > 3
    finally:
        triton_client.unload_model("batched")


def test_errors_map_to_grpc_codes_and_stay_per_request(triton_repo, triton_client):
    write_model(triton_repo, spec_from_onnx("gather", gather_onnx(), max_queue_delay_us=300_000), gather_onnx())
    triton_client.load_model("gather")
    try:
        with pytest.raises(TritonInferenceError) as err:
            triton_client.infer("no_such_model", {"idx": np.zeros((1, 1), np.int64)}, ["rows"])
        assert err.value.code == grpc.StatusCode.NOT_FOUND and err.value.code_name == "NOT_FOUND"
        with pytest.raises(TritonInferenceError) as err:
            triton_client.infer("gather", {"idx": np.zeros((1, 1), np.float32)}, ["rows"])
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(TritonInferenceError) as err:
            triton_client.infer("gather", {"idx": np.zeros((1, 2), np.int64)}, ["rows"])
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(TritonInferenceError) as err:
            triton_client.load_model("not_in_repository")
        assert err.value.code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK)

        # A bad request batched together with good ones fails alone.
        barrier = threading.Barrier(3)
        out: dict[str, object] = {}

        def call(tag: str, idx: int) -> None:
            barrier.wait()
            try:
                out[tag] = triton_client.infer("gather", {"idx": np.array([[idx]], np.int64)}, ["rows"])["rows"]
            except TritonInferenceError as exc:
                out[tag] = exc

        threads = [threading.Thread(target=call, args=a) for a in (("good1", 2), ("bad", 99), ("good2", 7))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert np.array_equal(out["good1"], np.arange(8, 12, dtype=np.float32).reshape(1, 1, 4))
        assert np.array_equal(out["good2"], np.arange(28, 32, dtype=np.float32).reshape(1, 1, 4))
        assert isinstance(out["bad"], TritonInferenceError) and "onnxruntime failed" in out["bad"].message
        stats = triton_client.inference_statistics("gather")["model_stats"][0]
        assert int(stats["execution_count"]) < 3  # they really were in one execute() call
    finally:
        triton_client.unload_model("gather")


def test_deadline_exceeded_is_not_retried(triton_repo, triton_client):
    spec = TritonModelSpec("sleepy", (TensorSpec("x", "FP32", (2,)),), (TensorSpec("y", "FP32", (2,)),), max_batch_size=4)
    write_model(triton_repo, spec, None, model_py=SLEEP_MODEL_PY)
    assert not (triton_repo / "sleepy" / "configs").exists()
    triton_client.load_model("sleepy")
    try:
        t0 = time.monotonic()
        with pytest.raises(TritonInferenceError) as err:
            triton_client.infer("sleepy", {"x": np.ones((1, 2), np.float32)}, ["y"], timeout_s=0.3)
        elapsed = time.monotonic() - t0
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.25 < elapsed < 1.2, elapsed
        # with enough time it answers
        got = triton_client.infer("sleepy", {"x": np.full((1, 2), 7, np.float32)}, ["y"], timeout_s=20)
        assert np.array_equal(got["y"], np.full((1, 2), 7, np.float32))
    finally:
        triton_client.unload_model("sleepy")


def test_retry_on_unavailable_then_stop_leaves_no_process(tmp_path: Path):
    repo = tmp_path / "repo"
    model = tiny_onnx(seed=5)
    write_model(repo, spec_from_onnx("tiny", model), model)
    port = free_port()
    server = TritonServer(repo, grpc_port=port, model_control="none", log_path=tmp_path / "late.log")
    started: dict[str, object] = {}

    def start_late() -> None:
        time.sleep(0.8)
        try:
            server.start(timeout=60)
            started["ok"] = True
        except Exception as exc:
            started["ok"] = exc

    client = TritonClient(f"127.0.0.1:{port}", default_timeout_s=60, retries=8, backoff_s=0.2, use_shared_memory=True, shm_threshold_bytes=0)
    thread = threading.Thread(target=start_late)
    thread.start()
    try:
        x = np.ones((2, 8), np.float32)
        k = np.ones((2, 3), np.int64)
        t0 = time.monotonic()
        got = client.infer("tiny", {"x": x, "k": k}, ["k2"])  # nothing listens yet: UNAVAILABLE, retried
        assert time.monotonic() - t0 > 0.8
        assert np.array_equal(got["k2"], k * k)
        thread.join(60)
        assert started["ok"] is True

        pgid = server.pgid
        members = server.process_group_pids()
        assert server.pid in members and len(members) >= 2, members  # server + python backend stub
    finally:
        thread.join(60)
        server.stop()
    assert process_group_members(pgid, include_zombies=False) == []
    assert not any(alive(pid) for pid in members)
    assert not server.is_running()

    # server gone: UNAVAILABLE after the retries, with exponential backoff 0.1+0.2+0.4
    dead = TritonClient(f"127.0.0.1:{port}", retries=3, backoff_s=0.1)
    t0 = time.monotonic()
    with pytest.raises(TritonInferenceError) as err:
        dead.infer("tiny", {"x": x, "k": k}, ["k2"], timeout_s=10)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE and "after 4 attempts" in err.value.message
    assert 0.65 < time.monotonic() - t0 < 5
    # retries never sleep past the deadline
    patient = TritonClient(f"127.0.0.1:{port}", retries=20, backoff_s=0.2)
    t0 = time.monotonic()
    with pytest.raises(TritonInferenceError) as err:
        patient.infer("tiny", {"x": x, "k": k}, ["k2"], timeout_s=1.0)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE and time.monotonic() - t0 < 1.3
    with pytest.raises(TritonInferenceError):
        dead.wait_ready(timeout=0.3)

    # same server restarted on the same port: the shm client re-registers its regions
    with server:
        assert np.array_equal(client.infer("tiny", {"x": x, "k": k}, ["k2"])["k2"], k * k)
    for c in (client, dead, patient):
        c.close()


def test_start_failure_raises_with_log_tail(tmp_path: Path):
    server = TritonServer(tmp_path, extra_args=("--no-such-flag=1",), log_path=tmp_path / "bad.log")
    with pytest.raises(TritonStartError, match="unrecognized option") as err:
        server.start(timeout=30)
    assert "exited with code" in str(err.value) and err.value.log_tail
    assert server.pid is not None and not alive(server.pid)
    assert process_group_members(server.pgid) == []

    with socket.socket() as busy:  # an explicitly requested port that is taken
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = TritonServer(tmp_path, grpc_port=busy.getsockname()[1], log_path=tmp_path / "busy.log")
        with pytest.raises(TritonStartError, match="already in use"):
            server.start(timeout=30)
    assert process_group_members(server.pgid) == []


def test_onnxruntime_config_is_selected_by_model_config_name(tmp_path: Path):
    """Production runs the NGC image with --model-config-name=onnxruntime.  The bundled
    server has no onnxruntime backend, so loading fails -- but the error proves that it
    read configs/onnxruntime.pbtxt instead of config.pbtxt."""
    repo = tmp_path / "repo"
    model = tiny_onnx()
    write_model(repo, spec_from_onnx("tiny", model), model)
    with TritonServer(repo, model_config_name=ONNXRUNTIME_CONFIG_NAME) as server, TritonClient(server.grpc_url) as client:
        client.wait_ready(timeout=30)
        with pytest.raises(TritonInferenceError) as err:
            client.load_model("tiny")
    assert "backend 'onnxruntime'" in err.value.message
