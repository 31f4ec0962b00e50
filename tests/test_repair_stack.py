"""Repair through the real stack: Generation (the world renderer and a tiny diffusers pipeline
loaded from a folder), Retraining (a new head published as a new Triton version of the model),
and the statuses of bad requests."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest

from failurelens import catalog as cat
from failurelens.clients import FailureLensClient, FailureLensError
from failurelens.clients.main_job import register_world, register_world_models
from failurelens.repair.head import HeadRetrainer
from failurelens.stack import Stack
from failurelens.store import open_store
from failurelens.triton import repository as trepo
from failurelens.v1 import embedding_pb2, generation_pb2, registry_pb2
from failurelens.world.config import default_config
from failurelens.world.generate import generate_world
from tests._fixtures.tiny_diffusion import build_tiny_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.triton]
REPO = Path(__file__).resolve().parents[1] / "triton_models"
MODEL = "world-convnet-a"


class W:
    pass


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("repair")
    cfg = default_config().with_splits({"train": 480, "val": 240, "test": 240, "balanced": 24})
    generate_world(cfg, tmp / "world", workers=2)
    tiny = build_tiny_pipeline(tmp / "tiny-sd")
    stack = Stack(tmp / "state", extra_env={"FAILURELENS_DIFFUSERS_PIPELINES": f"tiny={tiny}"}).start()
    try:
        x = W()
        x.stack, x.tmp, x.tiny = stack, tmp, tiny
        x.client = FailureLensClient(stack.addresses())
        x.st = open_store(stack.store)
        x.ds = register_world(x.client, x.st, tmp / "world")
        all_models = register_world_models(x.client, x.st, REPO)
        x.model = all_models[MODEL]
        x.emb = {s: x.client.embed(dataset_id="world", model_id=MODEL, splits=[s]) for s in ("train", "val", "test")}
        yield x
        x.client.close()
    finally:
        stack.stop()


def _serving(address: str) -> bool:
    from failurelens.stack import check_health

    try:
        return check_health(address, timeout=1.0) == 1
    except grpc.RpcError:
        return False


def _code(fn, *a, **kw) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(FailureLensError) as e:
        fn(*a, **kw)
    return e.value.code, e.value.details_text


def _images(w, ds) -> list[bytes]:
    manifest = cat.Catalog(w.st).load_manifest(ds)
    return [hashlib.sha256(w.st.get_bytes(w.st.key_from_uri(u))).hexdigest() for u in manifest["uri"]]


def test_generators_prompts_and_seeds(w):
    listed = {g.name: g for g in w.client.list_generators().generators}
    assert listed["world"].backend == "world" and listed["world"].width == 64 and listed["tiny"].backend == "diffusers"
    code, text = _code(
        w.client.generate,
        generator="world",
        strategy=generation_pb2.PROMPT_STRATEGY_EXPLICIT,
        base_dataset_id="world",
        output_dataset_name="bad",
        prompts=[generation_pb2.Prompt(label=0, text="a photo of a circle on mars", count=2)],
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "'mars'" in text
    assert not w.st.exists("datasets/bad/dataset.json") and not list(w.st.list("uploads/"))
    req = dict(
        generator="world", strategy=generation_pb2.PROMPT_STRATEGY_CLASS_ONLY, base_dataset_id="world", classes=[0, 5], images_per_class=8, seed=3
    )
    a = w.client.generate(output_dataset_name="gen-a", **req)
    b = w.client.generate(output_dataset_name="gen-b", **req)
    assert a.num_images == 16 and a.dataset.num_rows == 16 and dict(a.dataset.split_counts) == {"debug_train": 16}
    assert _images(w, a.dataset) == _images(w, b.dataset)  # same seed, same images
    manifest = cat.Catalog(w.st).load_manifest(a.dataset)
    # class-only prompts draw the unnamed attributes from the biased training distribution
    assert set(manifest["prompt"]) == {"a photo of a circle", "a photo of a heart"}
    bias = default_config().bias
    for cls, group in manifest.groupby("label"):
        name = w.ds.class_names[int(cls)]
        assert (group["generated_background"] == bias[name].background).mean() >= 0.75, (name, group["generated_background"].tolist())
    c = w.client.generate(output_dataset_name="gen-c", **{**req, "seed": 4})
    assert _images(w, c.dataset) != _images(w, a.dataset)
    bg = w.client.generate(
        generator="world",
        strategy=generation_pb2.PROMPT_STRATEGY_EXPLICIT,
        base_dataset_id="world",
        output_dataset_name="gen-bg",
        prompts=[generation_pb2.Prompt(label=0, text="a photo of a small white circle at night", count=4)],
    )
    m = cat.Catalog(w.st).load_manifest(bg.dataset)
    assert set(m["generated_background"]) == {"night"} and set(m["generated_color"]) == {"white"} and set(m["generated_size"]) == {"small"}


def test_pooled_assignments_spread_the_budget_by_frequency(w):
    """Collective debugging: several models' background assignments pooled; with by_frequency a
    class's images follow its backgrounds' pooled failure counts, else the top_k share evenly."""
    import pandas as pd

    a = pd.DataFrame({"row": [1, 2, 3], "class_index": [0, 0, 0], "background": ["on sand", "on sand", "in water"], "score": [0.9] * 3})
    b = pd.DataFrame({"row": [4, 5], "class_index": [0, 5], "background": ["on sand", "at night"], "score": [0.9] * 2})
    uris = [w.st.uri(w.st.put_parquet(f"uploads/tests/assign-{n}.parquet", t).key) for n, t in (("a", a), ("b", b))]
    req = dict(generator="world", strategy=generation_pb2.PROMPT_STRATEGY_FAILURE_BACKGROUNDS, base_dataset_id="world", images_per_class=8)
    freq = w.client.generate(output_dataset_name="pooled-freq", assignment_uris=uris, by_frequency=True, **req)
    m = cat.Catalog(w.st).load_manifest(freq.dataset)
    counts = m.groupby(["label", "generated_background"]).size().to_dict()
    assert counts == {(0, "sand"): 6, (0, "water"): 2, (5, "night"): 8}  # 3:1 for the circle, pooled over both tables
    even = w.client.generate(output_dataset_name="pooled-even", assignment_uris=uris, top_k=2, **req)
    m = cat.Catalog(w.st).load_manifest(even.dataset)
    assert m.groupby(["label", "generated_background"]).size().to_dict() == {(0, "sand"): 4, (0, "water"): 4, (5, "night"): 8}
    code, text = _code(w.client.generate, output_dataset_name="pooled-none", **req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "assignment_uris" in text


def test_tiny_diffusers_pipeline_images_register_and_embed(w):
    res = w.client.generate(
        generator="tiny",
        strategy=generation_pb2.PROMPT_STRATEGY_EXPLICIT,
        base_dataset_id="world",
        output_dataset_name="gen-sd",
        prompts=[
            generation_pb2.Prompt(label=1, text="a photo of a square on grass", count=3),
            generation_pb2.Prompt(label=2, text="a photo of a triangle", count=2),
        ],
    )
    assert res.num_images == 5 and res.generator == "tiny"
    emb = w.client.embed(dataset_id="gen-sd", model_id=MODEL)
    assert emb.num_rows == 5 and emb.skipped_rows.total == 0 and list(emb.features.shape) == [5, w.model.feature_dim]


def test_missing_or_incomplete_diffusers_folders_are_named(tmp_path):
    from failurelens.errors import FailedPrecondition
    from failurelens.generation.diffusion import DiffusersGenerator

    with pytest.raises(FailedPrecondition, match="does not exist"):
        DiffusersGenerator("x", tmp_path / "nowhere")
    folder = build_tiny_pipeline(tmp_path / "sd")
    for part in ("unet", "vae"):
        weights = next((folder / part).glob("*.safetensors"))
        weights.rename(weights.with_suffix(".gone"))
        with pytest.raises(FailedPrecondition, match=f"{part}/ lacks its weights"):
            DiffusersGenerator("x", folder)
        weights.with_suffix(".gone").rename(weights)
    (folder / "model_index.json").unlink()
    with pytest.raises(FailedPrecondition, match="model_index.json is missing"):
        DiffusersGenerator("x", folder)


def _features(w, emb) -> tuple[np.ndarray, np.ndarray]:
    c = cat.Catalog(w.st)
    return c.load_array(emb.features), c.load_array(emb.labels)


def test_lambda_zero_is_the_head_of_the_original_data_alone(w):
    w.client.generate(
        generator="world",
        strategy=generation_pb2.PROMPT_STRATEGY_CLASS_ONLY,
        base_dataset_id="world",
        output_dataset_name="gen-l0",
        images_per_class=4,
    )
    debug = w.client.embed(dataset_id="gen-l0", model_id=MODEL)
    res = w.client.retrain_head(
        model_id=MODEL,
        train_embedding_id=w.emb["train"].embedding_id,
        debug_train_embedding_id=debug.embedding_id,
        lam=0.0,
        epochs=30,
        init="new",
        dry_run=True,
        eval_sets=[{"name": "test", "embedding_id": w.emb["test"].embedding_id}],
    )
    X, y = _features(w, w.emb["train"])
    alone = HeadRetrainer(lam=0.0, epochs=30, init="new").fit(X, y, num_classes=12)
    with_debug_ignored = HeadRetrainer(lam=0.0, epochs=30, init="new").fit(X, y, *_features(w, debug), num_classes=12)
    np.testing.assert_allclose(alone.coef_, with_debug_ignored.coef_, atol=1e-6)
    assert res.version.version == 0 and len(res.history) == 30  # a dry run publishes nothing
    assert [h.loss for h in res.history] == pytest.approx([h.loss for h in alone.history_], abs=1e-9)
    assert res.evaluation.results[0].accuracy == pytest.approx(alone.score(*_features(w, w.emb["test"])), abs=1e-9)


def test_retrained_head_is_a_new_triton_version_with_lineage(w):
    w.client.generate(
        generator="world",
        strategy=generation_pb2.PROMPT_STRATEGY_EXPLICIT,
        base_dataset_id="world",
        output_dataset_name="gen-fix",
        prompts=[
            generation_pb2.Prompt(label=0, text="a photo of a circle on sand", count=12),
            generation_pb2.Prompt(label=8, text="a photo of an arrow at night", count=12),
        ],
    )
    debug = w.client.embed(dataset_id="gen-fix", model_id=MODEL)
    request = dict(
        model_id=MODEL,
        model_version=1,
        train_embedding_id=w.emb["train"].embedding_id,
        debug_train_embedding_id=debug.embedding_id,
        epochs=40,
        eval_sets=[{"name": "test", "embedding_id": w.emb["test"].embedding_id}, {"name": "generated", "embedding_id": debug.embedding_id}],
    )
    res = w.client.retrain_head(**request)
    assert res.version.version == 2 and res.version.parent_version == 1 and not res.reused
    assert [v.version for v in res.model.versions] == [1, 2] and res.version.train_embedding_id == w.emb["train"].embedding_id
    evals = {r.name: r for r in res.evaluation.results}
    assert evals["generated"].accuracy > evals["generated"].accuracy_before and res.version.metrics["test/accuracy"] == evals["test"].accuracy
    assert trepo.model_versions(w.stack.repo_dir, MODEL) == [1, 2]
    # Triton serves both versions; v2 answers with the new head's logits (parity with onnxruntime)
    v2 = w.client.embed(dataset_id="world", model_id=MODEL, splits=["test"], model_version=2)
    v1 = w.client.embed(dataset_id="world", model_id=MODEL, splits=["test"], model_version=1, embedding_id="test-v1-again")
    c = cat.Catalog(w.st)
    assert v2.model_version == 2 and v2.embedding_id.startswith("world--world-convnet-a--v2")
    np.testing.assert_allclose(c.load_array(v1.logits), c.load_array(w.emb["test"].logits), atol=1e-5)
    head = w.st.get_safetensors(w.st.key_from_uri(res.head.uri))
    feats, logits = c.load_array(v2.features), c.load_array(v2.logits)
    assert float(np.abs(logits - (feats @ head["weight"].T + head["bias"])).max()) < 1e-4
    onnx_bytes = w.st.get_bytes(w.st.key_from_uri(res.version.onnx.uri))
    from failurelens.convert import preprocessing_from_proto
    from failurelens.data.images import preprocess, read_image

    manifest = c.load_manifest(w.ds)
    rows = c.load_array(v2.rows)[:16]
    x = preprocess(
        [read_image(w.st, w.st.key_from_uri(u)) for u in manifest["uri"].to_numpy()[rows]], preprocessing_from_proto(w.model.preprocessing, None)
    )
    local = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"]).run(["logits"], {"images": x})[0]
    assert float(np.abs(local - logits[:16]).max()) < 1e-4
    assert c.verify(res.version.onnx) and c.verify(res.head)
    # the same request again gives the same version
    again = w.client.retrain_head(**request)
    assert again.reused and again.version.version == 2 and [v.version for v in again.model.versions] == [1, 2]
    # evaluate any version's head on named sets
    ev = w.client.evaluate_head(model_id=MODEL, model_version=2, eval_sets=[{"name": "test", "embedding_id": w.emb["test"].embedding_id}])
    assert ev.results[0].accuracy == pytest.approx(evals["test"].accuracy) and ev.results[0].accuracy_before == pytest.approx(
        evals["test"].accuracy_before
    )


def test_bad_retraining_requests(w):
    c = cat.Catalog(w.st)
    train = w.emb["train"].embedding_id
    w.client.generate(
        generator="world",
        strategy=generation_pb2.PROMPT_STRATEGY_CLASS_ONLY,
        base_dataset_id="world",
        output_dataset_name="gen-bad",
        images_per_class=2,
        classes=[3],
    )
    debug = w.client.embed(dataset_id="gen-bad", model_id=MODEL, model_version=1)
    assert (
        _code(w.client.retrain_head, model_id=MODEL, model_version=7, train_embedding_id=train, debug_train_embedding_id=debug.embedding_id)[0]
        == grpc.StatusCode.NOT_FOUND
    )
    assert _code(w.client.embed, dataset_id="world", model_id=MODEL, model_version=7)[0] == grpc.StatusCode.NOT_FOUND
    empty = embedding_pb2.EmbeddingSet()
    empty.CopyFrom(debug)
    empty.embedding_id, empty.num_rows = "empty-debug", 0
    empty.features.CopyFrom(c.put_npy("embeddings/empty-debug/v/features.npy", np.zeros((0, w.model.feature_dim), np.float32)))
    c.put_record("embedding set", "empty-debug", empty)
    code, text = _code(w.client.retrain_head, model_id=MODEL, model_version=1, train_embedding_id=train, debug_train_embedding_id="empty-debug")
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "empty" in text
    wrong = embedding_pb2.EmbeddingSet()
    wrong.CopyFrom(debug)
    wrong.embedding_id = "wrong-dim"
    wrong.features.CopyFrom(c.put_npy("embeddings/wrong-dim/v/features.npy", np.zeros((debug.num_rows, 7), np.float32)))
    c.put_record("embedding set", "wrong-dim", wrong)
    code, text = _code(w.client.retrain_head, model_id=MODEL, model_version=1, train_embedding_id=train, debug_train_embedding_id="wrong-dim")
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "7-d features" in text
    code, text = _code(
        w.client.retrain_head, model_id=MODEL, model_version=1, train_embedding_id=train, debug_train_embedding_id=debug.embedding_id, lam=-1
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "lam" in text


def test_a_retraining_killed_midway_leaves_no_version_and_a_rerun_succeeds(w):
    w.client.generate(
        generator="world",
        strategy=generation_pb2.PROMPT_STRATEGY_CLASS_ONLY,
        base_dataset_id="world",
        output_dataset_name="gen-kill",
        images_per_class=3,
        classes=[1, 2],
    )
    debug = w.client.embed(dataset_id="gen-kill", model_id=MODEL, model_version=1)
    before = [v.version for v in w.client.call(w.client.registry.GetModel, registry_pb2.GetModelRequest(model_id=MODEL)).versions]
    triton_before = trepo.model_versions(w.stack.repo_dir, MODEL)
    request = dict(
        model_id=MODEL, model_version=1, train_embedding_id=w.emb["train"].embedding_id, debug_train_embedding_id=debug.embedding_id, lam=1.0
    )
    pid = w.stack.procs["retraining"].proc.pid
    killed = threading.Event()

    def kill(p) -> None:
        if p.stage == "train" and p.done >= 3 and not killed.is_set():
            killed.set()
            os.killpg(pid, signal.SIGKILL)

    with pytest.raises(FailureLensError):
        w.client.retrain_head(on_progress=kill, epochs=100_000, **request)
    assert killed.is_set()
    model = w.client.call(w.client.registry.GetModel, registry_pb2.GetModelRequest(model_id=MODEL))
    assert [v.version for v in model.versions] == before and trepo.model_versions(w.stack.repo_dir, MODEL) == triton_before
    # a run killed between publishing to Triton and committing the record leaves an orphan version:
    # the next run on the model clears it before publishing its own
    orphan = max(triton_before) + 1
    trepo.add_version(w.stack.repo_dir, MODEL, orphan, w.st.get_bytes(w.st.key_from_uri(model.onnx.uri)))
    deadline = time.monotonic() + 90
    while not _serving(w.stack.procs["retraining"].address) or w.stack.procs["retraining"].proc.pid == pid:
        assert time.monotonic() < deadline, "the retraining service was not restarted"
        time.sleep(0.2)
    res = w.client.retrain_head(epochs=5, **request)
    assert res.version.version == orphan and [v.version for v in res.model.versions] == [*before, orphan]
    assert trepo.model_versions(w.stack.repo_dir, MODEL) == [*triton_before, orphan]
    head = w.st.get_safetensors(w.st.key_from_uri(res.head.uri))
    served = w.client.embed(dataset_id="world", model_id=MODEL, splits=["test"], model_version=orphan)
    c = cat.Catalog(w.st)
    assert float(np.abs(c.load_array(served.logits) - (c.load_array(served.features) @ head["weight"].T + head["bias"])).max()) < 1e-4


def _cli(w, *argv: str) -> int:
    from failurelens.cli import main

    return main(["--state-dir", str(w.stack.state_dir), *argv])


def test_generate_and_retrain_commands(w, capsys):
    assert _cli(w, "generators") == 0 and "tiny" in capsys.readouterr().out
    rc = _cli(
        w, "generate", "--dataset", "world", "--name", "cli-gen", "--prompt", "circle", "a photo of a circle on grass", "--count", "3", "--seed", "1"
    )
    assert rc == 0 and "cli-gen: 3 images" in capsys.readouterr().out
    manifest = cat.Catalog(w.st).load_manifest(w.client.call(w.client.registry.GetDataset, registry_pb2.GetDatasetRequest(dataset_id="cli-gen")))
    assert set(manifest["generated_background"]) == {"grass"} and set(manifest["label"]) == {0}
    assert _cli(w, "generate", "--dataset", "world", "--name", "cli-bad", "--strategy", "class-only", "--classes", "unicorn") == 1
    assert "'unicorn' is not a class" in capsys.readouterr().err
    gen = w.client.embed(dataset_id="cli-gen", model_id=MODEL)
    before = {v.version for v in w.client.call(w.client.registry.GetModel, registry_pb2.GetModelRequest(model_id=MODEL)).versions}
    rc = _cli(
        w, "retrain", "--model", MODEL, "--version", "1", "--train", w.emb["train"].embedding_id, "--debug-train", gen.embedding_id,
        "--eval", f"test={w.emb['test'].embedding_id}", "--epochs", "5", "--dry-run",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "dry run: nothing published" in out and f"test             n={w.emb['test'].num_rows:5d}" in out, out
    after = {v.version for v in w.client.call(w.client.registry.GetModel, registry_pb2.GetModelRequest(model_id=MODEL)).versions}
    assert after == before
    assert _cli(w, "retrain", "--model", MODEL, "--train", "x", "--debug-train", "y", "--eval", "nameless") == 1
    assert "NAME=EMBEDDING" in capsys.readouterr().err


def test_repair_protocol_end_to_end_through_the_cli(w, tmp_path, capsys):
    """debug split -> describe -> generate per strategy -> embed -> retrain -> Table 2 -> publish ->
    verify, with equal budgets; the published head answers in Triton as the retraining measured."""
    import json

    out = tmp_path / "repair.json"
    rc = _cli(
        w, "repair", "--dataset", "world", "--model", MODEL, "--clip", "world-clip", "--strategies", "failure-backgrounds", "class-only",
        "--images-per-class", "6", "--epochs", "40", "--json", str(out),
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0, printed
    rep = json.loads(out.read_text())
    rows = {r["strategy"]: r for r in rep["strategies"]}
    assert list(rows) == ["failure_backgrounds", "class_only"]
    assert rows["failure_backgrounds"]["num_images"] == rows["class_only"]["num_images"] > 0  # equal budgets
    assert rows["class_only"]["version"] == 0 and rep["published"]["strategy"] == "failure_backgrounds"
    # the debug_seed / debug_heldout rows are failures of version 1; test is version 1's accuracy
    assert rep["before"]["debug_seed"] == 0.0 and rep["before"]["debug_heldout"] == 0.0
    assert rep["before"]["test"] == pytest.approx(w.emb["test"].accuracy, abs=1e-9)
    version = rep["published"]["version"]
    model = w.client.call(w.client.registry.GetModel, registry_pb2.GetModelRequest(model_id=MODEL))
    lineage = next(v for v in model.versions if v.version == version)
    assert lineage.parent_version == 1 and lineage.debug_train_embedding_id.startswith(rows["failure_backgrounds"]["dataset_id"])
    # Triton serves the new version: its test accuracy is the one the retraining measured on features
    served = w.client.embed(dataset_id="world", model_id=MODEL, splits=["test"], model_version=version, embedding_id="served-after")
    assert served.model_version == version
    assert served.accuracy == pytest.approx(rep["published"]["accuracy"]["test"], abs=1e-9)
    # per planted slice, before and after, from the new version's Triton outputs
    assert rep["slices"] and all(s["n"] > 0 for s in rep["slices"])
    planted = w.st.get_parquet(w.st.key_from_uri(w.ds.manifest.uri)).to_pandas()
    names = {n for x in planted["planted_slice"].fillna("") for n in str(x).split(";") if n}
    assert {s["slice"] for s in rep["slices"]} <= names
    assert "published as version" in printed and "planted slices on test" in printed
    # the debug_heldout failures were never seen by the description (directions fitted without them)
    split = w.client.split_debug_set(prediction_embedding_id=w.client.call(
        w.client.embedding.GetEmbedding, embedding_pb2.GetEmbeddingRequest(embedding_id=f"world--{MODEL}--val")).embedding_id,
        name=f"{MODEL}--val--debug", seed=0)  # fmt: skip
    held = set(w.st.get_npy(w.st.key_from_uri(split.debug_heldout_rows.uri)).tolist())
    view = w.client.call(w.client.embedding.GetEmbedding, embedding_pb2.GetEmbeddingRequest(embedding_id=f"{MODEL}--val--seed-view"))
    assert held and not held & set(w.st.get_npy(w.st.key_from_uri(view.rows.uri)).tolist())
