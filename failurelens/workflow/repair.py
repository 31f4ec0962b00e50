"""The mitigation paper's protocol through the services (client side), and the verification.

:func:`repair` runs, for one classifier on a dataset with ``train`` / debug (``val``) / ``test``
splits: the model's failures on the debug split split 50/50 per class into debug_seed and
debug_heldout (SplitDebugSet) -> the debug_seed failures described (CLIP-assigned uncommon
backgrounds; the validated captions of failure directions fitted without the held-out failures)
-> images generated for each prompt strategy with equal budgets -> embedded through Triton ->
a new head trained per strategy and evaluated on test / debug_seed / debug_heldout (Table 2) ->
the default strategy's head published as a new version of the model -> verified: the test split
embedded with the new version, accuracy per planted slice (where the dataset names them) before
and after, and which failure directions of the old version are gone.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import numpy as np

from failurelens import catalog
from failurelens.store.base import ArtifactStore
from failurelens.v1 import captioning_pb2, embedding_pb2, generation_pb2, registry_pb2
from failurelens.workflow.calls import FailureLensError, ServiceCalls
from failurelens.workflow.failure_modes import Bar

STRATEGY_ENUMS = {
    "failure_backgrounds": generation_pb2.PROMPT_STRATEGY_FAILURE_BACKGROUNDS,
    "failure_captions": generation_pb2.PROMPT_STRATEGY_FAILURE_CAPTIONS,
    "class_only": generation_pb2.PROMPT_STRATEGY_CLASS_ONLY,
    "random_backgrounds": generation_pb2.PROMPT_STRATEGY_RANDOM_BACKGROUNDS,
}
EVAL_SETS = ("test", "debug_seed", "debug_heldout")


@dataclasses.dataclass
class Described:
    """What the debug_seed failures look like, for the prompt strategies."""

    split: Any  # DebugSplit
    assignment: Any  # BackgroundAssignment (debug_seed failures)
    captions_uri: str  # validated captions of failure directions (debug split without debug_heldout)
    classes: list[int]  # classes with debug_seed failures


@dataclasses.dataclass
class StrategyResult:
    strategy: str
    dataset_id: str
    num_images: int
    accuracy: dict[str, float]  # after, per eval set
    before: dict[str, float]
    version: int = 0  # published version (0: evaluated only)
    debug_embedding_id: str = ""  # the generated images through the model (version 1)


@dataclasses.dataclass
class RepairReport:
    model_id: str
    before: dict[str, float]
    strategies: list[StrategyResult]
    published: StrategyResult | None
    slices: list[dict[str, Any]]  # planted slice: n, accuracy before, after
    modes: list[dict[str, Any]]  # failure directions of the old version: caption, accuracy before/after on its images, gone
    # what the strategies were built from, for further retraining (sweeps, collective debugging)
    train_embedding_id: str = ""
    evals: list[dict[str, str]] = dataclasses.field(default_factory=list)
    assignment_uri: str = ""
    captions_uri: str = ""
    classes: list[int] = dataclasses.field(default_factory=list)
    num_seed: int = 0
    num_heldout: int = 0
    dataset_id: str = ""


def artifact_id(*parts: str) -> str:
    """An artifact id from its parts ("a--b--c"); a hashed one where that would be too long."""
    joined = "--".join(parts)
    return joined if len(joined) <= 64 else catalog.derived_id(re.sub(r"[^A-Za-z0-9_.-]", "-", parts[0])[:40], *parts)


def _bar(bar_factory: Bar | None, name: str) -> Any:
    return bar_factory(name) if bar_factory is not None else None


def _close(bar: Any) -> None:
    if bar is not None:
        bar.close()


def _fresh(client: ServiceCalls, got: embedding_pb2.EmbeddingSet, dataset_id: str, model_id: str, splits: Sequence[str], version: int | None) -> bool:
    """A stored embedding set answers the request: same dataset, model (version) and splits, and
    embedded after the dataset, the model and the version were (re)registered."""
    if got.dataset_id != dataset_id or got.model_id != model_id or sorted(got.splits) != sorted(splits):
        return False
    if version is not None and (got.model_version or 1) != version:
        return False
    ds = client.call(client.registry.GetDataset, registry_pb2.GetDatasetRequest(dataset_id=dataset_id))
    model = client.call(client.registry.GetModel, registry_pb2.GetModelRequest(model_id=model_id))
    stamps = [ds.created_at.ToNanoseconds(), model.created_at.ToNanoseconds()]
    stamps += [v.created_at.ToNanoseconds() for v in model.versions if v.version == (got.model_version or 1)]
    return got.created_at.ToNanoseconds() >= max(stamps)


def ensure_embedding(
    client: ServiceCalls,
    dataset_id: str,
    model_id: str,
    splits: Sequence[str],
    model_version: int | None,
    embedding_id: str,
    rows_uri: str = "",
    bar_factory: Bar | None = None,
) -> embedding_pb2.EmbeddingSet:
    """The embedding set ``embedding_id`` of a model (version) over splits: the stored one when it
    answers the request and is newer than what it was computed from, else embedded now (a view
    of some rows, ``rows_uri``, is always embedded again)."""
    if not rows_uri:
        try:
            got = client.call(client.embedding.GetEmbedding, embedding_pb2.GetEmbeddingRequest(embedding_id=embedding_id))
        except FailureLensError as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND:
                raise
        else:
            if _fresh(client, got, dataset_id, model_id, splits, model_version):
                return got
    fields: dict[str, Any] = {"dataset_id": dataset_id, "model_id": model_id, "splits": list(splits), "embedding_id": embedding_id, "overwrite": True}
    if model_version is not None:
        fields["model_version"] = model_version
    if rows_uri:
        fields["rows_uri"] = rows_uri
    bar = _bar(bar_factory, f"embed {embedding_id}")
    try:
        return client.embed(on_progress=bar, **fields)
    finally:
        _close(bar)


def describe_debug_seed(
    client: ServiceCalls,
    store: ArtifactStore,
    *,
    dataset_id: str,
    model_id: str,
    clip_model_id: str,
    vocabulary_uri: str,
    debug_split: str = "val",
    seed: int = 0,
    bar_factory: Bar | None = None,
) -> Described:
    """The debug split's failures split 50/50 per class; the debug_seed ones described by their
    CLIP-assigned backgrounds and by the validated captions of failure directions fitted on the
    debug split without the debug_heldout failures (which the repair must never see)."""
    val = ensure_embedding(client, dataset_id, model_id, [debug_split], 1, artifact_id(dataset_id, model_id, debug_split), bar_factory=bar_factory)
    clip_val = ensure_embedding(
        client, dataset_id, clip_model_id, [debug_split], None, artifact_id(dataset_id, clip_model_id, debug_split), bar_factory=bar_factory
    )
    split = client.split_debug_set(prediction_embedding_id=val.embedding_id, name=artifact_id(model_id, debug_split, "debug"), seed=seed)
    ds = client.call(client.registry.GetDataset, registry_pb2.GetDatasetRequest(dataset_id=dataset_id))
    proposed = client.propose_backgrounds(class_names=list(ds.class_names), vocabulary_uri=vocabulary_uri, per_class=12, text_model_id=clip_model_id)
    vocab = captioning_pb2.CaptionVocabulary(vocabulary_uri=vocabulary_uri)
    bar = _bar(bar_factory, "assign backgrounds")
    assignment = client.assign_backgrounds(
        on_progress=bar,
        clip_embedding_id=clip_val.embedding_id,
        prediction_embedding_id=val.embedding_id,
        text_model_id=clip_model_id,
        backgrounds=list(proposed.classes),
        rows_uri=split.debug_seed_rows.uri,
        top_k=12,
        vocabulary=vocab,
    )
    _close(bar)
    # the debug split without its held-out failures, for failure directions and their captions
    rows = store.get_npy(store.key_from_uri(val.rows.uri))
    held = store.get_npy(store.key_from_uri(split.debug_heldout_rows.uri))
    view = np.setdiff1d(rows, held)
    view_uri = store.uri(store.put_npy(f"uploads/repair/{model_id}-{debug_split}-without-heldout.npy", view).key)
    seen = ensure_embedding(
        client, dataset_id, model_id, [debug_split], 1, artifact_id(model_id, debug_split, "seed-view"), rows_uri=view_uri, bar_factory=bar_factory
    )
    seen_clip = ensure_embedding(
        client,
        dataset_id,
        clip_model_id,
        [debug_split],
        None,
        artifact_id(clip_model_id, model_id, debug_split, "seed-view"),
        rows_uri=view_uri,
        bar_factory=bar_factory,
    )
    bar = _bar(bar_factory, "failure directions")
    directions = client.fit_failure_directions(
        on_progress=bar,
        clip_embedding_id=seen_clip.embedding_id,
        prediction_embedding_id=seen.embedding_id,
        report_id=artifact_id(model_id, debug_split, "seed-directions"),
        overwrite=True,
        seed=seed,
    )
    _close(bar)
    captions = client.caption_directions(report_id=directions.report_id, text_model_id=clip_model_id, vocabulary=vocab, top_k=3)
    classes = sorted(c.class_index for c in assignment.classes if c.top)
    return Described(split, assignment, captions.captions.uri, classes)


def generate(
    client: ServiceCalls,
    *,
    dataset_id: str,
    name: str,
    strategy: str,
    classes: Sequence[int],
    assignment_uris: Sequence[str] = (),
    captions_uris: Sequence[str] = (),
    by_frequency: bool = False,
    generator: str = "world",
    images_per_class: int | None = None,
    top_k: int | None = None,
    seed: int | None = None,
    vocabulary_uri: str = "",
    bar_factory: Bar | None = None,
) -> generation_pb2.GenerateResult:
    """Images for one strategy as the dataset ``name`` (give every strategy the same classes:
    equal budgets). Several ``assignment_uris`` pool the failures of several models."""
    fields: dict[str, Any] = {
        "generator": generator,
        "strategy": STRATEGY_ENUMS[strategy],
        "base_dataset_id": dataset_id,
        "classes": list(classes),
        "assignment_uris": list(assignment_uris),
        "captions_uris": list(captions_uris),
        "by_frequency": by_frequency,
        "output_dataset_name": name,
        "overwrite": True,
    }
    fields.update({k: v for k, v in {"images_per_class": images_per_class, "top_k": top_k, "seed": seed}.items() if v is not None})
    if vocabulary_uri:
        fields["vocabulary_uri"] = vocabulary_uri
    bar = _bar(bar_factory, f"generate {name}")
    try:
        return client.generate(on_progress=bar, **fields)
    finally:
        _close(bar)


def eval_sets(described: Described, test: embedding_pb2.EmbeddingSet, val: embedding_pb2.EmbeddingSet) -> list[dict[str, str]]:
    return [
        {"name": "test", "embedding_id": test.embedding_id},
        {"name": "debug_seed", "embedding_id": val.embedding_id, "rows_uri": described.split.debug_seed_rows.uri},
        {"name": "debug_heldout", "embedding_id": val.embedding_id, "rows_uri": described.split.debug_heldout_rows.uri},
    ]


def retrain(
    client: ServiceCalls,
    *,
    model_id: str,
    train_embedding_id: str,
    debug_embedding_id: str,
    evals: list[dict[str, str]],
    publish: bool,
    bar_factory: Bar | None = None,
    **params: Any,
) -> Any:
    """A new head (base: version 1) trained and evaluated; published as a new version if asked.
    ``params``: HeadRetrainer parameters (lam, epochs, init, ...); None leaves the default."""
    fields = {k: v for k, v in params.items() if v is not None}
    bar = _bar(bar_factory, "retrain")
    try:
        return client.retrain_head(
            on_progress=bar,
            model_id=model_id,
            model_version=1,
            train_embedding_id=train_embedding_id,
            debug_train_embedding_id=debug_embedding_id,
            eval_sets=evals,
            dry_run=not publish,
            **fields,
        )
    finally:
        _close(bar)


def _accuracies(res: Any) -> tuple[dict[str, float], dict[str, float]]:
    return {r.name: r.accuracy for r in res.evaluation.results}, {r.name: r.accuracy_before for r in res.evaluation.results}


def repair(
    client: ServiceCalls,
    store: ArtifactStore,
    *,
    dataset_id: str,
    model_id: str,
    clip_model_id: str,
    vocabulary_uri: str,
    strategies: Sequence[str] = tuple(STRATEGY_ENUMS),
    publish: str = "failure_backgrounds",
    generator: str = "world",
    images_per_class: int | None = None,
    top_k: int | None = None,
    head: dict[str, Any] | None = None,
    train_split: str = "train",
    debug_split: str = "val",
    test_split: str = "test",
    seed: int = 0,
    echo: Callable[[str], None] = print,
    bar_factory: Bar | None = None,
) -> RepairReport:
    """The whole protocol (module doc); ``head``: HeadRetrainer parameters for every strategy."""
    if publish not in strategies:
        raise ValueError(f"the published strategy {publish!r} must be one of the strategies run {list(strategies)}")
    head = dict(head or {})
    echo(f"repair of {model_id}: embedding {train_split}/{debug_split}/{test_split} with version 1 ...")
    train = ensure_embedding(client, dataset_id, model_id, [train_split], 1, artifact_id(dataset_id, model_id, train_split), bar_factory=bar_factory)
    test = ensure_embedding(client, dataset_id, model_id, [test_split], 1, artifact_id(dataset_id, model_id, test_split), bar_factory=bar_factory)
    echo(f"describing the failures of {model_id} on its {debug_split} split (debug_seed half) ...")
    described = describe_debug_seed(
        client,
        store,
        dataset_id=dataset_id,
        model_id=model_id,
        clip_model_id=clip_model_id,
        vocabulary_uri=vocabulary_uri,
        debug_split=debug_split,
        seed=seed,
        bar_factory=bar_factory,
    )
    val = ensure_embedding(client, dataset_id, model_id, [debug_split], 1, artifact_id(dataset_id, model_id, debug_split))
    evals = eval_sets(described, test, val)
    results: list[StrategyResult] = []
    published: StrategyResult | None = None
    before: dict[str, float] = {}
    for strategy in strategies:
        echo(f"  {strategy}: generating {images_per_class or 'the default number of'} images per class for {len(described.classes)} classes ...")
        gen = generate(
            client,
            dataset_id=dataset_id,
            name=artifact_id(model_id, strategy.replace("_", "-")),
            strategy=strategy,
            classes=described.classes,
            assignment_uris=[described.assignment.assignments.uri],
            captions_uris=[described.captions_uri],
            generator=generator,
            images_per_class=images_per_class,
            top_k=top_k,
            seed=seed,
            vocabulary_uri=vocabulary_uri,
            bar_factory=bar_factory,
        )
        debug = ensure_embedding(
            client, gen.dataset.dataset_id, model_id, ["debug_train"], 1, artifact_id(gen.dataset.dataset_id, model_id), bar_factory=bar_factory
        )
        res = retrain(
            client,
            model_id=model_id,
            train_embedding_id=train.embedding_id,
            debug_embedding_id=debug.embedding_id,
            evals=evals,
            publish=strategy == publish,
            bar_factory=bar_factory,
            **head,
        )
        after, before = _accuracies(res)
        row = StrategyResult(strategy, gen.dataset.dataset_id, gen.num_images, after, before, res.version.version, debug.embedding_id)
        results.append(row)
        if strategy == publish:
            published = row
    slices, modes = verify(
        client,
        store,
        dataset_id=dataset_id,
        model_id=model_id,
        clip_model_id=clip_model_id,
        test=test,
        version=published.version if published else 0,
        test_split=test_split,
        seed=seed,
        bar_factory=bar_factory,
    )
    return RepairReport(
        model_id,
        before,
        results,
        published,
        slices,
        modes,
        train_embedding_id=train.embedding_id,
        evals=evals,
        assignment_uri=described.assignment.assignments.uri,
        captions_uri=described.captions_uri,
        classes=described.classes,
        num_seed=described.split.num_seed,
        num_heldout=described.split.num_heldout,
        dataset_id=dataset_id,
    )


def verify(
    client: ServiceCalls,
    store: ArtifactStore,
    *,
    dataset_id: str,
    model_id: str,
    clip_model_id: str,
    test: embedding_pb2.EmbeddingSet,
    version: int,
    test_split: str = "test",
    seed: int = 0,
    bar_factory: Bar | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The test split with the new version: accuracy per planted slice before and after (where the
    manifest names slices), and per failure direction of the old version on test (its most
    aligned images) whether the new version still fails there."""
    if not version:
        return [], []
    after = ensure_embedding(
        client, dataset_id, model_id, [test_split], version, artifact_id(dataset_id, model_id, f"v{version}", test_split), bar_factory=bar_factory
    )
    ds = client.call(client.registry.GetDataset, registry_pb2.GetDatasetRequest(dataset_id=dataset_id))
    manifest = store.get_parquet(store.key_from_uri(ds.manifest.uri)).to_pandas()
    rows = store.get_npy(store.key_from_uri(test.rows.uri))
    labels = store.get_npy(store.key_from_uri(test.labels.uri))
    pred_before = store.get_npy(store.key_from_uri(test.predictions.uri))
    pred_after = store.get_npy(store.key_from_uri(after.predictions.uri))
    slices: list[dict[str, Any]] = []
    if "planted_slice" in manifest.columns:
        names = manifest["planted_slice"].fillna("").astype(str).to_numpy()[rows]
        for s in sorted({n for x in names for n in x.split(";") if n}):
            member = np.array([s in x.split(";") for x in names])
            slices.append(
                {
                    "slice": s,
                    "n": int(member.sum()),
                    "before": float((pred_before[member] == labels[member]).mean()),
                    "after": float((pred_after[member] == labels[member]).mean()),
                }
            )
    clip = ensure_embedding(
        client, dataset_id, clip_model_id, [test_split], None, artifact_id(dataset_id, clip_model_id, test_split), bar_factory=bar_factory
    )
    old = client.fit_failure_directions(
        clip_embedding_id=clip.embedding_id,
        prediction_embedding_id=test.embedding_id,
        report_id=artifact_id(model_id, test_split, "directions-v1"),
        overwrite=True,
        seed=seed,
    )
    new = client.fit_failure_directions(
        clip_embedding_id=clip.embedding_id,
        prediction_embedding_id=after.embedding_id,
        report_id=artifact_id(model_id, test_split, f"directions-v{version}"),
        overwrite=True,
        seed=seed,
    )
    position = {int(r): i for i, r in enumerate(rows)}
    still = {(d.class_index, d.mode) for d in new.directions if not d.skipped_reason and d.holdout.validated}
    modes: list[dict[str, Any]] = []
    for d in old.directions:
        if d.skipped_reason or not d.holdout.validated:
            continue
        idx = [position[int(r)] for r in d.top_aligned_rows if int(r) in position]
        acc_before = float((pred_before[idx] == labels[idx]).mean()) if idx else 0.0
        acc_after = float((pred_after[idx] == labels[idx]).mean()) if idx else 0.0
        new_dirs = [x for x in new.directions if x.class_index == d.class_index and not x.skipped_reason and x.holdout.validated]
        overlap = max((len(set(d.top_aligned_rows) & set(x.top_aligned_rows)) / max(1, len(d.top_aligned_rows)) for x in new_dirs), default=0.0)
        modes.append(
            {
                "class": d.class_name,
                "mode": d.mode,
                "before": acc_before,
                "after": acc_after,
                "gone": bool(acc_after >= 0.5 and overlap < 0.5),
                "still_validated": (d.class_index, d.mode) in still,
            }
        )
    return slices, modes


def sweeps(
    client: ServiceCalls,
    report: RepairReport,
    *,
    lambdas: Sequence[float] = (),
    ks: Sequence[int] = (),
    generator: str = "world",
    images_per_class: int | None = None,
    seed: int = 0,
    bar_factory: Bar | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The published strategy's retraining swept (nothing published): over ``lambdas`` (the
    generated images' weight in the loss) and over ``ks`` (failure backgrounds per class; each k
    generates its own images). Rows: the swept value and the accuracy per evaluation set."""
    assert report.published is not None
    published = report.published
    out: dict[str, list[dict[str, Any]]] = {"lambda": [], "k": []}
    for lam in lambdas:
        res = retrain(
            client, model_id=report.model_id, train_embedding_id=report.train_embedding_id, debug_embedding_id=published.debug_embedding_id,
            evals=report.evals, publish=False, bar_factory=bar_factory, lam=lam,
        )  # fmt: skip
        out["lambda"].append({"value": lam, "accuracy": _accuracies(res)[0]})
    for k in ks:
        gen = generate(
            client, dataset_id=report.dataset_id, name=artifact_id(report.model_id, published.strategy.replace("_", "-"), f"k{k}"),
            strategy=published.strategy, classes=report.classes, assignment_uris=[report.assignment_uri], captions_uris=[report.captions_uri],
            generator=generator, images_per_class=images_per_class, top_k=k, seed=seed, bar_factory=bar_factory,
        )  # fmt: skip
        emb = ensure_embedding(
            client,
            gen.dataset.dataset_id,
            report.model_id,
            ["debug_train"],
            1,
            artifact_id(gen.dataset.dataset_id, report.model_id),
            bar_factory=bar_factory,
        )
        res = retrain(
            client, model_id=report.model_id, train_embedding_id=report.train_embedding_id, debug_embedding_id=emb.embedding_id,
            evals=report.evals, publish=False, bar_factory=bar_factory,
        )  # fmt: skip
        out["k"].append({"value": k, "accuracy": _accuracies(res)[0]})
    return out


def format_repair(report: RepairReport) -> list[str]:
    """The Table-2 rows (accuracy in %), the planted slices before -> after, the modes gone."""
    out = [f"{'strategy':22s} {'images':>6s} " + " ".join(f"{s:>14s}" for s in EVAL_SETS) + "  (accuracy %, before -> after)"]
    out.append(f"{'before':22s} {'':>6s} " + " ".join(f"{100 * report.before.get(s, 0):14.1f}" for s in EVAL_SETS))
    for r in report.strategies:
        mark = f"  -> published as version {r.version}" if r.version else ""
        out.append(f"{r.strategy:22s} {r.num_images:6d} " + " ".join(f"{100 * r.accuracy.get(s, 0):14.1f}" for s in EVAL_SETS) + mark)
    if report.slices:
        out.append("planted slices on test (accuracy before -> after the published version):")
        out += [f"  {s['slice']:22s} n={s['n']:3d}  {s['before']:.2f} -> {s['after']:.2f}" for s in report.slices]
    if report.modes:
        gone = [m for m in report.modes if m["gone"]]
        out.append(f"failure directions of version 1 on test: {len(gone)} of {len(report.modes)} gone with the new version")
        out += [
            f"  {m['class']:12s} mode {m['mode']}  accuracy on its images {m['before']:.2f} -> {m['after']:.2f}"
            + ("  gone" if m["gone"] else "  still there")
            for m in report.modes
        ]
    return out


def report_dict(report: RepairReport) -> dict[str, Any]:
    """The report as plain JSON-able data."""
    return dataclasses.asdict(report)
