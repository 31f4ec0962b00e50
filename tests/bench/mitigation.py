"""Repair of the benchmark world's repairable inspected models (the mitigation paper's protocol),
through the stack.

    python tests/bench/mitigation.py [--world DIR] [--state DIR] [--out DIR] [--models M ...]
                                     [--images-per-class 30]

Starts the local stack (Triton + services, S3 store), registers the world and the committed
models, then per repairable inspected model (``role: repairable`` in world_models.json) runs
:func:`failurelens.workflow.repair.repair`: val failures split 50/50 per class into debug_seed /
debug_heldout -> the debug_seed failures described (CLIP-assigned backgrounds; validated captions
of failure directions fitted without the held-out failures) -> images generated for each prompt
strategy (equal budgets) -> embedded through Triton -> a new head per strategy (the Retraining
service's defaults) evaluated on test / debug_seed / debug_heldout -> the default strategy's head
published as version 2 and verified (test embedded with version 2 through Triton: planted slices
before -> after, failure directions gone). Then, on the same generated sets:

* the head's other start (a new head instead of the model's own, or the reverse) for every strategy;
* the failure IoU matrix (CompareFailures) over every inspected model's val failures;
* collective debugging (paper §5.3.2) type 1 (prompts from the pooled debug_seed failures of all
  repairable models, images spread by background frequency) and type 2 (one model's images repair
  the others), each as relative accuracy = collective heldout gain / individual heldout gain;
* the lambda sweep and the k sweep (top-k backgrounds; fixed budget), plotted as PNGs like the
  paper's Figure 5.

It also prints what refitting the head on ``train`` alone (lambda 0) gains, and what each
strategy's images add beyond that (``refit_gain_pts``): the committed heads are not at the optimum
of CE(train), so part of every strategy's gain is the refit itself.

Last lines, means over the repairable models with the default strategy (failure backgrounds):
``collective_relative: X`` (target >= 0.75), ``test_delta_pts: X`` (target >= -0.5),
``baseline_gain_pts: X`` (class-only images), ``heldout_gain_pts: X`` (target >= 30 and >= 2 x
baseline_gain_pts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from failurelens.clients import FailureLensClient  # noqa: E402
from failurelens.clients.main_job import register_world, register_world_models  # noqa: E402
from failurelens.models.world_models import MANIFEST_NAME  # noqa: E402
from failurelens.repair.head import HeadRetrainer  # noqa: E402
from failurelens.stack import Stack  # noqa: E402
from failurelens.store import open_store  # noqa: E402
from failurelens.workflow import repair as rp  # noqa: E402
from failurelens.world.config import default_config  # noqa: E402
from failurelens.world.generate import generate_world  # noqa: E402
from failurelens.world.vocabulary import world_vocabulary  # noqa: E402

DEFAULT = "failure_backgrounds"
BASELINE = "class_only"
LAMBDAS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
KS = (1, 2, 3, 5, 8)


def _pts(x: float) -> str:
    return f"{100 * x:6.1f}"


def _heldout(res: Any) -> float:
    return next(r.accuracy for r in res.evaluation.results if r.name == "debug_heldout")


def _test(res: Any) -> float:
    return next(r.accuracy for r in res.evaluation.results if r.name == "test")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", help="a generated default world (default: <state>/world, rendered when missing)")
    ap.add_argument("--state", default=str(ROOT / ".state" / "bench-mitigation"))
    ap.add_argument("--out", default="", help="folder for the PNG plots and the JSON (default: <state>/out)")
    ap.add_argument("--models", nargs="*", default=None, help="repairable models (default: every role=repairable model)")
    ap.add_argument("--images-per-class", type=int, default=None, help="generated images per class (default: the service's, 30)")
    ns = ap.parse_args()
    t_start = time.monotonic()
    state = Path(ns.state).resolve()
    out_dir = Path(ns.out or state / "out")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((ROOT / "triton_models" / MANIFEST_NAME).read_text())["models"]
    models = ns.models or [n for n, e in manifest.items() if e.get("role") == "repairable"]
    inspected = [n for n, e in manifest.items() if e["kind"] == "classifier"]
    world_dir = Path(ns.world) if ns.world else state / "world"
    if not (world_dir / "world.json").exists():
        t0 = time.monotonic()
        generate_world(default_config(), world_dir, workers=2)
        print(f"rendered the default world in {time.monotonic() - t0:.0f}s")
    init_default = HeadRetrainer().init
    init_other = "new" if init_default == "own" else "own"

    stack = Stack(state / "stack").start()
    try:
        client = FailureLensClient(stack.addresses())
        st = open_store(stack.store)
        register_world(client, st, world_dir)
        register_world_models(client, st)
        vocab = st.uri(st.put_json("uploads/vocabulary/world.json", world_vocabulary(default_config())).key)
        ipc = ns.images_per_class
        reports: dict[str, rp.RepairReport] = {}
        for m in models:
            t0 = time.monotonic()
            reports[m] = rp.repair(
                client, st, dataset_id="world", model_id=m, clip_model_id="world-clip", vocabulary_uri=vocab, images_per_class=ipc, echo=print
            )
            print(f"{m}: protocol in {time.monotonic() - t0:.0f}s")

        def retrain(m: str, debug_id: str, **head: Any) -> Any:
            r = reports[m]
            return rp.retrain(
                client, model_id=m, train_embedding_id=r.train_embedding_id, debug_embedding_id=debug_id, evals=r.evals, publish=False, **head
            )

        # ---------------------------------------------------------------- Table 2
        print(f"\n== Table 2 (accuracy %, heads start from init={init_default!r}; {ipc or 30} images per failing class and strategy)")
        header = f"{'model':18s} {'strategy':22s} {'images':>6s} {'test':>6s} {'seed':>6s} {'heldout':>7s}"
        print(header)
        for m, r in reports.items():
            print(f"{m:18s} {'before':22s} {'':>6s} {_pts(r.before['test'])} {_pts(r.before['debug_seed'])} {_pts(r.before['debug_heldout'])}")
            for s in r.strategies:
                mark = f"  (published: version {s.version})" if s.version else ""
                print(
                    f"{'':18s} {s.strategy:22s} {s.num_images:6d} {_pts(s.accuracy['test'])} {_pts(s.accuracy['debug_seed'])} "
                    f"{_pts(s.accuracy['debug_heldout'])}{mark}"
                )
        print(f"\n== the other start: init={init_other!r}, same images and parameters")
        print(header)
        other: dict[str, dict[str, Any]] = {}
        refit: dict[str, tuple[float, float]] = {}  # heldout, test accuracy of the head refitted on train alone (lambda 0)
        for m, r in reports.items():
            other[m] = {}
            for s in r.strategies:
                res = retrain(m, s.debug_embedding_id, init=init_other)
                other[m][s.strategy] = {"test": _test(res), "debug_heldout": _heldout(res)}
                print(f"{m:18s} {s.strategy:22s} {s.num_images:6d} {_pts(_test(res))} {'':>6s} {_pts(_heldout(res))}")
            lam0 = retrain(m, r.strategies[0].debug_embedding_id, init=init_other, lam=0.0)
            other[m]["lam0"] = {"test": _test(lam0), "debug_heldout": _heldout(lam0)}
            lam0d = retrain(m, r.strategies[0].debug_embedding_id, lam=0.0)
            refit[m] = _heldout(lam0d), _test(lam0d)
            print(
                f"{m:18s} {'no generated images':22s} {0:6d} {_pts(_test(lam0))} {'':>6s} {_pts(_heldout(lam0))}"
                f"   (init={init_default!r}: test {_pts(_test(lam0d))}, heldout {_pts(_heldout(lam0d))})"
            )

        # ---------------------------------------------------------------- verification
        print("\n== verification: test embedded with the published version through Triton")
        for m, r in reports.items():
            print(f"{m}:")
            for s in r.slices:
                print(f"  {s['slice']:22s} n={s['n']:4d}  accuracy {s['before']:.2f} -> {s['after']:.2f}")
            gone = sum(x["gone"] for x in r.modes)
            print(f"  failure directions of version 1 on test: {gone} of {len(r.modes)} gone")

        # ---------------------------------------------------------------- IoU
        val_ids = []
        for m in inspected:
            e = rp.ensure_embedding(client, "world", m, ["val"], 1, rp.artifact_id("world", m, "val"))
            val_ids.append(e.embedding_id)
        overlap = client.compare_failures(val_ids)
        iou = np.asarray(overlap.iou).reshape(len(val_ids), len(val_ids))
        print("\n== failure IoU on val (CompareFailures)")
        print(f"{'':18s} " + " ".join(f"{n[-10:]:>10s}" for n in inspected))
        for n, row in zip(inspected, iou):
            print(f"{n:18s} " + " ".join(f"{v:10.2f}" for v in row))

        # ---------------------------------------------------------------- collective debugging
        fb = {m: next(s for s in r.strategies if s.strategy == DEFAULT) for m, r in reports.items()}
        gain_ind = {m: fb[m].accuracy["debug_heldout"] - reports[m].before["debug_heldout"] for m in models}
        pooled = rp.generate(
            client,
            dataset_id="world",
            name="collective-pooled",
            strategy=DEFAULT,
            classes=sorted({c for r in reports.values() for c in r.classes}),
            assignment_uris=[r.assignment_uri for r in reports.values()],
            by_frequency=True,
            images_per_class=ipc,
        )
        rel1: dict[str, float] = {}
        rel2: dict[str, dict[str, float]] = {m: {} for m in models}
        for m in models:
            emb = rp.ensure_embedding(client, pooled.dataset.dataset_id, m, ["debug_train"], 1, rp.artifact_id("collective-pooled", m))
            res = retrain(m, emb.embedding_id)
            rel1[m] = (_heldout(res) - reports[m].before["debug_heldout"]) / gain_ind[m] if gain_ind[m] > 0 else float("nan")
            for a in models:
                if a == m:
                    continue
                emb = rp.ensure_embedding(client, fb[a].dataset_id, m, ["debug_train"], 1, rp.artifact_id(fb[a].dataset_id, m))
                res = retrain(m, emb.embedding_id)
                rel2[m][a] = (_heldout(res) - reports[m].before["debug_heldout"]) / gain_ind[m] if gain_ind[m] > 0 else float("nan")
        print(f"\n== collective debugging (relative accuracy = collective heldout gain / individual; {pooled.num_images} pooled images)")
        print(f"{'model':18s} {'indiv. gain':>11s} {'type 1':>7s} {'type 2 (images of ...)':s}")
        for m in models:
            t2 = ", ".join(f"{a}: {v:.2f}" for a, v in rel2[m].items())
            print(f"{m:18s} {100 * gain_ind[m]:10.1f}p {rel1[m]:7.2f}  {t2}")
        type1 = float(np.nanmean([rel1[m] for m in models]))
        type2 = float(np.nanmean([v for m in models for v in rel2[m].values()])) if len(models) > 1 else float("nan")
        print(f"mean relative accuracy: type 1 {type1:.2f}, type 2 {type2:.2f}")

        # ---------------------------------------------------------------- sweeps
        lam_rows: dict[str, list[tuple[float, float]]] = {m: [] for m in models}
        for m in models:
            for lam in LAMBDAS:
                res = retrain(m, fb[m].debug_embedding_id, lam=lam)
                lam_rows[m].append((_test(res), _heldout(res)))
        k_rows: dict[str, list[tuple[float, float]]] = {m: [] for m in models}
        for m in models:
            r = reports[m]
            for k in KS:
                gen = rp.generate(
                    client,
                    dataset_id="world",
                    name=rp.artifact_id(m, f"fb-k{k}"),
                    strategy=DEFAULT,
                    classes=r.classes,
                    assignment_uris=[r.assignment_uri],
                    top_k=k,
                    images_per_class=ipc,
                )
                emb = rp.ensure_embedding(client, gen.dataset.dataset_id, m, ["debug_train"], 1, rp.artifact_id(gen.dataset.dataset_id, m))
                res = retrain(m, emb.embedding_id)
                k_rows[m].append((_test(res), _heldout(res)))
        print("\n== lambda sweep (test / heldout accuracy %)")
        print(f"{'model':18s} " + " ".join(f"{'l=' + str(v):>13s}" for v in LAMBDAS))
        for m in models:
            print(f"{m:18s} " + " ".join(f"{100 * t:6.1f}/{100 * h:6.1f}" for t, h in lam_rows[m]))
        print("== k sweep (top-k failure backgrounds per class, same budget; test / heldout accuracy %)")
        print(f"{'model':18s} " + " ".join(f"{'k=' + str(v):>13s}" for v in KS))
        for m in models:
            print(f"{m:18s} " + " ".join(f"{100 * t:6.1f}/{100 * h:6.1f}" for t, h in k_rows[m]))
        plots = _plot(out_dir, models, lam_rows, k_rows)
        print("plots: " + ", ".join(str(p) for p in plots))

        # ---------------------------------------------------------------- headline
        heldout_gain = float(np.mean([100 * gain_ind[m] for m in models]))
        test_delta = float(np.mean([100 * (fb[m].accuracy["test"] - reports[m].before["test"]) for m in models]))
        base = {m: next(s for s in r.strategies if s.strategy == BASELINE) for m, r in reports.items()}
        baseline_gain = float(np.mean([100 * (base[m].accuracy["debug_heldout"] - reports[m].before["debug_heldout"]) for m in models]))
        collective = float(np.nanmean([type1, type2]))
        refit_gain = float(np.mean([100 * (refit[m][0] - reports[m].before["debug_heldout"]) for m in models]))
        print(f"\n== what the images add beyond refitting the head on train alone (lambda 0; init={init_default!r})")
        print(f"{'model':18s} {'refit alone':>11s} " + " ".join(f"{s.strategy:>20s}" for s in reports[models[0]].strategies))
        for m, r in reports.items():
            print(
                f"{m:18s} {100 * (refit[m][0] - r.before['debug_heldout']):10.1f}p "
                + " ".join(f"{100 * (s.accuracy['debug_heldout'] - refit[m][0]):+19.1f}p" for s in r.strategies)
            )
        (out_dir / "mitigation.json").write_text(
            json.dumps(
                {
                    "reports": {m: rp.report_dict(r) for m, r in reports.items()},
                    "other_init": {"init": init_other, "results": other},
                    "iou": {"models": inspected, "matrix": iou.tolist()},
                    "collective": {"type1": rel1, "type2": rel2},
                    "refit": refit,
                    "lambda_sweep": {"lambdas": LAMBDAS, "rows": lam_rows},
                    "k_sweep": {"ks": KS, "rows": k_rows},
                },
                indent=1,
            )
        )
        print(f"\ntotal {time.monotonic() - t_start:.0f}s; report {out_dir / 'mitigation.json'}")
        print(f"collective_type1_relative: {type1:.3f}")
        print(f"collective_type2_relative: {type2:.3f}")
        print(f"refit_gain_pts: {refit_gain:.2f}")
        print(f"collective_relative: {collective:.3f}")
        print(f"test_delta_pts: {test_delta:.2f}")
        print(f"baseline_gain_pts: {baseline_gain:.2f}")
        print(f"heldout_gain_pts: {heldout_gain:.2f}")
        return 0
    finally:
        stack.stop()


def _plot(
    out_dir: Path, models: list[str], lam_rows: dict[str, list[tuple[float, float]]], k_rows: dict[str, list[tuple[float, float]]]
) -> list[Path]:
    """Heldout and test accuracy against lambda and against k, one line per model (Figure 5)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    paths = []
    for name, xs, rows, xlabel in (
        ("lambda_sweep", LAMBDAS, lam_rows, "lambda (weight of the generated images' loss)"),
        ("k_sweep", KS, k_rows, "k (failure backgrounds per class)"),
    ):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for m in models:
            axes[0].plot(xs, [100 * h for _, h in rows[m]], marker="o", label=m)
            axes[1].plot(xs, [100 * t for t, _ in rows[m]], marker="o", label=m)
        for ax, title in zip(axes, ("debug_heldout accuracy (%)", "test accuracy (%)")):
            ax.set_xlabel(xlabel)
            ax.set_title(title)
            ax.grid(alpha=0.3)
            if name == "lambda_sweep":
                ax.set_xscale("symlog", linthresh=0.1)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


if __name__ == "__main__":
    raise SystemExit(main())
