"""The Grafana dashboard of failurelens, built with Grafana's foundation SDK.

    python tools/gen_dashboard.py           # writes deploy/grafana/failurelens.json
    python tools/gen_dashboard.py --check   # fails when the committed JSON is stale

One row per concern: the services (up, call rate, server-side errors, latency), jobs and pipeline
runs (running, finished by state, stage durations), Triton (inference latency and errors, queue
time), and what the work moves (images, bytes written, classes fitted). Every query uses series
the services export (README, "Monitoring").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "failurelens.json"
#: every panel reads the Prometheus the dashboard's variable names
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")


def _query(expr: str, legend: str = "") -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr)
    return q.legend_format(legend) if legend else q


def _series(title: str, unit: str, *queries: prometheus.Dataquery, description: str = "", width: int = 8) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).height(8).span(width).datasource(DS)
    if description:
        panel = panel.description(description)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def build() -> dict:
    d = (
        dashboard.Dashboard("failurelens")
        .uid("failurelens")
        .tags(["failurelens"])
        .refresh("30s")
        .time("now-6h", "now")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_row(dashboard.Row("Services"))
        .with_panel(
            stat.Panel()
            .title("Services up")
            .height(8)
            .span(4)
            .datasource(DS)
            .with_target(_query('sum(up{job="failurelens"})', "up"))
            .description("failurelens services Prometheus can scrape")
        )
        .with_panel(
            _series(
                "Calls / s by service",
                "reqps",
                _query('sum by (instance) (rate(grpc_server_handled_total{job="failurelens"}[5m]))', "{{instance}}"),
                width=10,
            )
        )
        .with_panel(
            _series(
                "Server-side error ratio",
                "percentunit",
                _query(
                    'sum by (instance) (rate(grpc_server_handled_total{job="failurelens", grpc_code=~"INTERNAL|UNAVAILABLE|UNKNOWN|DATA_LOSS|DEADLINE_EXCEEDED"}[5m]))'
                    ' / sum by (instance) (rate(grpc_server_handled_total{job="failurelens"}[5m]))',
                    "{{instance}}",
                ),
                description="the FailurelensHighErrorRatio alert fires above 5%",
                width=10,
            )
        )
        .with_panel(
            _series(
                "Unary call latency p95",
                "s",
                _query("histogram_quantile(0.95, sum by (le, grpc_method) (rate(grpc_server_handling_seconds_bucket[5m])))", "{{grpc_method}}"),
                width=24,
            )
        )
        .with_row(dashboard.Row("Jobs and pipeline runs"))
        .with_panel(_series("Jobs running", "short", _query("sum by (instance, method) (failurelens_jobs_running)", "{{instance}} {{method}}")))
        .with_panel(
            _series("Jobs finished / min by state", "short", _query("sum by (state) (rate(failurelens_jobs_finished_total[5m])) * 60", "{{state}}"))
        )
        .with_panel(
            _series(
                "Job duration p90",
                "s",
                _query("histogram_quantile(0.9, sum by (le, method) (rate(failurelens_job_seconds_bucket[15m])))", "{{method}}"),
            )
        )
        .with_panel(
            _series(
                "Pipeline runs",
                "short",
                _query("failurelens_pipeline_runs_running", "running"),
                _query("sum by (state) (increase(failurelens_pipeline_runs_finished_total[1h]))", "finished in 1h: {{state}}"),
            )
        )  # fmt: skip
        .with_panel(
            _series(
                "Stage time / min by stage and outcome",
                "s",
                _query("sum by (stage, outcome) (rate(failurelens_pipeline_stage_seconds_sum[15m])) * 60", "{{stage}} {{outcome}}"),
                width=16,
            )  # fmt: skip
        )
        .with_row(dashboard.Row("Triton"))
        .with_panel(
            _series(
                "Inference latency p95 (from the services)",
                "s",
                _query("histogram_quantile(0.95, sum by (le, model) (rate(failurelens_triton_request_seconds_bucket[5m])))", "{{model}}"),
            )  # fmt: skip
        )
        .with_panel(
            _series(
                "Inference errors / s",
                "reqps",
                _query('sum by (model) (rate(failurelens_triton_request_seconds_count{outcome="error"}[5m]))', "{{model}}"),
            )
        )
        .with_panel(
            _series(
                "Queue time per request",
                "µs",
                _query(
                    "sum by (model) (rate(nv_inference_queue_duration_us[5m])) / sum by (model) (rate(nv_inference_request_success[5m]))", "{{model}}"
                ),
                description="the FailurelensTritonQueueTime alert fires above 0.5 s",
            )  # fmt: skip
        )
        .with_row(dashboard.Row("Work"))
        .with_panel(_series("Images / s", "short", _query("sum by (kind, model) (rate(failurelens_images_total[5m]))", "{{kind}} {{model}}")))
        .with_panel(
            _series(
                "Artifact store writes",
                "Bps",
                _query("sum(rate(failurelens_artifact_bytes_written_total[5m]))", "bytes/s"),
                _query("sum(rate(failurelens_store_write_errors_total[5m]))", "failed writes/s"),
            )  # fmt: skip
        )
        .with_panel(
            _series(
                "Discovery classes fitted / min",
                "short",
                _query("sum by (analysis) (rate(failurelens_discovery_classes_fitted_total[5m])) * 60", "{{analysis}}"),
            )
        )
    )
    return json.loads(JSONEncoder(sort_keys=True, indent=2).encode(d.build()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = json.dumps(build(), indent=2, sort_keys=True) + "\n"
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python tools/gen_dashboard.py", file=sys.stderr)
            return 1
        print(f"dashboard is up to date ({OUT.name})")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
