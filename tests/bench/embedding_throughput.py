"""Throughput of a ResNet-50-architecture ONNX model: Triton (python backend) vs in-process onnxruntime.

Both arms do the same work: the same ONNX file, the same onnxruntime version, the same
execution provider and intra-op thread count, the same input batches, the same number
of warm-up and timed batches, one request in flight at a time.  The Triton arm goes
through the real stack: ``launcher.TritonServer`` (bundled tritonserver, python backend
running ``onnx_model.py``) and ``client.TritonClient`` over gRPC on loopback.

    .venv/bin/python tests/bench/embedding_throughput.py [--batch 32] [--warmup 1] [--batches 5]
        [--threads 2] [--device cpu|cuda] [--shm | --no-shm]

The last line printed is exactly ``triton_vs_inprocess_ratio: X`` (Triton img/s divided
by in-process img/s, 3 decimals).

``--device cuda`` (needs onnxruntime-gpu in the environment and a GPU): the in-process
session and the python-backend instance (config ``KIND_GPU``) both use the
CUDAExecutionProvider.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from failurelens.triton.client import TritonClient  # noqa: E402
from failurelens.triton.launcher import TritonServer  # noqa: E402
from failurelens.triton.repository import spec_from_onnx, write_model  # noqa: E402

MODEL = "resnet50_embed"


def build_resnet50_onnx(path: Path, seed: int = 0) -> None:
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.resnet50(weights=None).eval()
    example = torch.randn(1, 3, 224, 224)
    buf = io.BytesIO()
    kwargs = dict(
        input_names=["images"],
        output_names=["logits"],
        opset_version=17,
    )
    try:  # legacy TorchScript exporter: fast and gives a clean dynamic batch dim
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (example,), buf, dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False, **kwargs)
    except Exception as exc:
        print(f"legacy ONNX exporter unavailable ({exc.__class__.__name__}); using dynamo=True", flush=True)
        buf = io.BytesIO()
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(model, (example,), buf, dynamic_shapes={"x": {0: batch}}, dynamo=True, **kwargs)
    path.write_bytes(buf.getvalue())


def providers_for(device: str) -> list:
    import onnxruntime as ort

    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise SystemExit(f"--device cuda: onnxruntime has no CUDAExecutionProvider ({ort.get_available_providers()})")
        return [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_inprocess(onnx_path: Path, threads: int, device: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), sess_options=so, providers=providers_for(device))
    return sess, (lambda b: sess.run(["logits"], {"images": b})[0])


def start_triton(onnx_path: Path, work: Path, threads: int, device: str, batch: int) -> TritonServer:
    repo = work / "repo"
    spec = spec_from_onnx(
        MODEL,
        onnx_path,
        max_batch_size=batch,
        max_queue_delay_us=0,  # one client, one request in flight: waiting would only add latency
        python_instance_kind="KIND_GPU" if device == "cuda" else "KIND_CPU",
        parameters={"intra_op_threads": str(threads), **({"execution_provider": "cuda"} if device == "cuda" else {})},
    )
    write_model(repo, spec, onnx_path)
    return TritonServer(repo, work_dir=work / "server", log_path=work / "tritonserver.log").start()


def triton_providers(server: TritonServer) -> str:
    line = next((ln for ln in server.log_text().splitlines() if "onnx_model: loaded" in ln), "")
    return line.split("providers=")[1].split(" intra")[0] if "providers=" in line else "?"


def run_interleaved(arms: dict, batches: list[np.ndarray], warmup: int) -> tuple[dict, dict]:
    """Warm up every arm, then time each batch on every arm, alternating which arm goes
    first (ABBA...), so that drifting background load on a shared machine hits both."""
    names = list(arms)
    first_out = {}
    for name in names:
        for i in range(warmup):
            out = arms[name](batches[i % len(batches)])
            first_out.setdefault(name, out)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i, b in enumerate(batches):
        for name in names if i % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            out = arms[name](b)
            times[name].append(time.perf_counter() - t0)
            first_out.setdefault(name, out)
    return times, first_out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=1, help="warm-up batches per arm (not timed)")
    ap.add_argument("--batches", type=int, default=5, help="timed batches per arm")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="onnxruntime intra-op threads (both arms)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--shm", dest="shm", action="store_true", default=True, help="send inputs via system shared memory (default)")
    ap.add_argument("--no-shm", dest="shm", action="store_false", help="send inputs inside the gRPC message")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", type=Path, default=None, help="keep model/repo/log here instead of a temp dir")
    args = ap.parse_args(argv)

    providers_for(args.device)  # fail fast when --device cuda has no CUDA provider
    with tempfile.TemporaryDirectory(prefix="failurelens-bench-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        onnx_path = work / "resnet50.onnx"
        t0 = time.perf_counter()
        build_resnet50_onnx(onnx_path, args.seed)
        print(f"exported ResNet-50 ONNX ({onnx_path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f}s", flush=True)

        rng = np.random.default_rng(args.seed)
        batches = [rng.standard_normal((args.batch, 3, 224, 224), dtype=np.float32) for _ in range(args.batches)]

        sess, run_inprocess = make_inprocess(onnx_path, args.threads, args.device)
        ip_prov = sess.get_providers()
        with start_triton(onnx_path, work, args.threads, args.device, args.batch) as server:
            with TritonClient(server.grpc_url, default_timeout_s=600, use_shared_memory=args.shm) as client:
                client.load_model(MODEL, timeout_s=300)
                arms = {
                    "in-process onnxruntime": run_inprocess,
                    "triton (python backend)": lambda b: client.infer(MODEL, {"images": b}, ["logits"])["logits"],
                }
                times, first = run_interleaved(arms, batches, args.warmup)
                tr_prov = triton_providers(server)
        del sess
        gc.collect()

    names = list(arms)
    # Same input (the warm-up/first batch) -> same output, up to float noise.
    diff = float(np.max(np.abs(first[names[0]] - first[names[1]])))
    rows = []
    for name, prov in zip(names, (ip_prov, tr_prov)):
        t = times[name]
        rows.append((name, len(t), sum(t), args.batch * len(t) / sum(t), 1000 * statistics.median(t), str(prov)))
    ratio = rows[1][3] / rows[0][3]
    pair_ratios = [a / b for a, b in zip(times[names[0]], times[names[1]])]

    print(
        f"device={args.device} batch={args.batch} warmup={args.warmup} timed_batches={args.batches} "
        f"intra_op_threads={args.threads} cpus={os.cpu_count()} shm={args.shm} order=interleaved(ABBA) "
        f"max_abs_diff={diff:.2e} median_per_batch_ratio={statistics.median(pair_ratios):.3f}"
    )
    header = f"{'arm':<26}{'batches':>8}{'seconds':>10}{'img/s':>10}{'p50 ms/batch':>14}  providers"
    print(header)
    print("-" * len(header))
    for name, n, total, ips, p50, prov in rows:
        print(f"{name:<26}{n:>8}{total:>10.3f}{ips:>10.2f}{p50:>14.1f}  {prov}")
    print(f"triton_vs_inprocess_ratio: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
