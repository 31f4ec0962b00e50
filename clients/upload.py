"""Put a local dataset or model file into the artifact store so that it can be registered.

Large data never travels in gRPC messages: the client writes images, manifests and ONNX files to
the store (MinIO/S3 or the embedded local store) and registers them by URI.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from failurelens.data.manifest import load_class_names, load_manifest, manifest_from_directory
from failurelens.store.base import ArtifactStore
from failurelens.v1 import registry_pb2

_CLASS_FILES = ("classes.txt", "class_names.json", "class_names.txt")


def upload_dataset(
    store: ArtifactStore,
    path: str | os.PathLike[str],
    name: str,
    class_names: list[str] | None = None,
    on_file: Callable[[int, int], None] | None = None,
) -> tuple[str, list[str]]:
    """Upload a dataset folder or a local manifest with its images; returns (manifest_uri, class_names).

    ``path`` is a folder (``manifest.csv|parquet`` + ``classes.txt``, or ``split/class/*.png``) or
    a manifest file whose relative ``uri`` values are image paths relative to it. URIs that
    already name objects (``s3://``, ``file://``) are kept as they are.
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
    prefix = f"uploads/datasets/{name}/"
    local = [u for u in df["uri"].astype(str) if "://" not in u]
    total = len(local)
    done = 0
    uris = []
    for u in df["uri"].astype(str):
        if "://" in u:
            uris.append(u)
            continue
        src = (base / u).resolve()
        rel = os.path.relpath(src, base.resolve()).replace(os.sep, "/")
        key = prefix + ("images/" + rel if not rel.startswith("..") else "images/" + src.name)
        with open(src, "rb") as f:
            store.put_stream(key, f, os.path.getsize(src), "image/" + ("png" if src.suffix.lower() == ".png" else "jpeg"))
        uris.append(store.uri(key))
        done += 1
        if on_file is not None:
            on_file(done, total)
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


#: the model kinds by their CLI / manifest names
MODEL_KINDS = {
    "classifier": registry_pb2.MODEL_KIND_CLASSIFIER,
    "feature_extractor": registry_pb2.MODEL_KIND_FEATURE_EXTRACTOR,
    "image_text": registry_pb2.MODEL_KIND_IMAGE_TEXT,
}


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
    """Register a dataset from a local folder or manifest (uploaded first) or from a manifest URI
    already in the store; ``fields`` are further RegisterDatasetRequest fields."""
    if "://" in path:
        manifest_uri, names = path, class_names or []
    else:
        manifest_uri, names = upload_dataset(store, path, name, class_names, on_file=on_file)
    return client.register_dataset(on_progress=on_progress, name=name, manifest_uri=manifest_uri, class_names=names, **fields)


def upload_and_register_model(
    client: Any, store: ArtifactStore, onnx: str, name: str, kind: str, text_onnx: str = "", **fields: Any
) -> registry_pb2.Model:
    """Register an ONNX model (and, for image-text models, its text encoder) from local files
    (uploaded first) or URIs already in the store; ``fields`` are further RegisterModelRequest fields."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; use one of {sorted(MODEL_KINDS)}")
    onnx_uri = onnx if "://" in onnx else upload_file(store, onnx, f"uploads/models/{name}/model.onnx")
    text_uri = text_onnx if not text_onnx or "://" in text_onnx else upload_file(store, text_onnx, f"uploads/models/{name}/text.onnx")
    return client.register_model(name=name, kind=MODEL_KINDS[kind], onnx_uri=onnx_uri, text_onnx_uri=text_uri, **fields)
