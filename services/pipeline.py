"""Pipeline service: one job from a model and a dataset to an HTML report, over the other services.

Runs are executed by :mod:`failurelens.workflow.pipeline` in this service's worker threads, not
inside an RPC: ``Run`` submits (idempotent by ``request_id``) and follows, ``WatchRun`` follows
again after a disconnect, ``CancelRun`` stops. Every state change is written to the run's record
in the store, so a restarted pipeline service finds its unfinished runs at boot and resumes them
from their last finished stage (one pipeline replica owns the runs of a store).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf import json_format, timestamp_pb2
from prometheus_client import Counter, Gauge, Histogram

from failurelens import errors
from failurelens.runtime import Binding, ServiceContext, main, status
from failurelens.runtime.peers import Peers
from failurelens.store import open_store
from failurelens.store.base import ArtifactStore
from failurelens.v1 import common_pb2, pipeline_pb2, pipeline_pb2_grpc
from failurelens.workflow import pipeline as wf
from failurelens.workflow.calls import ServiceCalls
from failurelens.workflow.report_data import ref_from_json

log = logging.getLogger(__name__)
TERMINAL = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED)


class PipelineMetrics:
    """Prometheus series of the runs this instance executes and of their stages."""

    def __init__(self, registry: Any) -> None:
        self.running = Gauge("failurelens_pipeline_runs_running", "Pipeline runs executing in this instance.", registry=registry)
        self.finished = Counter("failurelens_pipeline_runs_finished_total", "Pipeline runs ended, by state.", ["state"], registry=registry)
        self.stage_seconds = Histogram(
            "failurelens_pipeline_stage_seconds", "Stage durations, by outcome (computed, reused, skipped, failed).", ["stage", "outcome"],
            registry=registry, buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
        )  # fmt: skip


class PeerCalls(ServiceCalls):
    """The workflow's calls, to this stack's other services."""

    def __init__(self, peers: Peers) -> None:
        self.peers = peers

    def stub(self, name: str) -> Any:
        return self.peers.stub(name)


@dataclasses.dataclass
class _Live:
    """A run this instance executes: its record, cancel flag and latest progress."""

    run: pipeline_pb2.PipelineRun
    cancel: threading.Event
    progress: common_pb2.Progress | None = None
    milestones: list[common_pb2.Progress] = dataclasses.field(default_factory=list)  # each stage's start and end
    changes: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def run_id_for(request: pipeline_pb2.RunPipelineRequest) -> str:
    """The run of a request id (the same id, the same run); a fresh one without an id."""
    if not request.request_id:
        return f"run-{uuid.uuid4().hex[:16]}"
    if len(request.request_id) > 128 or not set(request.request_id) <= wf.ID_CHARS:
        raise errors.InvalidArgument.about("request_id", "use 1-128 characters of A-Z a-z 0-9 _ . -")
    return f"run-{hashlib.sha256(request.request_id.encode()).hexdigest()[:16]}"


class PipelineServicer(pipeline_pb2_grpc.PipelineServicer):
    def __init__(self, ctx: ServiceContext, store: ArtifactStore | None = None, workers: int = 2) -> None:
        self.ctx = ctx
        self.store = ctx.telemetry.watch_store(store or open_store(ctx.config.store or None))
        self.calls = PeerCalls(Peers(ctx.config))
        self.live: dict[str, _Live] = {}
        self.metrics = PipelineMetrics(ctx.metrics)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pipeline-run")
        self.resume_unfinished()

    # ------------------------------------------------------------------------------ records
    def _load(self, run_id: str) -> pipeline_pb2.PipelineRun | None:
        data = self.store.get_bytes_or_none(wf.run_record_key(run_id))
        if data is None:
            return None
        return json_format.Parse(data, pipeline_pb2.PipelineRun())

    def _save(self, run: pipeline_pb2.PipelineRun) -> None:
        self.store.put_bytes(wf.run_record_key(run.run_id), json_format.MessageToJson(run).encode(), "application/json")

    def _get(self, run_id: str) -> pipeline_pb2.PipelineRun:
        with self._lock:
            live = self.live.get(run_id)
            if live is not None:
                return _copy(live.run)
        run = self._load(run_id) if run_id and set(run_id) <= wf.ID_CHARS else None
        if run is None:
            raise errors.NotFound.resource("pipeline run", run_id, "list the runs with ListRuns (failurelens runs list)")
        return run

    def resume_unfinished(self) -> None:
        """At boot: every run whose record says it is still running is resumed here."""
        for info in self.store.list(wf.RUNS_PREFIX):
            if not info.key.endswith("/run.json"):
                continue
            run = self._load(info.key[len(wf.RUNS_PREFIX) : -len("/run.json")])
            if run is not None and run.state == common_pb2.JOB_STATE_RUNNING:
                log.info("resuming run %s from its last finished stage", run.run_id)
                self._start(run)

    # ------------------------------------------------------------------------------ execution
    def _start(self, run: pipeline_pb2.PipelineRun) -> _Live:
        live = _Live(run=run, cancel=threading.Event())
        self.metrics.running.inc()
        with self._lock:
            self.live[run.run_id] = live
        self.executor.submit(self._execute, live)
        return live

    def _update(self, live: _Live, save: bool = True) -> None:
        with self._lock:
            live.changes += 1
        if save:
            self._save(live.run)

    def _check(self, live: _Live) -> None:
        if live.cancel.is_set():
            raise errors.Cancelled(f"run {live.run.run_id} was cancelled")
        if self.stopping.is_set():
            raise _Stopping("the pipeline service is stopping; the run resumes when it starts again")

    def _progress(self, live: _Live, stage: str, what: str, done: int, total: int, message: str, milestone: bool = False) -> None:
        self._check(live)
        p = common_pb2.Progress(
            job_id=live.run.run_id, stage=f"{stage}: {what}" if what != stage else stage, done=done, total=total, message=message,
            elapsed_seconds=time.monotonic() - live.started,
        )  # fmt: skip
        with self._lock:
            live.progress = p
            live.changes += 1
            if milestone:
                live.milestones.append(p)

    def _execute(self, live: _Live) -> None:
        run = live.run
        current = ""
        try:
            plan, notes = self._retrying(live, lambda: wf.resolve(self.calls, self.store, run.request))
            del run.notes[:]
            run.notes.extend(notes)
            outputs: dict[str, dict[str, Any]] = {}
            keys: dict[str, str] = {}
            skipped: dict[str, str] = {}
            for stage in wf.STAGES:
                self._check(live)
                current = stage
                key = wf.stage_key(stage, plan, keys)
                keys[stage] = key
                result = _stage_result(run, stage)
                result.state, result.key = common_pb2.JOB_STATE_RUNNING, key
                run.current_stage = wf.STAGE_ENUM[stage]
                self._update(live)
                ctx = wf.StageContext(
                    self.calls, self.store, plan, outputs,
                    lambda what, done, total, msg, s=stage: self._progress(live, s, what, done, total, msg),
                    run_id=run.run_id, key=key, notes=list(notes), skipped=skipped,
                )  # fmt: skip
                self._progress(live, stage, stage, 0, 1, "", milestone=True)
                t0 = time.monotonic()
                outputs[stage], result.reused, result.skipped, result.message = self._retrying(live, lambda: wf.run_stage(ctx, stage, key))
                outcome = "reused" if result.reused else "skipped" if result.skipped else "computed"
                self.metrics.stage_seconds.labels(stage, outcome).observe(time.monotonic() - t0)
                result.seconds = time.monotonic() - t0 if not result.reused else result.seconds
                result.state = common_pb2.JOB_STATE_SUCCEEDED
                if result.skipped:
                    skipped[stage] = result.message
                if stage == "report":
                    run.report.CopyFrom(ref_from_json(outputs[stage]["html"]))
                    run.summary.CopyFrom(ref_from_json(outputs[stage]["summary"]))
                self._progress(live, stage, stage, 1, 1, result.message, milestone=True)
                self._update(live)
            run.state = common_pb2.JOB_STATE_SUCCEEDED
        except _Stopping:
            # the record stays RUNNING (unfinished): the next start resumes the run
            log.info("run %s stopped with the service; it resumes at the next start", run.run_id)
        except BaseException as exc:  # the run ends; the record says how
            cancelled = live.cancel.is_set() or isinstance(exc, errors.Cancelled)
            if current:
                _stage_result(run, current).state = common_pb2.JOB_STATE_CANCELLED if cancelled else common_pb2.JOB_STATE_FAILED
                self.metrics.stage_seconds.labels(current, "cancelled" if cancelled else "failed").observe(0.0)
            if cancelled:
                run.state = common_pb2.JOB_STATE_CANCELLED
                run.error.CopyFrom(common_pb2.JobError(code="CANCELLED", message=f"cancelled during stage {current or 'plan'}"))
            else:
                run.state = common_pb2.JOB_STATE_FAILED
                message = str(exc) if isinstance(exc, errors.Error) or status.code_name(exc) != "INTERNAL" else "internal error; see the pipeline log"
                run.error.CopyFrom(common_pb2.JobError(code=status.code_name(exc), message=f"stage {current or 'plan'}: {message}"))
                if status.code_name(exc) == "INTERNAL":
                    log.error("run %s failed in stage %s", run.run_id, current, exc_info=exc)
        finally:
            if run.state != common_pb2.JOB_STATE_RUNNING:
                run.finished_at.CopyFrom(_now())
                self._update(live)
                self.metrics.finished.labels(common_pb2.JobState.Name(run.state).removeprefix("JOB_STATE_").lower()).inc()
            with self._lock:
                self.live.pop(run.run_id, None)
            self.metrics.running.dec()

    def _retrying(self, live: _Live, fn: Any, attempts: int = 40, wait: float = 1.5) -> Any:
        """``fn()``, again while a service it calls is unavailable (restarting): stages are
        idempotent (their artifacts are named after their inputs and overwritten)."""
        for attempt in range(attempts):
            try:
                return fn()
            except Exception as exc:
                if status.code_name(exc) != "UNAVAILABLE" or attempt == attempts - 1:
                    raise
                log.warning("run %s: a service is unavailable (%s); retrying", live.run.run_id, exc)
                for _ in range(int(wait / 0.1)):
                    self._check(live)
                    time.sleep(0.1)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------ RPCs
    def _submit(self, request: pipeline_pb2.RunPipelineRequest) -> pipeline_pb2.PipelineRun:
        run_id = run_id_for(request)
        for name in ("dataset_id", "model_id"):
            if not getattr(request, name):
                raise errors.InvalidArgument.about(name, f"give the {name.replace('_id', '')} to analyse (its registry id)")
        with self._lock:
            live = self.live.get(run_id)
        existing = live.run if live is not None else self._load(run_id)
        if existing is not None:
            if existing.request.SerializeToString(deterministic=True) != request.SerializeToString(deterministic=True):
                raise errors.AlreadyExists(
                    f"request id {request.request_id!r} was used for another request (run {run_id}); use a new request id",
                    resource_type="pipeline run",
                    name=run_id,
                )
            return _copy(existing)
        wf.resolve(self.calls, self.store, request)  # unknown dataset or models: refused now, with the registry's status
        run = pipeline_pb2.PipelineRun(run_id=run_id, state=common_pb2.JOB_STATE_RUNNING, request=request, created_at=_now())
        run.stages.extend(pipeline_pb2.StageResult(stage=wf.STAGE_ENUM[s], state=common_pb2.JOB_STATE_UNSPECIFIED) for s in wf.STAGES)
        self._save(run)
        self._start(run)
        return _copy(run)

    async def _follow(self, run_id: str, context: grpc.aio.ServicerContext) -> AsyncIterator[pipeline_pb2.PipelineUpdate]:
        """Every stage's start and end, the latest progress in between (at most ~5 per second),
        then the finished run."""
        seen, sent = -1, 0
        while True:
            with self._lock:
                live = self.live.get(run_id)
                if live is not None:
                    changes, milestones = live.changes, [_copy(m) for m in live.milestones[sent:]]
                    latest = _copy(live.progress) if live.progress is not None else None
            if live is None:
                run = await asyncio.to_thread(self._get, run_id)
                if run.state in TERMINAL:
                    yield pipeline_pb2.PipelineUpdate(result=run)
                    return
            else:
                for m in milestones:
                    yield pipeline_pb2.PipelineUpdate(progress=m)
                sent += len(milestones)
                if changes != seen and latest is not None and not milestones:
                    yield pipeline_pb2.PipelineUpdate(progress=latest)
                seen = changes
            await asyncio.sleep(0.2)

    async def Run(self, request: pipeline_pb2.RunPipelineRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pipeline_pb2.PipelineUpdate]:
        run = await asyncio.to_thread(self._submit, request)
        async for u in self._follow(run.run_id, context):
            yield u

    async def WatchRun(self, request: pipeline_pb2.GetRunRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pipeline_pb2.PipelineUpdate]:
        run = await asyncio.to_thread(self._get, request.run_id)
        if run.state in TERMINAL:
            yield pipeline_pb2.PipelineUpdate(result=run)
            return
        async for u in self._follow(run.run_id, context):
            yield u

    async def GetRun(self, request: pipeline_pb2.GetRunRequest, context: grpc.aio.ServicerContext) -> pipeline_pb2.PipelineRun:
        return await asyncio.to_thread(self._get, request.run_id)

    async def ListRuns(self, request: pipeline_pb2.ListRunsRequest, context: grpc.aio.ServicerContext) -> pipeline_pb2.ListRunsResponse:
        def work() -> list[pipeline_pb2.PipelineRun]:
            runs = []
            for info in self.store.list(wf.RUNS_PREFIX):
                if info.key.endswith("/run.json"):
                    run = self._get(info.key[len(wf.RUNS_PREFIX) : -len("/run.json")])
                    wanted = (request.state, request.dataset_id, request.model_id)
                    if all(not w or w == v for w, v in zip(wanted, (run.state, run.request.dataset_id, run.request.model_id))):
                        runs.append(run)
            return sorted(runs, key=lambda r: r.created_at.ToNanoseconds(), reverse=True)

        return pipeline_pb2.ListRunsResponse(runs=await asyncio.to_thread(work))

    async def CancelRun(self, request: pipeline_pb2.GetRunRequest, context: grpc.aio.ServicerContext) -> pipeline_pb2.PipelineRun:
        run = await asyncio.to_thread(self._get, request.run_id)
        with self._lock:
            live = self.live.get(run.run_id)
        if live is None:
            if run.state in TERMINAL:
                return run
            raise errors.FailedPrecondition(f"run {run.run_id} is not executing here; retry once the pipeline service has resumed it")
        live.cancel.set()
        while True:  # the stage in progress stops at its next progress report
            with self._lock:
                if run.run_id not in self.live:
                    break
            await asyncio.sleep(0.1)
        return await asyncio.to_thread(self._get, run.run_id)

    def close(self) -> None:
        """Shutdown: runs in progress stop at their next progress report and stay RUNNING in
        their records, to be resumed by the next start."""
        self.stopping.set()
        self.executor.shutdown(wait=False, cancel_futures=True)


class _Stopping(Exception):
    pass


def _stage_result(run: pipeline_pb2.PipelineRun, stage: str) -> pipeline_pb2.StageResult:
    return next(r for r in run.stages if r.stage == wf.STAGE_ENUM[stage])


def _copy(msg: Any) -> Any:
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def build(ctx: ServiceContext) -> list[Binding]:
    servicer = PipelineServicer(ctx)
    return [
        Binding(
            servicer, pipeline_pb2_grpc.add_PipelineServicer_to_server, pipeline_pb2.DESCRIPTOR.services_by_name["Pipeline"], close=servicer.close
        )
    ]


if __name__ == "__main__":
    main("pipeline", build)
