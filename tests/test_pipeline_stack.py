"""The pipeline service through the real stack: durable runs (idempotent submission, reuse of
finished stages, resume after the pipeline is killed mid-stage, cancellation that leaves nothing
half-written), any dataset and classifier (no robust extractor, no image-text model, no attribute
columns, one split, 2 and 100 classes), and the HTML report read in a real headless browser.

The stack serves mutual TLS with certificates made here and requires bearer tokens with roles:
every call below, the services' calls to each other included, goes through both; the Node.js
client (clients/node) drives it too."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from failurelens.clients import FailureLensClient, FailureLensError, upload_and_register_dataset, upload_and_register_model
from failurelens.clients.main_job import register_world, register_world_models
from failurelens.stack import Stack, check_health
from failurelens.store import open_store
from failurelens.transport import Tls
from failurelens.v1 import common_pb2, embedding_pb2, pipeline_pb2
from failurelens.workflow import pipeline as wf
from failurelens.world.config import default_config
from failurelens.world.generate import generate_world, load_world
from failurelens.world.vocabulary import world_vocabulary
from tests._fixtures.analysis import world_analysis
from tests._fixtures.certs import make_pki
from tests._fixtures.intact import assert_intact
from tests._fixtures.shapes import _tiny_cnn, export_onnx

pytestmark = [pytest.mark.slow, pytest.mark.triton]
ROOT = Path(__file__).resolve().parents[1]
REPO = ROOT / "triton_models"
MODEL = "world-convnet-a"
#: other classifiers of the world whose failures the report compares (IoU heatmap)
PEERS = ["world-convnet-b", "world-resnet-a"]
#: screenshots of the report, kept as test artifacts
ARTIFACTS = Path(os.environ.get("FAILURELENS_TEST_ARTIFACTS", ROOT / ".state" / "test-artifacts"))
READER, WRITER = secrets.token_hex(16), secrets.token_hex(16)
SUCCEEDED, FAILED, CANCELLED = common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED


class W:
    pass


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    cfg = default_config().with_splits({"train": 24, "val": 24, "test": 1800, "balanced": 12})
    generate_world(cfg, tmp / "world", workers=2)
    pki = make_pki(tmp / "pki")
    tokens = tmp / "tokens"
    tokens.write_text(f"read {READER}\nwrite {WRITER}\n")
    services_tls = Tls(ca_file=str(pki.ca), cert_file=str(pki.server_cert), key_file=str(pki.server_key), client_ca_file=str(pki.ca))
    stack = Stack(tmp / "state", auth_token=secrets.token_hex(16), tls=services_tls, extra_env={"FAILURELENS_AUTH_TOKENS_FILE": str(tokens)}).start()
    try:
        x = W()
        x.stack, x.tmp, x.pki = stack, tmp, pki
        x.tls = Tls(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
        x.client = FailureLensClient(stack.addresses(), token=WRITER, tls=x.tls)
        x.st = open_store(stack.store)
        register_world(x.client, x.st, tmp / "world")
        register_world_models(x.client, x.st, REPO)
        vocab = world_vocabulary(load_world(tmp / "world").config)
        x.vocab = x.st.uri(x.st.put_json("uploads/vocabulary/world.json", vocab).key)
        yield x
        x.client.close()
    finally:
        stack.stop()


def _request(w, request_id: str, **fields) -> pipeline_pb2.RunPipelineRequest:
    base = world_analysis(MODEL, w.vocab, peer_model_ids=PEERS, **fields)
    return pipeline_pb2.RunPipelineRequest(request_id=request_id, **{k: v for k, v in base.items() if v is not None})


def _run(w, request: pipeline_pb2.RunPipelineRequest, timeout: float = 900) -> tuple[pipeline_pb2.PipelineRun, list]:
    progress, result = [], None
    for u in w.client.pipeline.Run(request, timeout=timeout):
        if u.HasField("progress"):
            progress.append(u.progress)
        else:
            result = u.result
    assert result is not None
    return result, progress


def _stage(run, name: str) -> pipeline_pb2.StageResult:
    return next(s for s in run.stages if s.stage == wf.STAGE_ENUM[name])


def _wait(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out: {what}")


def _get(w, run_id: str) -> pipeline_pb2.PipelineRun:
    return w.client.pipeline.GetRun(pipeline_pb2.GetRunRequest(run_id=run_id), timeout=30)


def _keys(w, prefix: str) -> set[str]:
    return {o.key for o in w.st.list(prefix)}


# ------------------------------------------------------------------------------- a full run
def test_a_run_on_the_world_writes_a_report_that_a_browser_renders(w):
    run, progress = _run(w, _request(w, "full-1", title="world-convnet-a on the world"))
    assert run.state == SUCCEEDED, run.error
    assert [s.state for s in run.stages] == [SUCCEEDED] * len(wf.STAGES)
    assert _stage(run, "repair").skipped and "not asked" in _stage(run, "repair").message
    stages_seen = {p.stage.split(":")[0] for p in progress}
    assert {"embed", "failure_trees", "failure_directions", "captions", "report"} <= stages_seen
    summary = json.loads(w.st.get_bytes(w.st.key_from_uri(run.summary.uri)))
    assert 0.5 < summary["accuracy"] < 1.0 and summary["num_rows"] == 1800
    assert summary["modes"], "the model has planted failure modes; the run must find some"
    html = w.st.get_bytes(w.st.key_from_uri(run.report.uri)).decode()
    assert "http://" not in html and "https://" not in html  # self-contained
    page = ARTIFACTS / "pipeline-report.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(html)
    w.report_page, w.summary, w.full = page, summary, run
    _browse(page, summary)


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("the browser test needs Debian's chromium and chromium-driver (tools/bootstrap.sh installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1366,900"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def _browse(page: Path, summary: dict) -> None:
    from selenium.webdriver.common.by import By

    d = _browser()
    try:
        d.get(page.as_uri())
        _wait(lambda: d.execute_script("return document.readyState") == "complete", 30, "the page did not load")
        for section in ("overview", "modes", "classes"):
            assert d.find_element(By.ID, section).is_displayed()
        assert d.find_element(By.ID, "accuracy").text == f"{100 * summary['accuracy']:.1f}%"
        rows = d.find_elements(By.CSS_SELECTOR, "#mode-table tr.mode")
        assert len(rows) == min(len(summary["modes"]), 12)
        first = summary["modes"][0]
        assert first["class"] in rows[0].text and f"{first['error_rate']:.2f}" in rows[0].text
        widths = d.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        assert {"error rate per class", "confusion matrix", "failure IoU heatmap"} <= {alt for alt, _, _ in widths}
        assert len(widths) > 10 and all(ok and n > 0 for _, ok, n in widths), [x for x in widths if not (x[1] and x[2] > 0)]
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        d.save_screenshot(str(ARTIFACTS / "pipeline-report-overview.png"))
        section = d.find_element(By.CSS_SELECTOR, "section.class")
        d.execute_script("arguments[0].scrollIntoView()", section)
        section.screenshot(str(ARTIFACTS / "pipeline-report-class.png"))
        assert (ARTIFACTS / "pipeline-report-class.png").stat().st_size > 10_000
    finally:
        d.quit()


# ------------------------------------------------------------------------------- durable runs
def test_a_duplicate_submission_returns_the_same_run_and_equal_inputs_reuse_every_stage(w):
    first = _get(w, w.full.run_id)
    again, _ = _run(w, _request(w, "full-1", title="world-convnet-a on the world"))
    assert again.run_id == first.run_id and again.finished_at == first.finished_at
    other, _ = _run(w, _request(w, "full-2", title="world-convnet-a on the world"))
    assert other.run_id != first.run_id and other.state == SUCCEEDED
    assert all(s.reused for s in other.stages), [(s.stage, s.reused) for s in other.stages]
    assert other.report.uri == first.report.uri
    with pytest.raises(grpc.RpcError) as e:
        _run(w, _request(w, "full-1", title="another title"))
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and "request id" in e.value.details()
    listed = w.client.pipeline.ListRuns(pipeline_pb2.ListRunsRequest(model_id=MODEL), timeout=30).runs
    assert {first.run_id, other.run_id} <= {r.run_id for r in listed}


def test_bad_submissions_are_refused_and_a_failing_stage_names_itself(w):
    for fields, code in (
        ({"dataset_id": "no-such-dataset"}, grpc.StatusCode.NOT_FOUND),
        ({"model_id": "no-such-model"}, grpc.StatusCode.NOT_FOUND),
        ({"analysis_split": "nope"}, grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.RpcError) as e:
            _run(w, _request(w, "", **fields))
        assert e.value.code() == code, (fields, e.value.details())
    run, _ = _run(w, _request(w, "bad-vocab", vocabulary_uri=w.st.uri("uploads/vocabulary/missing.json"), seed=3))
    assert run.state == FAILED and run.error.message.startswith("stage captions:"), run.error
    assert run.error.code == "NOT_FOUND"
    assert _stage(run, "captions").state == FAILED and _stage(run, "failure_trees").state == SUCCEEDED
    assert not run.report.uri


def test_a_cancelled_run_leaves_no_partial_artifacts(w):
    request = _request(w, "to-cancel", seed=7)
    it = w.client.pipeline.Run(request, timeout=600)
    first = next(it)
    run_id = first.progress.job_id
    it.cancel()  # closing the stream does not stop the run
    running = _wait(lambda: (r := _get(w, run_id)).current_stage == pipeline_pb2.STAGE_EVIDENCE and r, 300, "evidence stage")
    assert running.state == common_pb2.JOB_STATE_RUNNING
    key = _stage(running, "evidence").key
    time.sleep(1.0)
    cancelled = w.client.pipeline.CancelRun(pipeline_pb2.GetRunRequest(run_id=run_id), timeout=120)
    assert cancelled.state == CANCELLED and "evidence" in cancelled.error.message
    assert _stage(cancelled, "evidence").state == CANCELLED and _stage(cancelled, "failure_trees").state == SUCCEEDED
    assert not w.st.exists(wf.stage_record_key("evidence", key))
    assert not _keys(w, wf.stage_files_prefix("evidence", key))
    time.sleep(3.0)  # the evidence job of the slice-discovery service was cancelled with the call: nothing of it committed
    trees = json.loads(w.st.get_bytes(wf.stage_record_key("failure_trees", _stage(cancelled, "failure_trees").key)))
    assert not [k for k in _keys(w, "") if "evidence" in k and trees["outputs"]["report_id"] in k and k.endswith("index.json")]
    assert _keys(w, f"{wf.RUNS_PREFIX}{run_id}/") == {wf.run_record_key(run_id)}
    assert _get(w, run_id).state == CANCELLED


def test_a_run_resumes_after_the_pipeline_service_is_killed_mid_stage(w):
    it = w.client.pipeline.Run(_request(w, "to-resume", seed=11), timeout=600)
    run_id = next(it).progress.job_id
    it.cancel()
    _wait(lambda: _get(w, run_id).current_stage == pipeline_pb2.STAGE_EVIDENCE, 300, "evidence stage")
    before = _get(w, run_id)
    finished = {s: json.loads(w.st.get_bytes(wf.stage_record_key(s, _stage(before, s).key))) for s in ("embed", "failure_trees")}
    sp = w.stack.procs["pipeline"]
    address, pid = sp.address, sp.proc.pid
    os.killpg(pid, signal.SIGKILL)
    _wait(lambda: w.stack.procs["pipeline"].proc.pid != pid and _serving(w, address), 120, "the pipeline was not restarted")
    done = _wait(lambda: (r := _get(w, run_id)).state in (SUCCEEDED, FAILED, CANCELLED) and r, 600, "the resumed run to finish")
    assert done.state == SUCCEEDED, done.error
    assert w.client.watch_run(run_id, timeout=60).state == SUCCEEDED  # a finished run answers a watch at once
    for s, rec in finished.items():
        assert _stage(done, s).reused, s
        assert json.loads(w.st.get_bytes(wf.stage_record_key(s, _stage(done, s).key))) == rec  # not recomputed
    assert not _stage(done, "evidence").reused and done.report.uri
    # every artifact the finished run lists is readable and intact: its summary and report, and the
    # embedding sets its reused embed stage points at
    embed_outputs = finished["embed"]["outputs"]
    embeddings = [
        w.client.embedding.GetEmbedding(embedding_pb2.GetEmbeddingRequest(embedding_id=i), timeout=30)
        for i in sorted({embed_outputs[role] for role in ("model", "features", "clip") if embed_outputs.get(role)})
    ]
    assert embeddings and assert_intact(w.st, done, *embeddings) >= 2 + len(embeddings)


def _serving(w, address: str) -> bool:
    try:
        return check_health(address, timeout=1.0, tls=w.tls) == 1
    except grpc.RpcError:
        return False


# ------------------------------------------------------------------------------- any dataset, any model
def _folder_dataset(root: Path, classes: int, per_class: int, size: int, seed: int = 0) -> Path:
    """One split ("test") of ``classes`` classes: class i is a blob of hue i/classes at random places."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = root / "test" / f"c{c:03d}"
        d.mkdir(parents=True, exist_ok=True)
        hue = np.array([np.cos(2 * np.pi * c / classes), np.sin(2 * np.pi * c / classes), (c % 7) / 7.0])
        for i in range(per_class):
            img = rng.normal(0.5, 0.15, (size, size, 3))
            y, x = rng.integers(2, size - 10, 2)
            img[y : y + 8, x : x + 8] = 0.5 + 0.4 * hue
            Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(d / f"{i:03d}.png")
    return root


def _tiny_model(path: Path, classes: int, size: int) -> Path:
    import torch

    torch.manual_seed(classes)
    return export_onnx(_tiny_cnn(classes, width=8).eval(), path, (size, size))


@pytest.mark.parametrize("classes,per_class", [(2, 30), (100, 4)])
def test_datasets_of_2_and_100_classes_with_one_split_and_no_attributes_get_reports(w, classes, per_class):
    root = _folder_dataset(w.tmp / f"c{classes}", classes, per_class, 40)
    name = f"blobs{classes}"
    upload_and_register_dataset(w.client, w.st, str(root), name)
    pp = common_pb2.Preprocessing(input_height=40, input_width=40, mean=[0.45, 0.45, 0.45], std=[0.2, 0.2, 0.2])
    upload_and_register_model(
        w.client, w.st, str(_tiny_model(w.tmp / f"m{classes}.onnx", classes, 40)), f"tiny{classes}", "classifier", preprocessing=pp, dataset_id=name
    )
    run, _ = _run(w, pipeline_pb2.RunPipelineRequest(dataset_id=name, model_id=f"tiny{classes}"))
    assert run.state == SUCCEEDED, run.error
    notes = " ".join(run.notes)
    assert "no robust feature extractor" in notes and "no image-text model" in notes and "no attribute columns" in notes
    assert _stage(run, "captions").skipped and _stage(run, "backgrounds").skipped
    summary = json.loads(w.st.get_bytes(w.st.key_from_uri(run.summary.uri)))
    assert len(summary["classes"]) == classes and summary["num_rows"] == classes * per_class
    html = w.st.get_bytes(w.st.key_from_uri(run.report.uri)).decode()
    assert 'id="overview"' in html and "no image-text model given" in html


def test_without_an_image_text_model_directions_use_the_robust_features(w):
    run, _ = _run(w, _request(w, "no-clip", image_text_model_id="", vocabulary_uri=""))
    assert run.state == SUCCEEDED, run.error
    assert any("failure directions are fitted on the robust features" in n for n in run.notes)
    d = json.loads(w.st.get_bytes(wf.stage_record_key("failure_directions", _stage(run, "failure_directions").key)))
    assert d["outputs"]["space"] == "features" and d["outputs"]["num_directions"] > 0
    assert _stage(run, "captions").skipped and not _stage(run, "evidence").skipped


def test_a_client_error_names_its_status(w):
    with pytest.raises(FailureLensError) as e:
        w.client.call(w.client.pipeline.GetRun, pipeline_pb2.GetRunRequest(run_id="run-doesnotexist"))
    assert e.value.code == grpc.StatusCode.NOT_FOUND and "ListRuns" in e.value.details_text


def test_the_cli_analyzes_lists_and_exits_with_codes_pipelines_can_act_on(w):
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "failurelens.cli", "--state-dir", str(w.stack.state_dir), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_client_env(w, WRITER))

    common = ["--dataset", "world", "--model", MODEL, "--features", "world-robust", "--clip", "world-clip", "--vocabulary", w.vocab]
    ok = cli("analyze", *common, "--request-id", "cli-1", "--out", str(w.tmp / "reports"), "--json", "--title", "from the CLI")
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["state"] == "succeeded" and Path(doc["report_html"]).is_file() and doc["summary"]["num_rows"] == 1800
    assert Path(doc["report_html"]).parent == w.tmp / "reports" / doc["run_id"]
    text = cli("analyze", *common, "--request-id", "cli-1", "--out", str(w.tmp / "reports"), "--title", "from the CLI")
    assert text.returncode == 0 and "report: " in text.stdout and "accuracy" in text.stdout  # the same run, printed
    bad = cli("analyze", *common[:-1], w.st.uri("uploads/vocabulary/none.json"), "--request-id", "cli-2", "--json")
    assert bad.returncode == 3 and json.loads(bad.stdout)["error"]["message"].startswith("stage captions:")
    refused = cli("analyze", "--dataset", "no-such-dataset", "--model", MODEL)
    assert refused.returncode == 1 and "NOT_FOUND" in refused.stderr
    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert {doc["run_id"]} <= {r["run_id"] for r in listed}


# ------------------------------------------------------------------------------- the Node.js client
NODE_CLI = ROOT / "clients" / "node" / "bin" / "failurelens.js"


def _client_env(w, token: str, **extra: str) -> dict[str, str]:
    """A pipeline's environment: the stack's record, a token, and this client's certificate (mutual TLS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAILURELENS_TLS_", "FAILURELENS_AUTH_"))}
    env.update({"FAILURELENS_STATE_DIR": str(w.stack.state_dir), "FAILURELENS_AUTH_TOKEN": token, **w.tls.env(), **extra})
    return env


def _node(w, token: str, *args: str, **extra: str) -> tuple[int, object, str]:
    out = subprocess.run(
        ["node", str(NODE_CLI), *args], capture_output=True, text=True, timeout=600, env=_client_env(w, token, FAILURELENS_PROGRESS="1", **extra)
    )
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None, out.stderr


def test_the_node_client_checks_health_lists_datasets_and_runs_a_pipeline_over_mutual_tls(w):
    code, health, err = _node(w, READER, "health")
    assert code == 0 and set(health) == set(w.stack.addresses()) and set(health.values()) == {"SERVING"}, err
    code, datasets, err = _node(w, READER, "datasets")
    world = next(d for d in datasets if d["dataset_id"] == "world")
    assert code == 0 and world["num_rows"] >= 1800 and world["classes"] == len(load_world(w.tmp / "world").config.classes), (datasets, err)
    request = w.tmp / "node-request.json"
    fields = world_analysis(MODEL, w.vocab, peer_model_ids=PEERS, title="world-convnet-a on the world")
    request.write_text(json.dumps({"request_id": "node-1", **{k: v for k, v in fields.items() if v is not None}}))
    # a read token may look but not run; a client without a certificate is not let in
    code, refused, _ = _node(w, READER, "analyze", str(request))
    assert code == 1 and refused["error"]["code"] == "PERMISSION_DENIED"
    code, _, err = _node(w, READER, "datasets", FAILURELENS_TLS_CERT_FILE="", FAILURELENS_TLS_KEY_FILE="")
    assert code == 1 and "UNAVAILABLE" in err
    code, _, err = _node(w, "not-a-token", "datasets")
    assert code == 1 and "UNAUTHENTICATED" in err
    # the run: the same inputs as the first run of this module, so every stage is reused
    code, run, err = _node(w, WRITER, "analyze", str(request))
    assert code == 0 and run["state"] == "JOB_STATE_SUCCEEDED", (run, err)
    assert run["report"].endswith("report.html") and all(s["reused"] for s in run["stages"]), run
    assert _get(w, run["run_id"]).state == SUCCEEDED
    code, watched, _ = _node(w, READER, "watch", run["run_id"])
    assert code == 0 and watched["run_id"] == run["run_id"] and watched["state"] == "JOB_STATE_SUCCEEDED"
    code, runs, _ = _node(w, READER, "runs")
    assert code == 0 and run["run_id"] in {r["run_id"] for r in runs}
