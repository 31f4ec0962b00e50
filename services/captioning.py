"""Captioning service: names failure modes in words with an image–text model.

* directions: candidate captions (templates x class x attribute values) ranked by the failure
  direction's most aligned images or by its SVM score on their text embeddings;
* tree rules: the captions whose text embeddings best separate the rule's images from the rest
  of the class;
* caption validation: model accuracy on the images nearest the hard vs the easy caption;
* backgrounds (mitigation paper): uncommon backgrounds per class from an OpenAI-compatible chat
  endpoint or a vocabulary file, near-duplicates merged by text-embedding similarity, and each
  failure image's background assigned by CLIP zero-shot.

Text embeddings come from the model's Triton text encoder; image embeddings, directions and rules
from stored artifacts. The algorithms are the library's (:mod:`failurelens.discovery.captions`,
:mod:`failurelens.discovery.backgrounds`); results are returned and stored as JSON/Parquet.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np
import pandas as pd

from failurelens import catalog as cat
from failurelens import errors
from failurelens.discovery import backgrounds as bg
from failurelens.discovery import captions as cap
from failurelens.discovery.trees import FailureTrees
from failurelens.runtime import Binding, JobContext, ServiceContext, main
from failurelens.services import _inputs as inp
from failurelens.services import _params
from failurelens.services.slice_discovery import DIRECTIONS, GROUPING_ENUM, load_trees_report
from failurelens.store import open_store
from failurelens.store.base import ArtifactStore
from failurelens.triton.client import TritonClient
from failurelens.triton.texts import TextEncoder
from failurelens.v1 import captioning_pb2 as cp
from failurelens.v1 import captioning_pb2_grpc, registry_pb2

MAX_CANDIDATES = 20_000
METHOD_NAME = {cp.DIRECTION_CAPTION_METHOD_TEXT_SCORE: "text_score", cp.DIRECTION_CAPTION_METHOD_ALIGNED_IMAGES: "aligned_images"}
#: which library estimator reads the tunable fields of which request (see services/_params.py)
ESTIMATORS: dict[str, tuple[type, type]] = {
    "CaptionDirections": (cp.CaptionDirectionsRequest, cap.DirectionCaptioner),
    "CaptionRules": (cp.CaptionRulesRequest, cap.RuleCaptioner),
    "ValidateCaption": (cp.ValidateCaptionRequest, cap.CaptionValidator),
    "ProposeBackgrounds": (cp.ProposeBackgroundsRequest, bg.BackgroundProposer),
    "ProposeBackgrounds.llm": (cp.LlmConfig, bg.LlmSettings),
    "AssignBackgrounds": (cp.AssignBackgroundsRequest, bg.BackgroundAssigner),
}


def direction_captioner(request: cp.CaptionDirectionsRequest) -> cap.DirectionCaptioner:
    return _params.estimator(cap.DirectionCaptioner, request, {"method": lambda m: METHOD_NAME.get(m, m)})


def _caption_pb(c: Any) -> cp.Caption:
    acc = float(c.nearest_accuracy)
    return cp.Caption(
        text=c.text,
        score=float(c.score),
        attribute=c.attribute,
        value=c.value,
        nearest_accuracy=acc if np.isfinite(acc) else 0.0,
        validated=bool(c.validated),
    )


def _caption_json(c: Any) -> dict[str, Any]:
    """A caption for a stored JSON document (an unchecked caption's accuracy is null, not NaN)."""
    d = dataclasses.asdict(c)
    if not np.isfinite(d["nearest_accuracy"]):
        d["nearest_accuracy"] = None
    return d


class CaptioningServicer(captioning_pb2_grpc.CaptioningServicer):
    def __init__(self, ctx: ServiceContext, store: ArtifactStore | None = None, triton: TritonClient | None = None) -> None:
        self.ctx = ctx
        self.catalog = cat.Catalog(ctx.telemetry.watch_store(store or open_store(ctx.config.store or None)))
        self._triton = triton
        self._encoder: TextEncoder | None = None

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._triton = self._triton or self.ctx.telemetry.watch_triton(TritonClient(self.ctx.config.triton_url))
            self._encoder = TextEncoder(self._triton)
        return self._encoder

    # ------------------------------------------------------------------------------ helpers
    def _text_model(self, model_id: str) -> registry_pb2.Model:
        return inp.model_of_kind(self.catalog, model_id, registry_pb2.MODEL_KIND_IMAGE_TEXT, "text_model_id", "an IMAGE_TEXT model")

    def _embed_texts(self, model: registry_pb2.Model, texts: Sequence[str], job: JobContext | None = None) -> np.ndarray:
        return self.encoder.encode(
            model.triton_models[1],
            model.tokenizer.context_length or 77,
            list(texts),
            check=job.check if job else None,
            timeout=job.timeout if job else None,
        )

    def _vocabulary(self, vocab: cp.CaptionVocabulary, field: str = "vocabulary") -> tuple[dict[str, list[str]], Any]:
        """(attributes, templates) from the request's vocabulary or its JSON file."""
        attributes = {k: list(v.values) for k, v in vocab.attributes.items()}
        templates: Any = list(vocab.templates) or None
        if vocab.vocabulary_uri:
            data = self.catalog.read_json(vocab.vocabulary_uri, f"{field}.vocabulary_uri")
            if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
                raise errors.InvalidArgument.about(
                    f"{field}.vocabulary_uri", 'the file must be a JSON object with "attributes": {name: [values]} (and optional "templates")'
                )
            for k, v in data["attributes"].items():
                attributes.setdefault(k, [str(x) for x in v])
            templates = templates or data.get("templates")
        if not any(attributes.values()):
            raise errors.InvalidArgument.about(field, "give attribute values (e.g. background -> [on grass, in water]) or a vocabulary_uri")
        return attributes, templates

    def _candidates(self, class_name: str, attributes: dict[str, list[str]], templates: Any) -> list[Any]:
        cands = cap.build_candidates(class_name, attributes, templates)
        if len(cands) > MAX_CANDIDATES:
            raise errors.InvalidArgument.about("vocabulary", f"{len(cands)} candidate captions per class; the limit is {MAX_CANDIDATES}")
        return cands

    def _candidate_embeddings(self, model: registry_pb2.Model, candidate_lists: Sequence[Sequence[Any]], job: JobContext) -> list[np.ndarray]:
        """One pooled text embedding per candidate (its prompt ensemble averaged), every distinct
        prompt embedded once."""
        prompts = sorted({p for cands in candidate_lists for p in cap.candidate_prompts(cands)[0]})
        job.progress("texts", 0, len(prompts), "embedding candidate captions", force=True)
        table = dict(zip(prompts, self._embed_texts(model, prompts, job)))
        job.progress("texts", len(prompts), len(prompts), "done", force=True)
        return [cap.embed_candidates(cands, lambda texts: np.stack([table[t] for t in texts])) for cands in candidate_lists]

    # ------------------------------------------------------------------------------ directions
    async def CaptionDirections(self, request: cp.CaptionDirectionsRequest, context: grpc.aio.ServicerContext) -> cp.CaptionDirectionsResponse:
        captioner = direction_captioner(request)
        report = self.catalog.get(DIRECTIONS, request.report_id, "report_id")
        inp.array_ref(
            self.catalog.embedding(report.clip_embedding_id, "report_id"),
            "image_embeddings",
            "report_id",
            "an IMAGE_TEXT model (this report's directions were fitted on features, which have no text to caption them with)",
        )
        model = self._text_model(request.text_model_id)
        attributes, templates = self._vocabulary(request.vocabulary)
        unknown = sorted(set(request.classes) - {d.class_index for d in report.directions})
        if unknown:
            raise errors.InvalidArgument.about("classes", f"class(es) {unknown} are not in report {request.report_id!r}")
        wanted = [d for d in report.directions if not d.skipped_reason and (not request.classes or d.class_index in request.classes)]
        return await self.ctx.jobs.run(  # type: ignore[no-any-return]
            context, "CaptionDirections", lambda job: self._caption_directions(request, captioner, report, model, attributes, templates, wanted, job)
        )

    def _caption_directions(
        self,
        request: cp.CaptionDirectionsRequest,
        captioner: cap.DirectionCaptioner,
        report: Any,
        model: registry_pb2.Model,
        attributes: dict[str, list[str]],
        templates: Any,
        wanted: list[Any],
        job: JobContext,
    ) -> cp.CaptionDirectionsResponse:
        full = self.catalog.load_json(report.report)
        intercepts = {(d["class_index"], d.get("mode", 0)): d["intercept"] for d in full["directions"]}
        cands = {d.class_index: self._candidates(d.class_name, attributes, templates) for d in wanted}
        text_emb = dict(zip(cands, self._candidate_embeddings(model, list(cands.values()), job)))
        clip = self.catalog.embedding(report.clip_embedding_id, "report_id")
        clip_rows = self.catalog.load_array(clip.rows)
        clip_emb = self.catalog.load_array(clip.image_embeddings)
        outcomes = inp.load_outcomes(self.catalog, report.prediction_embedding_id, "report_id")
        resp = cp.CaptionDirectionsResponse()
        stored = []
        for i, d in enumerate(wanted):
            job.progress("caption", i, len(wanted), d.class_name + (f" mode {d.mode}" if d.mode else ""))
            rows = self.catalog.load_array(d.rows)
            pos, neg = captioner.caption(
                cands[d.class_index],
                text_emb[d.class_index],
                clip_emb[np.searchsorted(clip_rows, rows)],
                ~outcomes.wrong[np.searchsorted(outcomes.rows, rows)],
                self.catalog.load_array(d.decision_values),
                direction=self.catalog.load_array(d.direction),
                intercept=intercepts.get((d.class_index, d.mode), 0.0),
            )
            resp.classes.append(
                cp.ClassCaptions(
                    class_index=d.class_index,
                    class_name=d.class_name,
                    mode=d.mode,
                    positive=[_caption_pb(x) for x in pos],
                    negative=[_caption_pb(x) for x in neg],
                )
            )
            stored.append(
                {
                    "class_index": d.class_index,
                    "class_name": d.class_name,
                    "mode": d.mode,
                    "positive": [_caption_json(x) for x in pos],
                    "negative": [_caption_json(x) for x in neg],
                }
            )
        resp.captions.CopyFrom(
            self.catalog.put_json(f"captions/{request.report_id}/{cat.derived_id('directions', request, report.report.uri)}.json", stored)
        )
        job.progress("caption", len(wanted), len(wanted), "done", force=True)
        return resp

    # ------------------------------------------------------------------------------ tree rules
    async def CaptionRules(self, request: cp.CaptionRulesRequest, context: grpc.aio.ServicerContext) -> cp.CaptionRulesResponse:
        captioner = _params.estimator(cap.RuleCaptioner, request)
        report, full, trees = load_trees_report(self.catalog, request.report_id)
        model = self._text_model(request.text_model_id)
        clip = self.catalog.embedding(request.clip_embedding_id, "clip_embedding_id")
        inp.array_ref(clip, "image_embeddings", "clip_embedding_id", "an IMAGE_TEXT model")
        feats = self.catalog.embedding(report.feature_embedding_id, "report_id")
        inp.same_dataset(feats, clip)
        attributes, templates = self._vocabulary(request.vocabulary)
        return await self.ctx.jobs.run(  # type: ignore[no-any-return]
            context,
            "CaptionRules",
            lambda job: self._caption_rules(request, captioner, report, trees, full, model, clip, feats, attributes, templates, job),
        )

    def _caption_rules(
        self,
        request: cp.CaptionRulesRequest,
        captioner: cap.RuleCaptioner,
        report: Any,
        trees: list[Any],
        full: dict[str, Any],
        model: registry_pb2.Model,
        clip: Any,
        feats: Any,
        attributes: dict[str, list[str]],
        templates: Any,
        job: JobContext,
    ) -> cp.CaptionRulesResponse:
        names = full["class_names"]
        outcomes = inp.load_outcomes(self.catalog, report.prediction_embedding_id, "report_id")
        frows, crows = self.catalog.load_array(feats.rows), self.catalog.load_array(clip.rows)
        # rows present in all three: features, CLIP embeddings, predictions
        common = np.intersect1d(np.intersect1d(frows, crows), outcomes.rows)
        if len(common) == 0:
            raise errors.FailedPrecondition(
                "the CLIP embedding set shares no rows with the report's embeddings", type="EMBEDDING", subject=clip.embedding_id
            )
        fi, ci, oi = (np.searchsorted(r, common) for r in (frows, crows, outcomes.rows))
        out = outcomes.take(oi)
        clip_emb = self.catalog.load_array(clip.image_embeddings)[ci].astype(np.float32)
        rules = [(t, leaf) for t in trees for leaf in t.leaves if leaf.valid]
        # label grouping: captions of the class itself. Prediction grouping: the rule's images are
        # other classes' images predicted as this one, so the candidates name every class
        # ("a photo of a ring on the road" for rings on roads predicted as arrows).
        by_prediction = any(t.grouping == "prediction" for t, _ in rules)
        per_class = {
            c: self._candidates(names[c], attributes, templates)
            for c in sorted({t.class_index for t, _ in rules} | (set(range(len(names))) if by_prediction else set()))
        }
        cands = {("label", t.class_index): per_class[t.class_index] for t, _ in rules if t.grouping == "label"}
        if by_prediction:
            every = [x for c in range(len(names)) for x in per_class[c]]
            cands.update({("prediction", t.class_index): every for t, _ in rules if t.grouping == "prediction"})
        keys = list(cands)
        text_emb = dict(zip(keys, self._candidate_embeddings(model, [cands[k] for k in keys], job)))
        resp = cp.CaptionRulesResponse()
        stored = []
        with tempfile.TemporaryDirectory(prefix="fl-caption-") as tmp:
            X = np.load(inp.local_matrix(self.catalog, feats.features, tmp, "features"), mmap_mode="r")
            for i, (t, leaf) in enumerate(rules):
                job.progress("caption", i, len(rules), f"{names[t.class_index]} leaf {leaf.leaf_id}")
                group = np.flatnonzero((out.labels if t.grouping == "label" else out.predictions) == t.class_index)
                member = FailureTrees.leaf_membership(t, np.asarray(X[fi[group]])) == leaf.leaf_id
                if member.sum() == 0 or (~member).sum() == 0:
                    continue
                key = (t.grouping, t.class_index)
                best = captioner.caption(cands[key], text_emb[key], clip_emb[group], ~out.wrong[group], member)
                resp.rules.append(
                    cp.RuleCaptions(
                        class_index=t.class_index, grouping=GROUPING_ENUM[t.grouping], leaf_id=leaf.leaf_id, captions=[_caption_pb(x) for x in best]
                    )
                )
                stored.append(
                    {
                        "class_index": t.class_index,
                        "class_name": names[t.class_index],
                        "grouping": t.grouping,
                        "leaf_id": leaf.leaf_id,
                        "rule": leaf.text,
                        "captions": [_caption_json(x) for x in best],
                    }
                )
            del X
        resp.captions.CopyFrom(
            self.catalog.put_json(f"captions/{request.report_id}/{cat.derived_id('rules', request, report.report.uri)}.json", stored)
        )
        job.progress("caption", len(rules), len(rules), "done", force=True)
        return resp

    # ------------------------------------------------------------------------------ validation
    async def ValidateCaption(self, request: cp.ValidateCaptionRequest, context: grpc.aio.ServicerContext) -> cp.CaptionValidation:
        validator = _params.estimator(cap.CaptionValidator, request)
        model = self._text_model(request.text_model_id)
        if not request.hard_caption.strip() or not request.easy_caption.strip():
            raise errors.InvalidArgument.about("hard_caption", "give both a hard_caption and an easy_caption")
        clip = self.catalog.embedding(request.clip_embedding_id, "clip_embedding_id")
        inp.array_ref(clip, "image_embeddings", "clip_embedding_id", "an IMAGE_TEXT model")
        out = inp.load_outcomes(self.catalog, request.prediction_embedding_id, "prediction_embedding_id")
        inp.same_dataset(clip, out.embedding)
        dataset = self.catalog.dataset(clip.dataset_id)
        inp.check_classes([request.class_index], len(dataset.class_names), "class_index")

        def work(job: JobContext) -> cp.CaptionValidation:
            ci, oi = inp.align(self.catalog.load_array(clip.rows), out.rows, "clip_embedding_id/prediction_embedding_id")
            o = out.take(oi)
            in_class = np.flatnonzero(o.labels == request.class_index)
            if len(in_class) == 0:
                raise errors.FailedPrecondition(
                    f"no images of class {request.class_index} in these rows", type="EMBEDDING", subject=clip.embedding_id
                )
            emb = self.catalog.load_array(clip.image_embeddings)[ci[in_class]]
            t = self._embed_texts(model, [request.hard_caption, request.easy_caption], job)
            v = validator.validate(emb, ~o.wrong[in_class], t[0], t[1], rows=o.rows[in_class])
            return cp.CaptionValidation(
                hard_accuracy=v.hard_accuracy, easy_accuracy=v.easy_accuracy, k=v.k, hard_rows=v.hard_rows, easy_rows=v.easy_rows
            )

        return await self.ctx.jobs.run(context, "ValidateCaption", work)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------------------ backgrounds
    async def ProposeBackgrounds(self, request: cp.ProposeBackgroundsRequest, context: grpc.aio.ServicerContext) -> cp.ProposeBackgroundsResponse:
        proposer = _params.estimator(bg.BackgroundProposer, request)
        names = [n.strip() for n in request.class_names]
        if not names or any(not n for n in names):
            raise errors.InvalidArgument.about("class_names", "give one or more non-empty class names")
        model = self._text_model(request.text_model_id) if request.text_model_id else None
        llm = request.llm
        settings = None
        vocabulary = None
        if llm.base_url:
            if not llm.model:
                raise errors.InvalidArgument.about("llm.model", "name the chat model to ask (e.g. gpt-4o-mini)")
            key = os.environ.get(llm.api_key_env, "") if llm.api_key_env else ""
            if llm.api_key_env and not key:
                raise errors.FailedPrecondition(
                    f"environment variable {llm.api_key_env!r} is not set on the captioning server", type="LLM", subject=llm.api_key_env
                )
            settings = _params.estimator(bg.LlmSettings, llm, base_url=llm.base_url, model=llm.model, api_key=key)
        else:
            vocabulary = self.catalog.read_json(request.vocabulary_uri, "vocabulary_uri") if request.vocabulary_uri else _default_vocabulary()

        def work(job: JobContext) -> cp.ProposeBackgroundsResponse:
            proposed = proposer.propose(names, llm=settings, vocabulary=vocabulary)
            removed = 0
            resp = cp.ProposeBackgroundsResponse(source="llm" if settings is not None else "vocabulary")
            for n in names:
                items = proposed.get(n, [])
                if model is not None and len(items) > 1:
                    items, r = proposer.deduplicate(items, self._embed_texts(model, items, job))
                    removed += r
                resp.classes.append(cp.ClassBackgrounds(class_name=n, backgrounds=items))
            resp.num_duplicates_removed = removed
            return resp

        return await self.ctx.jobs.run(context, "ProposeBackgrounds", work)  # type: ignore[no-any-return]

    async def AssignBackgrounds(self, request: cp.AssignBackgroundsRequest, context: grpc.aio.ServicerContext):
        assigner = _params.estimator(bg.BackgroundAssigner, request)
        model = self._text_model(request.text_model_id)
        clip = self.catalog.embedding(request.clip_embedding_id, "clip_embedding_id")
        inp.array_ref(clip, "image_embeddings", "clip_embedding_id", "an IMAGE_TEXT model")
        out = inp.load_outcomes(self.catalog, request.prediction_embedding_id, "prediction_embedding_id")
        inp.same_dataset(clip, out.embedding)
        dataset = self.catalog.dataset(clip.dataset_id)
        names = list(dataset.class_names)
        per_class: dict[int, list[str]] = {}
        for cb in request.backgrounds:
            if cb.class_name not in names:
                raise errors.InvalidArgument.about(
                    "backgrounds", f"unknown class {cb.class_name!r}; the dataset's classes are {names[:20]}{'...' if len(names) > 20 else ''}"
                )
            vals = [b.strip() for b in cb.backgrounds if b.strip()]
            if not vals:
                raise errors.InvalidArgument.about("backgrounds", f"class {cb.class_name!r} has no backgrounds")
            per_class[names.index(cb.class_name)] = vals
        if not per_class:
            raise errors.InvalidArgument.about("backgrounds", "give candidate backgrounds for at least one class (see ProposeBackgrounds)")
        ensemble: tuple[dict[str, list[str]], Any] | None = None
        if request.HasField("vocabulary"):
            attrs, tpls = (
                self._vocabulary(request.vocabulary)
                if (request.vocabulary.vocabulary_uri or request.vocabulary.attributes)
                else ({}, list(request.vocabulary.templates))
            )
            ensemble = (attrs, tpls)
        rows_filter = None
        if request.rows_uri:
            rows_filter = self.catalog.read_npy(
                request.rows_uri, "rows_uri", "give the URI of an int64 .npy of manifest rows (e.g. DebugSplit.debug_seed_rows)"
            )
            if rows_filter.ndim != 1 or rows_filter.dtype.kind not in "iu":
                raise errors.InvalidArgument.about(
                    "rows_uri", f"expected a 1-d integer array of manifest rows, found {rows_filter.dtype} {rows_filter.shape}"
                )
        template = assigner.template

        def work(job: JobContext) -> cp.BackgroundAssignment:
            ci, oi = inp.align(self.catalog.load_array(clip.rows), out.rows, "clip_embedding_id/prediction_embedding_id")
            o = out.take(oi)
            sel = o.wrong & np.isin(o.labels, list(per_class))
            if rows_filter is not None:
                sel &= np.isin(o.rows, rows_filter)
            idx = np.flatnonzero(sel)
            job.progress("texts", 0, len(per_class), "embedding background prompts", force=True)
            if ensemble is None:
                text_emb = {c: self._embed_texts(model, assigner.prompts(names[c], v), job) for c, v in per_class.items()}
            else:
                attrs, tpls = ensemble
                cands = {}
                for c, v in per_class.items():
                    vocab = {**{k: x for k, x in attrs.items() if k != "background"}, "background": v}
                    tmap = {
                        "background": tpls["background"]
                        if isinstance(tpls, dict) and tpls.get("background")
                        else (tpls if isinstance(tpls, list) and tpls else [template.replace("{background}", "{value}")])
                    }
                    got = [x for x in self._candidates(names[c], vocab, tmap) if x.attribute == "background"]
                    if [x.value for x in got] != [" ".join(b.split()) for b in v]:
                        raise errors.InvalidArgument.about("backgrounds", f"class {names[c]!r}: backgrounds must be distinct non-empty phrases")
                    cands[c] = got
                text_emb = dict(zip(cands, self._candidate_embeddings(model, list(cands.values()), job)))
            job.progress("assign", 0, len(idx), "zero-shot assignment", force=True)
            emb = self.catalog.load_array(clip.image_embeddings)[ci[idx]]
            assigned, top = assigner.assign(emb, o.labels[idx], o.rows[idx], per_class, text_emb)
            job.progress("assign", len(idx), len(idx), f"{len(assigned)} failure images", force=True)
            df = pd.DataFrame(
                {
                    "row": [a.row for a in assigned],
                    "class_index": [a.class_index for a in assigned],
                    "background": [a.background for a in assigned],
                    "score": [a.score for a in assigned],
                },
                columns=["row", "class_index", "background", "score"],
            ).astype({"row": "int64", "class_index": "int64", "background": "string", "score": "float64"})
            res = cp.BackgroundAssignment(
                assignments=self.catalog.put_parquet(
                    f"captions/backgrounds/{cat.derived_id('assignment', request, clip.rows.uri, out.embedding.rows.uri)}.parquet", df
                )
            )
            for c, counts in sorted(top.items()):
                res.classes.append(
                    cp.ClassBackgroundCounts(class_index=c, class_name=names[c], top=[cp.BackgroundCount(background=b, count=n) for b, n in counts])
                )
            return res

        async for update in self.ctx.jobs.stream(
            context,
            "AssignBackgrounds",
            work,
            lambda p: cp.AssignBackgroundsUpdate(progress=p),
            lambda r: cp.AssignBackgroundsUpdate(result=r),
            lambda r: r.assignments.uri,
        ):
            yield update


def _default_vocabulary() -> dict[str, Any]:
    """The offline default: the vocabulary shipped with the benchmark world."""
    from failurelens.world.config import default_config
    from failurelens.world.vocabulary import world_vocabulary

    return world_vocabulary(default_config())


def build(ctx: ServiceContext) -> list[Binding]:
    return [Binding(CaptioningServicer(ctx), captioning_pb2_grpc.add_CaptioningServicer_to_server, cp.DESCRIPTOR.services_by_name["Captioning"])]


if __name__ == "__main__":
    main("captioning", build)
