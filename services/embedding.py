"""Embedding service: runs registered models over registered datasets through Triton.

Images are read from the store and decoded by a small thread pool while Triton runs the previous
batch; outputs are written to temporary ``.npy`` memmaps (so ImageNet-sized feature matrices
never sit in memory) and streamed into the store, aligned with the manifest rows.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
import pandas as pd

from failurelens import catalog as cat
from failurelens import errors
from failurelens.convert import preprocessing_from_proto, row_errors_pb
from failurelens.data import images as img
from failurelens.data.errors import ImageDecodeError, ValidationError, Violation
from failurelens.runtime import Binding, JobContext, ServiceContext, main
from failurelens.store import open_store
from failurelens.store.base import ArtifactStore, ObjectNotFoundError
from failurelens.triton.client import TritonClient
from failurelens.triton.texts import TextEncoder
from failurelens.v1 import common_pb2, embedding_pb2, embedding_pb2_grpc, registry_pb2

log = logging.getLogger(__name__)
MAX_TEXTS = 100_000


def _outputs_for(model: registry_pb2.Model, include_feature_map: bool) -> dict[str, str]:
    """Triton output name -> artifact name."""
    if model.kind == registry_pb2.MODEL_KIND_CLASSIFIER:
        return {"logits": "logits", "features": "features"}
    if model.kind == registry_pb2.MODEL_KIND_FEATURE_EXTRACTOR:
        out = {"features": "features"}
        if include_feature_map:
            if not model.has_feature_map:
                raise errors.FailedPrecondition(
                    f"model {model.model_id!r} has no feature_map output; embed without include_feature_map", type="MODEL", subject=model.model_id
                )
            out["feature_map"] = "feature_map"
        return out
    return {"embeddings": "image_embeddings"}


class _NpyWriter:
    """Rows appended to a temporary .npy memmap, then compacted (skipped rows out) and uploaded."""

    def __init__(self, tmpdir: str, name: str, n: int, row_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path = os.path.join(tmpdir, name + ".npy")
        self.arr = np.lib.format.open_memmap(self.path, mode="w+", dtype=dtype, shape=(n, *row_shape))

    def write(self, pos: np.ndarray, values: np.ndarray) -> None:
        self.arr[pos] = values

    def upload(self, version: cat.Version, name: str, keep: np.ndarray) -> common_pb2.ArtifactRef:
        if not keep.all():
            compact_path = self.path + ".compact.npy"
            out = np.lib.format.open_memmap(compact_path, mode="w+", dtype=self.arr.dtype, shape=(int(keep.sum()), *self.arr.shape[1:]))
            idx = np.flatnonzero(keep)
            for s in range(0, len(idx), 4096):
                out[s : s + 4096] = self.arr[idx[s : s + 4096]]
            out.flush()
            shape, dtype = out.shape, out.dtype
            del out
            path = compact_path
        else:
            self.arr.flush()
            shape, dtype, path = self.arr.shape, self.arr.dtype, self.path
        return version.file(name, path, cat.NPY, tuple(shape), str(dtype))


class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServicer):
    def __init__(self, ctx: ServiceContext, store: ArtifactStore | None = None, triton: TritonClient | None = None) -> None:
        self.ctx = ctx
        self.catalog = cat.Catalog(ctx.telemetry.watch_store(store or open_store(ctx.config.store or None)))
        self.store = self.catalog.store
        self.triton = ctx.telemetry.watch_triton(
            triton or TritonClient(ctx.config.triton_url, use_shared_memory=bool(ctx.config.triton_shared_memory), admin_key=ctx.config.triton_key)
        )
        self.texts = TextEncoder(self.triton)

    async def Embed(self, request: embedding_pb2.EmbedRequest, context: grpc.aio.ServicerContext):
        if request.batch_size < 0 or request.batch_size > 1024:
            raise errors.InvalidArgument.about("batch_size", f"batch_size {request.batch_size} must be between 1 and 1024 (0 = default 32)")
        dataset = self.catalog.dataset(request.dataset_id)
        model = self.catalog.model(request.model_id)
        model_version = cat.model_version(model, request.model_version if request.HasField("model_version") else None, "model_version")
        default_id = "--".join(
            [request.dataset_id, request.model_id + (f"--v{model_version}" if model_version > 1 else "")]
            + sorted(request.splits)
            + ([cat.derived_id("rows", request.rows_uri)] if request.rows_uri else [])
        )
        embedding_id = request.embedding_id or default_id
        cat.validate_id("embedding set", embedding_id, "embedding_id")
        self.catalog.ensure_free("embedding set", embedding_id, request.overwrite)
        async for update in self.ctx.jobs.stream(
            context,
            "Embed",
            lambda job: self._embed(request, dataset, model, model_version, embedding_id, job),
            lambda p: embedding_pb2.EmbedUpdate(progress=p),
            lambda r: embedding_pb2.EmbedUpdate(result=r),
            lambda r: r.embedding_id,
        ):
            yield update

    def _embed(
        self,
        request: embedding_pb2.EmbedRequest,
        dataset: registry_pb2.Dataset,
        model: registry_pb2.Model,
        model_version: int,
        embedding_id: str,
        job: JobContext,
    ) -> embedding_pb2.EmbeddingSet:
        store = self.store
        df = self.catalog.load_manifest(dataset)
        rows = np.arange(len(df), dtype=np.int64)
        if request.splits:
            unknown = sorted(set(request.splits) - set(dataset.split_counts))
            if unknown:
                raise errors.InvalidArgument.about(
                    "splits", f"dataset {dataset.dataset_id!r} has no split(s) {unknown}; it has {sorted(dataset.split_counts)}"
                )
            rows = rows[df["split"].isin(list(request.splits)).to_numpy()]
        if request.rows_uri:
            wanted = self.catalog.read_npy(request.rows_uri, "rows_uri", "give the URI of an int64 .npy of manifest rows")
            if wanted.ndim != 1 or wanted.dtype.kind not in "iu":
                raise errors.InvalidArgument.about("rows_uri", f"expected a 1-d integer array of manifest rows, found {wanted.dtype} {wanted.shape}")
            rows = rows[np.isin(rows, wanted)]
            if len(rows) == 0:
                raise errors.InvalidArgument.about("rows_uri", "none of these rows is in the dataset (within the splits asked for)")
        if model.kind == registry_pb2.MODEL_KIND_CLASSIFIER and model.num_classes != len(dataset.class_names):
            raise errors.FailedPrecondition(
                f"model {model.model_id!r} has {model.num_classes} classes but dataset {dataset.dataset_id!r} has {len(dataset.class_names)}",
                type="MODEL",
                subject=model.model_id,
            )
        pp = preprocessing_from_proto(model.preprocessing, None)
        outputs = _outputs_for(model, request.include_feature_map)
        triton_model = model.triton_models[0]
        triton_version = str(model_version) if model.versions else ""
        meta = self.triton.model_metadata(triton_model, triton_version)
        input_name = meta["inputs"][0]["name"]
        out_shapes = {o["name"]: tuple(int(d) for d in o["shape"][1:]) for o in meta["outputs"]}
        policy = request.corrupt_image_policy or common_pb2.CORRUPT_IMAGE_POLICY_SKIP_AND_REPORT
        bs = self.triton.max_batch_size(triton_model, request.batch_size or 32)
        uris = df["uri"].to_numpy()
        n = len(rows)
        keep = np.ones(n, dtype=bool)
        skipped: list[tuple[int, str, str]] = []

        def load(start: int) -> tuple[np.ndarray, list[int], list[tuple[int, str, str]]]:
            batch, ok, bad = [], [], []
            for i in range(start, min(n, start + bs)):
                row = int(rows[i])
                try:
                    batch.append(img.read_image(store, store.key_from_uri(uris[row])))
                    ok.append(i)
                except ImageDecodeError as exc:
                    bad.append((row, str(uris[row]), exc.reason))
                except ObjectNotFoundError:
                    bad.append((row, str(uris[row]), "image no longer in the store"))
            return (img.preprocess(batch, pp) if batch else np.zeros((0,)), ok, bad)

        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="fl-embed-") as tmp, ThreadPoolExecutor(max_workers=2) as pool:
            writers: dict[str, _NpyWriter] = {}
            for tname, aname in outputs.items():
                if tname not in out_shapes:
                    raise errors.FailedPrecondition(f"Triton model {triton_model!r} has no output {tname!r}", type="MODEL", subject=model.model_id)
                writers[tname] = _NpyWriter(tmp, aname, n, out_shapes[tname], np.dtype(np.float32))
            starts = list(range(0, n, bs))
            pending: Future[Any] | None = pool.submit(load, starts[0]) if starts else None
            for bi, start in enumerate(starts):
                job.check()
                assert pending is not None
                x, ok, bad = pending.result()
                pending = pool.submit(load, starts[bi + 1]) if bi + 1 < len(starts) else None
                if bad:
                    if policy == common_pb2.CORRUPT_IMAGE_POLICY_FAIL:
                        vs = [Violation("image", f"manifest row {r}: {reason}", row=r, uri=u) for r, u, reason in bad]
                        raise ValidationError(
                            f"image at manifest row {bad[0][0]} ({bad[0][1]}) is unreadable: {bad[0][2]}; fix or remove it, or embed with corrupt_image_policy=SKIP_AND_REPORT",
                            vs,
                        )
                    skipped.extend(bad)
                    for r, _, _ in bad:
                        keep[np.searchsorted(rows, r)] = False
                if ok:
                    res = self.triton.infer(triton_model, {input_name: x}, list(outputs), timeout_s=job.timeout(120.0), model_version=triton_version)
                    pos = np.asarray(ok)
                    for tname, w in writers.items():
                        w.write(pos, res[tname])
                    self.ctx.telemetry.images.labels("embedded", request.model_id).inc(len(ok))
                done = min(n, start + bs)
                job.progress("embed", done, n, f"{len(skipped)} skipped" if skipped else "")
            if n and not keep.any():
                raise ValidationError(
                    f"none of the {n} selected images could be read; first problem: {skipped[0][2]}",
                    [Violation("image", reason, row=r, uri=u) for r, u, reason in skipped],
                    violation_count=len(skipped),
                )
            elapsed = time.monotonic() - t0
            job.progress("write", 0, 1, "writing artifacts", force=True)
            kept_rows = rows[keep]
            labels = df["label"].to_numpy(dtype=np.int64)[kept_rows]
            with self.catalog.writing("embedding set", embedding_id, request.overwrite) as version:
                result = embedding_pb2.EmbeddingSet(
                    embedding_id=embedding_id,
                    dataset_id=dataset.dataset_id,
                    model_id=model.model_id,
                    model_version=model_version,
                    splits=list(request.splits),
                    num_rows=len(kept_rows),
                    images_per_second=(n - len(skipped)) / elapsed if elapsed > 0 else 0.0,
                )
                result.rows.CopyFrom(version.npy("rows.npy", kept_rows))
                result.labels.CopyFrom(version.npy("labels.npy", labels))
                for tname, w in writers.items():
                    getattr(result, outputs[tname]).CopyFrom(w.upload(version, outputs[tname] + ".npy", keep))
                if model.kind == registry_pb2.MODEL_KIND_CLASSIFIER:
                    logits = np.load(writers["logits"].path, mmap_mode="r")[keep]
                    preds = logits.argmax(axis=1).astype(np.int64)
                    result.predictions.CopyFrom(version.npy("predictions.npy", preds))
                    result.accuracy = float((preds == labels).mean()) if len(labels) else 0.0
                sk = pd.DataFrame(
                    {"row": [r for r, _, _ in skipped], "uri": [u for _, u, _ in skipped], "reason": [x for _, _, x in skipped]},
                    columns=["row", "uri", "reason"],
                ).astype({"row": "int64", "uri": "string", "reason": "string"})
                result.skipped.CopyFrom(version.parquet("skipped.parquet", sk))
                result.skipped_rows.CopyFrom(row_errors_pb(skipped))
                result.created_at.GetCurrentTime()
                version.commit(result)
                del writers
        job.progress("write", 1, 1, "done", force=True)
        return result

    async def EmbedTexts(self, request: embedding_pb2.EmbedTextsRequest, context: grpc.aio.ServicerContext) -> embedding_pb2.EmbedTextsResponse:
        model = self.catalog.model(request.model_id)
        if model.kind != registry_pb2.MODEL_KIND_IMAGE_TEXT:
            raise errors.FailedPrecondition(
                f"model {model.model_id!r} is not an IMAGE_TEXT model; text embeddings need one", type="MODEL", subject=model.model_id
            )
        texts = list(request.texts)
        if not texts:
            raise errors.InvalidArgument.about("texts", "give at least one text")
        if len(texts) > MAX_TEXTS:
            raise errors.InvalidArgument.about("texts", f"{len(texts)} texts; the limit per call is {MAX_TEXTS}")
        if request.name:
            cat.validate_id("text set", request.name, "name")
        return await self.ctx.jobs.run(context, "EmbedTexts", lambda job: self._embed_texts(model, texts, request.name, job))

    def _embed_texts(self, model: registry_pb2.Model, texts: list[str], name: str, job: JobContext) -> embedding_pb2.EmbedTextsResponse:
        emb = self.texts.encode(model.triton_models[1], model.tokenizer.context_length or 77, texts, check=job.check, timeout=job.timeout)
        # named after the texts and the model's version: what a response points to never changes
        key = f"texts/{model.model_id}/{cat.derived_id(name or 'texts', texts, model.onnx.uri)}"
        self.catalog.put_json(key + ".json", texts)
        return embedding_pb2.EmbedTextsResponse(embeddings=self.catalog.put_npy(key + ".npy", emb), count=len(texts), dim=emb.shape[1])

    async def GetEmbedding(self, request: embedding_pb2.GetEmbeddingRequest, context: grpc.aio.ServicerContext) -> embedding_pb2.EmbeddingSet:
        return self.catalog.embedding(request.embedding_id)

    async def ListEmbeddings(
        self, request: embedding_pb2.ListEmbeddingsRequest, context: grpc.aio.ServicerContext
    ) -> embedding_pb2.ListEmbeddingsResponse:
        out = [
            e
            for e in self.catalog.list("embedding set")
            if (not request.dataset_id or e.dataset_id == request.dataset_id) and (not request.model_id or e.model_id == request.model_id)
        ]
        return embedding_pb2.ListEmbeddingsResponse(embeddings=out)


def build(ctx: ServiceContext) -> list[Binding]:
    return [
        Binding(EmbeddingServicer(ctx), embedding_pb2_grpc.add_EmbeddingServicer_to_server, embedding_pb2.DESCRIPTOR.services_by_name["Embedding"])
    ]


if __name__ == "__main__":
    main("embedding", build)
