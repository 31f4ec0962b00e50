"""Register local datasets and models: upload to a staging prefix of the store, then register.

Large data never travels in gRPC messages: the client writes images, manifests and ONNX files to
the store (MinIO/S3 or the embedded local store) and registers them by URI. Each call stages its
uploads under a prefix of its own (``uploads/<name>-<random>/``), so no call can overwrite what
another uploaded; the registry copies what it registers into the entity's own version, and the
staging prefix is removed when the call ends, whether it succeeded or not. The name is checked
(valid, and free unless ``overwrite``) and the caller authenticated before anything is written.
Local manifests follow the server's path rules: a row names a file inside the manifest's folder
(relative, no ``..``, no link leading out), never anything else on the machine.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

from failurelens import catalog
from failurelens.data.manifest import load_class_names, load_manifest, manifest_from_directory
from failurelens.errors import InvalidArgument, Violation
from failurelens.store.base import ArtifactStore, InvalidKeyError, validate_key
from failurelens.v1 import registry_pb2
from failurelens.workflow.calls import FailureLensError

_CLASS_FILES = ("classes.txt", "class_names.json", "class_names.txt")

#: the model kinds by their CLI / manifest names
MODEL_KINDS = {
    "classifier": registry_pb2.MODEL_KIND_CLASSIFIER,
    "feature_extractor": registry_pb2.MODEL_KIND_FEATURE_EXTRACTOR,
    "image_text": registry_pb2.MODEL_KIND_IMAGE_TEXT,
}


def _local_file(base: Path, row: int, uri: str) -> Path:
    """The file a manifest row names, if it lies inside ``base`` (the server's key rules)."""
    try:
        validate_key(uri)
    except InvalidKeyError as exc:
        raise InvalidArgument(f"manifest row {row}: {exc}", [Violation("manifest.uri", str(exc), row=row, uri=uri)]) from None
    src = (base / uri).resolve()
    if not src.is_relative_to(base.resolve()):
        msg = f"{uri!r} leads outside the manifest's folder {base} (through a link); only files inside it can be uploaded"
        raise InvalidArgument(f"manifest row {row}: {msg}", [Violation("manifest.uri", msg, row=row, uri=uri)])
    return src


def upload_dataset(
    store: ArtifactStore,
    path: str | os.PathLike[str],
    prefix: str,
    class_names: list[str] | None = None,
    on_file: Callable[[int, int], None] | None = None,
) -> tuple[str, list[str]]:
    """Upload a dataset folder or a local manifest with its images under ``prefix`` (ending in
    '/'); returns (manifest_uri, class_names).

    ``path`` is a folder (``manifest.csv|parquet`` + ``classes.txt``, or ``split/class/*.png``) or
    a manifest file whose ``uri`` values are image paths relative to it. URIs that already name
    objects (``s3://``, ``file://``) are kept as they are. Every local row is checked before the
    first upload.
    """
    p = Path(path)
    if p.is_dir():
        df, names = manifest_from_directory(p)
        base = p
    elif p.is_file():
        df = load_manifest(p.read_bytes(), "parquet" if p.suffix == ".parquet" else "csv")
        base = p.parent
        names = class_names or []
        if not names:
            for cand in _CLASS_FILES:
                if (base / cand).exists():
                    names = load_class_names(base / cand)
                    break
        if not names:
            raise ValueError(f"no class names for {p}: put classes.txt beside it or pass --classes FILE")
    else:
        raise FileNotFoundError(f"{p} is neither a folder nor a manifest file")
    names = class_names or names
    rows = list(df["uri"].astype(str))
    files = {i: _local_file(base, i, u) for i, u in enumerate(rows) if "://" not in u}
    uris = list(rows)

    def put(batch: ArtifactStore, item: tuple[int, Path]) -> None:
        i, src = item
        key = prefix + "images/" + rows[i]
        with open(src, "rb") as f:
            batch.put_stream(key, f, os.path.getsize(src), "image/" + ("png" if src.suffix.lower() == ".png" else "jpeg"))
        uris[i] = store.uri(key)

    # as many at a time as the store takes (S3: several; a folder: one), synced as one batch
    with store.bulk() as batch, ThreadPoolExecutor(max_workers=store.write_concurrency) as pool:
        for done, _ in enumerate(pool.map(lambda item: put(batch, item), files.items()), start=1):
            if on_file is not None:
                on_file(done, len(files))
    df = df.copy()
    df["uri"] = uris
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    info = store.put_bytes(prefix + "manifest.parquet", buf.getvalue(), "application/vnd.apache.parquet")
    return store.uri(info.key), names


def upload_file(store: ArtifactStore, path: str | os.PathLike[str], key: str) -> str:
    p = Path(path)
    with open(p, "rb") as f:
        info = store.put_stream(key, f, p.stat().st_size)
    return store.uri(info.key)


@contextmanager
def staging(store: ArtifactStore, name: str) -> Iterator[str]:
    """A prefix of this call's own for uploads, removed when the call ends."""
    prefix = f"uploads/{name}-{uuid.uuid4().hex[:12]}/"
    try:
        yield prefix
    finally:
        store.delete_prefix(prefix)


def _check_name(get: Callable[[], Any], kind: str, name: str, overwrite: bool) -> None:
    """Before any upload: the caller is authenticated and the name is free (or overwrite)."""
    try:
        get()
    except FailureLensError as exc:
        if exc.code == grpc.StatusCode.NOT_FOUND:
            return
        raise
    if not overwrite:
        raise FailureLensError.local(
            grpc.StatusCode.ALREADY_EXISTS, f"{kind} {name!r} already exists; choose another name or set overwrite (nothing was uploaded)"
        )


def upload_and_register_dataset(
    client: Any,
    store: ArtifactStore,
    path: str,
    name: str,
    class_names: list[str] | None = None,
    on_file: Callable[[int, int], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
    **fields: Any,
) -> registry_pb2.Dataset:
    """Register a dataset from a local folder or manifest (uploaded to a staging prefix first) or
    from a manifest URI already in the store; ``fields`` are further RegisterDatasetRequest fields."""
    catalog.validate_id("dataset", name, "name")
    if "://" in path:
        return client.register_dataset(on_progress=on_progress, name=name, manifest_uri=path, class_names=class_names or [], **fields)
    _check_name(
        lambda: client.call(client.registry.GetDataset, registry_pb2.GetDatasetRequest(dataset_id=name)),
        "dataset",
        name,
        bool(fields.get("overwrite")),
    )
    with staging(store, f"dataset-{name}") as prefix:
        manifest_uri, names = upload_dataset(store, path, prefix, class_names, on_file=on_file)
        return client.register_dataset(  # images keep their paths under the dataset's own images/
            on_progress=on_progress, name=name, manifest_uri=manifest_uri, class_names=names, image_root_uri=store.uri(prefix + "images"), **fields
        )


def upload_and_register_model(
    client: Any, store: ArtifactStore, onnx: str, name: str, kind: str, text_onnx: str = "", **fields: Any
) -> registry_pb2.Model:
    """Register an ONNX model (and, for image-text models, its text encoder) from local files
    (uploaded to a staging prefix first) or URIs already in the store; ``fields`` are further
    RegisterModelRequest fields."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; use one of {sorted(MODEL_KINDS)}")
    catalog.validate_model_name(name, "name")
    _check_name(
        lambda: client.call(client.registry.GetModel, registry_pb2.GetModelRequest(model_id=name)), "model", name, bool(fields.get("overwrite"))
    )
    with staging(store, f"model-{name}") as prefix:
        onnx_uri = onnx if "://" in onnx else upload_file(store, onnx, prefix + "model.onnx")
        text_uri = text_onnx if not text_onnx or "://" in text_onnx else upload_file(store, text_onnx, prefix + "text.onnx")
        return client.register_model(name=name, kind=MODEL_KINDS[kind], onnx_uri=onnx_uri, text_onnx_uri=text_uri, **fields)
