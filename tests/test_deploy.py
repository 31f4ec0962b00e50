"""The production compose file, the Prometheus config and the README agree with the code's one
table of services (:mod:`failurelens.topology`): no Docker engine here, so this checks the files
themselves: every service module exists, runs, is published on its port, and is scraped."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import yaml

from failurelens import topology

ROOT = Path(__file__).resolve().parents[1]
CONTAINER_PORT, HOST_BASE = 50051, 50051


def test_compose_runs_every_service_of_the_table_and_prometheus_scrapes_it():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"minio", "triton", "prometheus"} <= set(services)
    ours = {n: s for n, s in services.items() if s.get("image", "").startswith("failurelens")}
    assert set(ours) == set(topology.NAMES)
    for spec in topology.SERVICES:
        svc = ours[spec.name]
        assert svc["command"] == [spec.module]
        assert hasattr(importlib.import_module(spec.module), "build")
        assert svc["ports"] == [f"{HOST_BASE + spec.port_offset}:{CONTAINER_PORT}"], spec.name
        env = svc["environment"]
        assert env["FAILURELENS_STORE"].startswith("s3://") and env["FAILURELENS_TRITON_URL"] == "triton:8001"
        assert env["FAILURELENS_PORT"] == str(CONTAINER_PORT)
        assert "FAILURELENS_TRITON_KEY" in env and set(dict(p.split("=", 1) for p in env["FAILURELENS_PEERS"].split(","))) == set(topology.NAMES)
    assert "--model-config-name=onnxruntime" in services["triton"]["command"]
    assert all("triton-models:/models" in services[n]["volumes"] for n in ("registry", "retraining", "triton"))  # the writers and Triton
    # model control and shared memory only with the services' key, on both protocols
    restricted = [a for a in services["triton"]["command"] if "restricted" in a]
    assert len(restricted) == 2 and all("model-repository,shared-memory" in a and "failurelens-triton-key=" in a for a in restricted)
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {f"{n}:9100" for n in topology.NAMES} <= targets and "triton:8002" in targets


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
