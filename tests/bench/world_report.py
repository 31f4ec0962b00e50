"""The benchmark world and the models that see it, re-measured from the committed files.

    python tests/bench/world_report.py [--world DIR] [--repo triton_models] [--no-attack]

Regenerates the default world (deterministic) unless --world names one, then prints for each
inspected classifier its accuracies, its feature probe (how well a linear probe on its frozen
``features`` classifies the ``balanced`` split: fitted on the first half of each class, scored on
the rest; see ``world_models.feature_probe_accuracy``) and the per-planted-slice accuracy against
the class's common images; the robust feature extractor's clean and L2-PGD accuracy per head; and
the image–text model's zero-shot accuracies. Last lines:

* ``repairable_min_rare_slice_gap_pts: X`` - the smallest planted-slice gap over the repairable
  classifiers (role ``repairable``: pretrained, their features know the objects; target >= 20);
* ``min_feature_probe_acc: X`` - the smallest feature probe over the repairable classifiers;
* ``min_rare_slice_gap_pts: X`` - the smallest planted-slice gap (points) over the discovery
  classifiers (the original three; target >= 20). Its scope is unchanged: the repairable
  classifiers are not in it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from failurelens.models.world_models import MANIFEST_NAME, evaluate_committed  # noqa: E402
from failurelens.world.config import default_config  # noqa: E402
from failurelens.world.generate import generate_world  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", help="a generated world folder (default: generate the default world)")
    ap.add_argument("--repo", default=str(ROOT / "triton_models"))
    ap.add_argument("--no-attack", action="store_true", help="skip the PGD evaluation of the robust model")
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world_dir = ns.world
        if world_dir is None:
            t0 = time.monotonic()
            world_dir = tmp
            generate_world(default_config(), world_dir, workers=2)
            print(f"generated the default world in {time.monotonic() - t0:.1f}s")
        reported = json.loads((Path(ns.repo) / MANIFEST_NAME).read_text())["models"]
        got = evaluate_committed(world_dir, ns.repo, log=lambda s: None, attack=not ns.no_attack)
    gaps, repairable_gaps, probes = [], [], []
    for name, m in got.items():
        kind = reported[name]["kind"]
        role = reported[name].get("role", "discovery")
        print(f"\n== {name} ({kind}{', ' + role if kind == 'classifier' else ''})")
        if kind == "classifier":
            print(
                f"accuracy: train {m['train_accuracy']:.3f}  val {m['val_accuracy']:.3f}  test {m['test_accuracy']:.3f}  balanced {m['balanced_accuracy']:.3f}"
                f"  (reported test {reported[name]['metrics']['test_accuracy']:.3f})"
            )
            print(f"feature probe on balanced: {m['feature_probe_accuracy']:.3f}")
            print(f"{'planted slice (test)':22s} {'n':>4s} {'slice acc':>9s} {'common acc':>10s} {'gap pts':>8s}")
            for r in m["slices"]:
                print(f"{r['slice']:22s} {r['n']:4d} {r['accuracy']:9.3f} {r['common_accuracy']:10.3f} {r['gap_pts']:8.1f}")
            if role == "repairable":
                repairable_gaps.append(m["min_rare_slice_gap_pts"])
                probes.append(m["feature_probe_accuracy"])
            else:
                gaps.append(m["min_rare_slice_gap_pts"])
        elif kind == "feature_extractor":
            att = reported[name]["attack"]
            print(f"L2 PGD eps {att['eps']} ({att['eval_steps']} steps, {att['eval_images']} test images, pixels in [0,1])")
            for head, a in m.items():
                print(f"  {head:10s} clean {a['clean']:.3f}  adversarial {a['adversarial']:.3f}")
        else:
            for attr, acc in m["zero_shot_accuracy"].items():
                print(f"  zero-shot {attr:10s} {acc:.3f}")
    print()
    if probes:
        print(f"repairable_min_rare_slice_gap_pts: {min(repairable_gaps):.1f}")
        print(f"min_feature_probe_acc: {min(probes):.3f}")
    print(f"min_rare_slice_gap_pts: {min(gaps):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
