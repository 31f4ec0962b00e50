"""The main job (client side): the benchmark world and its committed models, end to end.

:func:`run_main_job` renders the world, starts the local stack, registers the world and every
committed world model, embeds through Triton, summarises the planted-slice failures and the
image–text model's zero-shot accuracies from the stored artifacts, and finds the failure modes
of one inspected model. :func:`register_world` and :func:`register_world_models` are the pieces
tests and benchmarks reuse.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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
from failurelens.workflow.repair import artifact_id
from failurelens.workflow.report_data import format_summary

REPO = Path(__file__).resolve().parents[1] / "triton_models"


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
    out = {}
    for name, e in models.items():
        fields: dict[str, Any] = {"overwrite": True, "preprocessing": preprocessing_to_proto(Preprocessing.from_dict(e["preprocessing"]))}
        if e["kind"] == "classifier":
            fields["dataset_id"] = dataset_id
        if e["kind"] == "image_text":
            fields["tokenizer"] = registry_pb2.Tokenizer(kind="clip_bpe", context_length=e["context_length"])
        out[name] = upload_and_register_model(
            client, store, str(repo / e["onnx"]), name, e["kind"], str(repo / e["text_onnx"]) if e.get("text_onnx") else "", **fields
        )
    return out


def run_main_job(
    state_dir: str, store: str = "", splits: tuple[str, ...] = ("test",), echo: Callable[[str], None] = print, bar_factory: Bar | None = None
) -> int:
    """The main job: the benchmark world and its committed models, end to end through the stack."""
    from failurelens.models.world_models import clip_prompt_sets, ensemble, slice_table, zero_shot_accuracy
    from failurelens.stack import Stack
    from failurelens.store import open_store
    from failurelens.world.config import default_config
    from failurelens.world.generate import generate_world, load_world
    from failurelens.world.vocabulary import world_vocabulary

    t0 = time.monotonic()
    reported = json.loads((REPO / MANIFEST_NAME).read_text())["models"]
    world_dir = Path(state_dir).resolve() / "world"
    echo("1/7 rendering the benchmark world (deterministic; 12 shapes x 10 scenes x 8 colours) ...")
    if not (world_dir / "world.json").exists():
        generate_world(default_config(), world_dir, workers=2)
    world = load_world(world_dir)
    echo("2/7 starting the stack (Triton + every service) ...")
    stack = Stack(state_dir, store=store).start()
    try:
        client = FailureLensClient(stack.addresses())
        st = open_store(stack.store)
        echo("3/7 registering the world and the committed models ...")
        ds = register_world(client, st, world_dir, bar_factory=bar_factory)
        models = register_world_models(client, st)
        echo(f"4/7 embedding the {'+'.join(splits)} split through Triton with every model ...")
        res = {}
        for name in models:
            bar = _bar(bar_factory, f"embed {name}")
            # the pipeline's embedding ids: its embed stage finds these fresh and reuses them
            eid = artifact_id(ds.dataset_id, name, splits[0]) if len(splits) == 1 else ""
            res[name] = client.embed(on_progress=bar, dataset_id=ds.dataset_id, model_id=name, splits=list(splits), overwrite=True, embedding_id=eid)
            _close(bar)
        echo("5/7 summarising from the stored artifacts ...")
        manifest = st.get_parquet(st.key_from_uri(ds.manifest.uri)).to_pandas()
        manifest["label"] = [ds.class_names[i] for i in manifest["label"]]
        worst = 100.0
        echo("")
        echo(f"failurelens main job: world {ds.dataset_id} ({ds.num_rows} images, splits {dict(ds.split_counts)})")
        for name, r in res.items():
            kind = reported[name]["kind"]
            rows = st.get_npy(st.key_from_uri(r.rows.uri))
            df = manifest.iloc[rows].reset_index(drop=True)
            if kind == "classifier":
                preds = st.get_npy(st.key_from_uri(r.predictions.uri))
                table = slice_table(world, df, preds)
                worst = min(worst, min(t["gap_pts"] for t in table))
                echo(
                    f"\n{name}: accuracy {r.accuracy:.3f} on {r.num_rows} images ({r.images_per_second:.0f} img/s through Triton); "
                    f"planted slices (accuracy vs the class's common images):"
                )
                for t in table:
                    echo(f"  {t['slice']:18s} n={t['n']:3d}  {t['accuracy']:.2f} vs {t['common_accuracy']:.2f}  gap {t['gap_pts']:5.1f} pts")
            elif kind == "feature_extractor":
                echo(f"\n{name}: {r.features.shape[1]}-d robust features for {r.num_rows} images -> {r.features.uri}")
            else:
                img = st.get_npy(st.key_from_uri(r.image_embeddings.uri))
                txt = {}
                for attr, groups in clip_prompt_sets(world).items():
                    emb = client.embed_texts(name, [p for g in groups for p in g], name=f"zero-shot-{attr}")
                    txt[attr] = ensemble(st.get_npy(st.key_from_uri(emb.embeddings.uri)), groups)
                acc = zero_shot_accuracy(img, txt, df, world)
                echo(f"\n{name}: zero-shot accuracy from Triton embeddings: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
        echo(f"\nsmallest planted-slice gap over the inspected models: {worst:.1f} pts")
        repairable = [n for n in models if reported[n].get("role") == "repairable"]
        inspected = repairable[0] if repairable else next(n for n in res if reported[n]["kind"] == "classifier")
        echo(
            f"\n6/7 analysing {inspected} as one pipeline run: failure trees on world-robust features, directions on world-clip "
            f"embeddings, captions, backgrounds, visual evidence"
            + (", then its repair (the mitigation protocol: images generated per prompt strategy, a new head per strategy, the "
               "failure-backgrounds head published as a new Triton version and verified)" if repairable else "")
            + ", and the HTML report ..."
        )  # fmt: skip
        vocab_uri = st.uri(st.put_json("uploads/vocabulary/world.json", world_vocabulary(world.config)).key)
        run = client.analyze(
            on_progress=bar_factory("analyze") if bar_factory is not None else None,
            request_id=f"main-job-{inspected}",
            dataset_id=ds.dataset_id,
            model_id=inspected,
            feature_model_id="world-robust",
            image_text_model_id="world-clip",
            vocabulary_uri=vocab_uri,
            analysis_split=splits[0],
            repair=bool(repairable),
            title=f"failurelens main job: {inspected} on the benchmark world",
        )
        echo("\n7/7 the report")
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
