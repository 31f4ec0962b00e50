"""Loading and aligning stored embedding sets for the analysis services (discovery, captioning).

Analyses combine several embedding sets of one dataset (robust features, CLIP embeddings, the
inspected model's predictions). They are matched on manifest rows, checked, and large matrices
are copied into a local ``.npy`` file that the library reads through a memory map.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np

from failurelens import catalog as cat
from failurelens import errors
from failurelens.discovery.metrics import max_softmax
from failurelens.v1 import common_pb2, embedding_pb2, registry_pb2


@dataclasses.dataclass
class Outcomes:
    """An inspected classifier's predictions over a dataset's rows."""

    embedding: embedding_pb2.EmbeddingSet
    rows: np.ndarray  # int64 manifest rows
    labels: np.ndarray
    predictions: np.ndarray
    confidences: np.ndarray  # max softmax probability

    @property
    def wrong(self) -> np.ndarray:
        return self.predictions != self.labels

    def take(self, idx: np.ndarray) -> Outcomes:
        return Outcomes(self.embedding, self.rows[idx], self.labels[idx], self.predictions[idx], self.confidences[idx])


def load_outcomes(catalog: cat.Catalog, embedding_id: str, field: str) -> Outcomes:
    emb = catalog.embedding(embedding_id, field)
    if not emb.predictions.uri:
        raise errors.FailedPrecondition(
            f"{field}: embedding set {embedding_id!r} has no predictions; give the embedding set of a CLASSIFIER model",
            type="EMBEDDING",
            subject=embedding_id,
        )
    conf = max_softmax(catalog.load_array(emb.logits))
    return Outcomes(emb, catalog.load_array(emb.rows), catalog.load_array(emb.labels), catalog.load_array(emb.predictions), conf)


def array_ref(emb: embedding_pb2.EmbeddingSet, name: str, field: str, what: str) -> common_pb2.ArtifactRef:
    ref = getattr(emb, name)
    if not ref.uri:
        raise errors.FailedPrecondition(
            f"{field}: embedding set {emb.embedding_id!r} has no {name}; give the embedding set of {what}", type="EMBEDDING", subject=emb.embedding_id
        )
    return ref


def same_dataset(a: embedding_pb2.EmbeddingSet, b: embedding_pb2.EmbeddingSet) -> None:
    if a.dataset_id != b.dataset_id:
        raise errors.FailedPrecondition(
            f"embedding sets {a.embedding_id!r} (dataset {a.dataset_id!r}) and {b.embedding_id!r} (dataset {b.dataset_id!r}) are of different datasets",
            type="EMBEDDING",
            subject=b.embedding_id,
        )


def align(rows_a: np.ndarray, rows_b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``rows_a`` and ``rows_b`` of the manifest rows both hold (in row order)."""
    common, ia, ib = np.intersect1d(rows_a, rows_b, assume_unique=True, return_indices=True)
    if len(common) == 0:
        raise errors.FailedPrecondition(
            f"{what}: the embedding sets share no dataset rows; embed the same splits with both models", type="EMBEDDING", subject=what
        )
    return ia, ib


def local_matrix(
    catalog: cat.Catalog,
    ref: common_pb2.ArtifactRef,
    directory: str,
    name: str,
    take: np.ndarray | None = None,
    chunk_rows: int = 65536,
    num_rows: int | None = None,
) -> str:
    """Path of a local ``.npy`` with the stored matrix (rows ``take`` only, when given), copied in
    chunks so it is never fully in memory. ``num_rows``: the rows its embedding set records (a
    matrix of another length is misaligned with them)."""
    path = os.path.join(directory, name + ".npy")
    with catalog.open(ref) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst, 8 * 2**20)
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if arr.ndim != 2:
        raise errors.FailedPrecondition(f"expected a 2-d matrix, found shape {arr.shape}", type="ARTIFACT", subject=ref.uri)
    if num_rows is not None and arr.shape[0] != num_rows:
        raise errors.FailedPrecondition(
            f"{name} has {arr.shape[0]} rows but its embedding set records {num_rows}: the stored arrays are misaligned; embed the dataset again",
            type="ARTIFACT",
            subject=ref.uri,
        )
    if take is None or (len(take) == arr.shape[0] and np.array_equal(take, np.arange(arr.shape[0]))):
        del arr
        return path
    out_path = os.path.join(directory, name + ".aligned.npy")
    out = np.lib.format.open_memmap(out_path, mode="w+", dtype=arr.dtype, shape=(len(take), arr.shape[1]))
    for s in range(0, len(take), chunk_rows):
        out[s : s + chunk_rows] = arr[take[s : s + chunk_rows]]
    out.flush()
    del out, arr
    os.remove(path)
    return out_path


def check_classes(classes: list[int], num_classes: int, field: str = "classes") -> list[int] | None:
    bad = [c for c in classes if c < 0 or c >= num_classes]
    if bad:
        raise errors.InvalidArgument.about(field, f"unknown class index(es) {bad}; the dataset has classes 0..{num_classes - 1}")
    return sorted(set(classes)) or None


def model_of_kind(catalog: cat.Catalog, model_id: str, kind: int, field: str, what: str) -> registry_pb2.Model:
    model = catalog.model(model_id, field)
    if model.kind != kind:
        raise errors.FailedPrecondition(f"{field}: model {model_id!r} is not {what}", type="MODEL", subject=model_id)
    return model
