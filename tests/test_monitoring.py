"""Monitoring with a real Prometheus: the alert rules pass promtool's checks and unit tests, and a
Prometheus server scraping the local stack sees the services, Triton, the jobs and the pipeline's
runs and stages after a pipeline run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from failurelens.clients import FailureLensClient, upload_and_register_dataset, upload_and_register_model
from failurelens.stack import Stack, read_record
from failurelens.store import open_store
from failurelens.v1 import common_pb2
from tests._fixtures.shapes import MEAN, STD, export_onnx, train_tiny_classifier, write_dataset

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("FAILURELENS_TEST_ARTIFACTS", ROOT / ".state" / "test-artifacts"))
DEPLOY = ROOT / "deploy"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: install Debian's prometheus package (tools/bootstrap.sh does)")
    return path


def test_the_alert_rules_pass_promtool_checks_and_unit_tests():
    check = subprocess.run([_tool("promtool"), "check", "rules", str(DEPLOY / "alerts.yml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout
    unit = subprocess.run([_tool("promtool"), "test", "rules", "alerts_test.yml"], cwd=DEPLOY, capture_output=True, text=True)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "alerts.yml" in yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["rule_files"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hostport(url: str) -> str:
    return urllib.parse.urlparse(url if "://" in url else f"http://{url}").netloc


def _query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def _value(port: int, promql: str) -> float:
    got = _query(port, promql)
    return float(got[0]["value"][1]) if got else float("nan")


@pytest.mark.slow
@pytest.mark.triton
def test_a_real_prometheus_scrapes_the_stack_and_sees_a_pipeline_run(tmp_path):
    data = write_dataset(tmp_path / "shapes", {"test": 24}, seed=3)
    onnx = export_onnx(train_tiny_classifier(write_dataset(tmp_path / "train", {"train": 12}), epochs=1), tmp_path / "tiny.onnx")
    stack = Stack(tmp_path / "state").start()
    prom = None
    try:
        client = FailureLensClient(stack.addresses())
        st = open_store(stack.store)
        upload_and_register_dataset(client, st, str(data), "shapes")
        pp = common_pb2.Preprocessing(input_height=64, input_width=64, mean=MEAN, std=STD)
        upload_and_register_model(client, st, str(onnx), "tiny", "classifier", preprocessing=pp, dataset_id="shapes")
        run = client.analyze(dataset_id="shapes", model_id="tiny", timeout=600)
        assert run.state == common_pb2.JOB_STATE_SUCCEEDED, run.error

        rec = read_record(stack.state_dir)
        assert rec is not None
        config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(DEPLOY / "alerts.yml")]
        config["scrape_configs"] = [
            {"job_name": "failurelens", "static_configs": [{"targets": [_hostport(s["metrics"]) for s in rec["services"].values()]}]},
            {"job_name": "triton", "static_configs": [{"targets": [_hostport(rec["triton"]["metrics"])]}]},
        ]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = _free_port()
        log = open(tmp_path / "prometheus.log", "wb")
        prom = subprocess.Popen(
            [_tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if _value(port, 'count(up{job="failurelens"} == 1)') == len(rec["services"]) and _value(port, 'up{job="triton"}') == 1:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("Prometheus did not scrape every service and Triton: " + (tmp_path / "prometheus.log").read_text()[-2000:])
        # rates need two samples in their window: a few more scrapes of every target
        deadline = time.monotonic() + 60
        while _value(port, "min(count_over_time(up[1m]))") < 4:
            assert time.monotonic() < deadline, "Prometheus stopped scraping"
            time.sleep(0.5)

        assert _value(port, 'failurelens_pipeline_runs_finished_total{state="succeeded"}') == 1
        assert _value(port, "failurelens_pipeline_runs_running") == 0
        stages = {r["metric"]["stage"] for r in _query(port, "failurelens_pipeline_stage_seconds_count > 0")}
        assert {"embed", "failure_trees", "failure_directions", "report"} <= stages
        assert _value(port, 'sum(failurelens_jobs_finished_total{method="Embed", state="succeeded"})') >= 1
        assert _value(port, 'sum(failurelens_job_seconds_sum{method="FitFailureTrees"})') > 0
        assert _value(port, "sum(failurelens_jobs_running)") == 0
        assert _value(port, 'sum(grpc_server_handled_total{grpc_method="Run", grpc_code="OK"})') >= 1
        assert _value(port, 'sum(nv_inference_request_success{model="tiny"})') >= 1  # Triton's own metrics
        # what the work moved: images embedded (4 classes x 24 test images), Triton calls, bytes written, classes fitted
        assert _value(port, 'sum(failurelens_images_total{kind="embedded", model="tiny"})') == 96
        assert _value(port, 'sum(failurelens_triton_request_seconds_count{model="tiny", outcome="ok"})') >= 1
        assert _value(port, 'sum(failurelens_triton_request_seconds_count{outcome="error"}) or vector(0)') == 0
        assert _value(port, "sum(failurelens_artifact_bytes_written_total)") > 100_000  # images copied, arrays, reports
        assert _value(port, "sum(failurelens_store_write_errors_total) or vector(0)") == 0
        assert _value(port, 'sum(failurelens_discovery_classes_fitted_total{analysis="FailureTrees"})') == 4
        # every query of the Grafana dashboard is valid PromQL over series that exist
        board = json.loads((DEPLOY / "grafana" / "failurelens.json").read_text())
        exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
        answered = [e for e in exprs if _query(port, e)]
        assert len(exprs) >= 15 and len(answered) >= len(exprs) - 4, sorted(set(exprs) - set(answered))
        # what Prometheus showed after the run, kept as a test artifact
        shown = {
            f"{r['metric'].get('__name__', e)}{{{','.join(f'{k}={v}' for k, v in sorted(r['metric'].items()) if k not in ('__name__', 'job'))}}}": r[
                "value"
            ][1]
            for e in (
                "failurelens_pipeline_runs_finished_total",
                "failurelens_pipeline_stage_seconds_count",
                "failurelens_jobs_finished_total",
                "failurelens_images_total",
                "failurelens_triton_request_seconds_count",
                "failurelens_artifact_bytes_written_total > 0",
                "failurelens_discovery_classes_fitted_total",
                "nv_inference_request_success",
            )
            for r in _query(port, e)
        }
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "prometheus-after-pipeline-run.json").write_text(json.dumps(shown, indent=1, sort_keys=True))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10) as r:
            rules = json.loads(r.read())["data"]["groups"][0]["rules"]
        assert len(rules) == 7 and all(rule["health"] == "ok" for rule in rules), rules
        assert not [rule for rule in rules if rule["state"] == "firing"]
    finally:
        if prom is not None:
            prom.terminate()
            prom.wait(10)
        stack.stop()
