"""SliceDiscovery service: failure trees (Barlow) and failure directions (SVMs on CLIP
embeddings), each slice re-measured on held-out rows with BH control, plus visual evidence of the
robust features behind each rule.

Thin by design: it validates the request, loads and aligns the stored embedding sets, calls the
pure library (:mod:`failurelens.discovery`) and stores the results as artifacts plus a report
record; nothing is written unless the whole job succeeds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import tempfile
from typing import Any, Iterable

import grpc
import numpy as np
import pandas as pd

from failurelens import catalog as cat
from failurelens.convert import preprocessing_from_proto
from failurelens.data import images as img
from failurelens.discovery import evidence as ev
from failurelens.discovery.directions import FailureDirections
from failurelens.discovery.trees import FailureTrees
from failurelens.discovery import trees as trees_lib
from failurelens.discovery.validation import HoldoutStats
from failurelens.runtime import Binding, JobContext, ServiceContext, errors, main
from failurelens.services import _inputs as inp
from failurelens.store import open_store
from failurelens.store.base import ArtifactStore
from failurelens.triton.client import TritonClient
from failurelens.v1 import common_pb2, registry_pb2, slice_discovery_pb2 as sd, slice_discovery_pb2_grpc

log = logging.getLogger(__name__)
GROUPING_NAME = {common_pb2.GROUPING_LABEL: "label", common_pb2.GROUPING_PREDICTION: "prediction"}
GROUPING_ENUM = {v: k for k, v in GROUPING_NAME.items()}
TREES = "failure-trees report"
DIRECTIONS = "failure-directions report"
EVIDENCE = "feature-evidence report"
DEBUG_SPLIT = "debug split"
#: error modes per class besides the class direction when a request leaves ``error_modes`` unset
DEFAULT_ERROR_MODES = 3


def _report_id(prefix: str, request: Any, given: str) -> str:
    if given:
        return cat.validate_id("report", given, "report_id")
    digest = hashlib.sha1(request.SerializeToString(deterministic=True)).hexdigest()[:12]
    return f"{prefix}-{digest}"


def holdout_pb(h: HoldoutStats | None) -> common_pb2.HoldoutStats:
    if h is None:
        return common_pb2.HoldoutStats()
    return common_pb2.HoldoutStats(**{f.name: getattr(h, f.name) for f in dataclasses.fields(HoldoutStats)})


def _finite(x: float) -> float:
    return float(x) if x is not None and math.isfinite(x) else 0.0


def rule_pb(tree: Any, leaf: Any, class_names: list[str]) -> sd.FailureRule:
    return sd.FailureRule(
        class_index=tree.class_index, class_name=class_names[tree.class_index], grouping=GROUPING_ENUM[tree.grouping], leaf_id=leaf.leaf_id,
        conditions=[sd.Condition(feature=c.feature, op=c.op, threshold=c.threshold) for c in leaf.conditions], text=leaf.text,
        n=leaf.n, errors=leaf.errors, error_rate=leaf.error_rate, error_coverage=leaf.error_coverage, importance=leaf.importance,
        valid=leaf.valid, holdout=holdout_pb(leaf.holdout),
    )


def tree_pb(tree: Any, class_names: list[str]) -> sd.FailureTree:
    return sd.FailureTree(
        class_index=tree.class_index, class_name=class_names[tree.class_index], grouping=GROUPING_ENUM[tree.grouping],
        n=tree.n, errors=tree.errors, base_error_rate=tree.base_error_rate, aler=tree.aler, aler_minus_ber=tree.aler_minus_ber,
        selected_features=list(tree.selected_features), mutual_information=list(tree.mutual_information),
        leaves=[rule_pb(tree, leaf, class_names) for leaf in tree.leaves], has_valid_leaf=tree.has_valid_leaf, skipped_reason=tree.skipped_reason,
    )


def rules_frame(trees: Iterable[Any], class_names: list[str]) -> pd.DataFrame:
    recs = []
    for t in trees:
        for leaf in t.leaves:
            h = leaf.holdout or HoldoutStats()
            recs.append({
                "class_index": t.class_index, "class_name": class_names[t.class_index], "grouping": t.grouping, "leaf_id": leaf.leaf_id,
                "rule": leaf.text, "n": leaf.n, "errors": leaf.errors, "error_rate": leaf.error_rate, "error_coverage": leaf.error_coverage,
                "importance": leaf.importance, "valid": leaf.valid, "base_error_rate": t.base_error_rate, "aler": t.aler,
                "holdout_n": h.n, "holdout_errors": h.errors, "holdout_error_rate": h.error_rate, "holdout_error_coverage": h.error_coverage,
                "p_value": h.p_value, "q_value": h.q_value, "validated": h.validated,
            })
    cols = ["class_index", "class_name", "grouping", "leaf_id", "rule", "n", "errors", "error_rate", "error_coverage", "importance", "valid",
            "base_error_rate", "aler", "holdout_n", "holdout_errors", "holdout_error_rate", "holdout_error_coverage", "p_value", "q_value", "validated"]
    return pd.DataFrame(recs, columns=cols)


def load_trees_report(catalog: cat.Catalog, report_id: str, field: str = "report_id") -> tuple[sd.FailureTreesReport, dict[str, Any], list[Any]]:
    """The report record, the full JSON artifact and its trees as library objects."""
    report = catalog.get(TREES, report_id, field)
    full = catalog.store.get_json(catalog.store.key_from_uri(report.report.uri))
    return report, full, [trees_lib.ClassTree.from_dict(t) for t in full["trees"]]


class SliceDiscoveryServicer(slice_discovery_pb2_grpc.SliceDiscoveryServicer):
    def __init__(self, ctx: ServiceContext, store: ArtifactStore | None = None, triton: TritonClient | None = None) -> None:
        self.ctx = ctx
        self.store = store or open_store(ctx.config.store or None)
        self.catalog = cat.Catalog(self.store)
        self._triton = triton
        # worker processes for per-class fitting (FAILURELENS_DISCOVERY_JOBS / --discovery-jobs; 0 = all cores)
        self.n_jobs = ctx.config.discovery_jobs or (os.cpu_count() or 1)

    @property
    def triton(self) -> TritonClient:
        if self._triton is None:
            self._triton = TritonClient(self.ctx.config.triton_url)
        return self._triton

    # ------------------------------------------------------------------------------ trees
    async def FitFailureTrees(self, request: sd.FitFailureTreesRequest, context: grpc.aio.ServicerContext):
        groupings = [GROUPING_NAME.get(g) for g in request.groupings] or ["label", "prediction"]
        if None in groupings:
            raise errors.InvalidArgument.field("groupings", "use GROUPING_LABEL and/or GROUPING_PREDICTION")
        depth = request.max_depth or 2
        if not 1 <= depth <= 3:
            raise errors.InvalidArgument.field("max_depth", f"{depth} must be 1, 2 or 3 (0 = default 2)")
        top_k = request.top_k_features or 20
        if top_k < 1:
            raise errors.InvalidArgument.field("top_k_features", f"{top_k} must be at least 1 (0 = default 20)")
        min_leaf = request.min_leaf_size or 5
        if min_leaf < 1:
            raise errors.InvalidArgument.field("min_leaf_size", f"{min_leaf} must be at least 1 (0 = default 5)")
        tau = inp.fraction(request.tau, request.HasField("tau"), 0.2, "tau")
        delta = inp.fraction(request.delta, request.HasField("delta"), 0.1, "delta")
        holdout = inp.fraction(request.holdout_fraction, request.HasField("holdout_fraction"), 0.5, "holdout_fraction")
        alpha = inp.fraction(request.fdr_alpha, request.HasField("fdr_alpha"), 0.05, "fdr_alpha", lo_open=True)
        if request.max_rules_in_response < 0:
            raise errors.InvalidArgument.field("max_rules_in_response", "must not be negative (0 = default 200)")
        feats = self.catalog.embedding(request.feature_embedding_id, "feature_embedding_id")
        inp.array_ref(feats, "features", "feature_embedding_id", "a FEATURE_EXTRACTOR (or CLASSIFIER) model")
        outcomes = inp.load_outcomes(self.catalog, request.prediction_embedding_id, "prediction_embedding_id")
        inp.same_dataset(feats, outcomes.embedding)
        dataset = self.catalog.dataset(feats.dataset_id)
        classes = inp.check_classes(list(request.classes), len(dataset.class_names))
        report_id = self._new_report_id(TREES, "trees", request)
        params = dict(max_depth=depth, top_k_features=min(top_k, max(1, feats.features.shape[1] if len(feats.features.shape) > 1 else top_k)), tau=tau,
                      delta=delta, min_leaf_size=min_leaf, groupings=tuple(groupings), holdout_fraction=holdout, fdr_alpha=alpha, seed=int(request.seed))

        def work(job: JobContext) -> sd.FailureTreesReport:
            return self._fit_trees(request, feats, outcomes, dataset, classes, params, report_id, job)

        async for update in self.ctx.jobs.stream(context, "FitFailureTrees", work, lambda p: sd.FailureTreesUpdate(progress=p),
                                                 lambda r: sd.FailureTreesUpdate(result=r), lambda r: r.report_id):
            yield update

    def _fit_trees(self, request: sd.FitFailureTreesRequest, feats: Any, outcomes: inp.Outcomes, dataset: registry_pb2.Dataset,
                   classes: list[int] | None, params: dict[str, Any], report_id: str, job: JobContext) -> sd.FailureTreesReport:
        names = list(dataset.class_names)
        model, out = self._fit_per_class(FailureTrees(**params, n_jobs=self.n_jobs), feats, "features", outcomes, classes, job)
        trees = model.trees_
        job.progress("write", 0, 1, "writing the report", force=True)
        report = sd.FailureTreesReport(report_id=report_id, feature_embedding_id=feats.embedding_id, prediction_embedding_id=out.embedding.embedding_id,
                                       num_trees=len(trees))
        for g, v in model.valid_leaf_fraction_.items():
            report.valid_leaf_fraction[g] = v
        valid = sorted(((t, leaf) for t in trees for leaf in t.leaves if leaf.valid), key=lambda tl: -tl[1].importance)
        report.rules.extend(rule_pb(t, leaf, names) for t, leaf in valid[: request.max_rules_in_response or 200])
        full = {"report_id": report_id, "dataset_id": dataset.dataset_id, "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()},
                "feature_embedding_id": feats.embedding_id, "prediction_embedding_id": out.embedding.embedding_id, "class_names": names,
                "trees": [t.to_dict() for t in trees]}
        with self.catalog.writing(TREES, report_id, request.overwrite) as prefix:
            report.report.CopyFrom(cat.artifact(self.store, self.store.put_json(prefix + "report.json", full), "application/json"))
            report.rules_table.CopyFrom(cat.artifact(self.store, self.store.put_parquet(prefix + "rules.parquet", rules_frame(trees, names)), "application/vnd.apache.parquet"))
            report.created_at.GetCurrentTime()
            self.catalog.put(TREES, report_id, report)
        job.progress("write", 1, 1, "done", force=True)
        return report

    def _new_report_id(self, kind: str, prefix: str, request: Any) -> str:
        """The request's report_id (or one derived from the request), free unless overwrite is set."""
        report_id = _report_id(prefix, request, request.report_id)
        if self.catalog.exists(kind, report_id) and not request.overwrite:
            raise errors.AlreadyExists.resource(kind, report_id)
        return report_id

    def _fit_per_class(self, estimator: Any, emb: Any, field: str, outcomes: inp.Outcomes, classes: list[int] | None, job: JobContext,
                       confidences: bool = False) -> tuple[Any, inp.Outcomes]:
        """Fit a per-class discovery estimator on the stored matrix ``emb.<field>`` (copied to a local
        ``.npy``, rows matched with the predictions); returns it and the matched predictions."""
        ia, ib = inp.align(self.catalog.load_array(emb.rows), outcomes.rows, f"{field} / prediction_embedding_id")
        out = outcomes.take(ib)
        extra = {"confidences": out.confidences} if confidences else {}
        with tempfile.TemporaryDirectory(prefix="fl-discovery-") as tmp:
            job.progress("load", 0, 1, f"copying {field}", force=True)
            path = inp.local_matrix(self.store, getattr(emb, field), tmp, field, ia)
            try:
                estimator.fit(path, out.labels, out.predictions, classes=classes, progress=lambda s, d, t: job.progress(s, d, t), check=job.check, **extra)
            except ValueError as exc:
                raise errors.FailedPrecondition.violation("EMBEDDING", emb.embedding_id, f"the stored inputs cannot be analysed: {exc}") from None
        return estimator, out

    async def GetFailureTrees(self, request: sd.GetReportRequest, context: grpc.aio.ServicerContext) -> sd.FailureTreesReport:
        return self.catalog.get(TREES, request.report_id, "report_id")  # type: ignore[return-value]

    # ------------------------------------------------------------------------------ directions
    async def FitFailureDirections(self, request: sd.FitFailureDirectionsRequest, context: grpc.aio.ServicerContext):
        c_grid = list(request.c_grid) or [0.01, 0.1, 1.0, 10.0]
        if any(not (c > 0 and math.isfinite(c)) for c in c_grid):
            raise errors.InvalidArgument.field("c_grid", f"every C must be a positive number, got {c_grid}")
        folds = request.cv_folds or 3
        if folds < 2:
            raise errors.InvalidArgument.field("cv_folds", f"{folds} must be at least 2 (0 = default 3)")
        top_k = request.top_k or 25
        if top_k < 1:
            raise errors.InvalidArgument.field("top_k", f"{top_k} must be at least 1 (0 = default 25)")
        holdout = inp.fraction(request.holdout_fraction, request.HasField("holdout_fraction"), 0.5, "holdout_fraction")
        alpha = inp.fraction(request.fdr_alpha, request.HasField("fdr_alpha"), 0.05, "fdr_alpha", lo_open=True)
        modes = request.error_modes if request.HasField("error_modes") else DEFAULT_ERROR_MODES
        if modes < 0 or modes == 1:
            raise errors.InvalidArgument.field("error_modes", f"{modes} must be 0 (the class direction only) or at least 2 (unset = {DEFAULT_ERROR_MODES})")
        clip = self.catalog.embedding(request.clip_embedding_id, "clip_embedding_id")
        inp.array_ref(clip, "image_embeddings", "clip_embedding_id", "an IMAGE_TEXT model")
        outcomes = inp.load_outcomes(self.catalog, request.prediction_embedding_id, "prediction_embedding_id")
        inp.same_dataset(clip, outcomes.embedding)
        dataset = self.catalog.dataset(clip.dataset_id)
        classes = inp.check_classes(list(request.classes), len(dataset.class_names))
        report_id = self._new_report_id(DIRECTIONS, "directions", request)
        params = dict(c_grid=tuple(c_grid), cv_folds=folds, top_k=top_k, holdout_fraction=holdout, fdr_alpha=alpha, error_modes=modes,
                      seed=int(request.seed))

        def work(job: JobContext) -> sd.FailureDirectionsReport:
            return self._fit_directions(request, clip, outcomes, dataset, classes, params, report_id, job)

        async for update in self.ctx.jobs.stream(context, "FitFailureDirections", work, lambda p: sd.FailureDirectionsUpdate(progress=p),
                                                 lambda r: sd.FailureDirectionsUpdate(result=r), lambda r: r.report_id):
            yield update

    def _fit_directions(self, request: sd.FitFailureDirectionsRequest, clip: Any, outcomes: inp.Outcomes, dataset: registry_pb2.Dataset,
                        classes: list[int] | None, params: dict[str, Any], report_id: str, job: JobContext) -> sd.FailureDirectionsReport:
        names = list(dataset.class_names)
        model, out = self._fit_per_class(FailureDirections(**params, n_jobs=self.n_jobs), clip, "image_embeddings", outcomes, classes, job, confidences=True)
        report = sd.FailureDirectionsReport(report_id=report_id, clip_embedding_id=clip.embedding_id, prediction_embedding_id=out.embedding.embedding_id)
        full: dict[str, Any] = {"report_id": report_id, "dataset_id": dataset.dataset_id, "class_names": names,
                                "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}, "directions": []}
        with self.catalog.writing(DIRECTIONS, report_id, request.overwrite) as prefix:
            for i, d in enumerate(model.directions_):
                job.progress("write", i, len(model.directions_), f"class {d.class_index}" + (f" mode {d.mode}" if d.mode else ""))
                msg = sd.FailureDirection(
                    mode=d.mode, mode_errors=d.mode_errors,
                    class_index=d.class_index, class_name=names[d.class_index], n=d.n, errors=d.errors, c=d.c,
                    cv_balanced_accuracy=_finite(d.cv_balanced_accuracy), holdout_balanced_accuracy=_finite(d.holdout_balanced_accuracy),
                    top_aligned_rows=[int(out.rows[r]) for r in d.top_aligned_rows], top_antialigned_rows=[int(out.rows[r]) for r in d.top_antialigned_rows],
                    top_aligned_accuracy=_finite(d.top_aligned_accuracy), low_confidence_accuracy=_finite(d.low_confidence_accuracy),
                    holdout=holdout_pb(d.holdout), skipped_reason=d.skipped_reason,
                )
                if not d.skipped_reason:
                    base = f"{prefix}class-{d.class_index}/" + (f"mode-{d.mode}/" if d.mode else "")
                    direction = np.asarray(d.direction, np.float32)
                    dv = np.asarray(d.decision_values, np.float32)
                    mrows = out.rows[np.asarray(d.rows, np.int64)]
                    msg.direction.CopyFrom(cat.artifact(self.store, self.store.put_npy(base + "direction.npy", direction), "application/x-npy", direction.shape, "float32"))
                    msg.decision_values.CopyFrom(cat.artifact(self.store, self.store.put_npy(base + "decision_values.npy", dv), "application/x-npy", dv.shape, "float32"))
                    msg.rows.CopyFrom(cat.artifact(self.store, self.store.put_npy(base + "rows.npy", mrows), "application/x-npy", mrows.shape, "int64"))
                report.directions.append(msg)
                full["directions"].append({"class_index": d.class_index, "mode": d.mode, "mode_errors": d.mode_errors, "intercept": float(d.intercept), "c": float(d.c), "skipped_reason": d.skipped_reason,
                                           "holdout": dataclasses.asdict(d.holdout) if d.holdout else None,
                                           "fit_rows": [int(out.rows[r]) for r, m in zip(d.rows, d.fit_mask) if m] if not d.skipped_reason else []})
            report.report.CopyFrom(cat.artifact(self.store, self.store.put_json(prefix + "report.json", full), "application/json"))
            report.created_at.GetCurrentTime()
            self.catalog.put(DIRECTIONS, report_id, report)
        job.progress("write", 1, 1, "done", force=True)
        return report

    async def GetFailureDirections(self, request: sd.GetReportRequest, context: grpc.aio.ServicerContext) -> sd.FailureDirectionsReport:
        return self.catalog.get(DIRECTIONS, request.report_id, "report_id")  # type: ignore[return-value]

    # ------------------------------------------------------------------------------ evidence
    async def RenderFeatureEvidence(self, request: sd.RenderFeatureEvidenceRequest, context: grpc.aio.ServicerContext):
        top_k = request.top_k or 8
        if not 1 <= top_k <= 64:
            raise errors.InvalidArgument.field("top_k", f"{top_k} must be between 1 and 64 (0 = default 8)")
        steps = request.attack_steps or 40
        step_size = request.attack_step_size or 0.5
        eps = request.attack_epsilon or 10.0
        if steps < 1 or steps > 1000 or step_size <= 0 or eps <= 0:
            raise errors.InvalidArgument.field("attack_steps", "attack_steps must be 1..1000, attack_step_size and attack_epsilon positive")
        if not request.report_id:
            raise errors.InvalidArgument.field("report_id", "name the failure-trees report whose features (and feature embedding) to show")
        report, full, trees = load_trees_report(self.catalog, request.report_id)
        features = sorted({c.feature for t in trees for leaf in t.leaves if leaf.valid for c in leaf.conditions} | set(request.features))
        feats = self.catalog.embedding(report.feature_embedding_id, "report_id")
        dim = int(feats.features.shape[1]) if len(feats.features.shape) > 1 else 0
        bad = [f for f in features if f < 0 or f >= dim]
        if bad:
            raise errors.InvalidArgument.field("features", f"feature index(es) {bad} out of range; the features have {dim} dimensions")
        if not features:
            raise errors.FailedPrecondition.violation("REPORT", request.report_id, "the report has no valid rules; name features explicitly in `features`")
        model = inp.model_of_kind(self.catalog, request.feature_model_id or feats.model_id, registry_pb2.MODEL_KIND_FEATURE_EXTRACTOR,
                                  "feature_model_id", "a FEATURE_EXTRACTOR model")
        if request.heatmaps and not model.has_feature_map:
            raise errors.FailedPrecondition.violation("MODEL", model.model_id, f"model {model.model_id!r} has no feature_map output; render without heatmaps")
        attack_model = model.triton_models[0] + "__attack"
        if request.feature_attack and not self.triton.is_model_ready(attack_model):
            raise errors.FailedPrecondition.violation("MODEL", model.model_id, f"Triton has no feature-attack model {attack_model!r}; register the feature extractor again to install it")
        dataset = self.catalog.dataset(feats.dataset_id)

        def work(job: JobContext) -> sd.FeatureEvidenceReport:
            return self._render(request, feats, model, dataset, features, top_k, (steps, step_size, eps), attack_model, job)

        async for update in self.ctx.jobs.stream(context, "RenderFeatureEvidence", work, lambda p: sd.FeatureEvidenceUpdate(progress=p),
                                                 lambda r: sd.FeatureEvidenceUpdate(result=r), lambda r: r.report_id):
            yield update

    def _render(self, request: sd.RenderFeatureEvidenceRequest, feats: Any, model: registry_pb2.Model, dataset: registry_pb2.Dataset,
                features: list[int], top_k: int, attack: tuple[int, float, float], attack_model: str, job: JobContext) -> sd.FeatureEvidenceReport:
        store = self.store
        manifest = self.catalog.load_manifest(dataset)
        uris = manifest["uri"].to_numpy()
        frows = self.catalog.load_array(feats.rows)
        pp = preprocessing_from_proto(model.preprocessing, None)
        mean, std = np.asarray(pp.mean, np.float32).reshape(1, 3, 1, 1), np.asarray(pp.std, np.float32).reshape(1, 3, 1, 1)
        triton_model = model.triton_models[0]
        input_name = self.triton.model_metadata(triton_model)["inputs"][0]["name"]
        report = sd.FeatureEvidenceReport(report_id=request.report_id)
        index: dict[str, Any] = {"report_id": request.report_id, "model_id": model.model_id, "features": []}
        with tempfile.TemporaryDirectory(prefix="fl-evidence-") as tmp, self.catalog.writing(EVIDENCE, request.report_id, True) as prefix:
            path = inp.local_matrix(store, feats.features, tmp, "features")
            for fi, f in enumerate(features):
                job.progress("render", fi, len(features), f"feature {f}", force=True)
                pos, acts = ev.top_activating(path, f, top_k)
                rows = frows[pos]
                pics = [img.read_image(store, store.key_from_uri(uris[r])) for r in rows]
                x = img.preprocess(pics, pp)  # normalised, model input size
                x01 = np.clip(x * std + mean, 0.0, 1.0).astype(np.float32)
                shown = [(np.transpose(v, (1, 2, 0)) * 255).round().astype(np.uint8) for v in x01]
                item = sd.FeatureEvidence(feature=f, top_rows=[int(r) for r in rows], activations=[float(a) for a in acts])
                base = f"{prefix}feature-{f}/"
                grid = [shown]
                for i, im in enumerate(shown):
                    item.top_images.append(cat.artifact(store, store.put_bytes(f"{base}top-{i}.png", ev.png_bytes(im), "image/png"), "image/png"))
                if request.heatmaps:
                    fmap = self.triton.infer(triton_model, {input_name: x}, ["feature_map"], timeout_s=job.timeout(120.0))["feature_map"]
                    heats = [ev.overlay(im, ev.cam_heatmap(fmap[i, f], im.shape[:2])) for i, im in enumerate(shown)]
                    grid.append(heats)
                    for i, h in enumerate(heats):
                        item.heatmaps.append(cat.artifact(store, store.put_bytes(f"{base}heatmap-{i}.png", ev.png_bytes(h), "image/png"), "image/png"))
                if request.feature_attack:
                    steps, step_size, eps = attack
                    n = len(x01)
                    res = self.triton.infer(attack_model, {
                        "images": x01, "feature": np.full((n, 1), f, np.int64), "steps": np.full((n, 1), steps, np.int32),
                        "step_size": np.full((n, 1), step_size, np.float32), "epsilon": np.full((n, 1), eps, np.float32),
                    }, ["attacked", "activation_before", "activation_after"], timeout_s=job.timeout(600.0))
                    adv = [(np.transpose(v, (1, 2, 0)) * 255).round().clip(0, 255).astype(np.uint8) for v in res["attacked"]]
                    grid.append(adv)
                    for i, a in enumerate(adv):
                        item.attacks.append(cat.artifact(store, store.put_bytes(f"{base}attack-{i}.png", ev.png_bytes(a), "image/png"), "image/png"))
                    index_attack = {"activation_before": res["activation_before"].ravel().tolist(), "activation_after": res["activation_after"].ravel().tolist()}
                else:
                    index_attack = {}
                item.montage.CopyFrom(cat.artifact(store, store.put_bytes(f"{base}montage.png", ev.montage(grid), "image/png"), "image/png"))
                report.features.append(item)
                index["features"].append({"feature": f, "rows": item.top_rows[:], "activations": list(item.activations), **index_attack})
            report.index.CopyFrom(cat.artifact(store, store.put_json(prefix + "index.json", index), "application/json"))
            self.catalog.put(EVIDENCE, request.report_id, report)
        job.progress("render", len(features), len(features), "done", force=True)
        return report

    # ------------------------------------------------------------------------------ debug sets
    async def SplitDebugSet(self, request: sd.SplitDebugSetRequest, context: grpc.aio.ServicerContext) -> sd.DebugSplit:
        frac = inp.fraction(request.seed_fraction, request.HasField("seed_fraction"), 0.5, "seed_fraction", lo_open=True)
        name = cat.validate_id(DEBUG_SPLIT, request.name or f"{request.prediction_embedding_id}-debug", "name")
        out = inp.load_outcomes(self.catalog, request.prediction_embedding_id, "prediction_embedding_id")
        failures = np.flatnonzero(out.wrong)
        if len(failures) == 0:
            raise errors.FailedPrecondition.violation("EMBEDDING", request.prediction_embedding_id, "the model makes no errors on these rows; there is nothing to debug")
        rng = np.random.default_rng(request.seed)
        seed_mask = np.zeros(len(failures), bool)
        for c in np.unique(out.labels[failures]):  # per class, so every failing class is in both parts when it can be
            idx = np.flatnonzero(out.labels[failures] == c)
            k = int(round(frac * len(idx)))
            seed_mask[rng.choice(idx, size=k, replace=False)] = True
        seed_rows, held_rows = np.sort(out.rows[failures[seed_mask]]), np.sort(out.rows[failures[~seed_mask]])
        split = sd.DebugSplit(name=name, num_failures=len(failures), num_seed=len(seed_rows), num_heldout=len(held_rows))
        with self.catalog.writing(DEBUG_SPLIT, name, True) as prefix:
            split.debug_seed_rows.CopyFrom(cat.artifact(self.store, self.store.put_npy(prefix + "debug_seed_rows.npy", seed_rows), "application/x-npy", seed_rows.shape, "int64"))
            split.debug_heldout_rows.CopyFrom(cat.artifact(self.store, self.store.put_npy(prefix + "debug_heldout_rows.npy", held_rows), "application/x-npy", held_rows.shape, "int64"))
            self.catalog.put(DEBUG_SPLIT, name, split)
        return split

    async def CompareFailures(self, request: sd.CompareFailuresRequest, context: grpc.aio.ServicerContext) -> sd.FailureOverlap:
        ids = list(request.prediction_embedding_ids)
        if len(ids) < 2:
            raise errors.InvalidArgument.field("prediction_embedding_ids", "give at least two classifier embedding sets to compare")
        outs = [inp.load_outcomes(self.catalog, e, "prediction_embedding_ids") for e in ids]
        for o in outs[1:]:
            inp.same_dataset(outs[0].embedding, o.embedding)
        sets = [set(o.rows[o.wrong].tolist()) for o in outs]
        common = set(outs[0].rows.tolist())
        for o in outs[1:]:
            common &= set(o.rows.tolist())
        if not common:
            raise errors.FailedPrecondition.violation("EMBEDDING", ids[1], "the embedding sets share no dataset rows")
        sets = [s & common for s in sets]
        iou = [len(a & b) / len(a | b) if (a | b) else 1.0 for a in sets for b in sets]
        return sd.FailureOverlap(embedding_ids=ids, iou=iou, num_failures=[len(s) for s in sets])


def build(ctx: ServiceContext) -> list[Binding]:
    return [Binding(SliceDiscoveryServicer(ctx), slice_discovery_pb2_grpc.add_SliceDiscoveryServicer_to_server, sd.DESCRIPTOR.services_by_name["SliceDiscovery"])]


if __name__ == "__main__":
    main("slice_discovery", build)
