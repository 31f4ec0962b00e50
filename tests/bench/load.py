"""Load on the local stack: concurrent clients for a fixed time against Embed, FitFailureDirections
and the read RPCs, all over real gRPC on loopback.

    .venv/bin/python tests/bench/load.py [--clients 32] [--seconds 60] [--embed-clients 4] [--fit-clients 4]

Setup (not timed): a world of 600 val images is rendered and registered with the committed world
models; one embedding per model and one directions report are made. Then ``--clients`` threads,
each with its own client (its own channels), call in a loop until the time is up: ``--embed-clients``
of them Embed the val split (a new embedding id each time), ``--fit-clients`` fit failure
directions on three classes (a new report id each time), the rest cycle through the read RPCs
(ListDatasets, GetDataset, ListModels, GetEmbedding, ListEmbeddings, GetFailureDirections, ListRuns).
Each call has a deadline; a call that fails for any reason counts as an error.

Prints requests/s and p50/p99 latency per RPC, the error count, and the resident memory of every
service process at the start and the end of the timed run (after a warm-up round), with the total
sampled every 10 s. The last line
is exactly ``load_errors: X``.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from failurelens.clients import FailureLensClient  # noqa: E402
from failurelens.clients.main_job import register_world, register_world_models  # noqa: E402
from failurelens.stack import Stack  # noqa: E402
from failurelens.store import open_store  # noqa: E402
from failurelens.v1 import embedding_pb2, pipeline_pb2, registry_pb2, slice_discovery_pb2  # noqa: E402
from failurelens.world.config import default_config  # noqa: E402
from failurelens.world.generate import generate_world  # noqa: E402

MODEL, CLIP = "world-convnet-a", "world-clip"
DEADLINE_S = 120.0


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MB), from /proc."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter[str] = collections.Counter()
        self.messages: dict[str, str] = {}

    def timed(self, name: str, fn) -> None:
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # every failure counts
            with self.lock:
                self.errors[name] += 1
                self.messages.setdefault(name, f"{type(exc).__name__}: {str(exc)[:300]}")
            return
        with self.lock:
            self.latency[name].append(time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--embed-clients", type=int, default=4)
    ap.add_argument("--fit-clients", type=int, default=4)
    ap.add_argument("--val", type=int, default=600)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="failurelens-load-"))
    t0 = time.perf_counter()
    generate_world(default_config().with_splits({"train": 12, "val": args.val, "test": 12, "balanced": 12}), tmp / "world", workers=2)
    stack = Stack(tmp / "state").start()
    try:
        setup = FailureLensClient(stack.addresses())
        st = open_store(stack.store)
        register_world(setup, st, tmp / "world")
        register_world_models(setup, st)
        setup.embed(dataset_id="world", model_id=MODEL, splits=["val"], embedding_id="load-pred")
        setup.embed(dataset_id="world", model_id=CLIP, splits=["val"], embedding_id="load-clip")
        fit = {"clip_embedding_id": "load-clip", "prediction_embedding_id": "load-pred", "classes": [0, 1, 2]}
        setup.fit_failure_directions(report_id="load-report", **fit)
        print(f"setup: {time.perf_counter() - t0:.0f} s (world of {args.val} val images, models, 2 embeddings, 1 report)", flush=True)

        reads = [
            ("ListDatasets", lambda c: c.registry.ListDatasets(registry_pb2.ListDatasetsRequest(), timeout=DEADLINE_S)),
            ("GetDataset", lambda c: c.registry.GetDataset(registry_pb2.GetDatasetRequest(dataset_id="world"), timeout=DEADLINE_S)),
            ("ListModels", lambda c: c.registry.ListModels(registry_pb2.ListModelsRequest(), timeout=DEADLINE_S)),
            ("GetEmbedding", lambda c: c.embedding.GetEmbedding(embedding_pb2.GetEmbeddingRequest(embedding_id="load-pred"), timeout=DEADLINE_S)),
            ("ListEmbeddings", lambda c: c.embedding.ListEmbeddings(embedding_pb2.ListEmbeddingsRequest(dataset_id="world"), timeout=DEADLINE_S)),
            (
                "GetFailureDirections",
                lambda c: c.slice_discovery.GetFailureDirections(slice_discovery_pb2.GetReportRequest(report_id="load-report"), timeout=DEADLINE_S),
            ),
            ("ListRuns", lambda c: c.pipeline.ListRuns(pipeline_pb2.ListRunsRequest(), timeout=DEADLINE_S)),
        ]
        tally = Tally()
        stop = threading.Event()
        go = threading.Barrier(args.clients + 1)

        def worker(i: int) -> None:
            client = FailureLensClient(stack.addresses(), timeout=DEADLINE_S)
            n = 0
            go.wait()
            try:
                while not stop.is_set():
                    n += 1
                    if i < args.embed_clients:
                        tally.timed(
                            "Embed",
                            lambda: client.embed(
                                dataset_id="world", model_id=MODEL, splits=["val"], embedding_id=f"load-e{i}-{n}", timeout=DEADLINE_S
                            ),
                        )
                    elif i < args.embed_clients + args.fit_clients:
                        tally.timed(
                            "FitFailureDirections", lambda: client.fit_failure_directions(report_id=f"load-d{i}-{n}", timeout=DEADLINE_S, **fit)
                        )
                    else:
                        name, call = reads[(i + n) % len(reads)]
                        tally.timed(name, lambda: call(client))
            finally:
                client.close()

        # warm-up round: every RPC once, so that the start RSS is that of a serving stack
        for name, call in reads:
            tally.timed(name, lambda: call(setup))
        tally = Tally()
        rss_start = {n: rss_mb(sp.proc.pid) for n, sp in stack.procs.items()}
        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.clients)]
        for t in threads:
            t.start()
        go.wait()
        start = time.perf_counter()
        samples = []  # total resident memory of the services every 10 s of the run
        while (elapsed := time.perf_counter() - start) < args.seconds:
            time.sleep(min(10.0, args.seconds - elapsed))
            samples.append((time.perf_counter() - start, sum(rss_mb(sp.proc.pid) for sp in stack.procs.values())))
        stop.set()
        for t in threads:
            t.join(DEADLINE_S + 30)
        wall = time.perf_counter() - start
        rss_end = {n: rss_mb(sp.proc.pid) for n, sp in stack.procs.items()}
        setup.close()
    finally:
        stack.stop()

    total = sum(len(v) for v in tally.latency.values())
    errors = sum(tally.errors.values())
    print(f"\n{args.clients} clients for {args.seconds:.0f} s ({wall:.1f} s until the last call returned): {total} calls, {total / wall:.1f} calls/s")
    print(f"{'rpc':22s} {'calls':>7s} {'req/s':>8s} {'p50 ms':>9s} {'p99 ms':>9s} {'errors':>7s}")
    for name in sorted(set(tally.latency) | set(tally.errors)):
        lat = sorted(tally.latency.get(name, []))
        p50 = statistics.median(lat) * 1000 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000 if lat else float("nan")
        print(f"{name:22s} {len(lat):7d} {len(lat) / wall:8.1f} {p50:9.1f} {p99:9.1f} {tally.errors[name]:7d}")
    for name, msg in tally.messages.items():
        print(f"  first {name} error: {msg}")
    print("\nresident memory of the services (MB, process and children): start -> end")
    for name in rss_start:
        print(f"  {name:16s} {rss_start[name]:8.0f} -> {rss_end[name]:8.0f}  ({rss_end[name] - rss_start[name]:+.0f})")
    print("total over the run (MB): " + ", ".join(f"{t:.0f} s {mb:.0f}" for t, mb in samples))
    print(f"rss_total_mb: {sum(rss_start.values()):.0f} -> {sum(rss_end.values()):.0f}")
    print(f"load_errors: {errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
