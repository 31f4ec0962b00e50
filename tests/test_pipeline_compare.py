"""Comparing runs through the real stack and the CLI: a world model analysed, repaired by the
pipeline (the published version 2), analysed again against the first run; the planted slices the
repair fixed are listed as fixed failure modes, and the promotion gate (`failurelens compare
--fail-on-new-mode`) fails for a model that has a failure mode the older one did not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from failurelens.clients import FailureLensClient
from failurelens.clients.main_job import register_world, register_world_models
from failurelens.stack import Stack
from failurelens.store import open_store
from failurelens.v1 import common_pb2, pipeline_pb2
from failurelens.world.config import default_config
from failurelens.world.generate import generate_world, load_world
from failurelens.world.vocabulary import world_vocabulary
from tests._fixtures.analysis import world_analysis

pytestmark = [pytest.mark.slow, pytest.mark.triton]
ROOT = Path(__file__).resolve().parents[1]
MODEL = "world-convnet-r1"
CLI = [sys.executable, "-m", "failurelens.cli"]


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    cfg = default_config().with_splits({"train": 600, "val": 1200, "test": 2400, "balanced": 12})
    generate_world(cfg, tmp / "world", workers=2)
    stack = Stack(tmp / "state").start()
    try:

        class W:
            pass

        x = W()
        x.stack, x.tmp = stack, tmp
        x.client = FailureLensClient(stack.addresses())
        x.st = open_store(stack.store)
        register_world(x.client, x.st, tmp / "world")
        register_world_models(x.client, x.st, ROOT / "triton_models")
        x.vocab = x.st.uri(x.st.put_json("uploads/vocabulary/world.json", world_vocabulary(load_world(tmp / "world").config)).key)
        x.manifest = x.st.get_parquet(x.st.key_from_uri(_dataset(x).manifest.uri)).to_pandas()
        yield x
        x.client.close()
    finally:
        stack.stop()


def _dataset(w):
    from failurelens.v1 import registry_pb2

    return w.client.call(w.client.registry.GetDataset, registry_pb2.GetDatasetRequest(dataset_id="world"))


def _analyze(w, **fields) -> pipeline_pb2.PipelineRun:
    run = w.client.analyze(timeout=1800, evidence=False, **world_analysis(MODEL, w.vocab, **fields))
    assert run.state == common_pb2.JOB_STATE_SUCCEEDED, run.error
    return run


def _test_rows(w, run) -> np.ndarray:
    arrays = json.loads(w.st.get_bytes(w.st.key_from_uri(run.summary.uri)))["arrays"]
    return w.st.get_npy(w.st.key_from_uri(arrays["rows_uri"]))


def _cli(w, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--state-dir", str(w.stack.state_dir), *args], capture_output=True, text=True, timeout=300)


def test_the_repair_fixes_planted_failure_modes_and_the_gate_catches_a_new_one(w):
    before = _analyze(
        w,
        request_id="before-repair",
        repair=True,
        repair_strategies=["failure_backgrounds", "random_backgrounds"],
        sweep_lambdas=[0.0, 1.0],
        sweep_ks=[1, 3],
    )
    summary = json.loads(w.st.get_bytes(w.st.key_from_uri(before.summary.uri)))
    assert summary["repair"]["published_version"] == 2
    assert set(summary["repair"]["strategies"]) == {"failure_backgrounds", "random_backgrounds"}
    sweeps = summary["repair"]["sweeps"]
    assert [r["value"] for r in sweeps["lambda"]] == [0.0, 1.0] and [r["value"] for r in sweeps["k"]] == [1, 3]
    html_before = w.st.get_bytes(w.st.key_from_uri(before.report.uri)).decode()
    assert 'alt="lambda sweep"' in html_before and 'alt="k sweep"' in html_before
    # the planted slices the repair fixed: mostly right after it, up by 30 points or more
    repaired = {s["slice"] for s in summary["repair"]["slices"] if s["after"] >= 0.75 and s["after"] - s["before"] >= 0.3}
    assert repaired, summary["repair"]["slices"]
    after = _analyze(w, request_id="after-repair", model_version=2, baseline_run_id=before.run_id)
    cmp = json.loads(w.st.get_bytes(w.st.key_from_uri(after.summary.uri)))["comparison"]
    assert cmp["model_a"] == f"{MODEL} v1" and cmp["model_b"] == f"{MODEL} v2"
    planted = w.manifest["planted_slice"].fillna("").astype(str).to_numpy()

    sizes = dict(zip(*np.unique(planted[_test_rows(w, before)], return_counts=True)))

    def slices_of(modes) -> set[str]:
        """The planted slices of which the failures hold at least half the (test) images."""
        out = set()
        for m in modes:
            names, counts = np.unique(planted[m["members"]], return_counts=True)
            out |= {str(n) for n, c in zip(names, counts) if n and c >= 0.5 * sizes[n]}
        return out

    fixed = slices_of(cmp["fixed"])
    found_before = slices_of(cmp["fixed"] + cmp["unchanged"]) & repaired
    assert found_before, "the first run must have found some of the slices the repair fixed"
    assert found_before <= fixed, (found_before, fixed, cmp["unchanged"])
    html = w.st.get_bytes(w.st.key_from_uri(after.report.uri)).decode()
    assert 'id="comparison"' in html and f"Compared with run {before.run_id}" in html
    assert len(cmp["classes"]) == 12 and all(c["ci_low"] <= c["delta"] <= c["ci_high"] for c in cmp["classes"])

    # the CLI: the comparison, and the gate before promoting a model
    same = _cli(w, "compare", before.run_id, before.run_id, "--fail-on-new-mode", "0.3")
    assert same.returncode == 0, same.stderr
    assert "failure modes introduced: 0" in same.stdout
    promote = _cli(w, "compare", before.run_id, after.run_id, "--fail-on-new-mode", "0.5")
    assert promote.returncode == 0, (promote.stdout, promote.stderr)  # the repair introduced no strong failure mode
    assert "failure modes fixed" in promote.stdout and "paired CI" in promote.stdout
    # the original model as the "newer" one: it has the failure modes the repaired one does not
    gate = _cli(w, "compare", after.run_id, before.run_id, "--fail-on-new-mode", "0.3", "--json")
    assert gate.returncode == 5, (gate.returncode, gate.stderr)
    doc = json.loads(gate.stdout)
    assert doc["gate_failed"] and slices_of(doc["introduced"]) >= found_before
