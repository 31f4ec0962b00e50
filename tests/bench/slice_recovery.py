"""Recovery of the benchmark world's planted slices (the dcbench protocol), through the stack.

    python tests/bench/slice_recovery.py [--world DIR] [--models world-convnet-a ...] [--state DIR]

Starts the local stack (Triton + services, S3 store), registers the world and the committed
models, embeds ``val`` and ``test`` with every model, then per inspected model:
* fits failure trees (robust features) and failure directions (CLIP embeddings) on ``val``
  through the SliceDiscovery service, captions both through the Captioning service (directions by
  their most aligned images, as `failurelens discover` does; the paper's text score reported beside);
* scores every predicted slice on ``test`` (tree rules: inside the rule, closeness to the rule's
  typical failure on val; directions, one per class and error mode: the SVM's decision value, within the class);
* for each planted slice takes the predicted slice with the best average precision and reports
  its P@10 and P@25; *identified* = P@10 >= 0.8; *caption correct* = the matched slice's top
  caption names the planted attribute value.
Each method is reported on its own (directions also as the paper's one direction per class, without
error modes); the headline pools both methods' slices (for each planted
slice the best-AP slice among all tree rules and directions) over all inspected models. The last
two lines are ``caption_accuracy: X`` (target >= 0.8) and ``identified_fraction: X`` (target >= 0.9).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from failurelens.clients import FailureLensClient  # noqa: E402
from failurelens.clients.main_job import register_world, register_world_models  # noqa: E402
from failurelens.discovery.metrics import match_slices  # noqa: E402
from failurelens.discovery.trees import ClassTree, FailureTrees  # noqa: E402
from failurelens.stack import Stack  # noqa: E402
from failurelens.store import open_store  # noqa: E402
from failurelens.v1 import captioning_pb2  # noqa: E402
from failurelens.workflow.failure_modes import find_failure_modes  # noqa: E402
from failurelens.world.config import default_config  # noqa: E402
from failurelens.world.generate import generate_world, load_world  # noqa: E402
from failurelens.world.vocabulary import world_vocabulary  # noqa: E402

INSPECTED = ("world-convnet-a", "world-convnet-b", "world-resnet-a")
TEXT_SCORE = captioning_pb2.DIRECTION_CAPTION_METHOD_TEXT_SCORE


def _arr(st, ref):
    return st.get_npy(st.key_from_uri(ref.uri))


def tree_slices(st, trees_report, feats_test, labels, preds) -> dict[str, np.ndarray]:
    """Test-set score of every valid tree rule: inside the rule, closeness to the rule's typical
    failure (FailureTrees.slice_scores); -inf outside the rule."""
    full = st.get_json(st.key_from_uri(trees_report.report.uri))
    out = {}
    for td in full["trees"]:
        tree = ClassTree.from_dict(td)
        group = np.flatnonzero((labels if tree.grouping == "label" else preds) == tree.class_index)
        for leaf in tree.leaves:
            if not leaf.valid:
                continue
            s = np.full(len(labels), -np.inf)
            s[group] = FailureTrees.slice_scores(tree, leaf, feats_test[group])
            out[f"tree/{tree.grouping}/{tree.class_index}/{leaf.leaf_id}"] = s
    return out


def direction_slices(st, directions_report, clip_test, labels) -> dict[str, np.ndarray]:
    full = st.get_json(st.key_from_uri(directions_report.report.uri))
    intercepts = {(d["class_index"], d.get("mode", 0)): d["intercept"] for d in full["directions"]}
    x = clip_test / np.maximum(np.linalg.norm(clip_test, axis=1, keepdims=True), 1e-12)
    out = {}
    for d in directions_report.directions:
        if d.skipped_reason:
            continue
        w = _arr(st, d.direction)
        s = np.full(len(labels), -np.inf)
        idx = np.flatnonzero(labels == d.class_index)
        s[idx] = x[idx] @ w + intercepts[d.class_index, d.mode]
        out[f"direction/{d.class_index}/{d.mode}"] = s
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", help="a generated world folder (default: generate the default world)")
    ap.add_argument("--models", nargs="*", default=list(INSPECTED))
    ap.add_argument("--state", help="stack state folder (default: a temporary one)")
    ns = ap.parse_args()
    t_start = time.monotonic()
    repo = ROOT / "triton_models"
    with tempfile.TemporaryDirectory() as tmp:
        world_dir = Path(ns.world or Path(tmp) / "world")
        if ns.world is None:
            generate_world(default_config(), world_dir, workers=2)
        world = load_world(world_dir)
        cfg = world.config
        vocab = world_vocabulary(cfg)
        stack = Stack(ns.state or str(Path(tmp) / "state")).start()
        try:
            client = FailureLensClient(stack.addresses())
            st = open_store(stack.store)
            ds = register_world(client, st, world_dir)
            register_world_models(client, st, repo)
            manifest = st.get_parquet(st.key_from_uri(ds.manifest.uri)).to_pandas()
            vocab_uri = st.uri(st.put_json("uploads/vocabulary/world.json", vocab).key)
            emb: dict[tuple[str, str], object] = {}
            t0 = time.monotonic()
            for model in [*ns.models, "world-robust", "world-clip"]:
                for split in ("val", "test"):
                    emb[model, split] = client.embed(dataset_id=ds.dataset_id, model_id=model, splits=[split], overwrite=True)
            print(f"embedded val+test with {len(ns.models) + 2} models in {time.monotonic() - t0:.0f}s")
            test_rows = _arr(st, emb["world-robust", "test"].rows)
            test_df = manifest.iloc[test_rows].reset_index(drop=True)
            truth = {}
            for s in cfg.planted_slices:
                ci = world.class_names.index(s.class_name)
                truth[s.name] = (test_df["label"].to_numpy() == ci) & (test_df[s.attribute].to_numpy() == s.value)
            feats_test = _arr(st, emb["world-robust", "test"].features)
            clip_test = _arr(st, emb["world-clip", "test"].image_embeddings)
            assert np.array_equal(_arr(st, emb["world-clip", "test"].rows), test_rows)
            value_of = vocab["value_names"]
            by_method = {
                k: {"identified": [], "caption": []}
                for k in ("tree", "direction", "direction (paper's text-score captions)", "direction (class only, no modes)", "pooled")
            }
            for model in ns.models:
                t0 = time.monotonic()
                d = find_failure_modes(
                    client,
                    inspected=emb[model, "val"].embedding_id,
                    features=emb["world-robust", "val"].embedding_id,
                    clip=emb["world-clip", "val"].embedding_id,
                    text_model="world-clip",
                    vocabulary_uri=vocab_uri,
                    class_names=list(ds.class_names),
                    report_prefix=f"bench-{model}",
                    evidence=False,
                    top_k=1,
                    holdout_fraction=0.0,
                )  # fit on all of val; test is the held-out data
                fit_s = time.monotonic() - t0
                pred_test = _arr(st, emb[model, "test"].predictions)
                labels = _arr(st, emb[model, "test"].labels)
                preds = {
                    "tree": tree_slices(st, d.trees, feats_test, labels, pred_test),
                    "direction": direction_slices(st, d.directions, clip_test, labels),
                }
                preds["direction (class only, no modes)"] = {k: v for k, v in preds["direction"].items() if k.endswith("/0")}
                rule_cap = {
                    f"tree/{['', 'label', 'prediction'][r.grouping]}/{r.class_index}/{r.leaf_id}": r.captions[0]
                    for r in d.rule_captions.rules
                    if r.captions
                }
                dir_cap = {f"direction/{c.class_index}/{c.mode}": c.positive[0] for c in d.direction_captions.classes if c.positive}
                other = client.caption_directions(
                    report_id=d.directions.report_id,
                    text_model_id="world-clip",
                    top_k=1,
                    vocabulary=captioning_pb2.CaptionVocabulary(vocabulary_uri=vocab_uri),
                    method=TEXT_SCORE,
                )
                dir_cap_text_score = {f"direction/{c.class_index}/{c.mode}": c.positive[0] for c in other.classes if c.positive}
                print(
                    f"\n== {model}: {len(preds['tree'])} validated-or-not valid tree rules, {len(preds['direction'])} directions "
                    f"(discovery + captions on val in {fit_s:.0f}s; valid-leaf fraction {dict(d.trees.valid_leaf_fraction)})"
                )
                print(f"{'planted slice':22s} {'method':9s} {'matched slice':26s} {'AP':>5s} {'P@10':>5s} {'P@25':>5s} {'id':3s} top caption")

                def names_it(c, s) -> bool:
                    return bool(c and c.attribute == s.attribute and value_of.get(c.value, c.value) == s.value)

                planted = {x.name: x for x in cfg.planted_slices}
                captions = {**rule_cap, **dir_cap}
                for method in ("tree", "direction", "direction (class only, no modes)", "pooled"):
                    candidates = {**preds["tree"], **preds["direction"]} if method == "pooled" else preds[method]
                    for m in match_slices(truth, candidates):
                        s = planted[m.slice_name]
                        c = captions.get(m.predicted)
                        ok = names_it(c, s)
                        by_method[method]["identified"].append(m.identified)
                        by_method[method]["caption"].append(ok)
                        extra = ""
                        if method == "direction":
                            ca = dir_cap_text_score.get(m.predicted)
                            by_method["direction (paper's text-score captions)"]["caption"].append(names_it(ca, s))
                            extra = f"   | text-score caption: {ca.text if ca else '-'}{'' if names_it(ca, s) else '  (wrong)'}"
                        print(
                            f"{m.slice_name:22s} {method[:9]:9s} {m.predicted:26s} {m.average_precision:5.2f} {m.precision_at_10:5.2f} {m.precision_at_25:5.2f} "
                            f"{'yes' if m.identified else 'no':3s} {(c.text if c else '-')}{'' if ok else '  (wrong)'}{extra}"
                        )
            pooled = by_method["pooled"]
            print(
                f"\n{len(pooled['identified'])} (planted slice, model) pairs over {len(ns.models)} inspected models; total {time.monotonic() - t_start:.0f}s"
            )
            for name, v in by_method.items():
                print(f"  {name:40s} " + "  ".join(f"{k} {np.mean(x):.3f}" for k, x in v.items() if x))
            print(f"caption_accuracy: {np.mean(pooled['caption']):.3f}")
            print(f"identified_fraction: {np.mean(pooled['identified']):.3f}")
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
