"""The committed benchmark-world models: they load, reproduce their reported figures on the
regenerated world, match their torch weights, and Triton (through the embedding service) returns
the same numbers as onnxruntime in-process."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from failurelens.data.images import preprocess
from failurelens.data.onnx_models import inspect_onnx, validate_classifier, validate_feature_extractor, validate_image_encoder, validate_text_encoder
from failurelens.data.tokenizer import ClipTokenizer
from failurelens.models.world_models import MANIFEST_NAME, build_net, evaluate_committed, load_images, load_weights, preprocessing
from failurelens.world.config import default_config
from failurelens.world.generate import generate_world, load_world

ROOT = Path(__file__).resolve().parents[1]
REPO = ROOT / "triton_models"
MANIFEST = json.loads((REPO / MANIFEST_NAME).read_text())
MODELS = MANIFEST["models"]
pytestmark = pytest.mark.slow
#: a floor under the repairable classifiers' feature probe on balanced (chance 1/12)
REPAIRABLE_MIN_PROBE = 0.4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_world(default_config(), out, workers=2)
    return out


def test_committed_manifest_describes_every_model():
    kinds = {e["kind"] for e in MODELS.values()}
    assert kinds == {"classifier", "feature_extractor", "image_text"}
    for role in ("discovery", "repairable"):
        classifiers = [e for e in MODELS.values() if e["kind"] == "classifier" and e.get("role", "discovery") == role]
        assert len(classifiers) >= 3 and len({e["family"] for e in classifiers}) >= 2, role
    assert MANIFEST["world"]["config"] == default_config().to_dict(), "weights were trained on another world; retrain"
    for e in MODELS.values():
        for key in ("onnx", "text_onnx"):
            if key in e:
                sig = inspect_onnx((REPO / e[key]).read_bytes())
                {
                    "classifier": lambda s: validate_classifier(s, len(e["class_names"])),
                    "feature_extractor": validate_feature_extractor,
                    "image_text": validate_image_encoder if key == "onnx" else validate_text_encoder,
                }[e["kind"]](sig)
                folder = (REPO / e[key]).parents[1]
                assert (folder / "config.pbtxt").exists() and (folder / "configs" / "onnxruntime.pbtxt").exists()


def test_committed_models_reproduce_reported_figures_within_one_point(world):
    got = evaluate_committed(world, REPO, log=lambda s: None)
    for name, e in MODELS.items():
        rep, now = e["metrics"], got[name]
        if e["kind"] == "classifier":
            for s in ("train", "val", "test", "balanced"):
                assert abs(now[f"{s}_accuracy"] - rep[f"{s}_accuracy"]) <= 0.01, (name, s)
            assert abs(now["feature_probe_accuracy"] - rep["feature_probe_accuracy"]) <= 0.01, name
            for a, b in zip(now["slices"], rep["slices"]):
                assert a["slice"] == b["slice"] and abs(a["accuracy"] - b["accuracy"]) <= 0.01 and abs(a["gap_pts"] - b["gap_pts"]) <= 1.0
            assert now["min_rare_slice_gap_pts"] >= 20, f"{name} did not learn the planted shortcuts"
            if e.get("role") == "repairable":  # its features know the objects far better than the discovery models' (~0.1)
                assert now["feature_probe_accuracy"] >= REPAIRABLE_MIN_PROBE, name
        elif e["kind"] == "feature_extractor":
            for head, acc in rep.items():
                assert abs(now[head]["clean"] - acc["clean"]) <= 0.01 and abs(now[head]["adversarial"] - acc["adversarial"]) <= 0.01, (name, head)
        else:
            for attr, acc in rep["zero_shot_accuracy"].items():
                assert abs(now["zero_shot_accuracy"][attr] - acc) <= 0.01, (name, attr)


def test_onnx_matches_the_committed_torch_weights(world):
    w = load_world(world)
    x, _ = load_images(w, "val")
    x = x[:64]
    xs = preprocess([Image.fromarray(a) for a in x], preprocessing())
    for name, e in MODELS.items():
        net = load_weights(build_net(name, e, w.config), (REPO / e["onnx"]).parents[1])
        sess = ort.InferenceSession(str(REPO / e["onnx"]), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            if e["kind"] == "image_text":
                ref = {"embeddings": net.encode_image(torch.from_numpy(xs)).numpy()}
                ids = ClipTokenizer(e["context_length"]).encode(list(w.split("val")["caption"][:16]))
                tsess = ort.InferenceSession(str(REPO / e["text_onnx"]), providers=["CPUExecutionProvider"])
                t_ref = net.encode_text(torch.from_numpy(ids)).numpy()
                assert np.abs(tsess.run(["embeddings"], {"input_ids": ids})[0] - t_ref).max() < 1e-4
            else:
                out = net(torch.from_numpy(xs))
                names = ["logits", "features"] if e["kind"] == "classifier" else ["features", "feature_map"]
                ref = dict(zip(names, (o.numpy() for o in out)))
        got = dict(zip(ref, sess.run(list(ref), {"images": xs})))
        for k in ref:
            assert np.abs(got[k] - ref[k]).max() < 1e-4, (name, k)


@pytest.mark.triton
def test_triton_and_the_embedding_service_return_the_same_numbers(tmp_path):
    """Every committed model registered into the real stack, embedded through Triton, compared
    with onnxruntime in-process on the same images (and texts)."""
    from failurelens.clients import FailureLensClient
    from failurelens.clients.main_job import register_world, register_world_models
    from failurelens.stack import Stack
    from failurelens.store import open_store

    small = default_config().with_splits({"test": 96})
    world_dir = tmp_path / "world"
    generate_world(small, world_dir)
    w = load_world(world_dir)
    with Stack(tmp_path / "state") as stack:
        client = FailureLensClient(stack.addresses())
        st = open_store(stack.store)
        ds = register_world(client, st, world_dir)
        assert ds.num_rows == 96 and {"background", "color", "caption", "planted_slice"} <= set(ds.metadata_columns)
        models = register_world_models(client, st, REPO)
        assert set(models) == set(MODELS)
        manifest = st.get_parquet(st.key_from_uri(ds.manifest.uri)).to_pandas()
        for name, e in MODELS.items():
            r = client.embed(dataset_id=ds.dataset_id, model_id=name)
            rows = st.get_npy(st.key_from_uri(r.rows.uri))
            x = np.stack(
                [
                    np.asarray(Image.open(world_dir / re.split(r"/datasets/world/[^/]+/images/", u, maxsplit=1)[1]).convert("RGB"))
                    for u in manifest.uri[rows]
                ]
            )
            xs = preprocess([Image.fromarray(a) for a in x], preprocessing())
            sess = ort.InferenceSession(str(REPO / e["onnx"]), providers=["CPUExecutionProvider"])
            fields = {
                "classifier": {"logits": "logits", "features": "features"},
                "feature_extractor": {"features": "features"},
                "image_text": {"embeddings": "image_embeddings"},
            }[e["kind"]]
            ref = dict(zip(fields, sess.run(list(fields), {"images": xs})))
            for out, field in fields.items():
                got = st.get_npy(st.key_from_uri(getattr(r, field).uri))
                assert got.shape == ref[out].shape and np.abs(got - ref[out]).max() < 1e-4, (name, out)
            if e["kind"] == "image_text":
                texts = list(w.split("test")["caption"])  # more than the model's max batch (64): chunked by the service
                t = client.embed_texts(name, texts)
                ids = ClipTokenizer(e["context_length"]).encode(texts)
                tref = ort.InferenceSession(str(REPO / e["text_onnx"]), providers=["CPUExecutionProvider"]).run(["embeddings"], {"input_ids": ids})[0]
                assert np.abs(st.get_npy(st.key_from_uri(t.embeddings.uri)) - tref).max() < 1e-4
        client.close()
