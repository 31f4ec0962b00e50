"""Retraining service: a new linear head on a classifier's frozen features, published as a new
version of the same model in Triton (mitigation paper, Eq. 1 and Table 4).

The head is trained by the library (:class:`failurelens.repair.head.HeadRetrainer`) on the stored
features of the original training data and of the generated ``debug_train`` images (embedding
sets of the model version it starts from), evaluated before and after on named sets, written
into the model's ONNX graph (:func:`failurelens.models.heads.replace_head`: same backbone, new
``logits``), checked in onnxruntime, and published as version n+1 of the model: the Triton
folder gets the new version beside the old ones (all served), the record gets its lineage
(parent version, head, training sets, parameters, metrics). Nothing is half-published: a failed
or interrupted run removes its Triton version and its artifacts, and the next run on the model
clears versions no record names; the same request twice gives the same version.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import grpc
import numpy as np

from failurelens import catalog as cat
from failurelens import errors
from failurelens.convert import preprocessing_from_proto
from failurelens.models.heads import check_head, replace_head
from failurelens.repair.head import HeadRetrainer
from failurelens.runtime import Binding, JobContext, ServiceContext, main
from failurelens.services import _params
from failurelens.store import open_store
from failurelens.store.base import ArtifactStore
from failurelens.triton import repository as trepo
from failurelens.triton.client import TritonClient
from failurelens.v1 import embedding_pb2, registry_pb2, retraining_pb2_grpc
from failurelens.v1 import retraining_pb2 as rt

log = logging.getLogger(__name__)
ESTIMATORS: dict[str, tuple[type, type]] = {"RetrainHead": (rt.RetrainHeadRequest, HeadRetrainer)}
SAFETENSORS = "application/octet-stream"


@dataclasses.dataclass
class _Set:
    """Features and labels of one embedding set (rows restricted where asked)."""

    name: str
    features: np.ndarray
    labels: np.ndarray


def _accuracy(weight: np.ndarray, bias: np.ndarray, s: _Set) -> float:
    if len(s.labels) == 0:
        return 0.0
    pred = (s.features.astype(np.float64) @ weight.T.astype(np.float64) + bias.astype(np.float64)).argmax(1)
    return float((pred == s.labels).mean())


class RetrainingServicer(retraining_pb2_grpc.RetrainingServicer):
    def __init__(self, ctx: ServiceContext, store: ArtifactStore | None = None, triton: TritonClient | None = None) -> None:
        self.ctx = ctx
        self.catalog = cat.Catalog(ctx.telemetry.watch_store(store or open_store(ctx.config.store or None)))
        self.repo_dir = ctx.config.resolved_triton_repository()
        self._triton = triton

    @property
    def triton(self) -> TritonClient:
        if self._triton is None:
            self._triton = self.ctx.telemetry.watch_triton(TritonClient(self.ctx.config.triton_url, admin_key=self.ctx.config.triton_key))
        return self._triton

    # ------------------------------------------------------------------------------ inputs
    def _classifier(self, model_id: str) -> registry_pb2.Model:
        model = self.catalog.model(model_id)
        if model.kind != registry_pb2.MODEL_KIND_CLASSIFIER:
            raise errors.FailedPrecondition(
                f"model {model_id!r} is not a CLASSIFIER; only a classifier's head can be retrained", type="MODEL", subject=model_id
            )
        return model

    def _embedding(self, embedding_id: str, field: str, model: registry_pb2.Model) -> embedding_pb2.EmbeddingSet:
        emb = self.catalog.embedding(embedding_id, field)
        if emb.model_id != model.model_id:  # every version shares the backbone: any version's features do
            raise errors.FailedPrecondition(
                f"{field}: embedding set {embedding_id!r} holds the features of model {emb.model_id!r}, not of {model.model_id!r}; "
                "embed the images with the model being retrained",
                type="EMBEDDING",
                subject=embedding_id,
            )
        if not emb.features.uri:
            raise errors.FailedPrecondition(f"{field}: embedding set {embedding_id!r} has no features", type="EMBEDDING", subject=embedding_id)
        dim = int(emb.features.shape[1]) if len(emb.features.shape) == 2 else -1
        if dim != model.feature_dim:
            raise errors.FailedPrecondition(
                f"{field}: embedding set {embedding_id!r} has {dim}-d features but model {model.model_id!r} has {model.feature_dim}-d features",
                type="EMBEDDING",
                subject=embedding_id,
            )
        return emb

    def _set(self, emb: embedding_pb2.EmbeddingSet, name: str, rows_uri: str = "", field: str = "eval_sets") -> _Set:
        features = self.catalog.load_array(emb.features)
        labels = self.catalog.load_array(emb.labels)
        if rows_uri:
            wanted = self.catalog.read_npy(
                rows_uri, f"{field}.rows_uri", "give the URI of an int64 .npy of manifest rows (e.g. DebugSplit.debug_heldout_rows)"
            )
            keep = np.isin(self.catalog.load_array(emb.rows), wanted)
            features, labels = features[keep], labels[keep]
        return _Set(name, features, labels)

    def _eval_sets(self, eval_sets: Any, model: registry_pb2.Model) -> list[_Set]:
        out = []
        for i, es in enumerate(eval_sets):
            if not es.name:
                raise errors.InvalidArgument.about(f"eval_sets[{i}].name", "name every evaluation set (e.g. test, debug_heldout)")
            out.append(self._set(self._embedding(es.embedding_id, f"eval_sets[{i}].embedding_id", model), es.name, es.rows_uri, f"eval_sets[{i}]"))
        return out

    def _head(self, model: registry_pb2.Model, version: int, reference: embedding_pb2.EmbeddingSet) -> tuple[np.ndarray, np.ndarray]:
        """The head of a model version: the published weights of a retrained one; for the
        registered graph, recovered exactly from its stored logits and features (logits are an
        affine function of the features in a classifier's contract)."""
        for v in model.versions:
            if v.version == version and v.head.uri:
                tensors = self.catalog.store.get_safetensors(self.catalog.store.key_from_uri(v.head.uri))
                return tensors["weight"], tensors["bias"]
        features = self.catalog.load_array(reference.features)
        logits = self.catalog.load_array(reference.logits)
        take = min(len(features), max(4 * (features.shape[1] + 1), 2000))  # an affine map is pinned down by a few rows
        features, logits = features[:take].astype(np.float64), logits[:take].astype(np.float64)
        design = np.hstack([features, np.ones((len(features), 1))])
        if len(features) <= features.shape[1]:
            raise errors.FailedPrecondition(
                f"{len(features)} rows are too few to recover the model's {features.shape[1]}-d head from its logits; give a larger training embedding set",
                type="EMBEDDING",
                subject=reference.embedding_id,
            )
        solution, *_ = np.linalg.lstsq(design, logits, rcond=None)
        residual = float(np.abs(design @ solution - logits).max())
        if residual > 1e-3 * max(1.0, float(np.abs(logits).max())):
            raise errors.FailedPrecondition(
                f"the logits of model {model.model_id!r} are not an affine function of its features (residual {residual:.3g}); "
                'its head cannot be read off: retrain with init="new"',
                type="MODEL",
                subject=model.model_id,
            )
        return solution[:-1].T.astype(np.float32), solution[-1].astype(np.float32)

    # ------------------------------------------------------------------------------ RPCs
    async def RetrainHead(self, request: rt.RetrainHeadRequest, context: grpc.aio.ServicerContext):
        trainer = _params.estimator(HeadRetrainer, request)
        model = self._classifier(request.model_id)
        base = cat.model_version(model, request.model_version if request.HasField("model_version") else None)
        train = self._embedding(request.train_embedding_id, "train_embedding_id", model)
        debug = self._embedding(request.debug_train_embedding_id, "debug_train_embedding_id", model)
        if debug.num_rows == 0:
            raise errors.FailedPrecondition(
                f"debug_train_embedding_id: embedding set {debug.embedding_id!r} is empty: there are no generated images to retrain with",
                type="EMBEDDING",
                subject=debug.embedding_id,
            )
        evals = self._eval_sets(request.eval_sets, model)
        pinned = rt.RetrainHeadRequest()
        pinned.CopyFrom(request)
        pinned.model_version, pinned.dry_run = base, False
        base_onnx = next((v.onnx for v in model.versions if v.version == base), model.onnx)
        digest = cat.derived_id("retrain", pinned, *[r.sha256 or r.uri for r in (base_onnx, train.features, debug.features)])

        def work(job: JobContext) -> rt.RetrainHeadResult:
            return self._retrain(request, trainer, model, base, train, debug, evals, digest, job)

        async for update in self.ctx.jobs.stream(
            context,
            "RetrainHead",
            work,
            lambda p: rt.RetrainHeadUpdate(progress=p),
            lambda r: rt.RetrainHeadUpdate(result=r),
            lambda r: f"{r.model.model_id}/{r.version.version}",
        ):
            yield update

    def _retrain(
        self,
        request: rt.RetrainHeadRequest,
        trainer: HeadRetrainer,
        model: registry_pb2.Model,
        base: int,
        train: embedding_pb2.EmbeddingSet,
        debug: embedding_pb2.EmbeddingSet,
        evals: list[_Set],
        digest: str,
        job: JobContext,
    ) -> rt.RetrainHeadResult:
        if not request.dry_run:
            done = next((v for v in model.versions if v.request_digest == digest), None)
            if done is not None:
                return rt.RetrainHeadResult(model=model, version=done, head=done.head, reused=True)
        w0, b0 = self._head(model, base, train)
        t, d = self._set(train, "train"), self._set(debug, "debug_train")
        job.progress("train", 0, int(trainer.epochs), "linear head", force=True)
        history = []

        def on_epoch(m: Any) -> None:
            history.append(
                rt.EpochMetrics(
                    epoch=m.epoch,
                    loss=m.loss,
                    train_accuracy=m.train_accuracy,
                    debug_train_accuracy=0.0 if np.isnan(m.debug_train_accuracy) else m.debug_train_accuracy,
                )
            )
            job.progress("train", m.epoch, int(trainer.epochs), f"loss {m.loss:.4f}")

        init = {"init_weight": w0, "init_bias": b0} if trainer.init == "own" else {"num_classes": model.num_classes}
        trainer.fit(t.features, t.labels, d.features, d.labels, on_epoch=on_epoch, **init)
        w, b = trainer.coef_, trainer.intercept_
        evaluation = rt.HeadEvaluation(
            results=[rt.EvalResult(name=s.name, n=len(s.labels), accuracy=_accuracy(w, b, s), accuracy_before=_accuracy(w0, b0, s)) for s in evals]
        )
        result = rt.RetrainHeadResult(history=history, evaluation=evaluation)
        if request.dry_run:
            result.model.CopyFrom(model)
            return result
        job.progress("publish", 0, 1, "a new version of the model", force=True)
        with trepo.model_lock(self.repo_dir, model.model_id):
            published = self._publish(
                model.model_id, base, w, b, {**trainer.get_params(), "device": trainer.device_}, train, debug, evaluation, digest, job
            )
        result.model.CopyFrom(published[0])
        result.version.CopyFrom(published[1])
        result.head.CopyFrom(published[1].head)
        result.reused = published[2]
        job.progress("publish", 1, 1, f"version {published[1].version}", force=True)
        return result

    def _publish(
        self,
        model_id: str,
        base: int,
        w: np.ndarray,
        b: np.ndarray,
        params: dict[str, Any],
        train: embedding_pb2.EmbeddingSet,
        debug: embedding_pb2.EmbeddingSet,
        evaluation: rt.HeadEvaluation,
        digest: str,
        job: JobContext,
    ) -> tuple[registry_pb2.Model, registry_pb2.ModelVersion, bool]:
        model = self.catalog.model(model_id)  # as it is now, under the lock
        done = next((v for v in model.versions if v.request_digest == digest), None)
        if done is not None:
            return model, done, True
        name = model.triton_models[0]
        known = {v.version for v in model.versions} or {1}
        for orphan in set(trepo.model_versions(self.repo_dir, name)) - known:  # left by a run killed before its commit
            log.warning("removing version %d of %s, which no record names (an interrupted run)", orphan, name)
            trepo.remove_version(self.repo_dir, name, orphan)
        number = max(known) + 1
        parent = next((v for v in model.versions if v.version == base), None)
        base_onnx = self.catalog.store.get_bytes(self.catalog.store.key_from_uri(parent.onnx.uri if parent else model.onnx.uri))
        onnx_bytes = replace_head(base_onnx, w, b)
        pp = preprocessing_from_proto(model.preprocessing, None)
        probe = np.random.default_rng(0).normal(size=(2, 3, *pp.input_size)).astype(np.float32)
        check_head(onnx_bytes, w, b, probe)
        published = False
        try:
            with self.catalog.writing("model", model_id, overwrite=True) as version:
                record = registry_pb2.Model()
                record.CopyFrom(model)
                self._carry_over(version, model, record)
                entry = registry_pb2.ModelVersion(
                    version=number,
                    parent_version=base,
                    onnx=version.bytes(f"v{number}/model.onnx", onnx_bytes, cat.ONNX),
                    head=version.bytes(f"v{number}/head.safetensors", _safetensors(w, b), SAFETENSORS),
                    train_embedding_id=train.embedding_id,
                    debug_train_embedding_id=debug.embedding_id,
                    request_digest=digest,
                    params={k: json.dumps(v) for k, v in params.items()},
                )
                for r in evaluation.results:
                    entry.metrics[f"{r.name}/accuracy"] = r.accuracy
                    entry.metrics[f"{r.name}/accuracy_before"] = r.accuracy_before
                    entry.metrics[f"{r.name}/n"] = float(r.n)
                entry.created_at.GetCurrentTime()
                record.versions.append(entry)
                trepo.add_version(self.repo_dir, name, number, onnx_bytes)
                published = True
                self.triton.load_model(name, timeout_s=job.timeout(300.0))
                self.triton.wait_ready(timeout=job.timeout(120.0), model=name)
                if not self.triton.is_model_ready(name, str(number)):
                    raise errors.Unavailable(f"Triton did not load version {number} of {name!r}")
                version.commit(record)
        except BaseException:
            if published:  # nothing half-published: the version goes with the record that never named it
                trepo.remove_version(self.repo_dir, name, number)
                try:
                    self.triton.load_model(name, timeout_s=60)
                except Exception:
                    log.warning("could not reload %s after removing version %d", name, number, exc_info=True)
            raise
        return record, entry, False

    def _carry_over(self, version: cat.Version, old: registry_pb2.Model, record: registry_pb2.Model) -> None:
        """The artifacts of the record's earlier versions, copied into the new catalog version
        (which replaces the old one), with the references re-pointed."""
        store = self.catalog.store

        def copy(ref: Any, name: str) -> None:
            if ref.uri:
                key = version.copy(name, store.key_from_uri(ref.uri))
                ref.uri = store.uri(key)

        copy(record.onnx, "model.onnx")
        copy(record.text_onnx, "text.onnx")
        if not record.versions:
            record.versions.append(registry_pb2.ModelVersion(version=1, onnx=record.onnx, created_at=record.created_at))
        for v in record.versions:
            if v.version == 1 and not v.head.uri:
                v.onnx.CopyFrom(record.onnx)
                continue
            copy(v.onnx, f"v{v.version}/model.onnx")
            copy(v.head, f"v{v.version}/head.safetensors")

    async def EvaluateHead(self, request: rt.EvaluateHeadRequest, context: grpc.aio.ServicerContext) -> rt.HeadEvaluation:
        model = self._classifier(request.model_id)
        version = cat.model_version(model, request.model_version if request.HasField("model_version") else None)
        parent = next((v.parent_version for v in model.versions if v.version == version), 0) or version
        if not request.eval_sets:
            raise errors.InvalidArgument.about("eval_sets", "name at least one evaluation set")

        def work(job: JobContext) -> rt.HeadEvaluation:
            evals = []
            for i, es in enumerate(request.eval_sets):
                emb = self.catalog.embedding(es.embedding_id, f"eval_sets[{i}].embedding_id")
                if emb.model_id != model.model_id:
                    raise errors.FailedPrecondition(
                        f"eval_sets[{i}]: embedding set {emb.embedding_id!r} is of model {emb.model_id!r}", type="EMBEDDING", subject=emb.embedding_id
                    )
                evals.append((emb, self._set(emb, es.name or emb.embedding_id, es.rows_uri)))
            w, b = self._head(model, version, evals[0][0])
            w0, b0 = self._head(model, parent, evals[0][0])
            return rt.HeadEvaluation(
                results=[
                    rt.EvalResult(name=s.name, n=len(s.labels), accuracy=_accuracy(w, b, s), accuracy_before=_accuracy(w0, b0, s)) for _, s in evals
                ]
            )

        return await self.ctx.jobs.run(context, "EvaluateHead", work)  # type: ignore[no-any-return]


def _safetensors(weight: np.ndarray, bias: np.ndarray) -> bytes:
    from safetensors.numpy import save

    return bytes(save({"weight": np.ascontiguousarray(weight, np.float32), "bias": np.ascontiguousarray(bias, np.float32)}))


def build(ctx: ServiceContext) -> list[Binding]:
    return [Binding(RetrainingServicer(ctx), retraining_pb2_grpc.add_RetrainingServicer_to_server, rt.DESCRIPTOR.services_by_name["Retraining"])]


if __name__ == "__main__":
    main("retraining", build)
