"""SliceDiscovery service: failure trees (Barlow) and failure directions (SVMs on CLIP
embeddings), each slice re-measured on held-out rows with BH control, visual evidence of the
robust features behind each rule, debug splits and failure overlap (mitigation paper).

Thin by design: it builds the library estimator from the request (which validates it), loads and
aligns the stored embedding sets, calls the pure library (:mod:`failurelens.discovery`) and
stores the results as artifacts plus a report record; nothing is written unless the whole job
succeeds.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Iterable
from typing import Any

import grpc
import numpy as np
import pandas as pd

from failurelens import catalog as cat
from failurelens import errors
from failurelens.convert import preprocessing_from_proto
from failurelens.data import images as img
from failurelens.discovery import trees as trees_lib
from failurelens.discovery.debug import DebugSplitter
from failurelens.discovery.directions import FailureDirections
from failurelens.discovery.evidence import EvidenceRenderer
from failurelens.discovery.metrics import failure_iou
from failurelens.discovery.trees import FailureTrees
from failurelens.discovery.validation import HoldoutStats
from failurelens.runtime import Binding, JobContext, ServiceContext, main
from failurelens.services import _inputs as inp
from failurelens.services import _params
from failurelens.store import open_store
from failurelens.store.base import ArtifactStore
from failurelens.triton.client import TritonClient
from failurelens.v1 import common_pb2, registry_pb2, slice_discovery_pb2_grpc
from failurelens.v1 import slice_discovery_pb2 as sd

GROUPING_NAME = {common_pb2.GROUPING_LABEL: "label", common_pb2.GROUPING_PREDICTION: "prediction"}
GROUPING_ENUM = {v: k for k, v in GROUPING_NAME.items()}
TREES = "failure-trees report"
DIRECTIONS = "failure-directions report"
EVIDENCE = "feature-evidence report"
DEBUG_SPLIT = "debug split"
#: the most rules one FailureTreesReport message carries (all are in its artifacts)
MAX_RULES_IN_RESPONSE = 200
#: which library estimator reads the tunable fields of which request (see services/_params.py)
ESTIMATORS: dict[str, tuple[type, type]] = {
    "FitFailureTrees": (sd.FitFailureTreesRequest, FailureTrees),
    "FitFailureDirections": (sd.FitFailureDirectionsRequest, FailureDirections),
    "RenderFeatureEvidence": (sd.RenderFeatureEvidenceRequest, EvidenceRenderer),
    "SplitDebugSet": (sd.SplitDebugSetRequest, DebugSplitter),
}


def _groupings(values: list[int]) -> list[Any]:
    return [GROUPING_NAME.get(g, g) for g in values]


def trees_estimator(request: sd.FitFailureTreesRequest, n_jobs: int = 1) -> FailureTrees:
    return _params.estimator(FailureTrees, request, {"groupings": _groupings}, n_jobs=n_jobs)


def directions_estimator(request: sd.FitFailureDirectionsRequest, n_jobs: int = 1) -> FailureDirections:
    return _params.estimator(FailureDirections, request, n_jobs=n_jobs)


def holdout_pb(h: HoldoutStats | None) -> common_pb2.HoldoutStats:
    if h is None:
        return common_pb2.HoldoutStats()
    return common_pb2.HoldoutStats(**{f.name: getattr(h, f.name) for f in dataclasses.fields(HoldoutStats)})


def _finite(x: float) -> float:
    return float(x) if x is not None and math.isfinite(x) else 0.0


def rule_pb(tree: Any, leaf: Any, class_names: list[str]) -> sd.FailureRule:
    return sd.FailureRule(
        class_index=tree.class_index,
        class_name=class_names[tree.class_index],
        grouping=GROUPING_ENUM[tree.grouping],
        leaf_id=leaf.leaf_id,
        conditions=[sd.Condition(feature=c.feature, op=c.op, threshold=c.threshold) for c in leaf.conditions],
        text=leaf.text,
        n=leaf.n,
        errors=leaf.errors,
        error_rate=leaf.error_rate,
        error_coverage=leaf.error_coverage,
        importance=leaf.importance,
        valid=leaf.valid,
        holdout=holdout_pb(leaf.holdout),
    )


def rules_frame(trees: Iterable[Any], class_names: list[str]) -> pd.DataFrame:
    recs = []
    for t in trees:
        for leaf in t.leaves:
            h = leaf.holdout or HoldoutStats()
            recs.append(
                {
                    "class_index": t.class_index,
                    "class_name": class_names[t.class_index],
                    "grouping": t.grouping,
                    "leaf_id": leaf.leaf_id,
                    "rule": leaf.text,
                    "n": leaf.n,
                    "errors": leaf.errors,
                    "error_rate": leaf.error_rate,
                    "error_coverage": leaf.error_coverage,
                    "importance": leaf.importance,
                    "valid": leaf.valid,
                    "base_error_rate": t.base_error_rate,
                    "aler": t.aler,
                    "holdout_n": h.n,
                    "holdout_errors": h.errors,
                    "holdout_error_rate": h.error_rate,
                    "holdout_error_coverage": h.error_coverage,
                    "p_value": h.p_value,
                    "q_value": h.q_value,
                    "validated": h.validated,
                }
            )
    cols = [
        "class_index",
        "class_name",
        "grouping",
        "leaf_id",
        "rule",
        "n",
        "errors",
        "error_rate",
        "error_coverage",
        "importance",
        "valid",
        "base_error_rate",
        "aler",
        "holdout_n",
        "holdout_errors",
        "holdout_error_rate",
        "holdout_error_coverage",
        "p_value",
        "q_value",
        "validated",
    ]
    return pd.DataFrame(recs, columns=cols)


def load_trees_report(catalog: cat.Catalog, report_id: str, field: str = "report_id") -> tuple[sd.FailureTreesReport, dict[str, Any], list[Any]]:
    """The report record, the full JSON artifact and its trees as library objects."""
    report = catalog.get(TREES, report_id, field)
    full = catalog.load_json(report.report)
    return report, full, [trees_lib.ClassTree.from_dict(t) for t in full["trees"]]


def _report_id(catalog: cat.Catalog, kind: str, prefix: str, request: Any) -> str:
    """The request's report_id (or one derived from the request), free unless overwrite is set."""
    report_id = cat.validate_id("report", request.report_id, "report_id") if request.report_id else cat.derived_id(prefix, request)
    return catalog.ensure_free(kind, report_id, request.overwrite)


def _params_json(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


class SliceDiscoveryServicer(slice_discovery_pb2_grpc.SliceDiscoveryServicer):
    def __init__(self, ctx: ServiceContext, store: ArtifactStore | None = None, triton: TritonClient | None = None) -> None:
        self.ctx = ctx
        self.catalog = cat.Catalog(ctx.telemetry.watch_store(store or open_store(ctx.config.store or None)))
        self._triton = triton
        # worker processes for per-class fitting (FAILURELENS_DISCOVERY_JOBS / --discovery-jobs; 0 = all cores)
        self.n_jobs = ctx.config.discovery_jobs or (os.cpu_count() or 1)

    @property
    def triton(self) -> TritonClient:
        if self._triton is None:
            self._triton = self.ctx.telemetry.watch_triton(TritonClient(self.ctx.config.triton_url))
        return self._triton

    def _fit_per_class(
        self, estimator: Any, emb: Any, field: str, outcomes: inp.Outcomes, classes: list[int] | None, job: JobContext, confidences: bool = False
    ) -> inp.Outcomes:
        """Fit a per-class discovery estimator on the stored matrix ``emb.<field>`` (copied to a local
        ``.npy``, rows matched with the predictions); returns the matched predictions."""
        emb_rows = self.catalog.load_array(emb.rows)
        ia, ib = inp.align(emb_rows, outcomes.rows, f"{field} / prediction_embedding_id")
        out = outcomes.take(ib)
        extra = {"confidences": out.confidences} if confidences else {}
        with tempfile.TemporaryDirectory(prefix="fl-discovery-") as tmp:
            job.progress("load", 0, 1, f"copying {field}", force=True)
            path = inp.local_matrix(self.catalog, getattr(emb, field), tmp, field, ia, num_rows=len(emb_rows))
            estimator.fit(
                path, out.labels, out.predictions, classes=classes, progress=lambda s, d, t: job.progress(s, d, t), check=job.check, **extra
            )
        fitted = len(classes) if classes else len(np.unique(out.labels))
        self.ctx.telemetry.classes_fitted.labels(type(estimator).__name__).inc(fitted)
        return out

    # ------------------------------------------------------------------------------ trees
    async def FitFailureTrees(self, request: sd.FitFailureTreesRequest, context: grpc.aio.ServicerContext):
        estimator = trees_estimator(request, self.n_jobs)
        feats = self.catalog.embedding(request.feature_embedding_id, "feature_embedding_id")
        inp.array_ref(feats, "features", "feature_embedding_id", "a FEATURE_EXTRACTOR (or CLASSIFIER) model")
        outcomes = inp.load_outcomes(self.catalog, request.prediction_embedding_id, "prediction_embedding_id")
        inp.same_dataset(feats, outcomes.embedding)
        dataset = self.catalog.dataset(feats.dataset_id)
        classes = inp.check_classes(list(request.classes), len(dataset.class_names))
        report_id = _report_id(self.catalog, TREES, "trees", request)
        dim = int(feats.features.shape[1]) if len(feats.features.shape) > 1 else 0
        if dim and estimator.top_k_features > dim:  # fewer features than asked for: keep them all
            estimator.set_params(top_k_features=dim)

        def work(job: JobContext) -> sd.FailureTreesReport:
            return self._fit_trees(request, estimator, feats, outcomes, dataset, classes, report_id, job)

        async for update in self.ctx.jobs.stream(
            context,
            "FitFailureTrees",
            work,
            lambda p: sd.FailureTreesUpdate(progress=p),
            lambda r: sd.FailureTreesUpdate(result=r),
            lambda r: r.report_id,
        ):
            yield update

    def _fit_trees(
        self,
        request: sd.FitFailureTreesRequest,
        model: FailureTrees,
        feats: Any,
        outcomes: inp.Outcomes,
        dataset: registry_pb2.Dataset,
        classes: list[int] | None,
        report_id: str,
        job: JobContext,
    ) -> sd.FailureTreesReport:
        names = list(dataset.class_names)
        out = self._fit_per_class(model, feats, "features", outcomes, classes, job)
        trees = model.trees_
        job.progress("write", 0, 1, "writing the report", force=True)
        report = sd.FailureTreesReport(
            report_id=report_id, feature_embedding_id=feats.embedding_id, prediction_embedding_id=out.embedding.embedding_id, num_trees=len(trees)
        )
        for g, v in model.valid_leaf_fraction_.items():
            report.valid_leaf_fraction[g] = v
        valid = sorted(((t, leaf) for t in trees for leaf in t.leaves if leaf.valid), key=lambda tl: -tl[1].importance)
        limit = min(request.max_rules_in_response or MAX_RULES_IN_RESPONSE, MAX_RULES_IN_RESPONSE)
        report.rules.extend(rule_pb(t, leaf, names) for t, leaf in valid[:limit])
        full = {
            "report_id": report_id,
            "dataset_id": dataset.dataset_id,
            "params": _params_json(model.validate_params()),
            "feature_embedding_id": feats.embedding_id,
            "prediction_embedding_id": out.embedding.embedding_id,
            "class_names": names,
            "trees": [t.to_dict() for t in trees],
        }
        with self.catalog.writing(TREES, report_id, request.overwrite) as version:
            report.report.CopyFrom(version.json("report.json", full))
            report.rules_table.CopyFrom(version.parquet("rules.parquet", rules_frame(trees, names)))
            report.created_at.GetCurrentTime()
            version.commit(report)
        job.progress("write", 1, 1, "done", force=True)
        return report

    async def GetFailureTrees(self, request: sd.GetReportRequest, context: grpc.aio.ServicerContext) -> sd.FailureTreesReport:
        return self.catalog.get(TREES, request.report_id, "report_id")  # type: ignore[no-any-return]

    # ------------------------------------------------------------------------------ directions
    async def FitFailureDirections(self, request: sd.FitFailureDirectionsRequest, context: grpc.aio.ServicerContext):
        estimator = directions_estimator(request, self.n_jobs)
        clip = self.catalog.embedding(request.clip_embedding_id, "clip_embedding_id")
        # an image-text model's image embeddings; without one, any model's features (no captions then)
        space = "image_embeddings" if clip.image_embeddings.uri else "features"
        inp.array_ref(clip, space, "clip_embedding_id", "an IMAGE_TEXT model (or the features of a FEATURE_EXTRACTOR or CLASSIFIER)")
        outcomes = inp.load_outcomes(self.catalog, request.prediction_embedding_id, "prediction_embedding_id")
        inp.same_dataset(clip, outcomes.embedding)
        dataset = self.catalog.dataset(clip.dataset_id)
        classes = inp.check_classes(list(request.classes), len(dataset.class_names))
        report_id = _report_id(self.catalog, DIRECTIONS, "directions", request)

        def work(job: JobContext) -> sd.FailureDirectionsReport:
            return self._fit_directions(request, estimator, clip, space, outcomes, dataset, classes, report_id, job)

        async for update in self.ctx.jobs.stream(
            context,
            "FitFailureDirections",
            work,
            lambda p: sd.FailureDirectionsUpdate(progress=p),
            lambda r: sd.FailureDirectionsUpdate(result=r),
            lambda r: r.report_id,
        ):
            yield update

    def _fit_directions(
        self,
        request: sd.FitFailureDirectionsRequest,
        model: FailureDirections,
        clip: Any,
        space: str,
        outcomes: inp.Outcomes,
        dataset: registry_pb2.Dataset,
        classes: list[int] | None,
        report_id: str,
        job: JobContext,
    ) -> sd.FailureDirectionsReport:
        names = list(dataset.class_names)
        out = self._fit_per_class(model, clip, space, outcomes, classes, job, confidences=True)
        report = sd.FailureDirectionsReport(
            report_id=report_id, clip_embedding_id=clip.embedding_id, prediction_embedding_id=out.embedding.embedding_id
        )
        full: dict[str, Any] = {
            "report_id": report_id,
            "dataset_id": dataset.dataset_id,
            "class_names": names,
            "params": _params_json(model.validate_params()),
            "directions": [],
        }
        with self.catalog.writing(DIRECTIONS, report_id, request.overwrite) as version:
            for i, d in enumerate(model.directions_):
                job.progress("write", i, len(model.directions_), f"class {d.class_index}" + (f" mode {d.mode}" if d.mode else ""))
                msg = sd.FailureDirection(
                    mode=d.mode,
                    mode_errors=d.mode_errors,
                    class_index=d.class_index,
                    class_name=names[d.class_index],
                    n=d.n,
                    errors=d.errors,
                    c=d.c,
                    cv_balanced_accuracy=_finite(d.cv_balanced_accuracy),
                    holdout_balanced_accuracy=_finite(d.holdout_balanced_accuracy),
                    top_aligned_rows=[int(out.rows[r]) for r in d.top_aligned_rows],
                    top_antialigned_rows=[int(out.rows[r]) for r in d.top_antialigned_rows],
                    top_aligned_accuracy=_finite(d.top_aligned_accuracy),
                    low_confidence_accuracy=_finite(d.low_confidence_accuracy),
                    holdout=holdout_pb(d.holdout),
                    skipped_reason=d.skipped_reason,
                )
                if not d.skipped_reason:
                    base = f"class-{d.class_index}/" + (f"mode-{d.mode}/" if d.mode else "")
                    msg.direction.CopyFrom(version.npy(base + "direction.npy", np.asarray(d.direction, np.float32)))
                    msg.decision_values.CopyFrom(version.npy(base + "decision_values.npy", np.asarray(d.decision_values, np.float32)))
                    msg.rows.CopyFrom(version.npy(base + "rows.npy", out.rows[np.asarray(d.rows, np.int64)]))
                report.directions.append(msg)
                full["directions"].append(
                    {
                        "class_index": d.class_index,
                        "mode": d.mode,
                        "mode_errors": d.mode_errors,
                        "intercept": float(d.intercept),
                        "c": float(d.c),
                        "skipped_reason": d.skipped_reason,
                        "holdout": dataclasses.asdict(d.holdout) if d.holdout else None,
                        "fit_rows": [int(out.rows[r]) for r, m in zip(d.rows, d.fit_mask) if m] if not d.skipped_reason else [],
                    }
                )
            report.report.CopyFrom(version.json("report.json", full))
            report.created_at.GetCurrentTime()
            version.commit(report)
        job.progress("write", 1, 1, "done", force=True)
        return report

    async def GetFailureDirections(self, request: sd.GetReportRequest, context: grpc.aio.ServicerContext) -> sd.FailureDirectionsReport:
        return self.catalog.get(DIRECTIONS, request.report_id, "report_id")  # type: ignore[no-any-return]

    # ------------------------------------------------------------------------------ evidence
    async def RenderFeatureEvidence(self, request: sd.RenderFeatureEvidenceRequest, context: grpc.aio.ServicerContext):
        renderer = _params.estimator(EvidenceRenderer, request)
        if not request.report_id:
            raise errors.InvalidArgument.about("report_id", "name the failure-trees report whose features (and feature embedding) to show")
        report, full, trees = load_trees_report(self.catalog, request.report_id)
        if request.rules_per_class < 0:
            raise errors.InvalidArgument.about("rules_per_class", "0 (every valid rule) or the number of rules per class and grouping")
        chosen = [
            sorted((leaf for leaf in t.leaves if leaf.valid), key=lambda leaf: -leaf.importance)[: request.rules_per_class or None] for t in trees
        ]
        features = sorted({c.feature for leaves in chosen for leaf in leaves for c in leaf.conditions} | set(request.features))
        feats = self.catalog.embedding(report.feature_embedding_id, "report_id")
        dim = int(feats.features.shape[1]) if len(feats.features.shape) > 1 else 0
        bad = [f for f in features if f < 0 or f >= dim]
        if bad:
            raise errors.InvalidArgument.about("features", f"feature index(es) {bad} out of range; the features have {dim} dimensions")
        if not features:
            raise errors.FailedPrecondition(
                "the report has no valid rules; name features explicitly in `features`", type="REPORT", subject=request.report_id
            )
        model = inp.model_of_kind(
            self.catalog,
            request.feature_model_id or feats.model_id,
            registry_pb2.MODEL_KIND_FEATURE_EXTRACTOR,
            "feature_model_id",
            "a FEATURE_EXTRACTOR model",
        )
        if request.heatmaps and not model.has_feature_map:
            raise errors.FailedPrecondition(
                f"model {model.model_id!r} has no feature_map output; render without heatmaps", type="MODEL", subject=model.model_id
            )
        attack_model = model.triton_models[0] + "__attack"
        if request.feature_attack and not self.triton.is_model_ready(attack_model):
            raise errors.FailedPrecondition(
                f"Triton has no feature-attack model {attack_model!r}; register the feature extractor again to install it",
                type="MODEL",
                subject=model.model_id,
            )
        dataset = self.catalog.dataset(feats.dataset_id)

        def work(job: JobContext) -> sd.FeatureEvidenceReport:
            return self._render(request, renderer, feats, model, dataset, features, attack_model, job)

        async for update in self.ctx.jobs.stream(
            context,
            "RenderFeatureEvidence",
            work,
            lambda p: sd.FeatureEvidenceUpdate(progress=p),
            lambda r: sd.FeatureEvidenceUpdate(result=r),
            lambda r: r.report_id,
        ):
            yield update

    def _render(
        self,
        request: sd.RenderFeatureEvidenceRequest,
        renderer: EvidenceRenderer,
        feats: Any,
        model: registry_pb2.Model,
        dataset: registry_pb2.Dataset,
        features: list[int],
        attack_model: str,
        job: JobContext,
    ) -> sd.FeatureEvidenceReport:
        store = self.catalog.store
        uris = self.catalog.load_manifest(dataset)["uri"].to_numpy()
        frows = self.catalog.load_array(feats.rows)
        pp = preprocessing_from_proto(model.preprocessing, None)
        mean, std = np.asarray(pp.mean, np.float32).reshape(1, 3, 1, 1), np.asarray(pp.std, np.float32).reshape(1, 3, 1, 1)
        triton_model = model.triton_models[0]
        input_name = self.triton.model_metadata(triton_model)["inputs"][0]["name"]
        report = sd.FeatureEvidenceReport(report_id=request.report_id)
        index: dict[str, Any] = {"report_id": request.report_id, "model_id": model.model_id, "features": []}
        with tempfile.TemporaryDirectory(prefix="fl-evidence-") as tmp, self.catalog.writing(EVIDENCE, request.report_id, True) as version:
            path = inp.local_matrix(self.catalog, feats.features, tmp, "features")
            for fi, f in enumerate(features):
                job.progress("render", fi, len(features), f"feature {f}", force=True)
                pos, acts = renderer.top_rows(path, f)
                rows = frows[pos]
                x = img.preprocess([img.read_image(store, store.key_from_uri(uris[r])) for r in rows], pp)  # normalised, model input size
                x01 = np.clip(x * std + mean, 0.0, 1.0).astype(np.float32)
                fmaps = attacked = None
                extra: dict[str, Any] = {}
                if request.heatmaps:
                    fmaps = self.triton.infer(triton_model, {input_name: x}, ["feature_map"], timeout_s=job.timeout(120.0))["feature_map"][:, f]
                if request.feature_attack:
                    res = self.triton.infer(
                        attack_model,
                        renderer.attack_inputs(x01, f),
                        ["attacked", "activation_before", "activation_after"],
                        timeout_s=job.timeout(600.0),
                    )
                    attacked = res["attacked"]
                    extra = {
                        "activation_before": res["activation_before"].ravel().tolist(),
                        "activation_after": res["activation_after"].ravel().tolist(),
                    }
                pngs = renderer.render(x01, fmaps, attacked)
                base = f"feature-{f}/"
                item = sd.FeatureEvidence(
                    feature=f,
                    top_rows=[int(r) for r in rows],
                    activations=[float(a) for a in acts],
                    top_images=[version.png(f"{base}top-{i}.png", p) for i, p in enumerate(pngs.images)],
                    heatmaps=[version.png(f"{base}heatmap-{i}.png", p) for i, p in enumerate(pngs.heatmaps)],
                    attacks=[version.png(f"{base}attack-{i}.png", p) for i, p in enumerate(pngs.attacks)],
                )
                item.montage.CopyFrom(version.png(base + "montage.png", pngs.montage))
                report.features.append(item)
                index["features"].append({"feature": f, "rows": item.top_rows[:], "activations": list(item.activations), **extra})
            report.index.CopyFrom(version.json("index.json", index))
            version.commit(report)
        job.progress("render", len(features), len(features), "done", force=True)
        return report

    # ------------------------------------------------------------------------------ debug sets
    async def SplitDebugSet(self, request: sd.SplitDebugSetRequest, context: grpc.aio.ServicerContext) -> sd.DebugSplit:
        splitter = _params.estimator(DebugSplitter, request)
        name = cat.validate_id(DEBUG_SPLIT, request.name or f"{request.prediction_embedding_id}-debug", "name")
        out = inp.load_outcomes(self.catalog, request.prediction_embedding_id, "prediction_embedding_id")
        splitter.fit(out.labels, out.predictions)
        seed_rows, held_rows = np.sort(out.rows[splitter.seed_]), np.sort(out.rows[splitter.heldout_])
        split = sd.DebugSplit(name=name, num_failures=len(splitter.failures_), num_seed=len(seed_rows), num_heldout=len(held_rows))
        with self.catalog.writing(DEBUG_SPLIT, name, True) as version:
            split.debug_seed_rows.CopyFrom(version.npy("debug_seed_rows.npy", seed_rows))
            split.debug_heldout_rows.CopyFrom(version.npy("debug_heldout_rows.npy", held_rows))
            version.commit(split)
        return split

    async def CompareFailures(self, request: sd.CompareFailuresRequest, context: grpc.aio.ServicerContext) -> sd.FailureOverlap:
        ids = list(request.prediction_embedding_ids)
        if len(ids) < 2:
            raise errors.InvalidArgument.about("prediction_embedding_ids", "give at least two classifier embedding sets to compare")
        outs = [inp.load_outcomes(self.catalog, e, "prediction_embedding_ids") for e in ids]
        for o in outs[1:]:
            inp.same_dataset(outs[0].embedding, o.embedding)
        common = set(outs[0].rows.tolist()).intersection(*(o.rows.tolist() for o in outs[1:]))
        if not common:
            raise errors.FailedPrecondition("the embedding sets share no dataset rows", type="EMBEDDING", subject=ids[1])
        sets = [set(o.rows[o.wrong].tolist()) & common for o in outs]
        return sd.FailureOverlap(embedding_ids=ids, iou=failure_iou(sets).ravel().tolist(), num_failures=[len(s) for s in sets])


def build(ctx: ServiceContext) -> list[Binding]:
    return [
        Binding(
            SliceDiscoveryServicer(ctx),
            slice_discovery_pb2_grpc.add_SliceDiscoveryServicer_to_server,
            sd.DESCRIPTOR.services_by_name["SliceDiscovery"],
        )
    ]


if __name__ == "__main__":
    main("slice_discovery", build)
