"""End to end over real gRPC on loopback: the local stack (real tritonserver + every service)
with a real S3-protocol server as the artifact store. Registers datasets and models, embeds,
reads artifacts back and compares Triton's numbers with in-process onnxruntime; then feeds it bad
input and checks each answer's status, message and that nothing half-written is left behind."""

from __future__ import annotations

import io
import os
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch
from PIL import Image

from failurelens.clients import FailureLensClient, FailureLensError, unpack_details, upload_dataset, upload_file
from failurelens.data.images import Preprocessing, preprocess, read_image
from failurelens.stack import Stack, check_health
from failurelens.store import open_store
from failurelens.topology import NAMES as SERVICES
from failurelens.v1 import common_pb2, embedding_pb2, registry_pb2
from tests._fixtures.s3server import s3_server
from tests._fixtures.shapes import CLASSES, MEAN, STD, export_onnx, train_tiny_classifier, write_dataset

pytestmark = [pytest.mark.slow, pytest.mark.triton]
PP = common_pb2.Preprocessing(input_height=64, input_width=64, mean=MEAN, std=STD)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small shapes dataset (plus bad images), a tiny trained CNN as ONNX, and the running stack on S3."""
    tmp = tmp_path_factory.mktemp("stack")
    root = write_dataset(tmp / "shapes", {"train": 100, "val": 12})
    model = train_tiny_classifier(root)
    onnx_path = export_onnx(model, tmp / "tiny.onnx")
    with s3_server() as (endpoint, ak, sk):
        env = {"FAILURELENS_S3_ACCESS_KEY": ak, "FAILURELENS_S3_SECRET_KEY": sk}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        store_uri = f"s3://failurelens?endpoint={endpoint}&secure=false"
        stack = Stack(tmp / "state", store=store_uri, extra_env=env).start()
        try:
            client = FailureLensClient(stack.addresses())
            yield {
                "tmp": tmp,
                "root": root,
                "onnx": onnx_path,
                "stack": stack,
                "client": client,
                "store": open_store(store_uri),
                "torch_model": model,
            }
            client.close()
        finally:
            stack.stop()
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _status(err: FailureLensError):
    return err.code, err.details_text, unpack_details(err.rich) if err.rich is not None else []


def _register_model(w, name: str, onnx_path: Path, **kw):
    uri = upload_file(w["store"], onnx_path, f"uploads/models/{name}/model.onnx")
    fields = dict(name=name, kind=registry_pb2.MODEL_KIND_CLASSIFIER, onnx_uri=uri, preprocessing=PP, dataset_id="shapes", overwrite=True)
    fields.update(kw)
    return w["client"].register_model(**fields)


def test_every_service_is_healthy(world):
    addrs = world["stack"].addresses()
    assert set(addrs) == set(SERVICES)
    for name, addr in addrs.items():
        assert check_health(addr) == 1, name


def test_register_embed_and_compare_with_onnxruntime(world):
    client, store = world["client"], world["store"]
    manifest_uri, names = upload_dataset(store, world["root"], "uploads/shapes/")
    progress = []
    ds = client.register_dataset(on_progress=progress.append, name="shapes", manifest_uri=manifest_uri, class_names=names, overwrite=True)
    assert ds.num_rows == 4 * 112 and dict(ds.split_counts) == {"train": 400, "val": 48}
    assert list(ds.class_names) == sorted(CLASSES) and progress and progress[-1].stage == "write"
    model = _register_model(world, "tiny", world["onnx"])
    assert model.num_classes == 4 and model.feature_dim == 64 and list(model.triton_models) == ["tiny"]
    res = client.embed(dataset_id="shapes", model_id="tiny", splits=["val"], batch_size=16)
    assert res.num_rows == 48 and res.skipped_rows.total == 0
    assert res.features.uri.startswith("s3://failurelens/embeddings/shapes--tiny--val/")
    assert list(res.features.shape) == [48, 64] and list(res.logits.shape) == [48, 4]
    feats = store.get_npy(store.key_from_uri(res.features.uri))
    logits = store.get_npy(store.key_from_uri(res.logits.uri))
    rows = store.get_npy(store.key_from_uri(res.rows.uri))
    preds = store.get_npy(store.key_from_uri(res.predictions.uri))
    labels = store.get_npy(store.key_from_uri(res.labels.uri))
    manifest = store.get_parquet(store.key_from_uri(ds.manifest.uri)).to_pandas()
    assert (manifest.split.to_numpy()[rows] == "val").all()
    assert (labels == manifest.label.to_numpy()[rows]).all()
    # the same images through in-process onnxruntime
    pp = Preprocessing(input_size=(64, 64), mean=MEAN, std=STD)
    x = preprocess([read_image(store, store.key_from_uri(u)) for u in manifest.uri.to_numpy()[rows]], pp)
    sess = ort.InferenceSession(str(world["onnx"]), providers=["CPUExecutionProvider"])
    ref_logits, ref_feats = sess.run(["logits", "features"], {"images": x})
    diff = max(float(np.abs(ref_logits - logits).max()), float(np.abs(ref_feats - feats).max()))
    print(f"\nmax abs diff Triton vs in-process onnxruntime (48 images, logits+features): {diff:.3g}")
    assert diff < 1e-4
    assert (preds == ref_logits.argmax(1)).all()
    assert res.accuracy == pytest.approx(float((preds == labels).mean()))
    assert res.accuracy > 0.6, "labels and predictions disagree: class order mixed up between dataset and model?"
    # and torch agrees with both (the export is faithful)
    with torch.no_grad():
        t_logits, _ = world["torch_model"](torch.from_numpy(x))
    assert float(np.abs(t_logits.numpy() - logits).max()) < 1e-4
    got = client.call(client.embedding.GetEmbedding, embedding_pb2.GetEmbeddingRequest(embedding_id=res.embedding_id))
    assert got.features.uri == res.features.uri
    # an existing embedding set is not overwritten by accident
    with pytest.raises(FailureLensError) as ei:
        client.embed(dataset_id="shapes", model_id="tiny", splits=["val"])
    assert ei.value.code == grpc.StatusCode.ALREADY_EXISTS and "overwrite" in ei.value.details_text


def _bad_images(tmp: Path) -> dict[str, bytes]:
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(good, "PNG")
    png = good.getvalue()
    big = io.BytesIO()
    Image.new("1", (7072, 7072)).save(big, "PNG")  # 50 MP, compresses to a few KB
    return {"corrupt.png": b"this is not an image at all", "truncated.png": png[: len(png) // 2], "huge.png": big.getvalue(), "good.png": png}


def _upload_bad_dataset(w, name: str, rows: list[tuple[str, int, str]]) -> str:
    store = w["store"]
    imgs = _bad_images(w["tmp"])
    for fname, data in imgs.items():
        store.put_bytes(f"uploads/{name}/{fname}", data)
    df = pd.DataFrame(rows, columns=["uri", "label", "split"])
    buf = io.BytesIO()
    df.to_csv(buf, index=False)
    store.put_bytes(f"uploads/{name}/manifest.csv", buf.getvalue())
    return store.uri(f"uploads/{name}/manifest.csv")


def test_corrupt_truncated_and_huge_images_are_reported_by_row(world):
    client, store = world["client"], world["store"]
    rows = [("good.png", 0, "val"), ("corrupt.png", 1, "val"), ("truncated.png", 2, "val"), ("huge.png", 3, "val")]
    uri = _upload_bad_dataset(world, "bad", rows)
    with pytest.raises(FailureLensError) as ei:
        client.register_dataset(name="bad", manifest_uri=uri, class_names=CLASSES, corrupt_image_policy=common_pb2.CORRUPT_IMAGE_POLICY_FAIL)
    code, msg, details = _status(ei.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "3 of 4 images are unreadable" in msg and "SKIP_AND_REPORT" in msg
    row_errors = [d for d in details if isinstance(d, common_pb2.RowErrors)][0]
    reasons = {r.row: r.reason for r in row_errors.rows}
    assert set(reasons) == {1, 2, 3}
    assert "truncated" in reasons[2].lower()
    assert "50 MP" in reasons[3] and "40 MP" in reasons[3]
    assert not list(store.list("datasets/bad/")), "a failed registration left objects behind"
    ds = client.register_dataset(name="bad", manifest_uri=uri, class_names=CLASSES)  # SKIP_AND_REPORT
    assert ds.num_rows == 1 and ds.unreadable_rows.total == 3
    assert sorted(r.row for r in ds.unreadable_rows.rows) == [1, 2, 3]
    table = store.get_parquet(store.key_from_uri(ds.unreadable.uri)).to_pandas()
    assert sorted(table.row) == [1, 2, 3]


def test_embed_reports_or_fails_on_images_that_went_bad(world):
    client = world["client"]
    rows = [("good.png", 0, "val"), ("corrupt.png", 1, "val"), ("good.png", 2, "val")]
    uri = _upload_bad_dataset(world, "unverified", rows[:1] + rows[1:2] + [("truncated.png", 2, "val")])
    client.register_dataset(name="unverified", manifest_uri=uri, class_names=CLASSES, verify_images=False, overwrite=True)
    _register_model(world, "tiny2", world["onnx"], dataset_id="unverified")
    res = client.embed(dataset_id="unverified", model_id="tiny2", corrupt_image_policy=common_pb2.CORRUPT_IMAGE_POLICY_SKIP_AND_REPORT)
    assert res.num_rows == 1 and res.skipped_rows.total == 2 and {r.row for r in res.skipped_rows.rows} == {1, 2}
    with pytest.raises(FailureLensError) as ei:
        client.embed(dataset_id="unverified", model_id="tiny2", embedding_id="failing", corrupt_image_policy=common_pb2.CORRUPT_IMAGE_POLICY_FAIL)
    code, msg, details = _status(ei.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "manifest row 1" in msg and "SKIP_AND_REPORT" in msg
    assert not list(world["store"].list("embeddings/failing/"))


def test_manifest_with_unknown_label_names_the_row(world):
    uri = _upload_bad_dataset(world, "labels", [("good.png", "circle", "val"), ("good.png", "hexagon", "val")])
    with pytest.raises(FailureLensError) as ei:
        world["client"].register_dataset(name="labels", manifest_uri=uri, class_names=CLASSES)
    code, msg, details = _status(ei.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "hexagon" in msg and "row 1" in msg
    assert any(isinstance(d, common_pb2.RowErrors) and d.rows[0].row == 1 for d in details)
    assert not list(world["store"].list("datasets/labels/"))


def test_keys_with_dotdot_are_refused(world):
    uri = _upload_bad_dataset(world, "escape", [("../../secrets/x.png", 0, "val")])
    with pytest.raises(FailureLensError) as ei:
        world["client"].register_dataset(name="escape", manifest_uri=uri, class_names=CLASSES)
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT and "'..'" in ei.value.details_text
    with pytest.raises(FailureLensError) as ei:
        world["client"].register_dataset(name="escape", manifest_uri="s3://failurelens/uploads/../x.csv", class_names=CLASSES)
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT and "manifest_uri" in ei.value.details_text
    with pytest.raises(FailureLensError) as ei:
        world["client"].register_dataset(name="../escape", manifest_uri=uri, class_names=CLASSES)
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT and "name" in ei.value.details_text


def _export(module, path: Path, input_shape, output_names):
    with torch.no_grad():
        torch.onnx.export(
            module,
            (torch.zeros(*input_shape),),
            str(path),
            input_names=["images"],
            output_names=output_names,
            dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in output_names}},
            opset_version=17,
            dynamo=False,
        )
    return path


def test_onnx_without_features_or_with_wrong_input_is_refused(world, tmp_path):
    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3 * 64 * 64, 4)

        def forward(self, x):
            return self.fc(x.flatten(1))

    class Gray(torch.nn.Module):
        def forward(self, x):
            f = x.mean(dim=(2, 3)).repeat(1, 8)
            return f[:, :4], f

    repo = world["stack"].repo_dir
    p = _export(LogitsOnly(), tmp_path / "logits_only.onnx", (2, 3, 64, 64), ["logits"])
    with pytest.raises(FailureLensError) as ei:
        _register_model(world, "nofeatures", p)
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT and "features" in ei.value.details_text and "re-export" in ei.value.details_text
    p = _export(Gray(), tmp_path / "gray.onnx", (2, 1, 64, 64), ["logits", "features"])
    with pytest.raises(FailureLensError) as ei:
        _register_model(world, "grayinput", p)
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT and "3" in ei.value.details_text
    for name in ("nofeatures", "grayinput"):
        assert not (repo / name).exists() and not list(world["store"].list(f"models/{name}/"))
    with pytest.raises(FailureLensError) as ei:  # class count mismatch with the dataset
        _register_model(world, "wrongclasses", world["onnx"], dataset_id="", class_names=["a", "b"])
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_ids_and_oversized_messages(world):
    client = world["client"]
    with pytest.raises(FailureLensError) as ei:
        client.embed(dataset_id="nope", model_id="tiny")
    assert ei.value.code == grpc.StatusCode.NOT_FOUND and "dataset 'nope' not found" in ei.value.details_text
    with pytest.raises(FailureLensError) as ei:
        client.embed_texts("tiny", ["x" * 1000] * 5000)  # ~5 MB > the 4 MiB receive limit
    assert ei.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(FailureLensError) as ei:
        client.embed_texts("tiny", ["a photo"])
    assert ei.value.code == grpc.StatusCode.FAILED_PRECONDITION and "IMAGE_TEXT" in ei.value.details_text
