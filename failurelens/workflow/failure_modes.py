"""Finding the failure modes of one classifier through the running services (client side).

:func:`find_failure_modes` runs, for one inspected classifier: failure trees on the robust
features (label and prediction grouping), failure directions on the image–text embeddings,
captions for both, uncommon backgrounds of each class's failures, and the visual evidence of the
rules' features. :func:`failure_table` turns the results into one row per class and
:func:`format_failure_table` into the lines the CLI and the main job print.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from failurelens.v1 import captioning_pb2, common_pb2

#: a progress-bar factory: ``bar = factory(name)``; ``bar(progress)`` per update, ``bar.close()``
Bar = Callable[[str], Any]


@dataclasses.dataclass
class Discovery:
    trees: Any
    directions: Any
    rule_captions: Any
    direction_captions: Any
    backgrounds: Any
    assignment: Any
    evidence: Any = None


def _closing(bar_factory: Bar | None, name: str):
    if bar_factory is None:
        return None, lambda: None
    bar = bar_factory(name)
    return bar, getattr(bar, "close", lambda: None)


def _set(**fields: Any) -> dict[str, Any]:
    """The fields that are set (``None`` leaves a request field unset: the service's estimator
    default applies)."""
    return {k: v for k, v in fields.items() if v is not None}


def find_failure_modes(
    client: Any,
    *,
    inspected: str,
    features: str,
    clip: str,
    text_model: str,
    vocabulary_uri: str,
    class_names: list[str],
    report_prefix: str = "",
    evidence: bool = True,
    top_k: int = 3,
    holdout_fraction: float | None = None,
    seed: int | None = None,
    error_modes: int | None = None,
    direction_caption_method: int | None = None,
    bar_factory: Bar | None = None,
) -> Discovery:
    """Run every discovery step; ``inspected``/``features``/``clip`` are embedding set ids. A
    parameter left ``None`` is left unset in the request, so the estimator's default applies
    (directions captioned by their most aligned images: on the benchmark world's planted slices it
    names the attribute of every matched direction, the paper's text score 11 in 12; see
    tests/bench/slice_recovery.py)."""
    prefix = report_prefix or inspected
    bar, done = _closing(bar_factory, "failure trees")
    trees = client.fit_failure_trees(
        on_progress=bar,
        feature_embedding_id=features,
        prediction_embedding_id=inspected,
        report_id=f"{prefix}-trees",
        overwrite=True,
        **_set(holdout_fraction=holdout_fraction, seed=seed),
    )
    done()
    bar, done = _closing(bar_factory, "failure directions")
    directions = client.fit_failure_directions(
        on_progress=bar,
        clip_embedding_id=clip,
        prediction_embedding_id=inspected,
        report_id=f"{prefix}-directions",
        overwrite=True,
        **_set(holdout_fraction=holdout_fraction, seed=seed, error_modes=error_modes),
    )
    done()
    vocab = captioning_pb2.CaptionVocabulary(vocabulary_uri=vocabulary_uri)
    rule_captions = client.caption_rules(report_id=trees.report_id, text_model_id=text_model, clip_embedding_id=clip, vocabulary=vocab, top_k=top_k)
    direction_captions = client.caption_directions(
        report_id=directions.report_id, text_model_id=text_model, vocabulary=vocab, top_k=top_k, **_set(method=direction_caption_method)
    )
    backgrounds = client.propose_backgrounds(class_names=class_names, vocabulary_uri=vocabulary_uri, per_class=12, text_model_id=text_model)
    bar, done = _closing(bar_factory, "assign backgrounds")
    assignment = client.assign_backgrounds(
        on_progress=bar,
        clip_embedding_id=clip,
        prediction_embedding_id=inspected,
        text_model_id=text_model,
        backgrounds=list(backgrounds.classes),
        top_k=top_k,
        vocabulary=vocab,
    )
    done()
    ev = None
    if evidence and trees.rules:
        bar, done = _closing(bar_factory, "visual evidence")
        ev = client.render_feature_evidence(on_progress=bar, report_id=trees.report_id, top_k=6, heatmaps=True, feature_attack=True)
        done()
    return Discovery(trees, directions, rule_captions, direction_captions, backgrounds, assignment, ev)


def _shown(caption: Any) -> str:
    """A caption's text, with "(?)" when the images nearest it do not fail like its slice."""
    return caption.text + ("" if caption.validated else " (?)")


def _mode_summary(caption: str, error_rates: list[float]) -> str:
    """ "caption (ER* 0.90)" for one mode, "caption (3 modes, ER* 0.53-1.00)" for several."""
    lo, hi = min(error_rates), max(error_rates)
    er = f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}"
    return f"{caption} ({f'{len(error_rates)} modes, ' if len(error_rates) > 1 else ''}ER* {er})"


def failure_table(d: Discovery) -> list[dict[str, Any]]:
    """Per class: its most important valid label-grouping rule (ER/EC on the fitting rows and on the
    held-out rows), that rule's top caption, the failure direction's top caption and the most
    frequent backgrounds of the class's failures; ``modes`` lists the validated error-mode
    directions (top caption, held-out error rate of "decision value > 0")."""
    rule_caps = {(r.class_index, r.grouping, r.leaf_id): r.captions for r in d.rule_captions.rules}
    dir_caps = {(c.class_index, c.mode): c.positive for c in d.direction_captions.classes}
    bgs = {c.class_index: c.top for c in d.assignment.classes}
    directions = {x.class_index: x for x in d.directions.directions if x.mode == 0}
    by_caption: dict[int, dict[str, list[float]]] = {}  # class -> top caption -> held-out ER of its modes
    for x in d.directions.directions:
        if x.mode and not x.skipped_reason and x.holdout.validated and dir_caps.get((x.class_index, x.mode)):
            by_caption.setdefault(x.class_index, {}).setdefault(_shown(dir_caps[x.class_index, x.mode][0]), []).append(x.holdout.error_rate)
    modes = {c: [_mode_summary(text, ers) for text, ers in caps.items()] for c, caps in by_caption.items()}
    rows = []
    classes = sorted({r.class_index for r in d.trees.rules} | set(directions))
    for c in classes:
        rules = [r for r in d.trees.rules if r.class_index == c and r.grouping == common_pb2.GROUPING_LABEL]
        best = max(rules, key=lambda r: r.importance, default=None)
        direction = directions.get(c)
        name = best.class_name if best else (direction.class_name if direction else str(c))
        caps = rule_caps.get((c, best.grouping, best.leaf_id)) if best else None
        rows.append(
            {
                "class": name,
                "rule": best.text if best else "-",
                "er": best.error_rate if best else float("nan"),
                "ec": best.error_coverage if best else float("nan"),
                "holdout_er": best.holdout.error_rate if best else float("nan"),
                "validated": bool(best and best.holdout.validated),
                "rule_caption": _shown(caps[0]) if caps else "-",
                "direction_caption": _shown(dir_caps[c, 0][0]) if dir_caps.get((c, 0)) else "-",
                "direction_validated": bool(direction and direction.holdout.validated),
                "backgrounds": ", ".join(f"{b.background} ({b.count})" for b in bgs.get(c, [])) or "-",
                "modes": modes.get(c, []),
            }
        )
    return rows


def format_failure_table(rows: list[dict[str, Any]]) -> list[str]:
    """The failure table as text lines (one per class, a legend, then the error modes)."""
    lines: list[str] = []
    out = lines.append
    out(
        f"{'class':10s} {'rule (label grouping)':42s} {'ER':>5s} {'EC':>5s} {'ER*':>5s} {'ok':2s} {'rule caption':34s} {'direction caption':34s} backgrounds of failures"
    )
    for r in rows:
        out(
            f"{r['class']:10s} {r['rule'][:42]:42s} {r['er']:5.2f} {r['ec']:5.2f} {r['holdout_er']:5.2f} {'v' if r['validated'] else ' ':2s} "
            f"{r['rule_caption'][:34]:34s} {r['direction_caption'][:34]:34s} {r['backgrounds']}"
        )
    out(
        "ER/EC: error rate / error coverage of the rule on the fitting rows; ER*: error rate on held-out rows; v: validated (BH q <= 0.05); "
        "(?): the images nearest the caption do not fail like the slice (no caption validated)"
    )
    with_modes = [r for r in rows if r.get("modes")]
    if with_modes:
        out("error modes (validated failure directions of clusters of a class's errors: top caption, ER*):")
        for r in with_modes:
            out(f"  {r['class']:10s} " + "; ".join(r["modes"]))
    return lines
