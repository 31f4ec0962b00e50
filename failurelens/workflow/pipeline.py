"""The analysis pipeline: one job from a model and a dataset to a report, durable in the store.

A run is a sequence of stages (:data:`STAGES`). Each stage calls the services and returns a small
JSON-able dict (ids and URIs of what it made, figures); that dict is written to the store at
``pipeline/stages/<stage>-<key>.json`` once the stage has finished, where ``key`` hashes the
stage's inputs: the registration stamps of the dataset and models, the settings the stage
reads, and the keys of the stages it depends on. So

* a run that is interrupted (any service restarted, the pipeline included) resumes from the last
  finished stage: the finished ones are found by their keys and not recomputed;
* a later run with the same inputs reuses the stages' outputs (content-addressed), and a stage
  whose inputs changed (a re-registered model, other settings) runs again with everything after it.

The run's own record (``pipeline/runs/<run_id>/run.json``) holds the request, the state of each
stage and the error that ended it; the service keeps it current. Nothing here knows gRPC servers:
the stages call the services through :class:`~failurelens.workflow.calls.ServiceCalls`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np
from google.protobuf import json_format

from failurelens import errors
from failurelens.store.base import ArtifactStore
from failurelens.v1 import captioning_pb2, pipeline_pb2, registry_pb2
from failurelens.workflow import repair as rp
from failurelens.workflow.calls import ServiceCalls
from failurelens.workflow.report_data import write_report

#: stage names, in order
STAGES = ("embed", "failure_trees", "failure_directions", "captions", "backgrounds", "evidence", "repair", "report")
STAGE_ENUM = {
    "embed": pipeline_pb2.STAGE_EMBED,
    "failure_trees": pipeline_pb2.STAGE_FAILURE_TREES,
    "failure_directions": pipeline_pb2.STAGE_FAILURE_DIRECTIONS,
    "captions": pipeline_pb2.STAGE_CAPTIONS,
    "backgrounds": pipeline_pb2.STAGE_BACKGROUNDS,
    "evidence": pipeline_pb2.STAGE_EVIDENCE,
    "repair": pipeline_pb2.STAGE_REPAIR,
    "report": pipeline_pb2.STAGE_REPORT,
}
STAGE_NAME = {v: k for k, v in STAGE_ENUM.items()}
#: what each stage reads from the stages before it
DEPENDS: dict[str, tuple[str, ...]] = {
    "embed": (),
    "failure_trees": ("embed",),
    "failure_directions": ("embed",),
    "captions": ("embed", "failure_trees", "failure_directions"),
    "backgrounds": ("embed",),
    "evidence": ("failure_trees",),
    "repair": (),
    "report": ("embed", "failure_trees", "failure_directions", "captions", "backgrounds", "evidence", "repair"),
}
#: visual evidence for the features of the most important rules of each class and grouping (the
#: report shows those rules' features)
EVIDENCE_RULES_PER_CLASS = 1
#: bump when a stage's outputs change meaning (old stored outputs are then not reused)
STAGE_FORMAT = 1
RUNS_PREFIX = "pipeline/runs/"
ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
STAGES_PREFIX = "pipeline/stages/"
#: the vocabulary captions use when the request names none (generic backgrounds, colours, sizes, corruptions)
GENERIC_VOCABULARY = "generic_vocabulary.json"


class Skip(Exception):
    """A stage that does not apply to this run (the message says why; it goes into the report)."""


@dataclasses.dataclass
class Plan:
    """A run's request resolved against the registry: what every stage reads."""

    dataset_id: str
    model_id: str
    feature_model_id: str  # "" -> the inspected model's own features
    clip_model_id: str  # "" -> no captions, directions on features
    split: str
    splits: dict[str, int]
    class_names: list[str]
    attributes: list[str]  # manifest attribute columns
    vocabulary_uri: str
    settings: dict[str, Any]  # discovery settings set in the request
    repair: bool
    generator: str
    images_per_prompt: int | None
    evidence: bool
    title: str
    stamps: dict[str, Any]  # registration stamps of the dataset and models
    model_version: int = 1
    baseline: dict[str, str] = dataclasses.field(default_factory=dict)  # run_id, summary_uri of the run compared with
    repair_strategies: list[str] = dataclasses.field(default_factory=list)
    peer_model_ids: list[str] = dataclasses.field(default_factory=list)
    sweep_lambdas: list[float] = dataclasses.field(default_factory=list)
    sweep_ks: list[int] = dataclasses.field(default_factory=list)

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def stage_key(stage: str, plan: Plan, upstream: dict[str, str]) -> str:
    """The content address of a stage's outputs."""
    doc = {"stage": stage, "format": STAGE_FORMAT, "plan": plan.params(), "upstream": {d: upstream[d] for d in DEPENDS[stage]}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:24]


def stage_record_key(stage: str, key: str) -> str:
    return f"{STAGES_PREFIX}{stage}-{key}.json"


def stage_files_prefix(stage: str, key: str) -> str:
    """Where a stage writes files of its own (the report); removed when the stage does not finish."""
    return f"{STAGES_PREFIX}{stage}-{key}/"


def run_record_key(run_id: str) -> str:
    return f"{RUNS_PREFIX}{run_id}/run.json"


def _stamp(ts: Any) -> int:
    return int(ts.ToNanoseconds())


def resolve(calls: ServiceCalls, store: ArtifactStore, request: pipeline_pb2.RunPipelineRequest) -> tuple[Plan, list[str]]:
    """The plan of a request, and the notes on fallbacks taken. Raises the registry's NOT_FOUND
    for unknown datasets or models."""
    notes: list[str] = []
    ds = calls.call(calls.registry.GetDataset, registry_pb2.GetDatasetRequest(dataset_id=request.dataset_id))
    stamps: dict[str, Any] = {"dataset": [ds.manifest.uri, _stamp(ds.created_at)]}
    model_version = 1
    roles = [("model", request.model_id), ("features", request.feature_model_id), ("clip", request.image_text_model_id)]
    roles += [(f"peer:{m}", m) for m in request.peer_model_ids]
    for role, model_id in roles:
        if model_id:
            m = calls.call(calls.registry.GetModel, registry_pb2.GetModelRequest(model_id=model_id))
            stamps[role] = [model_id, _stamp(m.created_at), sorted((v.version, _stamp(v.created_at)) for v in m.versions)]
            if role == "model":
                versions = sorted(v.version for v in m.versions) or [1]
                model_version = request.model_version if request.HasField("model_version") else versions[-1]
                if model_version not in versions:
                    raise errors.InvalidArgument.about("model_version", f"model {model_id!r} has versions {versions}, not {model_version}")
    baseline: dict[str, str] = {}
    if request.baseline_run_id:
        got = store.get_bytes_or_none(run_record_key(request.baseline_run_id)) if set(request.baseline_run_id) <= ID_CHARS else None
        if got is None:
            raise errors.NotFound.resource(
                "pipeline run", request.baseline_run_id, "baseline_run_id must name a finished run (failurelens runs list)"
            )
        base = json_format.Parse(got, pipeline_pb2.PipelineRun(), ignore_unknown_fields=True)
        if not base.summary.uri:
            raise errors.FailedPrecondition(
                f"baseline run {base.run_id} has not finished with a report; choose a succeeded run", type="RUN", subject=base.run_id
            )
        baseline = {"run_id": base.run_id, "summary_uri": base.summary.uri}
    if any(x < 0 for x in request.sweep_lambdas) or any(k < 1 for k in request.sweep_ks):
        raise errors.InvalidArgument.about("sweep_lambdas", "sweep lambdas >= 0 and ks >= 1")
    unknown = sorted(set(request.repair_strategies) - set(rp.STRATEGY_ENUMS))
    if unknown:
        raise errors.InvalidArgument.about("repair_strategies", f"unknown {unknown}; choose from {sorted(rp.STRATEGY_ENUMS)}")
    splits = dict(ds.split_counts)
    split = request.analysis_split or ("test" if "test" in splits else sorted(splits, key=lambda s: -splits[s])[0])
    if request.analysis_split and split not in splits:
        raise errors.InvalidArgument.about("analysis_split", f"dataset {ds.dataset_id!r} has splits {sorted(splits)}, not {split!r}")
    if not request.feature_model_id:
        notes.append(f"no robust feature extractor given: the failure trees use the features of {request.model_id} itself")
    if not request.image_text_model_id:
        notes.append(
            "no image-text model given: failure directions are fitted on "
            + ("the robust features" if request.feature_model_id else f"the features of {request.model_id}")
            + "; captions, failure backgrounds and repair are skipped"
        )
    vocabulary_uri = request.vocabulary_uri
    if not vocabulary_uri and request.image_text_model_id:
        text = resources.files("failurelens.workflow").joinpath(GENERIC_VOCABULARY).read_text()
        vocabulary_uri = store.uri(store.put_bytes("pipeline/vocabulary/generic.json", text.encode(), "application/json").key)
        notes.append("no caption vocabulary given: captions use failurelens's generic one (backgrounds, colours, sizes, image corruptions)")
    settings = {f: getattr(request, f) for f in ("holdout_fraction", "seed", "error_modes") if request.HasField(f)}
    manifest_cols = list(_manifest(store, ds).columns)
    attributes = [c for c in manifest_cols if c not in {"uri", "label", "split", "row", "sha256", "width", "height"}]
    if not attributes:
        notes.append("the dataset has no attribute columns: recovered slices are not scored against known attributes")
    return (
        Plan(
            dataset_id=ds.dataset_id,
            model_id=request.model_id,
            feature_model_id=request.feature_model_id,
            clip_model_id=request.image_text_model_id,
            split=split,
            splits=splits,
            class_names=list(ds.class_names),
            attributes=attributes,
            vocabulary_uri=vocabulary_uri,
            settings=settings,
            repair=request.repair,
            generator=request.generator or "world",
            images_per_prompt=request.images_per_prompt if request.HasField("images_per_prompt") else None,
            evidence=request.evidence if request.HasField("evidence") else True,
            title=request.title,
            stamps=stamps,
            model_version=model_version,
            baseline=baseline,
            repair_strategies=list(request.repair_strategies),
            peer_model_ids=list(dict.fromkeys(m for m in request.peer_model_ids if m != request.model_id)),
            sweep_lambdas=[float(x) for x in request.sweep_lambdas],
            sweep_ks=[int(k) for k in request.sweep_ks],
        ),
        notes,
    )


def _manifest(store: ArtifactStore, ds: registry_pb2.Dataset) -> Any:
    return store.get_parquet(store.key_from_uri(ds.manifest.uri)).to_pandas()


# ------------------------------------------------------------------------------------ stages
@dataclasses.dataclass
class StageContext:
    calls: ServiceCalls
    store: ArtifactStore
    plan: Plan
    outputs: dict[str, dict[str, Any]]  # finished stages' outputs
    progress: Callable[[str, int, int, str], None]  # (what, done, total, message)
    run_id: str = ""
    key: str = ""  # this stage's content address (artifact ids include it: other inputs, other artifacts)
    notes: list[str] = dataclasses.field(default_factory=list)  # fallbacks taken (for the report)
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)  # stage -> why it was skipped

    def bar(self, what: str) -> Callable[[str], Callable[[Any], None]]:
        """A progress-bar factory for the workflow helpers (they report peer jobs' Progress)."""

        def factory(name: str) -> Any:
            class _Bar:
                def __call__(self_, p: Any) -> None:
                    self.progress(f"{what}: {name}", int(p.done), int(p.total), p.message)

                def close(self_) -> None:
                    pass

            return _Bar()

        return factory

    def on_progress(self, what: str) -> Callable[[Any], None]:
        return lambda p: self.progress(what, int(p.done), int(p.total), p.message)


def _embedding_id(plan: Plan, model_id: str, version: int | None = None) -> str:
    if version and version > 1:  # the ids the repair's verification uses
        return rp.artifact_id(plan.dataset_id, model_id, f"v{version}", plan.split)
    return rp.artifact_id(plan.dataset_id, model_id, plan.split)


def embed(ctx: StageContext) -> dict[str, Any]:
    plan = ctx.plan
    out: dict[str, Any] = {}
    roles = (("model", plan.model_id, plan.model_version), ("features", plan.feature_model_id, None), ("clip", plan.clip_model_id, None))
    for role, model_id, version in roles:
        if not model_id:
            continue
        got = rp.ensure_embedding(
            ctx.calls, plan.dataset_id, model_id, [plan.split], version, _embedding_id(plan, model_id, version), bar_factory=ctx.bar("embed")
        )
        out[role] = got.embedding_id
        if role == "model":
            out["accuracy"] = got.accuracy
            out["num_rows"] = got.num_rows
            out["rows_uri"], out["labels_uri"], out["predictions_uri"] = got.rows.uri, got.labels.uri, got.predictions.uri
    if plan.peer_model_ids:
        ids = [out["model"]]
        for m in plan.peer_model_ids:
            ids.append(
                rp.ensure_embedding(
                    ctx.calls, plan.dataset_id, m, [plan.split], None, _embedding_id(plan, m), bar_factory=ctx.bar("embed")
                ).embedding_id
            )
        overlap = ctx.calls.compare_failures(ids)
        out["peers"] = {"models": [plan.model_id, *plan.peer_model_ids], "iou": list(overlap.iou), "num_failures": list(overlap.num_failures)}
    out.setdefault("features", out["model"])
    out.setdefault("directions_space", out.get("clip") or out["features"])
    return out


def _prefix(plan: Plan) -> str:
    return rp.artifact_id(plan.model_id, plan.split)


def failure_trees(ctx: StageContext) -> dict[str, Any]:
    e = ctx.outputs["embed"]
    fields = {k: v for k, v in ctx.plan.settings.items() if k in ("holdout_fraction", "seed")}
    rep = ctx.calls.fit_failure_trees(
        on_progress=ctx.on_progress("failure trees"),
        feature_embedding_id=e["features"],
        prediction_embedding_id=e["model"],
        report_id=rp.artifact_id(_prefix(ctx.plan), "trees", ctx.key[:12]),
        overwrite=True,
        **fields,
    )
    return {"report_id": rep.report_id, "num_rules": len(rep.rules), "valid_leaf_fraction": dict(rep.valid_leaf_fraction)}


def failure_directions(ctx: StageContext) -> dict[str, Any]:
    e = ctx.outputs["embed"]
    rep = ctx.calls.fit_failure_directions(
        on_progress=ctx.on_progress("failure directions"),
        clip_embedding_id=e["directions_space"],
        prediction_embedding_id=e["model"],
        report_id=rp.artifact_id(_prefix(ctx.plan), "directions", ctx.key[:12]),
        overwrite=True,
        **ctx.plan.settings,
    )
    return {"report_id": rep.report_id, "space": "image-text" if ctx.plan.clip_model_id else "features", "num_directions": len(rep.directions)}


def _no_clip(what: str) -> Skip:
    return Skip(f"{what} need an image-text model (image_text_model_id); none was given")


def captions(ctx: StageContext) -> dict[str, Any]:
    plan = ctx.plan
    if not plan.clip_model_id:
        raise _no_clip("captions")
    vocab = captioning_pb2.CaptionVocabulary(vocabulary_uri=plan.vocabulary_uri)
    rules = ctx.calls.caption_rules(
        report_id=ctx.outputs["failure_trees"]["report_id"],
        text_model_id=plan.clip_model_id,
        clip_embedding_id=ctx.outputs["embed"]["clip"],
        vocabulary=vocab,
        top_k=3,
    )
    directions = ctx.calls.caption_directions(
        report_id=ctx.outputs["failure_directions"]["report_id"], text_model_id=plan.clip_model_id, vocabulary=vocab, top_k=3
    )
    return {"rules": _as_dict(rules), "directions": _as_dict(directions)}


def backgrounds(ctx: StageContext) -> dict[str, Any]:
    plan = ctx.plan
    if not plan.clip_model_id:
        raise _no_clip("failure backgrounds")
    proposed = ctx.calls.propose_backgrounds(
        class_names=plan.class_names, vocabulary_uri=plan.vocabulary_uri, per_class=12, text_model_id=plan.clip_model_id
    )
    assignment = ctx.calls.assign_backgrounds(
        on_progress=ctx.on_progress("failure backgrounds"),
        clip_embedding_id=ctx.outputs["embed"]["clip"],
        prediction_embedding_id=ctx.outputs["embed"]["model"],
        text_model_id=plan.clip_model_id,
        backgrounds=list(proposed.classes),
        top_k=3,
        vocabulary=captioning_pb2.CaptionVocabulary(vocabulary_uri=plan.vocabulary_uri),
    )
    return {
        "assignments_uri": assignment.assignments.uri,
        "top": {c.class_name: [[b.background, b.count] for b in c.top] for c in assignment.classes},
    }


def evidence(ctx: StageContext) -> dict[str, Any]:
    if not ctx.plan.evidence:
        raise Skip("visual evidence was not asked for (evidence=false)")
    if not ctx.plan.feature_model_id:
        raise Skip("visual evidence (top images, CAM heatmaps, feature attacks) needs a feature extractor model (feature_model_id)")
    trees = ctx.outputs["failure_trees"]
    if not trees["num_rules"]:
        raise Skip("the failure trees found no rule, so no feature to show")
    rep = ctx.calls.render_feature_evidence(
        on_progress=ctx.on_progress("visual evidence"),
        report_id=trees["report_id"],
        top_k=6,
        heatmaps=True,
        feature_attack=True,
        rules_per_class=EVIDENCE_RULES_PER_CLASS,
    )
    return {"index_uri": rep.index.uri, "num_features": len(rep.features), "montages": {str(f.feature): f.montage.uri for f in rep.features}}


def repair(ctx: StageContext) -> dict[str, Any]:
    plan = ctx.plan
    if not plan.repair:
        raise Skip("repair was not asked for")
    if not plan.clip_model_id:
        raise _no_clip("the failure descriptions of a repair")
    missing = [s for s in ("train", "val", "test") if s not in plan.splits]
    if missing:
        raise Skip(f"repair needs train, val and test splits; the dataset lacks {', '.join(missing)}")
    strategies = plan.repair_strategies or list(rp.STRATEGY_ENUMS)
    publish = "failure_backgrounds" if "failure_backgrounds" in strategies else strategies[0]
    report = rp.repair(
        ctx.calls,
        ctx.store,
        strategies=strategies,
        publish=publish,
        dataset_id=plan.dataset_id,
        model_id=plan.model_id,
        clip_model_id=plan.clip_model_id,
        vocabulary_uri=plan.vocabulary_uri,
        generator=plan.generator,
        images_per_class=plan.images_per_prompt,
        echo=lambda line: ctx.progress("repair", 0, 1, line.strip()),
        bar_factory=ctx.bar("repair"),
    )
    sweeps = {}
    if (plan.sweep_lambdas or plan.sweep_ks) and report.published is not None:
        ctx.progress("repair", 0, 1, "sweeps of lambda and k")
        sweeps = rp.sweeps(
            ctx.calls, report, lambdas=plan.sweep_lambdas, ks=plan.sweep_ks, generator=plan.generator,
            images_per_class=plan.images_per_prompt, bar_factory=ctx.bar("repair"),
        )  # fmt: skip
    return {"report": rp.report_dict(report), "lines": rp.format_repair(report), "sweeps": sweeps}


def report(ctx: StageContext) -> dict[str, Any]:
    return write_report(ctx, stage_files_prefix("report", ctx.key))


RUNNERS: dict[str, Callable[[StageContext], dict[str, Any]]] = {
    "embed": embed,
    "failure_trees": failure_trees,
    "failure_directions": failure_directions,
    "captions": captions,
    "backgrounds": backgrounds,
    "evidence": evidence,
    "repair": repair,
    "report": report,
}


def run_stage(ctx: StageContext, stage: str, key: str) -> tuple[dict[str, Any], bool, bool, str]:
    """(outputs, reused, skipped, message) of one stage: its stored outputs when they exist, else
    computed now and stored (the record is written last, so a stage interrupted before it has
    finished leaves nothing that a later run could take for its outputs)."""
    record_key = stage_record_key(stage, key)
    stored = ctx.store.get_bytes_or_none(record_key)
    if stored is not None:
        rec = json.loads(stored)
        return rec["outputs"], True, rec.get("skipped", False), rec.get("message", "") or f"reused (computed by run {rec.get('run_id', '?')})"
    t0 = time.monotonic()
    skipped, message = False, ""
    try:
        outputs = RUNNERS[stage](ctx)
    except Skip as why:
        outputs, skipped, message = {}, True, str(why)
    except BaseException:
        ctx.store.delete_prefix(stage_files_prefix(stage, key))
        raise
    rec = {"stage": stage, "key": key, "outputs": outputs, "skipped": skipped, "message": message, "run_id": ctx.run_id}
    rec["seconds"] = time.monotonic() - t0
    rec["finished_at"] = time.time()
    ctx.store.put_bytes(record_key, json.dumps(rec, default=_jsonable).encode(), "application/json")
    return outputs, False, skipped, message


def _as_dict(msg: Any) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)
