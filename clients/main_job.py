"""The main job (client side): the benchmark world and its committed models, end to end.

:func:`run_main_job` renders the world (train, val, test), starts the local stack, registers the
world and every committed world model, analyses one inspected model as one pipeline run with
its repair (failure modes, captions, backgrounds, visual evidence, the mitigation protocol, the
HTML report), prints the summary and the report's path, and stops the stack.
:func:`register_world` and :func:`register_world_models` are the pieces tests and benchmarks reuse.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from failurelens.clients.client import FailureLensClient
from failurelens.clients.upload import upload_and_register_dataset, upload_and_register_model
from failurelens.convert import preprocessing_to_proto
from failurelens.data.images import Preprocessing
from failurelens.models.world_models import MANIFEST_NAME
from failurelens.store.base import ArtifactStore
from failurelens.v1 import common_pb2, registry_pb2
from failurelens.workflow.failure_modes import Bar
from failurelens.workflow.report_data import format_summary

REPO = Path(__file__).resolve().parents[1] / "triton_models"
#: the world's splits the main job renders (the analysis reads test; the repair train, val and test)
MAIN_JOB_SPLITS = ("train", "val", "test")


def _bar(bar_factory: Bar | None, name: str) -> Any:
    return bar_factory(name) if bar_factory is not None else None


def _close(bar: Any) -> None:
    if bar is not None:
        bar.close()


def register_world(
    client: FailureLensClient, store: ArtifactStore, world_dir: Path, name: str = "world", bar_factory: Bar | None = None
) -> registry_pb2.Dataset:
    """Upload a generated world (images + manifest with attribute columns) and register it."""
    bar = _bar(bar_factory, "register world")
    try:
        return upload_and_register_dataset(client, store, str(world_dir), name, on_progress=bar, overwrite=True)
    finally:
        _close(bar)


def register_world_models(
    client: FailureLensClient, store: ArtifactStore, repo: Path = REPO, dataset_id: str = "world"
) -> dict[str, registry_pb2.Model]:
    """Register every committed world model (``triton_models/world_models.json``)."""
    models = json.loads((repo / MANIFEST_NAME).read_text())["models"]

    def register(name: str) -> registry_pb2.Model:
        e = models[name]
        fields: dict[str, Any] = {"overwrite": True, "preprocessing": preprocessing_to_proto(Preprocessing.from_dict(e["preprocessing"]))}
        if e["kind"] == "classifier":
            fields["dataset_id"] = dataset_id
        if e["kind"] == "image_text":
            fields["tokenizer"] = registry_pb2.Tokenizer(kind="clip_bpe", context_length=e["context_length"])
        text = str(repo / e["text_onnx"]) if e.get("text_onnx") else ""
        return upload_and_register_model(client, store, str(repo / e["onnx"]), name, e["kind"], text, **fields)

    # Triton loads models concurrently: a few registrations at a time
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(models, pool.map(register, models)))


def run_main_job(state_dir: str, store: str = "", echo: Callable[[str], None] = print, bar_factory: Bar | None = None) -> int:
    """The main job: the benchmark world and its committed models, one analysis run with repair."""
    from failurelens.stack import Stack
    from failurelens.store import open_store
    from failurelens.world.config import default_config
    from failurelens.world.generate import generate_world, load_world
    from failurelens.world.vocabulary import world_vocabulary

    t0 = time.monotonic()
    reported = json.loads((REPO / MANIFEST_NAME).read_text())["models"]
    world_dir = Path(state_dir).resolve() / "world"
    cfg = default_config()
    cfg = cfg.with_splits({k: v for k, v in cfg.splits.items() if k in MAIN_JOB_SPLITS})
    echo(f"1/5 rendering the benchmark world ({sum(cfg.splits.values())} images; deterministic; 12 shapes x 10 scenes x 8 colours) ...")
    if not (world_dir / "world.json").exists():
        generate_world(cfg, world_dir, workers=2)
    world = load_world(world_dir)
    echo("2/5 starting the stack (Triton + every service) ...")
    stack = Stack(state_dir, store=store).start()
    try:
        client = FailureLensClient(stack.addresses())
        st = open_store(stack.store)
        echo("3/5 registering the world and the committed models ...")
        ds = register_world(client, st, world_dir, bar_factory=bar_factory)
        models = register_world_models(client, st)
        repairable = [n for n in models if reported[n].get("role") == "repairable"]
        inspected = repairable[0] if repairable else next(n for n in models if reported[n]["kind"] == "classifier")
        echo(
            f"4/5 analysing {inspected} as one pipeline run: failure trees on world-robust features, directions on world-clip "
            "embeddings, captions, backgrounds, visual evidence"
            + (", then its repair (the mitigation protocol: images generated per prompt strategy, a new head per strategy, the "
               "failure-backgrounds head published as a new Triton version and verified)" if repairable else "")
            + ", and the HTML report ..."
        )  # fmt: skip
        vocab_uri = st.uri(st.put_json("uploads/vocabulary/world.json", world_vocabulary(world.config)).key)
        bar = _bar(bar_factory, "analyze")
        try:
            run = client.analyze(
                on_progress=bar,
                request_id=f"main-job-{inspected}",
                dataset_id=ds.dataset_id,
                model_id=inspected,
                feature_model_id="world-robust",
                image_text_model_id="world-clip",
                vocabulary_uri=vocab_uri,
                analysis_split="test",
                repair=bool(repairable),
                title=f"failurelens main job: {inspected} on the benchmark world",
            )
        finally:
            _close(bar)
        echo("5/5 the summary and the report\n")
        summary: dict[str, Any] = json.loads(st.get_bytes(st.key_from_uri(run.summary.uri))) if run.summary.uri else {}
        for line in format_summary(run, summary):
            echo(line)
        if run.report.uri:
            out = Path(state_dir).resolve() / "reports" / run.run_id
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.html").write_bytes(st.get_bytes(st.key_from_uri(run.report.uri)))
            echo(f"report: {out / 'report.html'}")
        echo(f"total {time.monotonic() - t0:.0f}s; logs in {stack.log_dir}")
        return 0 if run.state == common_pb2.JOB_STATE_SUCCEEDED else 3
    finally:
        stack.stop()
