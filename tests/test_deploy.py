"""The production compose file and Prometheus config agree with the code (no Docker engine here,
so this checks the files themselves: every service module exists, is scraped, and is configured)."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from failurelens.stack import SERVICES

ROOT = Path(__file__).resolve().parents[1]


def test_compose_runs_every_service_and_prometheus_scrapes_it():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"minio", "triton", "prometheus"} <= set(services)
    ours = {n: s for n, s in services.items() if s.get("image", "").startswith("failurelens")}
    assert set(ours) == set(SERVICES)
    for name, svc in ours.items():
        module = svc["command"][0]
        assert module == f"failurelens.services.{name}"
        assert hasattr(importlib.import_module(module), "build")
        env = svc["environment"]
        assert env["FAILURELENS_STORE"].startswith("s3://") and env["FAILURELENS_TRITON_URL"] == "triton:8001"
    assert "--model-config-name=onnxruntime" in services["triton"]["command"]
    assert "triton-models:/models" in services["registry"]["volumes"] and "triton-models:/models" in services["triton"]["volumes"]
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {f"{n}:9100" for n in SERVICES} <= targets and "triton:8002" in targets
