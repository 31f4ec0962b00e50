"""Comparing two pipeline runs on the same images (e.g. a model before and after its repair, or
last week's model and today's): their stored summaries and predictions, through
:class:`failurelens.discovery.compare.RunComparison`."""

from __future__ import annotations

from typing import Any

import numpy as np

from failurelens import errors
from failurelens.discovery.compare import FailureMode, RunComparison
from failurelens.store.base import ArtifactStore


def load_summary(store: ArtifactStore, run: Any) -> dict[str, Any]:
    if not run.summary.uri:
        raise errors.FailedPrecondition(f"run {run.run_id} has no summary (state {run.state}); compare finished runs", type="RUN", subject=run.run_id)
    return dict(store.get_json(store.key_from_uri(run.summary.uri)))


def _outcomes(store: ArtifactStore, summary: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = summary["arrays"]
    return tuple(store.get_npy(store.key_from_uri(a[k])) for k in ("rows_uri", "labels_uri", "predictions_uri"))  # type: ignore[return-value]


def compare_summaries(
    store: ArtifactStore, a: dict[str, Any], b: dict[str, Any], run_a: str = "A", run_b: str = "B", **params: Any
) -> dict[str, Any]:
    """The comparison of run A (older) and run B (newer) as plain data."""
    if a["dataset_id"] != b["dataset_id"] or a["class_names"] != b["class_names"]:
        raise errors.FailedPrecondition(
            f"runs {run_a} and {run_b} analysed different datasets or class lists; compare runs of the same data", type="RUN", subject=run_b
        )
    rows_a, labels_a, pred_a = _outcomes(store, a)
    rows_b, _, pred_b = _outcomes(store, b)
    shared, ia, ib = np.intersect1d(rows_a, rows_b, return_indices=True)
    if len(shared) == 0:
        raise errors.FailedPrecondition(f"runs {run_a} and {run_b} share no images (other splits?)", type="RUN", subject=run_b)
    labels = labels_a[ia]
    cmp = RunComparison(**params).fit(a["modes"], b["modes"], labels, pred_a[ia] == labels, pred_b[ib] == labels, a["class_names"])

    def mode(f: FailureMode) -> dict[str, Any]:
        return {
            "class": f.class_name,
            "description": f.description,
            "error_rate": f.error_rate,
            "size": len(f.members),
            "detectors": len(f.detectors),
            "members": sorted(f.members),
        }

    return {
        "run_a": run_a,
        "run_b": run_b,
        "model_a": f"{a['model_id']} v{a.get('model_version', 1)}",
        "model_b": f"{b['model_id']} v{b.get('model_version', 1)}",
        "images": int(len(shared)),
        "accuracy_a": float((pred_a[ia] == labels).mean()),
        "accuracy_b": float((pred_b[ib] == labels).mean()),
        "fixed": [mode(f) for f in cmp.fixed_],
        "introduced": [mode(f) for f in cmp.introduced_],
        "unchanged": [{**mode(fb), "description_a": fa.description, "overlap": ov} for fa, fb, ov in cmp.unchanged_],
        "classes": [vars(d) for d in cmp.class_deltas_],
        "params": cmp.validate_params(),
    }


def format_comparison(doc: dict[str, Any]) -> list[str]:
    out = [
        f"run {doc['run_a']} ({doc['model_a']}) -> run {doc['run_b']} ({doc['model_b']}) on {doc['images']} shared images: "
        f"accuracy {100 * doc['accuracy_a']:.1f}% -> {100 * doc['accuracy_b']:.1f}%"
    ]
    for title, key in (("fixed", "fixed"), ("introduced", "introduced"), ("unchanged", "unchanged")):
        out.append(f"failure modes {title}: {len(doc[key])}")
        out += [f"  {m['class']:12s} ER {m['error_rate']:.2f}  n={m['size']:4d}  {m['description']}" for m in doc[key]]
    out.append(f"per-class accuracy delta (B - A, {int(100 * doc['params']['confidence'])}% paired CI):")
    for c in doc["classes"]:
        out.append(
            f"  {c['class_name']:12s} n={c['n']:5d}  {100 * c['accuracy_a']:5.1f}% -> {100 * c['accuracy_b']:5.1f}%  "
            f"{100 * c['delta']:+5.1f} [{100 * c['ci_low']:+5.1f}, {100 * c['ci_high']:+5.1f}] pts"
        )
    return out
