"""The report stage: the run's results gathered into a report document, rendered and stored.

:func:`build_document` reads what the earlier stages made (the inspected model's predictions,
the failure trees and directions, captions, backgrounds, evidence, repair) into the document that
:func:`failurelens.report.render_report` renders; :func:`summary` keeps its headline figures (the
run's ``summary.json``, what the CLI prints).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import json_format

from failurelens.catalog import Catalog
from failurelens.report import render_report
from failurelens.store.base import encode_json
from failurelens.v1 import common_pb2, embedding_pb2, registry_pb2, slice_discovery_pb2
from failurelens.workflow.compare import compare_summaries

#: rules and directions shown per class; failure modes in the overview; example images per mode
PER_CLASS = 4
TOP_MODES = 12
EXAMPLES = 6
GROUPING = {common_pb2.GROUPING_LABEL: "label", common_pb2.GROUPING_PREDICTION: "prediction"}
STATE = {
    common_pb2.JOB_STATE_RUNNING: "running",
    common_pb2.JOB_STATE_SUCCEEDED: "succeeded",
    common_pb2.JOB_STATE_FAILED: "failed",
    common_pb2.JOB_STATE_CANCELLED: "cancelled",
}


def _npy(store: Any, uri: str) -> np.ndarray:
    return store.get_npy(store.key_from_uri(uri))


def _caption(caps: list[dict[str, Any]] | None) -> tuple[str, bool]:
    if not caps:
        return "", False
    return caps[0].get("text", ""), bool(caps[0].get("validated", False))


def _best_attribute(manifest: Any, attributes: list[str], members: np.ndarray, class_rows: np.ndarray) -> str:
    """The attribute value most over-represented among a mode's member images relative to their
    class (precision among the members, and its lift), e.g. ``background=snow (0.83, x4.1)``."""
    best, text = 0.0, ""
    if len(members) == 0:
        return ""
    for col in attributes:
        values = manifest[col].astype(str).to_numpy()
        member_vals, class_vals = values[members], values[class_rows]
        for v in set(member_vals) - {"", "nan", "None"}:
            precision = float((member_vals == v).mean())
            base = float((class_vals == v).mean()) or 1e-9
            lift = precision / base
            if precision >= 0.3 and lift > 1.2 and precision * np.log(lift) > best:
                best, text = precision * np.log(lift), f"{col}={v} ({precision:.2f} of its images, x{lift:.1f} its class)"
    return text


def build_document(ctx: Any) -> dict[str, Any]:
    plan, store, calls, out = ctx.plan, ctx.store, ctx.calls, ctx.outputs
    ds = calls.call(calls.registry.GetDataset, registry_pb2.GetDatasetRequest(dataset_id=plan.dataset_id))
    manifest = store.get_parquet(store.key_from_uri(ds.manifest.uri)).to_pandas()
    uris = manifest["uri"].astype(str).to_numpy()
    names = list(ds.class_names)
    k = len(names)
    e = out["embed"]
    rows, labels, preds = _npy(store, e["rows_uri"]), _npy(store, e["labels_uri"]), _npy(store, e["predictions_uri"])
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (labels, preds), 1)
    trees = calls.call(calls.slice_discovery.GetFailureTrees, slice_discovery_pb2.GetReportRequest(report_id=out["failure_trees"]["report_id"]))
    directions = calls.call(
        calls.slice_discovery.GetFailureDirections, slice_discovery_pb2.GetReportRequest(report_id=out["failure_directions"]["report_id"])
    )
    table = store.get_parquet(store.key_from_uri(trees.rules_table.uri)).to_pandas() if trees.rules_table.uri else None
    ber: dict[int, float] = {}
    aler: dict[int, float] = {}
    if table is not None and len(table):
        lab = table[table["grouping"].astype(str).str.lower().str.contains("label")]
        for c, g in lab.groupby("class_index"):
            ber[int(c)], aler[int(c)] = float(g["base_error_rate"].iloc[0]), float(g["aler"].iloc[0])
    caps = out.get("captions") or {}
    rule_caps = {(r["class_index"], r["grouping"], r["leaf_id"]): r.get("captions") for r in caps.get("rules", {}).get("rules", [])}
    dir_caps = {(c["class_index"], c.get("mode", 0)): c.get("positive") for c in caps.get("directions", {}).get("classes", [])}
    montage = {int(f): uri for f, uri in ((out.get("evidence") or {}).get("montages") or {}).items()}
    features = None
    if trees.rules:
        features = _aligned_features(calls, store, e["features"], rows)
    position = {int(r): i for i, r in enumerate(rows)}
    overview_classes, class_docs, modes = [], [], []
    backgrounds = (out.get("backgrounds") or {}).get("top", {})
    for c in range(k):
        n = int(conf[c].sum())
        acc = float(conf[c, c] / n) if n else None
        overview_classes.append(
            {"name": names[c], "n": n, "accuracy": acc, "error_rate": 1 - acc if acc is not None else 0.0, "ber": ber.get(c), "aler": aler.get(c)}
        )
        class_rows_pos = np.flatnonzero(labels == c)
        rules = []
        for r in sorted((r for r in trees.rules if r.class_index == c), key=lambda r: -r.importance)[:PER_CLASS]:
            text, validated = _caption(rule_caps.get((c, int(r.grouping), r.leaf_id)))
            members = _rule_members(r, features, labels, preds) if features is not None else np.array([], dtype=np.int64)
            doc = {
                "grouping": GROUPING.get(r.grouping, str(r.grouping)),
                "text": r.text,
                "error_rate": r.error_rate,
                "error_coverage": r.error_coverage,
                "holdout_error_rate": r.holdout.error_rate,
                "holdout_error_coverage": r.holdout.error_coverage,
                "q_value": r.holdout.q_value,
                "validated": r.holdout.validated,
                "caption": text,
                "caption_validated": validated,
                "features": [int(x.feature) for x in r.conditions],
            }
            rules.append(doc)
            if r.grouping == common_pb2.GROUPING_LABEL and r.holdout.validated:
                wrong = members[preds[members] != labels[members]] if len(members) else members
                modes.append(
                    {
                        "class": names[c], "kind": "failure tree rule", "text": r.text, "caption": text, "caption_validated": validated,
                        "validated": True, "q_value": r.holdout.q_value, "error_rate": r.holdout.error_rate,
                        "error_coverage": r.holdout.error_coverage, "importance": r.holdout.error_rate * r.holdout.error_coverage,
                        "size": int(r.n + r.holdout.n), "examples": [uris[rows[i]] for i in wrong[:EXAMPLES]],
                        "member_rows": [int(rows[i]) for i in members], "error_rows": [int(rows[i]) for i in wrong],
                        "attribute": _best_attribute(manifest, plan.attributes, rows[members], rows[class_rows_pos]) if plan.attributes else "",
                    }
                )  # fmt: skip
        dirs = []
        for d in sorted((d for d in directions.directions if d.class_index == c and not d.skipped_reason), key=lambda d: d.mode):
            text, validated = _caption(dir_caps.get((c, d.mode)))
            dirs.append(
                {
                    "mode": d.mode, "caption": text, "caption_validated": validated, "holdout_error_rate": d.holdout.error_rate,
                    "q_value": d.holdout.q_value, "validated": d.holdout.validated, "balanced_accuracy": d.holdout_balanced_accuracy,
                    "aligned": [uris[r] for r in d.top_aligned_rows[:EXAMPLES]], "antialigned": [uris[r] for r in d.top_antialigned_rows[:EXAMPLES]],
                }
            )  # fmt: skip
            if d.holdout.validated:
                members = np.array([int(r) for r in d.top_aligned_rows], dtype=np.int64)
                wrong = [r for r in members if int(r) in position and preds[position[int(r)]] != labels[position[int(r)]]]
                modes.append(
                    {
                        "class": names[c], "kind": "failure direction" + (f" (error mode {d.mode})" if d.mode else ""),
                        "text": f"direction {d.mode}" if d.mode else "class direction", "caption": text, "caption_validated": validated,
                        "validated": True, "q_value": d.holdout.q_value, "error_rate": d.holdout.error_rate,
                        "error_coverage": d.holdout.error_coverage, "importance": d.holdout.error_rate * d.holdout.error_coverage,
                        "size": int(d.holdout.n), "examples": [uris[r] for r in wrong[:EXAMPLES]], "member_rows": [int(r) for r in members],
                        "error_rows": [int(r) for r in wrong],
                        "attribute": _best_attribute(manifest, plan.attributes, members, rows[class_rows_pos]) if plan.attributes else "",
                    }
                )  # fmt: skip
        evidence = [{"feature": f, "montage": montage[f]} for f in sorted({f for r in rules for f in r["features"]}) if montage.get(f)]
        class_docs.append(
            {
                "name": names[c], "error_rate": overview_classes[-1]["error_rate"], "rules": rules, "directions": dirs[:PER_CLASS],
                "backgrounds": backgrounds.get(names[c], []), "evidence": evidence[:PER_CLASS],
            }
        )  # fmt: skip
    off = [(int(conf[i, j]), i, j) for i in range(k) for j in range(k) if i != j and conf[i, j]]
    pairs = [{"true": names[i], "pred": names[j], "count": n} for n, i, j in sorted(off, reverse=True)[:10]]
    modes.sort(key=lambda m: -m["importance"])
    rep = out.get("repair") or {}
    repair_doc = None
    if rep.get("report"):
        r = rep["report"]
        repair_doc = {
            "before": r["before"],
            "table": [
                {"strategy": s["strategy"], "num_images": s["num_images"], "accuracy": s["accuracy"], "version": s["version"]}
                for s in r["strategies"]
            ],
            "slices": r["slices"],
            "modes": r["modes"],
            "lines": rep.get("lines", []),
            "sweeps": rep.get("sweeps") or {},
        }
    return {
        "identity": {
            "dataset_id": plan.dataset_id,
            "model_id": plan.model_id,
            "model_version": plan.model_version,
            "split": plan.split,
            "class_names": names,
            "arrays": {"rows_uri": e["rows_uri"], "labels_uri": e["labels_uri"], "predictions_uri": e["predictions_uri"]},
        },
        "comparison": None,
        "title": plan.title or f"failurelens: failure modes of {plan.model_id} on {plan.dataset_id}",
        "subtitle": f"model {plan.model_id} v{plan.model_version} · dataset {plan.dataset_id} · split {plan.split}"
        + (f" · robust features {plan.feature_model_id}" if plan.feature_model_id else "")
        + (f" · image-text model {plan.clip_model_id}" if plan.clip_model_id else ""),
        "notes": list(ctx.notes) + [f"{s}: {m}" for s, m in ctx.skipped.items()],
        "has_attributes": bool(plan.attributes),
        "overview": {
            "accuracy": float((labels == preds).mean()) if len(labels) else 0.0,
            "num_rows": int(len(labels)),
            "split": plan.split,
            "classes": overview_classes,
            "confusion": conf.tolist(),
            "confused_pairs": pairs,
        },
        "modes": modes[:TOP_MODES],
        "all_modes": modes,
        "classes": [d for d in class_docs if d["rules"] or d["directions"] or d["error_rate"] > 0],
        "repair": repair_doc,
        "peers": e.get("peers"),
    }


def _aligned_features(calls: Any, store: Any, embedding_id: str, rows: np.ndarray) -> np.ndarray:
    """The features of ``embedding_id`` in the order of ``rows`` (memory-mapped where the store
    has local files; rows it lacks are NaN and satisfy no condition)."""
    got = calls.call(calls.embedding.GetEmbedding, embedding_pb2.GetEmbeddingRequest(embedding_id=embedding_id))
    feats = store.get_npy(store.key_from_uri(got.features.uri), mmap=True)
    own = _npy(store, got.rows.uri)
    if len(own) == len(rows) and np.array_equal(own, rows):
        return feats
    at = {int(r): i for i, r in enumerate(own)}
    out = np.full((len(rows), feats.shape[1]), np.nan, dtype=np.float32)
    for i, r in enumerate(rows):
        if int(r) in at:
            out[i] = feats[at[int(r)]]
    return out


def _rule_members(rule: Any, features: np.ndarray, labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Positions (in the embedding set's rows) of the images of the rule's group that satisfy its
    conditions (label grouping: images of the class; prediction grouping: predicted as it)."""
    group = np.flatnonzero(labels == rule.class_index if rule.grouping == common_pb2.GROUPING_LABEL else preds == rule.class_index)
    keep = np.ones(len(group), dtype=bool)
    for cond in rule.conditions:
        col = np.asarray(features[group, cond.feature])  # only the group's rows are read
        keep &= col <= cond.threshold if cond.op in ("<=", "le") else col > cond.threshold
    return group[keep]


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The headline figures: accuracy, the top failure modes per class (ER, EC, caption), repair gains."""
    per_class: dict[str, list[dict[str, Any]]] = {}
    for m in doc["all_modes"]:
        per_class.setdefault(m["class"], [])
        if len(per_class[m["class"]]) < 3:
            per_class[m["class"]].append(
                {k: m[k] for k in ("kind", "text", "caption", "error_rate", "error_coverage", "q_value", "size", "attribute")}
            )
    out: dict[str, Any] = {
        "title": doc["title"],
        "accuracy": doc["overview"]["accuracy"],
        "num_rows": doc["overview"]["num_rows"],
        "classes": {c["name"]: {"accuracy": c["accuracy"], "error_rate": c["error_rate"], "n": c["n"]} for c in doc["overview"]["classes"]},
        "failure_modes": per_class,
        "modes": [
            {k: m[k] for k in ("class", "kind", "text", "caption", "error_rate", "error_coverage", "q_value", "member_rows", "error_rows")}
            for m in doc["all_modes"]
        ],
        "notes": doc["notes"],
        **doc["identity"],
    }
    if doc["repair"]:
        r = doc["repair"]
        out["repair"] = {
            "before": r["before"],
            "strategies": {s["strategy"]: s["accuracy"] for s in r["table"]},
            "published_version": next((s["version"] for s in r["table"] if s["version"]), 0),
            "slices": r["slices"],
            "sweeps": r.get("sweeps") or {},
        }
    return out


def write_report(ctx: Any, prefix: str) -> dict[str, Any]:
    """Render the run's report and store it (``report.html``, ``summary.json``) under ``prefix``."""
    doc = build_document(ctx)
    store = ctx.store

    def image(uri: str) -> bytes | None:
        try:
            return bytes(store.get_bytes(store.key_from_uri(uri)))
        except Exception:
            return None

    summ = summary(doc)
    if ctx.plan.baseline:
        base = store.get_json(store.key_from_uri(ctx.plan.baseline["summary_uri"]))
        doc["comparison"] = compare_summaries(store, base, summ, ctx.plan.baseline["run_id"], "this run")
        summ["comparison"] = doc["comparison"]
    html = render_report(doc, image)
    cat = Catalog(store)
    # the run record lists these refs (size and SHA-256 included); the stage record keeps them as JSON
    return {
        "summary": ref_to_json(cat.put_bytes(prefix + "summary.json", encode_json(json_format_safe(summ)), "application/json")),
        "html": ref_to_json(cat.put_bytes(prefix + "report.html", html.encode(), "text/html")),
    }


def ref_to_json(ref: common_pb2.ArtifactRef) -> dict[str, Any]:
    return json_format.MessageToDict(ref, preserving_proto_field_name=True)


def ref_from_json(doc: dict[str, Any]) -> common_pb2.ArtifactRef:
    return json_format.ParseDict(doc, common_pb2.ArtifactRef())


def json_format_safe(x: Any) -> Any:
    """Plain JSON types (numpy scalars and arrays converted)."""
    if isinstance(x, dict):
        return {str(k): json_format_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_format_safe(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def format_summary(run: Any, summary: dict[str, Any]) -> list[str]:
    out = [f"run {run.run_id}: {STATE.get(run.state, 'unknown')}" + (f" ({run.error.code}: {run.error.message})" if run.error.message else "")]
    out += [f"  note: {n}" for n in run.notes]
    if not summary:
        return out
    out.append(f"accuracy {100 * summary['accuracy']:.1f}% on {summary['num_rows']} images")
    modes = summary.get("failure_modes", {})
    if modes:
        out.append(f"{'class':12s} {'found by':30s} {'ER':>5s} {'EC':>5s} {'q':>6s}  caption / description")
        for cls, items in modes.items():
            for m in items:
                text = (m["caption"] or m["text"]) + (f"  [{m['attribute']}]" if m.get("attribute") else "")
                out.append(f"{cls:12s} {m['kind'][:30]:30s} {m['error_rate']:5.2f} {m['error_coverage']:5.2f} {m['q_value']:6.3f}  {text}")
    else:
        out.append("no validated failure mode")
    rep = summary.get("repair")
    if rep:
        out.append("repair (accuracy %: test / debug_seed / debug_heldout):")
        sets = ("test", "debug_seed", "debug_heldout")
        out.append(f"  {'before':22s} " + " / ".join(f"{100 * rep['before'].get(s, 0):5.1f}" for s in sets))
        for name, acc in rep["strategies"].items():
            out.append(f"  {name:22s} " + " / ".join(f"{100 * acc.get(s, 0):5.1f}" for s in sets))
        if rep.get("published_version"):
            out.append(f"  published as version {rep['published_version']}")
        if rep.get("slices"):
            out.append("named slices on test (accuracy before -> after the published version):")
            out += [f"  {x['slice']:22s} n={x['n']:4d}  {x['before']:.2f} -> {x['after']:.2f}" for x in rep["slices"]]
    return out
