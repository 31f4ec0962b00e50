"""Captioning service: names failure modes in words with an image–text model.

* directions: candidate captions (templates x class x attribute values) ranked by the failure
  direction's SVM score on their text embeddings;
* tree rules: the captions whose text embeddings best separate the rule's images from the rest
  of the class;
* caption validation: model accuracy on the images nearest the hard vs the easy caption;
* backgrounds (mitigation paper): uncommon backgrounds per class from an OpenAI-compatible chat
  endpoint or a vocabulary file, near-duplicates merged by text-embedding similarity, and each
  failure image's background assigned by CLIP zero-shot.

Text embeddings come from the model's Triton text encoder; image embeddings, directions and rules
from stored artifacts. Results are returned and stored as JSON/Parquet artifacts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from typing import Any, Sequence

import grpc
import numpy as np
import pandas as pd

from failurelens import catalog as cat
from failurelens.discovery import backgrounds as bg
from failurelens.discovery import captions as cap
from failurelens.runtime import Binding, JobContext, ServiceContext, errors, main
from failurelens.services import _inputs as inp
from failurelens.services.slice_discovery import DIRECTIONS, GROUPING_ENUM, load_trees_report
from failurelens.store import open_store
from failurelens.store.base import ArtifactStore
from failurelens.triton.client import TritonClient
from failurelens.triton.texts import TextEncoder
from failurelens.v1 import captioning_pb2 as cp, captioning_pb2_grpc, common_pb2, registry_pb2

log = logging.getLogger(__name__)
MAX_CANDIDATES = 20_000


def _digest(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _caption_pb(c: Any) -> cp.Caption:
    acc = float(c.nearest_accuracy)
    return cp.Caption(text=c.text, score=float(c.score), attribute=c.attribute, value=c.value,
                      nearest_accuracy=acc if np.isfinite(acc) else 0.0, validated=bool(c.validated))


def _caption_json(c: Any) -> dict[str, Any]:
    """A caption for a stored JSON document (an unchecked caption's accuracy is null, not NaN)."""
    d = dataclasses.asdict(c)
    if not np.isfinite(d["nearest_accuracy"]):
        d["nearest_accuracy"] = None
    return d


#: how many of the best-ranked captions are validated (and reordered, validated first) before the
#: top_k are kept
VALIDATION_POOL = 10


def _checked(ranked: list[Any], top_k: int, cands: list[Any], text_emb: np.ndarray, group_emb: np.ndarray, correct: np.ndarray,
             in_slice: np.ndarray, nearest: int) -> list[Any]:
    """The ``top_k`` of the ranked captions after validation against the group (``in_slice``
    marks the slice's images in it) has put the validated ones first."""
    return cap.check_captions(ranked, cands, text_emb, group_emb, correct, in_slice, k=nearest)[:top_k]


class CaptioningServicer(captioning_pb2_grpc.CaptioningServicer):
    def __init__(self, ctx: ServiceContext, store: ArtifactStore | None = None, triton: TritonClient | None = None) -> None:
        self.ctx = ctx
        self.store = store or open_store(ctx.config.store or None)
        self.catalog = cat.Catalog(self.store)
        self._triton = triton
        self._encoder: TextEncoder | None = None

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._triton = self._triton or TritonClient(self.ctx.config.triton_url)
            self._encoder = TextEncoder(self._triton)
        return self._encoder

    # ------------------------------------------------------------------------------ helpers
    def _text_model(self, model_id: str) -> registry_pb2.Model:
        return inp.model_of_kind(self.catalog, model_id, registry_pb2.MODEL_KIND_IMAGE_TEXT, "text_model_id", "an IMAGE_TEXT model")

    def _embed_texts(self, model: registry_pb2.Model, texts: Sequence[str], job: JobContext | None = None) -> np.ndarray:
        return self.encoder.encode(model.triton_models[1], model.tokenizer.context_length or 77, list(texts),
                                   check=job.check if job else None, timeout=job.timeout if job else None)

    def _read_json_uri(self, uri: str, field: str) -> Any:
        try:
            key = self.store.key_from_uri(uri)
        except Exception as exc:  # noqa: BLE001 - any unparsable URI is the caller's to fix
            raise errors.InvalidArgument.field(field, f"{uri!r} is not an artifact URI of this store: {exc}") from None
        try:
            data = self.store.get_bytes(key)
        except KeyError:
            raise errors.NotFound.resource("artifact", uri, "upload the JSON file first") from None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise errors.InvalidArgument.field(field, f"{uri!r} is not valid JSON: {exc}") from None

    def _vocabulary(self, vocab: cp.CaptionVocabulary, field: str = "vocabulary") -> tuple[dict[str, list[str]], Any]:
        """(attributes, templates) from the request's vocabulary or its JSON file."""
        attributes = {k: list(v.values) for k, v in vocab.attributes.items()}
        templates: Any = list(vocab.templates) or None
        if vocab.vocabulary_uri:
            data = self._read_json_uri(vocab.vocabulary_uri, f"{field}.vocabulary_uri")
            if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
                raise errors.InvalidArgument.field(f"{field}.vocabulary_uri", 'the file must be a JSON object with "attributes": {name: [values]} (and optional "templates")')
            for k, v in data["attributes"].items():
                attributes.setdefault(k, [str(x) for x in v])
            templates = templates or data.get("templates")
        if not any(attributes.values()):
            raise errors.InvalidArgument.field(field, "give attribute values (e.g. background -> [on grass, in water]) or a vocabulary_uri")
        return attributes, templates

    def _candidates(self, class_name: str, attributes: dict[str, list[str]], templates: Any) -> list[Any]:
        try:
            cands = cap.build_candidates(class_name, attributes, templates)
        except ValueError as exc:
            raise errors.InvalidArgument.field("vocabulary", str(exc)) from None
        if len(cands) > MAX_CANDIDATES:
            raise errors.InvalidArgument.field("vocabulary", f"{len(cands)} candidate captions per class; the limit is {MAX_CANDIDATES}")
        return cands

    def _candidate_embeddings(self, model: registry_pb2.Model, candidate_lists: Sequence[Sequence[Any]], job: JobContext) -> list[np.ndarray]:
        """One pooled text embedding per candidate (its prompt ensemble averaged), every distinct
        prompt embedded once."""
        prompts = sorted({p for cands in candidate_lists for p in cap.candidate_prompts(cands)[0]})
        job.progress("texts", 0, len(prompts), "embedding candidate captions", force=True)
        table = dict(zip(prompts, self._embed_texts(model, prompts, job)))
        job.progress("texts", len(prompts), len(prompts), "done", force=True)
        return [cap.embed_candidates(cands, lambda texts: np.stack([table[t] for t in texts])) for cands in candidate_lists]

    def _put_json(self, key: str, obj: Any) -> common_pb2.ArtifactRef:
        return cat.artifact(self.store, self.store.put_json(key, obj), "application/json")

    # ------------------------------------------------------------------------------ directions
    async def CaptionDirections(self, request: cp.CaptionDirectionsRequest, context: grpc.aio.ServicerContext) -> cp.CaptionDirectionsResponse:
        report = self.catalog.get(DIRECTIONS, request.report_id, "report_id")
        model = self._text_model(request.text_model_id)
        attributes, templates = self._vocabulary(request.vocabulary)
        top_k = request.top_k or 5
        if top_k < 1:
            raise errors.InvalidArgument.field("top_k", f"{top_k} must be at least 1 (0 = default 5)")
        present = {d.class_index for d in report.directions}
        unknown = sorted(set(request.classes) - present)
        if unknown:
            raise errors.InvalidArgument.field("classes", f"class(es) {unknown} are not in report {request.report_id!r}")
        if request.aligned_images < 0:
            raise errors.InvalidArgument.field("aligned_images", "must not be negative (0 = default 25)")
        if request.nearest_images < 0:
            raise errors.InvalidArgument.field("nearest_images", "must not be negative (0 = default 25)")
        wanted = [d for d in report.directions if not d.skipped_reason and (not request.classes or d.class_index in request.classes)]
        return await self.ctx.jobs.run(context, "CaptionDirections", lambda job: self._caption_directions(request, report, model, attributes, templates, top_k, wanted, job))

    def _caption_directions(self, request: cp.CaptionDirectionsRequest, report: Any, model: registry_pb2.Model, attributes: dict[str, list[str]], templates: Any,
                            top_k: int, wanted: list[Any], job: JobContext) -> cp.CaptionDirectionsResponse:
        full = self.store.get_json(self.store.key_from_uri(report.report.uri))
        intercepts = {(d["class_index"], d.get("mode", 0)): d["intercept"] for d in full["directions"]}
        cands = {d.class_index: self._candidates(d.class_name, attributes, templates) for d in wanted}
        text_emb = dict(zip(cands, self._candidate_embeddings(model, list(cands.values()), job)))
        aligned = request.method == cp.DIRECTION_CAPTION_METHOD_ALIGNED_IMAGES
        clip = self.catalog.embedding(report.clip_embedding_id, "report_id")
        clip_rows = self.catalog.load_array(clip.rows)
        clip_emb = self.catalog.load_array(clip.image_embeddings)
        outcomes = inp.load_outcomes(self.catalog, report.prediction_embedding_id, "report_id")
        nearest = request.nearest_images or 25
        resp = cp.CaptionDirectionsResponse()
        out = []
        for i, d in enumerate(wanted):
            job.progress("caption", i, len(wanted), d.class_name + (f" mode {d.mode}" if d.mode else ""))
            c = cands[d.class_index]
            # the class's images ordered by decision value: most aligned = the slice, the rest = the class
            rows, dv = self.catalog.load_array(d.rows), self.catalog.load_array(d.decision_values)
            pos_in_clip = np.searchsorted(clip_rows, rows)
            group_emb = clip_emb[pos_in_clip]
            correct = ~outcomes.wrong[np.searchsorted(outcomes.rows, rows)]
            order = np.argsort(-dv, kind="stable")
            k = min(request.aligned_images or 25, len(order) - 1)
            in_slice = np.zeros(len(rows), dtype=bool)
            in_slice[order[:k]] = True
            te = text_emb[d.class_index]
            pool = max(top_k, VALIDATION_POOL)
            if aligned:
                top, rest = group_emb[order[:k]], group_emb[order[k:]]
                ranked = cap.caption_slice(top, rest, te, c, top_k=pool)
                neg = cap.caption_slice(rest[-k:] if len(rest) >= k else rest, np.concatenate([top, rest[:-k]]) if len(rest) > k else top,
                                        te, c, top_k=top_k)
            else:
                ranked, neg = cap.caption_direction(self.catalog.load_array(d.direction), te, c, top_k=pool,
                                                    intercept=intercepts.get((d.class_index, d.mode), 0.0))
                neg = neg[:top_k]
            pos = _checked(ranked, top_k, c, te, group_emb, correct, in_slice, nearest)
            resp.classes.append(cp.ClassCaptions(class_index=d.class_index, class_name=d.class_name, mode=d.mode, positive=[_caption_pb(x) for x in pos], negative=[_caption_pb(x) for x in neg]))
            out.append({"class_index": d.class_index, "class_name": d.class_name, "mode": d.mode, "positive": [_caption_json(x) for x in pos], "negative": [_caption_json(x) for x in neg]})
        resp.captions.CopyFrom(self._put_json(f"captions/{request.report_id}/directions-{_digest(request.SerializeToString(deterministic=True).hex())}.json", out))
        job.progress("caption", len(wanted), len(wanted), "done", force=True)
        return resp

    # ------------------------------------------------------------------------------ tree rules
    async def CaptionRules(self, request: cp.CaptionRulesRequest, context: grpc.aio.ServicerContext) -> cp.CaptionRulesResponse:
        report, full, trees = load_trees_report(self.catalog, request.report_id)
        model = self._text_model(request.text_model_id)
        clip = self.catalog.embedding(request.clip_embedding_id, "clip_embedding_id")
        inp.array_ref(clip, "image_embeddings", "clip_embedding_id", "an IMAGE_TEXT model")
        feats = self.catalog.embedding(report.feature_embedding_id, "report_id")
        inp.same_dataset(feats, clip)
        attributes, templates = self._vocabulary(request.vocabulary)
        top_k = request.top_k or 5
        if top_k < 1:
            raise errors.InvalidArgument.field("top_k", f"{top_k} must be at least 1 (0 = default 5)")
        if request.nearest_images < 0:
            raise errors.InvalidArgument.field("nearest_images", "must not be negative (0 = default 25)")
        return await self.ctx.jobs.run(context, "CaptionRules", lambda job: self._caption_rules(request, report, trees, full, model, clip, feats, attributes, templates, top_k, job))

    def _caption_rules(self, request: cp.CaptionRulesRequest, report: Any, trees: list[Any], full: dict[str, Any], model: registry_pb2.Model, clip: Any, feats: Any,
                       attributes: dict[str, list[str]], templates: Any, top_k: int, job: JobContext) -> cp.CaptionRulesResponse:
        from failurelens.discovery.trees import FailureTrees

        names = full["class_names"]
        outcomes = inp.load_outcomes(self.catalog, report.prediction_embedding_id, "report_id")
        frows, crows = self.catalog.load_array(feats.rows), self.catalog.load_array(clip.rows)
        # rows present in all three: features, CLIP embeddings, predictions
        common = np.intersect1d(np.intersect1d(frows, crows), outcomes.rows)
        if len(common) == 0:
            raise errors.FailedPrecondition.violation("EMBEDDING", clip.embedding_id, "the CLIP embedding set shares no rows with the report's embeddings")
        fi, ci, oi = (np.searchsorted(r, common) for r in (frows, crows, outcomes.rows))
        out = outcomes.take(oi)
        clip_emb = self.catalog.load_array(clip.image_embeddings)[ci].astype(np.float32)
        rules = [(t, leaf) for t in trees for leaf in t.leaves if leaf.valid]
        # label grouping: captions of the class itself. Prediction grouping: the rule's images are
        # other classes' images predicted as this one, so the candidates name every class
        # ("a photo of a ring on the road" for rings on roads predicted as arrows).
        per_class = {c: self._candidates(names[c], attributes, templates) for c in sorted({t.class_index for t, _ in rules} | (
            set(range(len(names))) if any(t.grouping == "prediction" for t, _ in rules) else set()))}
        cands = {("label", t.class_index): per_class[t.class_index] for t, _ in rules if t.grouping == "label"}
        if any(t.grouping == "prediction" for t, _ in rules):
            every = [x for c in range(len(names)) for x in per_class[c]]
            cands.update({("prediction", t.class_index): every for t, _ in rules if t.grouping == "prediction"})
        keys = list(cands)
        text_emb = dict(zip(keys, self._candidate_embeddings(model, [cands[k] for k in keys], job)))
        resp = cp.CaptionRulesResponse()
        stored = []
        with tempfile.TemporaryDirectory(prefix="fl-caption-") as tmp:
            X = np.load(inp.local_matrix(self.store, feats.features, tmp, "features"), mmap_mode="r")
            for i, (t, leaf) in enumerate(rules):
                job.progress("caption", i, len(rules), f"{names[t.class_index]} leaf {leaf.leaf_id}")
                group = np.flatnonzero((out.labels if t.grouping == "label" else out.predictions) == t.class_index)
                member = FailureTrees.leaf_membership(t, np.asarray(X[fi[group]])) == leaf.leaf_id
                if member.sum() == 0 or (~member).sum() == 0:
                    continue
                key = (t.grouping, t.class_index)
                group_emb = clip_emb[group]
                ranked = cap.caption_slice(group_emb[member], group_emb[~member], text_emb[key], cands[key], top_k=max(top_k, VALIDATION_POOL))
                best = _checked(ranked, top_k, cands[key], text_emb[key], group_emb, ~out.wrong[group], member, request.nearest_images or 25)
                resp.rules.append(cp.RuleCaptions(class_index=t.class_index, grouping=GROUPING_ENUM[t.grouping], leaf_id=leaf.leaf_id, captions=[_caption_pb(x) for x in best]))
                stored.append({"class_index": t.class_index, "class_name": names[t.class_index], "grouping": t.grouping, "leaf_id": leaf.leaf_id,
                               "rule": leaf.text, "captions": [_caption_json(x) for x in best]})
            del X
        resp.captions.CopyFrom(self._put_json(f"captions/{request.report_id}/rules-{_digest(request.SerializeToString(deterministic=True).hex())}.json", stored))
        job.progress("caption", len(rules), len(rules), "done", force=True)
        return resp

    # ------------------------------------------------------------------------------ validation
    async def ValidateCaption(self, request: cp.ValidateCaptionRequest, context: grpc.aio.ServicerContext) -> cp.CaptionValidation:
        model = self._text_model(request.text_model_id)
        if not request.hard_caption.strip() or not request.easy_caption.strip():
            raise errors.InvalidArgument.field("hard_caption", "give both a hard_caption and an easy_caption")
        k = request.k or 50
        if k < 1:
            raise errors.InvalidArgument.field("k", f"{k} must be at least 1 (0 = default 50)")
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
                raise errors.FailedPrecondition.violation("EMBEDDING", clip.embedding_id, f"no images of class {request.class_index} in these rows")
            emb = self.catalog.load_array(clip.image_embeddings)[ci[in_class]]
            t = self._embed_texts(model, [request.hard_caption, request.easy_caption], job)
            v = cap.validate_caption(emb, ~o.wrong[in_class], t[0], t[1], k=min(k, len(in_class)), rows=o.rows[in_class])
            return cp.CaptionValidation(hard_accuracy=v.hard_accuracy, easy_accuracy=v.easy_accuracy, k=v.k, hard_rows=v.hard_rows, easy_rows=v.easy_rows)

        return await self.ctx.jobs.run(context, "ValidateCaption", work)

    # ------------------------------------------------------------------------------ backgrounds
    async def ProposeBackgrounds(self, request: cp.ProposeBackgroundsRequest, context: grpc.aio.ServicerContext) -> cp.ProposeBackgroundsResponse:
        names = [n.strip() for n in request.class_names]
        if not names or any(not n for n in names):
            raise errors.InvalidArgument.field("class_names", "give one or more non-empty class names")
        per_class = request.per_class or 5
        if not 1 <= per_class <= 100:
            raise errors.InvalidArgument.field("per_class", f"{per_class} must be between 1 and 100 (0 = default 5)")
        threshold = inp.fraction(request.dedup_threshold, request.HasField("dedup_threshold"), 0.9, "dedup_threshold", lo=-1.0, hi=1.0 + 1e-9)
        model = self._text_model(request.text_model_id) if request.text_model_id else None
        llm = request.llm
        settings = None
        if llm.base_url:
            if not llm.model:
                raise errors.InvalidArgument.field("llm.model", "name the chat model to ask (e.g. gpt-4o-mini)")
            key = os.environ.get(llm.api_key_env, "") if llm.api_key_env else ""
            if llm.api_key_env and not key:
                raise errors.FailedPrecondition.violation("LLM", llm.api_key_env, f"environment variable {llm.api_key_env!r} is not set on the captioning server")
            settings = bg.LlmSettings(base_url=llm.base_url, model=llm.model, api_key=key, temperature=llm.temperature or 0.2, timeout_seconds=llm.timeout_seconds or 60.0)
            vocabulary = None
        else:
            vocabulary = self._read_json_uri(request.vocabulary_uri, "vocabulary_uri") if request.vocabulary_uri else _default_vocabulary()

        def work(job: JobContext) -> cp.ProposeBackgroundsResponse:
            if settings is not None:
                try:
                    proposed = bg.propose_with_llm(names, per_class, settings)
                except bg.LlmError as exc:
                    raise errors.ServiceError(str(exc)) from None  # the endpoint failed: INTERNAL with its message
                source = "llm"
            else:
                try:
                    proposed = bg.propose_from_vocabulary(names, vocabulary, per_class)
                except (ValueError, KeyError, TypeError) as exc:
                    raise errors.InvalidArgument.field("vocabulary_uri", f"unusable vocabulary: {exc}") from None
                source = "vocabulary"
            removed = 0
            resp = cp.ProposeBackgroundsResponse(source=source)
            for n in names:
                items = proposed.get(n, [])
                if model is not None and len(items) > 1:
                    items, r = bg.remove_near_duplicates(items, self._embed_texts(model, items, job), threshold)
                    removed += r
                resp.classes.append(cp.ClassBackgrounds(class_name=n, backgrounds=items))
            resp.num_duplicates_removed = removed
            return resp

        return await self.ctx.jobs.run(context, "ProposeBackgrounds", work)

    async def AssignBackgrounds(self, request: cp.AssignBackgroundsRequest, context: grpc.aio.ServicerContext):
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
                raise errors.InvalidArgument.field("backgrounds", f"unknown class {cb.class_name!r}; the dataset's classes are {names[:20]}{'...' if len(names) > 20 else ''}")
            vals = [b.strip() for b in cb.backgrounds if b.strip()]
            if not vals:
                raise errors.InvalidArgument.field("backgrounds", f"class {cb.class_name!r} has no backgrounds")
            per_class[names.index(cb.class_name)] = vals
        if not per_class:
            raise errors.InvalidArgument.field("backgrounds", "give candidate backgrounds for at least one class (see ProposeBackgrounds)")
        template = request.template or "a photo of a {class} {background}"
        if "{class}" not in template or "{background}" not in template:
            raise errors.InvalidArgument.field("template", "the template must contain {class} and {background}")
        ensemble: tuple[dict[str, list[str]], Any] | None = None
        if request.HasField("vocabulary"):
            attrs, tpls = self._vocabulary(request.vocabulary) if (request.vocabulary.vocabulary_uri or request.vocabulary.attributes) else ({}, list(request.vocabulary.templates))
            ensemble = (attrs, tpls)
        top_k = request.top_k or 5
        rows_filter = None
        if request.rows_uri:
            try:
                rows_filter = self.store.get_npy(self.store.key_from_uri(request.rows_uri))
            except KeyError:
                raise errors.NotFound.resource("artifact", request.rows_uri, "give the URI of an int64 .npy of manifest rows (e.g. DebugSplit.debug_seed_rows)") from None
            if rows_filter.ndim != 1 or rows_filter.dtype.kind not in "iu":
                raise errors.InvalidArgument.field("rows_uri", f"expected a 1-d integer array of manifest rows, found {rows_filter.dtype} {rows_filter.shape}")

        def work(job: JobContext) -> cp.BackgroundAssignment:
            ci, oi = inp.align(self.catalog.load_array(clip.rows), out.rows, "clip_embedding_id/prediction_embedding_id")
            o = out.take(oi)
            sel = o.wrong & np.isin(o.labels, list(per_class))
            if rows_filter is not None:
                sel &= np.isin(o.rows, rows_filter)
            idx = np.flatnonzero(sel)
            job.progress("texts", 0, len(per_class), "embedding background prompts", force=True)
            if ensemble is None:
                text_emb = {c: self._embed_texts(model, bg.background_prompts(names[c], v, template), job) for c, v in per_class.items()}
            else:
                attrs, tpls = ensemble
                cands = {}
                for c, v in per_class.items():
                    vocab = {**{k: x for k, x in attrs.items() if k != "background"}, "background": v}
                    tmap = {"background": tpls["background"] if isinstance(tpls, dict) and tpls.get("background") else (tpls if isinstance(tpls, list) and tpls else [template.replace("{background}", "{value}")])}
                    got = [x for x in self._candidates(names[c], vocab, tmap) if x.attribute == "background"]
                    if [x.value for x in got] != [" ".join(b.split()) for b in v]:
                        raise errors.InvalidArgument.field("backgrounds", f"class {names[c]!r}: backgrounds must be distinct non-empty phrases")
                    cands[c] = got
                text_emb = dict(zip(cands, self._candidate_embeddings(model, list(cands.values()), job)))
            job.progress("assign", 0, len(idx), "zero-shot assignment", force=True)
            emb = self.catalog.load_array(clip.image_embeddings)[ci[idx]]
            assigned = bg.assign_backgrounds(emb, o.labels[idx], o.rows[idx], per_class, text_emb)
            job.progress("assign", len(idx), len(idx), f"{len(assigned)} failure images", force=True)
            df = pd.DataFrame({"row": [a.row for a in assigned], "class_index": [a.class_index for a in assigned],
                               "background": [a.background for a in assigned], "score": [a.score for a in assigned]},
                              columns=["row", "class_index", "background", "score"]).astype({"row": "int64", "class_index": "int64", "background": "string", "score": "float64"})
            key = f"captions/backgrounds/{_digest(request.SerializeToString(deterministic=True).hex())}.parquet"
            res = cp.BackgroundAssignment(assignments=cat.artifact(self.store, self.store.put_parquet(key, df), "application/vnd.apache.parquet"))
            for c, top in sorted(bg.top_backgrounds(assigned, top_k).items()):
                res.classes.append(cp.ClassBackgroundCounts(class_index=c, class_name=names[c], top=[cp.BackgroundCount(background=b, count=n) for b, n in top]))
            return res

        async for update in self.ctx.jobs.stream(context, "AssignBackgrounds", work, lambda p: cp.AssignBackgroundsUpdate(progress=p),
                                                 lambda r: cp.AssignBackgroundsUpdate(result=r), lambda r: r.assignments.uri):
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
