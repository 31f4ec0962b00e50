"""The shared service runtime over real gRPC on loopback: health, reflection, metrics, auth,
errors with rich details, deadlines, jobs, message limits, graceful shutdown, UNIMPLEMENTED."""

from __future__ import annotations

import threading
import time
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from failurelens import errors
from failurelens.clients import unpack_details
from failurelens.data.errors import ValidationError, Violation
from failurelens.runtime import Binding, ServiceContext
from failurelens.services import pipeline
from failurelens.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc, pipeline_pb2, pipeline_pb2_grpc
from tests._fixtures.servers import running

TOKEN = "s3cret-token"


class FakePipeline(pipeline_pb2_grpc.PipelineServicer):
    """Exercises the runtime: a slow streaming job and unary calls that fail in chosen ways."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.finished = threading.Event()
        self.stopped_early = threading.Event()

    async def Run(self, request, context):
        steps = int(request.request_id.split(":")[1]) if ":" in request.request_id else 3

        def work(job):
            try:
                for i in range(steps):
                    job.progress("steps", i, steps, force=True)
                    time.sleep(0.05)
                job.progress("steps", steps, steps)
            except errors.Error:
                self.stopped_early.set()
                raise
            self.finished.set()
            return pipeline_pb2.PipelineRun(run_id=request.request_id, state=common_pb2.JOB_STATE_SUCCEEDED)

        async for u in self.ctx.jobs.stream(
            context,
            "Run",
            work,
            lambda p: pipeline_pb2.PipelineUpdate(progress=p),
            lambda r: pipeline_pb2.PipelineUpdate(result=r),
            lambda r: r.run_id,
        ):
            yield u

    async def GetRun(self, request, context):
        rid = request.run_id
        if rid == "missing":
            raise errors.NotFound.resource("pipeline run", rid, "list runs first")
        if rid == "crash":
            raise RuntimeError("boom: secret internals")
        if rid == "bad":
            raise ValidationError(
                "manifest row 3: label 12 is out of range; the class list has 10 classes (0..9)",
                [Violation("manifest.label", "label 12 is out of range", row=3, uri="s3://b/x.png")],
            )
        return pipeline_pb2.PipelineRun(run_id=rid, state=common_pb2.JOB_STATE_SUCCEEDED)


def build_fake(holder: dict) -> object:
    def build(ctx: ServiceContext) -> list[Binding]:
        svc = FakePipeline(ctx)
        holder["svc"] = svc
        return [Binding(svc, pipeline_pb2_grpc.add_PipelineServicer_to_server, pipeline_pb2.DESCRIPTOR.services_by_name["Pipeline"])]

    return build


@pytest.fixture()
def fake():
    holder: dict = {}
    with running("fake", build_fake(holder), max_receive_message_bytes=64 * 1024) as ts:
        ts.holder = holder
        yield ts


@pytest.fixture()
def fake_auth():
    holder: dict = {}
    with running("fake", build_fake(holder), auth_token=TOKEN) as ts:
        yield ts


def _stub(ts):
    ch = grpc.insecure_channel(ts.address)
    return ch, pipeline_pb2_grpc.PipelineStub(ch)


def test_health_reflection_and_ok_call(fake):
    ch, stub = _stub(fake)
    health = health_pb2_grpc.HealthStub(ch)
    assert health.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service="failurelens.v1.Pipeline")).status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as ei:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    resp = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in resp.list_services_response.service}
    assert {"failurelens.v1.Pipeline", "failurelens.v1.Jobs", "grpc.health.v1.Health"} <= names
    assert stub.GetRun(pipeline_pb2.GetRunRequest(run_id="r1")).run_id == "r1"
    ch.close()


def test_errors_map_to_status_with_rich_details(fake):
    ch, stub = _stub(fake)
    with pytest.raises(grpc.RpcError) as ei:
        stub.GetRun(pipeline_pb2.GetRunRequest(run_id="missing"))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert ei.value.details() == "pipeline run 'missing' not found; list runs first"
    info = [d for d in unpack_details(rpc_status.from_call(ei.value)) if isinstance(d, error_details_pb2.ResourceInfo)]
    assert info and info[0].resource_name == "missing"

    with pytest.raises(grpc.RpcError) as ei:
        stub.GetRun(pipeline_pb2.GetRunRequest(run_id="bad"))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "label 12 is out of range" in ei.value.details()
    details = unpack_details(rpc_status.from_call(ei.value))
    bad = [d for d in details if isinstance(d, error_details_pb2.BadRequest)][0]
    assert bad.field_violations[0].field == "manifest.label"
    rows = [d for d in details if isinstance(d, common_pb2.RowErrors)][0]
    assert rows.total == 1 and rows.rows[0].row == 3 and rows.rows[0].uri == "s3://b/x.png"

    with pytest.raises(grpc.RpcError) as ei:
        stub.GetRun(pipeline_pb2.GetRunRequest(run_id="crash"))
    assert ei.value.code() == grpc.StatusCode.INTERNAL
    assert "secret internals" not in ei.value.details() and "error id" in ei.value.details()
    ch.close()


def test_streaming_job_progress_and_jobs_service(fake):
    ch, stub = _stub(fake)
    updates = list(stub.Run(pipeline_pb2.RunPipelineRequest(request_id="steps:5")))
    progress = [u.progress for u in updates if u.HasField("progress")]
    assert [p.done for p in progress][:5] == [0, 1, 2, 3, 4] and progress[-1].done == 5
    assert updates[-1].result.run_id == "steps:5"
    jobs = jobs_pb2_grpc.JobsStub(ch)
    job = jobs.GetJob(jobs_pb2.GetJobRequest(job_id=progress[0].job_id))
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.result_id == "steps:5" and job.method == "Run"
    assert any(j.job_id == job.job_id for j in jobs.ListJobs(jobs_pb2.ListJobsRequest()).jobs)
    with pytest.raises(grpc.RpcError) as ei:
        jobs.GetJob(jobs_pb2.GetJobRequest(job_id="nope"))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    ch.close()


def test_deadline_is_honoured_and_the_work_stops(fake):
    ch, stub = _stub(fake)
    with pytest.raises(grpc.RpcError) as ei:
        list(stub.Run(pipeline_pb2.RunPipelineRequest(request_id="steps:200"), timeout=0.5))
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    svc = fake.holder["svc"]
    assert svc.stopped_early.wait(5), "the worker kept running after the deadline"
    assert not svc.finished.is_set()
    jobs = jobs_pb2_grpc.JobsStub(ch).ListJobs(jobs_pb2.ListJobsRequest(state=common_pb2.JOB_STATE_CANCELLED)).jobs
    assert len(jobs) == 1
    ch.close()


def test_cancel_job_through_jobs_service(fake):
    ch, stub = _stub(fake)
    it = stub.Run(pipeline_pb2.RunPipelineRequest(request_id="steps:200"))
    first = next(it)
    jobs_pb2_grpc.JobsStub(ch).CancelJob(jobs_pb2.CancelJobRequest(job_id=first.progress.job_id))
    with pytest.raises(grpc.RpcError) as ei:
        list(it)
    assert ei.value.code() == grpc.StatusCode.CANCELLED
    assert "cancelled" in ei.value.details()
    ch.close()


def test_oversized_message_is_refused(fake):
    ch, stub = _stub(fake)
    with pytest.raises(grpc.RpcError) as ei:
        stub.GetRun(pipeline_pb2.GetRunRequest(run_id="x" * 100_000))
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in ei.value.details()
    ch.close()


def test_metrics_endpoint_counts_rpcs_by_code(fake):
    ch, stub = _stub(fake)
    stub.GetRun(pipeline_pb2.GetRunRequest(run_id="ok"))
    with pytest.raises(grpc.RpcError):
        stub.GetRun(pipeline_pb2.GetRunRequest(run_id="missing"))
    ch.close()
    # The status reaches the client as the handler aborts; the interceptor counts it just after, so
    # read until the second call is counted (or five seconds pass).
    url = f"http://127.0.0.1:{fake.server.metrics_port}/metrics"
    deadline = time.monotonic() + 5
    while True:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        if 'grpc_code="NOT_FOUND",grpc_method="GetRun"' in text or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="GetRun",grpc_service="failurelens.v1.Pipeline",grpc_type="unary"} 1.0' in text
    assert (
        'grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="GetRun",grpc_service="failurelens.v1.Pipeline",grpc_type="unary"} 1.0' in text
    )
    assert 'grpc_server_started_total{grpc_method="GetRun",grpc_service="failurelens.v1.Pipeline",grpc_type="unary"} 2.0' in text
    assert "grpc_server_handling_seconds_bucket" in text


def test_auth_required_constant_time_and_health_exempt(fake_auth):
    ch, stub = _stub(fake_auth)
    with pytest.raises(grpc.RpcError) as ei:
        stub.GetRun(pipeline_pb2.GetRunRequest(run_id="r"))
    assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <token>" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        stub.GetRun(pipeline_pb2.GetRunRequest(run_id="r"), metadata=(("authorization", "Bearer wrong"),))
    assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED and ei.value.details() == "invalid bearer token"
    with pytest.raises(grpc.RpcError) as ei:  # streaming RPCs are guarded too
        list(stub.Run(pipeline_pb2.RunPipelineRequest(request_id="steps:1")))
    assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
    ok = stub.GetRun(pipeline_pb2.GetRunRequest(run_id="r"), metadata=(("authorization", f"Bearer {TOKEN}"),))
    assert ok.run_id == "r"
    assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    ch.close()


def test_graceful_shutdown_sets_not_serving_and_lets_running_calls_finish():
    holder: dict = {}
    with running("fake", build_fake(holder)) as ts:
        ch = grpc.insecure_channel(ts.address)
        stub = pipeline_pb2_grpc.PipelineStub(ch)
        health = health_pb2_grpc.HealthStub(ch)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        it = stub.Run(pipeline_pb2.RunPipelineRequest(request_id="steps:20"))
        next(it)
        stopper = threading.Thread(target=ts.stop, kwargs={"grace": 5.0})
        stopper.start()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        rest = list(it)  # the in-flight job completes within the grace period
        assert rest[-1].HasField("result")
        stopper.join(10)
        assert holder["svc"].finished.is_set()
        with pytest.raises(grpc.RpcError) as ei:
            stub.GetRun(pipeline_pb2.GetRunRequest(run_id="r"), timeout=2)
        assert ei.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        ch.close()


def test_the_pipeline_refuses_bad_submissions_with_statuses_that_say_what_to_fix(tmp_path):
    with running("pipeline", pipeline.build, store=str(tmp_path / "store"), state_dir=str(tmp_path)) as ts:
        ch = grpc.insecure_channel(ts.address)
        stub = pipeline_pb2_grpc.PipelineStub(ch)
        for request, code, text in (
            (pipeline_pb2.RunPipelineRequest(model_id="m"), grpc.StatusCode.INVALID_ARGUMENT, "dataset_id"),
            (pipeline_pb2.RunPipelineRequest(request_id="a b", dataset_id="d", model_id="m"), grpc.StatusCode.INVALID_ARGUMENT, "request_id"),
            (pipeline_pb2.RunPipelineRequest(dataset_id="d", model_id="m"), grpc.StatusCode.UNAVAILABLE, "no address for the registry"),
        ):
            with pytest.raises(grpc.RpcError) as ei:
                list(stub.Run(request, timeout=30))
            assert ei.value.code() == code and text in ei.value.details(), ei.value.details()
        with pytest.raises(grpc.RpcError) as ei:
            stub.GetRun(pipeline_pb2.GetRunRequest(run_id="run-unknown"))
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND and "ListRuns" in ei.value.details()
        assert list(stub.ListRuns(pipeline_pb2.ListRunsRequest()).runs) == []
        ch.close()
