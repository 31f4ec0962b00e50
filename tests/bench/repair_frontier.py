"""Where the mitigation targets can and cannot be met: a grid over how the inspected model is made
and how its head is fitted, with the repair measured in-process (no services) for each cell.

    python tests/bench/repair_frontier.py [--world DIR] [--family convnet] [--width 16] [--seed 0]
        [--pretrain-epochs 8] [--train-epochs 1 3] [--train-per-class 0 100 30]
        [--images-per-class 30 90] [--retrain-epochs 100] [--lam 0.5]

The issue's targets for the repair of a *repairable* model (one whose features know the objects):
every planted slice fails by >= 20 points, the default strategy's held-out gain is >= 30 points and
>= 2 x the class-only baseline's, and the test accuracy drops by at most 0.5 points. This script
searches for a model and a protocol that meet them all at once:

* backbone: ``--pretrain-epochs`` on the unbiased pretraining split (the analogue of ImageNet
  pretraining), then each of ``--train-epochs`` on the biased ``train`` split, as the repo's
  training command makes the repairable models;
* head (the model as inspected): ``own`` - the head those epochs leave (not at the optimum of
  CE(train)), or ``converged`` - a head fitted on the frozen features to the optimum of CE(train)
  (``HeadRetrainer``, lambda 0, 1000 epochs: the paper's Table 4), on all of ``train`` or, like the
  paper's section 5.1 ("30 data points per class"), on ``--train-per-class`` images of each class;
* repair: the failures on ``val`` split 50/50 per class into debug_seed / debug_heldout; per class
  the top-3 uncommon backgrounds of its debug_seed failures *from the world's records* (an ideal
  describer: an upper bound for the product's CLIP-assigned backgrounds); ``--images-per-class``
  images per strategy from the world generator; a head retrained from the model's head on the same
  training rows with L = CE(train) + lam CE(new images).

Columns: the feature probe on ``balanced``; the smallest planted-slice gap on ``test`` and how many
slices fail by less than 20 points; then per strategy the accuracy on debug_heldout after the
repair (it is 0 before: these are failures, so it is the gain in points) and the change of test
accuracy in brackets. ``refit`` retrains with no new images (lambda 0). Last line:
``settings_meeting_all_targets: K`` (of the cells printed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from failurelens.generation.world import WorldGenerator  # noqa: E402
from failurelens.models.training import predict, train_classifier  # noqa: E402
from failurelens.models.world_models import (  # noqa: E402
    PRETRAIN_SPLIT,
    REPAIRABLE,
    WORLD_MEAN,
    WORLD_STD,
    TrainSettings,
    _codes,
    _inspected_net,
    feature_probe_accuracy,
    load_images,
    probe_halves,
    slice_table,
)
from failurelens.models.world_nets import Normalized  # noqa: E402
from failurelens.repair.head import HeadRetrainer, head_accuracy  # noqa: E402
from failurelens.world.config import BACKGROUND_PHRASES, default_config  # noqa: E402
from failurelens.world.generate import generate_world, load_world  # noqa: E402
from failurelens.world.synthetic import render_unbiased_split  # noqa: E402

STRATEGIES = ("refit", "class_only", "random_backgrounds", "failure_backgrounds")
TOP_K = 3


def features(wrapped: Any, x: np.ndarray) -> np.ndarray:
    return predict(wrapped, x, batch=500, head=lambda m, z: m(z)[1]).astype(np.float64)


def phrase(bg: str) -> str:
    return BACKGROUND_PHRASES.get(bg, "on " + bg)


class Images:
    """Generated images per prompt list, cached (every cell with the same prompts reuses them)."""

    def __init__(self, generator: WorldGenerator, classes: list[str]) -> None:
        self.generator, self.classes, self._cache = generator, classes, {}

    def __call__(self, prompts: list[tuple[str, str, int]]) -> tuple[np.ndarray, np.ndarray]:
        key = tuple(prompts)
        if key not in self._cache:
            xs, ys = [], []
            for k, (text, cls, n) in enumerate(prompts):
                for g in self.generator.generate(text, [1000 * k + i for i in range(n)]):
                    xs.append(np.asarray(g.image))
                    ys.append(self.classes.index(cls))
            self._cache[key] = (np.stack(xs), np.array(ys))
        return self._cache[key]


def prompts(strategy: str, world: Any, val_df: Any, seed_idx: np.ndarray, yv: np.ndarray, n: int) -> list[tuple[str, str, int]]:
    cfg, classes = world.config, world.class_names
    bgs = val_df["background"].to_numpy()
    out: list[tuple[str, str, int]] = []
    for ci, cls in enumerate(classes):
        if strategy == "class_only":
            out.append((f"a photo of a {cls}", cls, n))
            continue
        if strategy == "random_backgrounds":
            pick = np.random.default_rng(ci).choice(len(cfg.backgrounds), TOP_K, replace=False)
            chosen = [cfg.backgrounds[j] for j in pick]
        else:
            counts: dict[str, int] = {}
            for i in seed_idx[yv[seed_idx] == ci]:
                if bgs[i] != cfg.bias[cls].background:
                    counts[bgs[i]] = counts.get(bgs[i], 0) + 1
            chosen = [b for b, _ in sorted(counts.items(), key=lambda t: (-t[1], t[0]))[:TOP_K]]
        if not chosen:
            out.append((f"a photo of a {cls}", cls, n))
            continue
        base, extra = divmod(n, len(chosen))
        out += [(f"a photo of a {cls} {phrase(b)}", cls, base + (j < extra)) for j, b in enumerate(chosen)]
    return out


def cell(world, data, lab, F, wrapped, images, head: str, per_class: int, n: int, ns) -> dict[str, Any]:
    classes = world.class_names
    ytr = lab["train"]
    if per_class:
        rng = np.random.default_rng(0)
        rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(ytr == c), per_class, replace=False) for c in range(len(classes))]))
    else:
        rows = np.arange(len(ytr))
    ftr, ytr = F["train"][rows], ytr[rows]
    if head == "own":
        w0 = wrapped.model.head.weight.detach().numpy().astype(np.float64)
        b0 = wrapped.model.head.bias.detach().numpy().astype(np.float64)
    else:
        r = HeadRetrainer(lam=0.0, init="new", epochs=1000).fit(ftr, ytr, num_classes=len(classes))
        w0, b0 = r.coef_, r.intercept_
    pred = {s: (F[s] @ w0.T + b0).argmax(1) for s in F}
    gaps = [r["gap_pts"] for r in slice_table(world, data["test"][1], pred["test"])]
    yv = lab["val"]
    wrong = np.flatnonzero(pred["val"] != yv)
    rng = np.random.default_rng(0)
    in_seed = np.zeros(len(wrong), bool)
    for c in np.unique(yv[wrong]):
        idx = np.flatnonzero(yv[wrong] == c)
        in_seed[rng.choice(idx, int(round(len(idx) / 2)), replace=False)] = True
    seed_idx, held_idx = wrong[in_seed], wrong[~in_seed]
    test_before = head_accuracy(w0, b0, F["test"], lab["test"])
    res: dict[str, tuple[float, float]] = {}
    for strategy in STRATEGIES:
        if strategy == "refit":
            xd = yd = None
        else:
            xi, yd = images(prompts(strategy, world, data["val"][1], seed_idx, yv, n))
            xd = features(wrapped, xi)
        r = HeadRetrainer(lam=ns.lam if xd is not None else 0.0, init="own", epochs=ns.retrain_epochs).fit(
            ftr, ytr, xd, yd, init_weight=w0, init_bias=b0
        )
        res[strategy] = (
            100 * head_accuracy(r.coef_, r.intercept_, F["val"][held_idx], yv[held_idx]),
            100 * (head_accuracy(r.coef_, r.intercept_, F["test"], lab["test"]) - test_before),
        )
    gain, base, delta = res["failure_backgrounds"][0], res["class_only"][0], res["failure_backgrounds"][1]
    meets = min(gaps) >= 20 and gain >= 30 and gain >= 2 * base and delta >= -0.5
    return {"test": 100 * test_before, "min_gap": min(gaps), "below_20": sum(g < 20 for g in gaps), "res": res, "meets": meets}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default=str(ROOT / ".state" / "bench-frontier" / "world"))
    ap.add_argument("--family", default=REPAIRABLE[0][1], choices=("convnet", "resnet"))
    ap.add_argument("--width", default=None, help="convnet width or resnet widths as a,b,c (default: the first repairable model's)")
    ap.add_argument("--seed", type=int, default=REPAIRABLE[0][3])
    ap.add_argument("--pretrain-epochs", type=int, default=REPAIRABLE[0][4])
    ap.add_argument("--lr", type=float, default=REPAIRABLE[0][5], help="learning rate on the biased train split")
    ap.add_argument("--train-epochs", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--train-per-class", type=int, nargs="+", default=[0, 100, 30], help="rows per class the converged head is fitted on (0: all)")
    ap.add_argument("--images-per-class", type=int, nargs="+", default=[30, 90])
    ap.add_argument("--retrain-epochs", type=int, default=HeadRetrainer().epochs)
    ap.add_argument("--lam", type=float, default=HeadRetrainer().lam)
    ns = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    t_start = time.monotonic()
    world_dir = Path(ns.world)
    if not (world_dir / "world.json").exists():
        generate_world(default_config(), world_dir, workers=2)
    world = load_world(str(world_dir))
    classes = world.class_names
    data = {s: load_images(world, s) for s in ("train", "val", "test", "balanced")}
    lab = {s: _codes(data[s][1]["label"], classes) for s in data}
    xp, dp = render_unbiased_split(world.config, PRETRAIN_SPLIT, TrainSettings().pretrain_images, workers=2)
    width: Any = REPAIRABLE[0][2] if ns.width is None else (int(ns.width) if ns.family == "convnet" else tuple(int(w) for w in ns.width.split(",")))
    torch.manual_seed(ns.seed)
    wrapped = Normalized(_inspected_net(ns.family, width, len(classes)), WORLD_MEAN, WORLD_STD)
    train_classifier(wrapped, xp, _codes(dp["label"], classes), epochs=ns.pretrain_epochs, seed=ns.seed, log=lambda s: None)
    images = Images(WorldGenerator(world.config), list(classes))
    print(f"{ns.family} {width}, seed {ns.seed}, pretrained {ns.pretrain_epochs} epochs; lam {ns.lam}, retrain {ns.retrain_epochs} epochs")
    print("train epochs | head | rows/class | images/class | test % | probe | min gap | <20 | " + " | ".join(STRATEGIES))
    met = total = 0
    done = 0
    for epochs in sorted(ns.train_epochs):
        if epochs > done:  # the same backbone, trained on further
            train_classifier(wrapped, data["train"][0], lab["train"], epochs=epochs - done, lr=ns.lr, seed=ns.seed, log=lambda s: None)
            done = epochs
        net = wrapped
        F = {s: features(net, data[s][0]) for s in data}
        probe = feature_probe_accuracy(F["balanced"], lab["balanced"], probe_halves(data["balanced"][1]))
        heads = [("own", 0)] + [("converged", pc) for pc in ns.train_per_class]
        for head, pc in heads:
            for n in ns.images_per_class:
                c = cell(world, data, lab, F, net, images, head, pc, n, ns)
                total += 1
                met += c["meets"]
                cols = " | ".join(f"{g:5.1f} ({d:+.1f})" for g, d in c["res"].values())
                print(
                    f"{epochs:12d} | {head:9s} | {pc or 'all':>10} | {n:12d} | {c['test']:5.1f} | {probe:.3f} | {c['min_gap']:6.0f} | "
                    f"{c['below_20']:3d} | {cols}{'  <- meets all targets' if c['meets'] else ''}",
                    flush=True,
                )
    print(f"{total} cells in {time.monotonic() - t_start:.0f}s")
    print(f"settings_meeting_all_targets: {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
