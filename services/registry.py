"""Registry service: registers datasets and models, validating everything.

A dataset is images in the store + a manifest (uri,label,split,...) + class names. Registering
copies its images into the dataset's own version (inside the store: a hard link or a server-side
copy), so what a registered dataset points to never changes, whatever later calls write where its
images came from. A model is an ONNX graph with declared preprocessing; registering it places it
into the Triton model repository and loads it, so the embedding service can run it. Names are
checked before any work; a rejected or failed call leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import posixpath
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pandas as pd

from failurelens import catalog as cat
from failurelens import errors
from failurelens.convert import preprocessing_from_proto, preprocessing_to_proto, row_errors_pb
from failurelens.data import images as img
from failurelens.data import manifest as mf
from failurelens.data import onnx_models as onx
from failurelens.data.errors import ImageDecodeError, ValidationError, Violation
from failurelens.runtime import Binding, JobContext, ServiceContext, main
from failurelens.store import open_store
from failurelens.store.base import ArtifactStore, InvalidKeyError, ObjectNotFoundError, validate_key
from failurelens.triton import repository as trepo
from failurelens.triton.client import TritonClient
from failurelens.v1 import common_pb2, registry_pb2, registry_pb2_grpc

log = logging.getLogger(__name__)
#: how long loading a feature-attack model in Triton may take
ATTACK_LOAD_TIMEOUT_S = 300.0


class RegistryServicer(registry_pb2_grpc.RegistryServicer):
    def __init__(self, ctx: ServiceContext, store: ArtifactStore | None = None, triton: TritonClient | None = None) -> None:
        self.ctx = ctx
        self.catalog = cat.Catalog(ctx.telemetry.watch_store(store or open_store(ctx.config.store or None)))
        self.store = self.catalog.store
        self.repo_dir = ctx.config.resolved_triton_repository()
        self.triton = ctx.telemetry.watch_triton(triton or TritonClient(ctx.config.triton_url, admin_key=ctx.config.triton_key))

    def _model_lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """One registration, new version or deletion of a model at a time, across every process
        sharing the Triton repository (its folders are written outside the store's compare-and-set)."""
        return trepo.model_lock(self.repo_dir, name)

    # ------------------------------------------------------------------------------ datasets
    async def RegisterDataset(self, request: registry_pb2.RegisterDatasetRequest, context: grpc.aio.ServicerContext):
        cat.validate_id("dataset", request.name, "name")
        self.catalog.ensure_free("dataset", request.name, request.overwrite)
        if not 0 <= request.max_pixels <= img.MAX_PIXELS_LIMIT:
            raise errors.InvalidArgument.about("max_pixels", f"{request.max_pixels} must be between 1 and {img.MAX_PIXELS_LIMIT:,} (0: the default)")
        async for update in self.ctx.jobs.stream(
            context,
            "RegisterDataset",
            lambda job: self._register_dataset(request, job),
            lambda p: registry_pb2.RegisterDatasetUpdate(progress=p),
            lambda d: registry_pb2.RegisterDatasetUpdate(dataset=d),
            lambda d: d.dataset_id,
        ):
            yield update

    def _class_names(self, request: registry_pb2.RegisterDatasetRequest) -> list[str]:
        if request.class_names and request.class_names_uri:
            raise errors.InvalidArgument.about("class_names", "give class_names or class_names_uri, not both")
        if request.class_names:
            return list(request.class_names)
        if not request.class_names_uri:
            raise errors.InvalidArgument.about(
                "class_names", "the class names are required: set class_names or class_names_uri (JSON list or one name per line)"
            )
        return mf.parse_class_names(self.catalog.read(request.class_names_uri, "class_names_uri"), "class_names_uri")

    def _register_dataset(self, request: registry_pb2.RegisterDatasetRequest, job: JobContext) -> registry_pb2.Dataset:
        store = self.store
        manifest_key = self.catalog.key(request.manifest_uri, "manifest_uri")
        raw = self.catalog.read(request.manifest_uri, "manifest_uri")
        class_names = self._class_names(request)
        fmt = "parquet" if manifest_key.endswith(".parquet") else ("csv" if manifest_key.endswith(".csv") else None)
        manifest = mf.validate_manifest(mf.load_manifest(raw, fmt), class_names)
        df = manifest.df.copy()
        root_key = (
            self.catalog.key(request.image_root_uri, "image_root_uri").rstrip("/") if request.image_root_uri else posixpath.dirname(manifest_key)
        )
        keys, bad = self._resolve_uris(df["uri"].tolist(), root_key)
        if bad:
            raise ValidationError(
                f"{len(bad)} manifest rows have unusable image URIs: " + "; ".join(v.description for v in bad[:5]), bad, violation_count=len(bad)
            )
        verify = request.verify_images if request.HasField("verify_images") else True
        max_pixels = request.max_pixels or img.DEFAULT_MAX_PIXELS
        unreadable = self._check_images(keys, verify, max_pixels, job)
        policy = request.corrupt_image_policy or common_pb2.CORRUPT_IMAGE_POLICY_SKIP_AND_REPORT
        if unreadable and (policy == common_pb2.CORRUPT_IMAGE_POLICY_FAIL or len(unreadable) == len(keys)):
            vs = [Violation("image", f"manifest row {r}: {reason}", row=r, uri=store.uri(keys[r])) for r, reason in unreadable]
            why = "every image is unreadable" if len(unreadable) == len(keys) else "corrupt_image_policy is FAIL"
            raise ValidationError(
                f"{len(unreadable)} of {len(keys)} images are unreadable ({why}); fix or remove them, or register with corrupt_image_policy=SKIP_AND_REPORT: "
                + "; ".join(v.description for v in vs[:5]),
                vs,
                violation_count=len(vs),
            )
        bad_rows = {r for r, _ in unreadable}
        with self.catalog.writing("dataset", request.name, request.overwrite) as version:
            df["uri"] = self._copy_images(version, keys, root_key, bad_rows, job)
            kept = df.drop(index=[df.index[r] for r in sorted(bad_rows)]).reset_index(drop=True) if bad_rows else df
            job.progress("write", 0, 1, "writing manifest", force=True)
            u_df = pd.DataFrame(
                {"row": [r for r, _ in unreadable], "uri": [store.uri(keys[r]) for r, _ in unreadable], "reason": [x for _, x in unreadable]},
                columns=["row", "uri", "reason"],
            ).astype({"row": "int64", "uri": "string", "reason": "string"})
            counts = kept["split"].value_counts()
            record = registry_pb2.Dataset(
                dataset_id=request.name,
                manifest=version.parquet("manifest.parquet", kept),
                class_names_artifact=version.json("class_names.json", class_names),
                class_names=class_names,
                num_rows=len(kept),
                split_counts={str(k): int(v) for k, v in counts.items()},
                metadata_columns=[c for c in kept.columns if c not in ("uri", "label", "split")],
                unreadable_rows=row_errors_pb([(r, store.uri(keys[r]), x) for r, x in unreadable]),
                unreadable=version.parquet("unreadable.parquet", u_df),
            )
            record.created_at.GetCurrentTime()
            version.commit(record)
        job.progress("write", 1, 1, "registered", force=True)
        return record

    def _copy_images(self, version: cat.Version, keys: list[str], root_key: str, skip: set[int], job: JobContext) -> list[str]:
        """Every usable image copied into the version (``images/<path under the manifest's
        folder>``, or ``images/external/<hash>/<name>`` for objects elsewhere); their URIs."""
        out = [self.store.uri(k) for k in keys]
        todo = [i for i in range(len(keys)) if i not in skip]

        def copy(i: int) -> None:
            k = keys[i]
            if root_key and k.startswith(root_key + "/"):
                rel = k[len(root_key) + 1 :]
            elif not root_key:
                rel = k
            else:
                rel = f"external/{hashlib.sha256(k.encode()).hexdigest()[:16]}/{posixpath.basename(k)}"
            out[i] = self.store.uri(version.copy("images/" + rel, k))

        with ThreadPoolExecutor(max_workers=self.store.write_concurrency) as pool:
            for done, _ in enumerate(pool.map(copy, todo), start=1):
                if done % 256 == 0 or done == len(todo):
                    job.progress("copy_images", done, len(todo), "into the dataset's own version")
        return out

    def _resolve_uris(self, uris: Sequence[str], root_key: str) -> tuple[list[str], list[Violation]]:
        keys: list[str] = []
        bad: list[Violation] = []
        for row, uri in enumerate(uris):
            try:
                if "://" in uri:
                    keys.append(self.store.key_from_uri(uri))
                else:
                    keys.append(validate_key(f"{root_key}/{uri}" if root_key else uri))
            except InvalidKeyError as exc:
                keys.append("")
                bad.append(Violation("manifest.uri", f"manifest row {row}: {exc}", row=row, uri=uri))
        return keys, bad

    def _check_images(self, keys: list[str], decode: bool, max_pixels: int, job: JobContext) -> list[tuple[int, str]]:
        """(row, reason) of every unreadable image; decodes in parallel, reports progress."""
        store = self.store

        def check(i: int) -> tuple[int, str] | None:
            try:
                if decode:
                    img.read_image(store, keys[i], max_pixels=max_pixels)
                else:
                    store.stat(keys[i])
            except ImageDecodeError as exc:
                return i, exc.reason
            except ObjectNotFoundError:
                return i, "image not found in the store; upload it or fix the uri"
            return None

        bad: list[tuple[int, str]] = []
        n = len(keys)
        with ThreadPoolExecutor(max_workers=4) as pool:
            for done, res in enumerate(pool.map(check, range(n)), start=1):
                if res is not None:
                    bad.append(res)
                if done % 64 == 0 or done == n:
                    job.progress("verify_images", done, n, f"{len(bad)} unreadable so far")
        return bad

    async def GetDataset(self, request: registry_pb2.GetDatasetRequest, context: grpc.aio.ServicerContext) -> registry_pb2.Dataset:
        return self.catalog.dataset(request.dataset_id)

    async def ListDatasets(self, request: registry_pb2.ListDatasetsRequest, context: grpc.aio.ServicerContext) -> registry_pb2.ListDatasetsResponse:
        return registry_pb2.ListDatasetsResponse(datasets=self.catalog.list("dataset"))

    async def DeleteDataset(self, request: registry_pb2.DeleteDatasetRequest, context: grpc.aio.ServicerContext) -> registry_pb2.DeleteResponse:
        cat.validate_id("dataset", request.dataset_id, "dataset_id")
        if not self.catalog.delete("dataset", request.dataset_id):
            raise errors.NotFound.resource("dataset", request.dataset_id)
        return registry_pb2.DeleteResponse(deleted=True)

    # -------------------------------------------------------------------------------- models
    async def RegisterModel(self, request: registry_pb2.RegisterModelRequest, context: grpc.aio.ServicerContext) -> registry_pb2.Model:
        cat.validate_model_name(request.name, "name")
        self.catalog.ensure_free("model", request.name, request.overwrite)

        def work(job: JobContext) -> registry_pb2.Model:
            with self._model_lock(request.name):
                return self._register_model(request, job)

        return await self.ctx.jobs.run(context, "RegisterModel", work)  # type: ignore[no-any-return]

    def _register_model(self, request: registry_pb2.RegisterModelRequest, job: JobContext) -> registry_pb2.Model:
        kind = request.kind
        if kind not in (registry_pb2.MODEL_KIND_CLASSIFIER, registry_pb2.MODEL_KIND_FEATURE_EXTRACTOR, registry_pb2.MODEL_KIND_IMAGE_TEXT):
            raise errors.InvalidArgument.about("kind", "set kind to CLASSIFIER, FEATURE_EXTRACTOR or IMAGE_TEXT")
        onnx_bytes = self.catalog.read(request.onnx_uri, "onnx_uri")
        sig = onx.inspect_onnx(onnx_bytes)
        record = registry_pb2.Model(model_id=request.name, kind=kind, labels=dict(request.labels))
        text_bytes = b""
        if kind == registry_pb2.MODEL_KIND_CLASSIFIER:
            class_names = list(request.class_names)
            if request.dataset_id:
                ds = self.catalog.dataset(request.dataset_id)
                if class_names and class_names != list(ds.class_names):
                    raise errors.InvalidArgument.about(
                        "class_names", f"class_names differ from dataset {request.dataset_id!r}'s; give one of the two"
                    )
                class_names = list(ds.class_names)
            info = onx.validate_classifier(sig, len(class_names) or None)
            if not class_names:
                raise errors.InvalidArgument.about(
                    "class_names", f"a classifier needs its class names ({info.num_classes} for this graph): set class_names or dataset_id"
                )
            record.class_names.extend(class_names)
            record.num_classes, record.feature_dim = info.num_classes, info.feature_dim
            graph_hw = info.input_hw
        elif kind == registry_pb2.MODEL_KIND_FEATURE_EXTRACTOR:
            info = onx.validate_feature_extractor(sig)
            record.feature_dim, record.has_feature_map = info.feature_dim, info.feature_map_shape is not None
            graph_hw = info.input_hw
        else:
            info = onx.validate_image_encoder(sig)
            record.embedding_dim, graph_hw = info.embedding_dim, info.input_hw
            text_bytes = self.catalog.read(request.text_onnx_uri, "text_onnx_uri")
            tinfo = onx.validate_text_encoder(onx.inspect_onnx(text_bytes))
            if tinfo.embedding_dim != info.embedding_dim:
                raise errors.InvalidArgument.about(
                    "text_onnx_uri",
                    f"text embeddings have {tinfo.embedding_dim} dimensions but image embeddings {info.embedding_dim}; they must match",
                )
            tok = request.tokenizer
            if tok.kind not in ("", "clip_bpe"):
                raise errors.InvalidArgument.about("tokenizer.kind", f"unknown tokenizer {tok.kind!r}; supported: clip_bpe")
            ctx_len = tok.context_length or tinfo.context_length or 77
            if tinfo.context_length and ctx_len != tinfo.context_length:
                raise errors.InvalidArgument.about(
                    "tokenizer.context_length", f"context_length {ctx_len} differs from the text encoder's input length {tinfo.context_length}"
                )
            record.tokenizer.CopyFrom(registry_pb2.Tokenizer(kind="clip_bpe", context_length=ctx_len))
        pp = preprocessing_from_proto(request.preprocessing, graph_hw)
        record.preprocessing.CopyFrom(preprocessing_to_proto(pp))
        job.progress("validate", 0, 1, "running the graph once in-process", force=True)
        onx.smoke_run(onnx_bytes, sig)
        if text_bytes:
            onx.smoke_run(text_bytes, onx.inspect_onnx(text_bytes))
        max_batch = request.max_batch_size or 64
        names = [request.name] if not text_bytes else [f"{request.name}__image", f"{request.name}__text"]
        with self.catalog.writing("model", request.name, request.overwrite) as version:
            record.onnx.CopyFrom(version.bytes("model.onnx", onnx_bytes, cat.ONNX))
            if text_bytes:
                record.text_onnx.CopyFrom(version.bytes("text.onnx", text_bytes, cat.ONNX))
            job.progress("triton", 0, len(names), "loading into Triton", force=True)
            try:
                for i, (name, data) in enumerate(zip(names, [onnx_bytes, text_bytes] if text_bytes else [onnx_bytes])):
                    spec = trepo.spec_from_onnx(name, data, max_batch_size=max_batch)
                    trepo.write_model(self.repo_dir, spec, data)
                    self.triton.load_model(name)
                    job.progress("triton", i + 1, len(names), f"{name} ready", force=True)
                if record.kind == registry_pb2.MODEL_KIND_FEATURE_EXTRACTOR:
                    attack = self._install_attack_model(request.name, onnx_bytes, pp)
                    if attack:
                        names.append(attack)
            except BaseException:
                for name in names:
                    self._unload(name)
                raise
            record.triton_models.extend(names)
            record.created_at.GetCurrentTime()
            version.commit(record)
        return record

    def _install_attack_model(self, name: str, onnx_bytes: bytes, pp: Any) -> str:
        """The feature-attack model ``<name>__attack`` (python backend, torch) beside a feature
        extractor, for visual evidence. Best effort: a Triton without torch in its python backend
        serves the extractor without attacks (RenderFeatureEvidence then says so)."""
        attack = name + trepo.ATTACK_SUFFIX
        try:
            trepo.write_attack_model(self.repo_dir, name, onnx_bytes, pp.mean, pp.std, pp.input_size)
            # its python stub imports torch and converts the graph: tens of seconds on a busy CPU host
            self.triton.load_model(attack, timeout_s=ATTACK_LOAD_TIMEOUT_S)
            return attack
        except Exception:
            log.warning("could not install the feature-attack model %s; feature attacks will be unavailable", attack, exc_info=True)
            self._unload(attack)
            return ""

    def _unload(self, name: str) -> None:
        try:
            self.triton.unload_model(name)
        except Exception:
            log.warning("could not unload %s from Triton", name, exc_info=True)
        trepo.remove_model(self.repo_dir, name)

    async def GetModel(self, request: registry_pb2.GetModelRequest, context: grpc.aio.ServicerContext) -> registry_pb2.Model:
        return self.catalog.model(request.model_id)

    async def ListModels(self, request: registry_pb2.ListModelsRequest, context: grpc.aio.ServicerContext) -> registry_pb2.ListModelsResponse:
        models = [m for m in self.catalog.list("model") if not request.kind or m.kind == request.kind]
        return registry_pb2.ListModelsResponse(models=models)

    async def DeleteModel(self, request: registry_pb2.DeleteModelRequest, context: grpc.aio.ServicerContext) -> registry_pb2.DeleteResponse:
        def work(job: JobContext) -> registry_pb2.DeleteResponse:
            with self._model_lock(request.model_id):
                model = self.catalog.model(request.model_id)
                for name in model.triton_models:
                    self._unload(name)
                self.catalog.delete("model", request.model_id)
            return registry_pb2.DeleteResponse(deleted=True)

        return await self.ctx.jobs.run(context, "DeleteModel", work)  # type: ignore[no-any-return]


def build(ctx: ServiceContext) -> list[Binding]:
    return [Binding(RegistryServicer(ctx), registry_pb2_grpc.add_RegistryServicer_to_server, registry_pb2.DESCRIPTOR.services_by_name["Registry"])]


if __name__ == "__main__":
    main("registry", build)
