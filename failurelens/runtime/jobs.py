"""Long jobs: progress, cancellation, deadlines, and the Jobs service every server hosts.

A streaming RPC hands its blocking work to :meth:`JobRegistry.stream`, which runs it in a worker
thread and yields Progress messages as the work reports them, then the result. The work receives
a :class:`JobContext`: ``ctx.progress(...)`` reports, ``ctx.check()`` raises when the client went
away, the job was cancelled through the Jobs service, or the RPC deadline passed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from failurelens import errors
from failurelens.runtime import status
from failurelens.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")
_KEEP_FINISHED = 200


@dataclasses.dataclass
class _JobRecord:
    job: common_pb2.Job
    cancel: threading.Event
    started: float


class JobContext:
    """Given to the blocking work of a job."""

    def __init__(self, record: _JobRecord, deadline: float | None, emit: Callable[[common_pb2.Progress], None]) -> None:
        self._record = record
        self.deadline = deadline  # time.monotonic() value or None
        self._emit = emit
        self._last_emit = 0.0

    @property
    def job_id(self) -> str:
        return self._record.job.job_id

    def time_remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def timeout(self, default: float) -> float:
        """A per-call timeout that never outlives the RPC deadline."""
        rem = self.time_remaining()
        return default if rem is None else max(0.001, min(default, rem))

    def check(self) -> None:
        """Raise if the job must stop (cancelled, client gone, deadline passed)."""
        if self._record.cancel.is_set():
            raise errors.Cancelled(f"job {self.job_id} was cancelled")
        rem = self.time_remaining()
        if rem is not None and rem <= 0:
            raise errors.DeadlineExceeded(f"job {self.job_id} ran past the call's deadline; raise the deadline or split the work")

    def progress(self, stage: str, done: int, total: int, message: str = "", force: bool = False) -> None:
        """Report progress (rate-limited to ~10/s unless ``force`` or the stage is complete)."""
        self.check()
        now = time.monotonic()
        p = common_pb2.Progress(
            job_id=self.job_id,
            stage=stage,
            done=int(done),
            total=int(total),
            message=message,
            elapsed_seconds=now - self._record.started,
        )
        self._record.job.progress.CopyFrom(p)
        if force or done >= total or now - self._last_emit >= 0.1:
            self._last_emit = now
            self._emit(p)


def _now_ts() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


class JobMetrics:
    """Prometheus series of a server's jobs: running now, finished by state, durations."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.running = Gauge("failurelens_jobs_running", "Jobs running now.", ["method"], registry=registry)
        self.finished = Counter("failurelens_jobs_finished_total", "Jobs finished, by final state.", ["method", "state"], registry=registry)
        self.seconds = Histogram(
            "failurelens_job_seconds", "Duration of finished jobs.", ["method"], registry=registry,
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
        )  # fmt: skip


class JobRegistry(jobs_pb2_grpc.JobsServicer):
    """In-memory table of this server's jobs (running + the last finished ones); the Jobs service."""

    def __init__(self, service: str, max_workers: int = 4, metrics: CollectorRegistry | None = None) -> None:
        self.service = service
        self.metrics = JobMetrics(metrics if metrics is not None else CollectorRegistry())
        self._jobs: OrderedDict[str, _JobRecord] = OrderedDict()
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"{service}-job")

    # --- running jobs -----------------------------------------------------------------------
    def _start(self, method: str) -> _JobRecord:
        job = common_pb2.Job(
            job_id=uuid.uuid4().hex[:16], service=self.service, method=method, state=common_pb2.JOB_STATE_RUNNING, started_at=_now_ts()
        )
        rec = _JobRecord(job=job, cancel=threading.Event(), started=time.monotonic())
        self.metrics.running.labels(method).inc()
        with self._lock:
            self._jobs[job.job_id] = rec
            finished = [k for k, r in self._jobs.items() if r.job.state != common_pb2.JOB_STATE_RUNNING]
            for k in finished[: max(0, len(finished) - _KEEP_FINISHED)]:
                del self._jobs[k]
        return rec

    def _finish(self, rec: _JobRecord, state: common_pb2.JobState, exc: BaseException | None = None, result_id: str = "") -> None:
        if rec.job.state == common_pb2.JOB_STATE_RUNNING:
            method = rec.job.method
            self.metrics.running.labels(method).dec()
            self.metrics.finished.labels(method, common_pb2.JobState.Name(state).removeprefix("JOB_STATE_").lower()).inc()
            self.metrics.seconds.labels(method).observe(time.monotonic() - rec.started)
        rec.job.state = state
        rec.job.finished_at.CopyFrom(_now_ts())
        if result_id:
            rec.job.result_id = result_id
        if exc is not None:
            message = str(exc) if isinstance(exc, errors.Error) else "internal error; see the server log"
            rec.job.error.CopyFrom(common_pb2.JobError(code=status.code_name(exc), message=message))

    async def stream(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        work: Callable[[JobContext], T],
        progress_update: Callable[[common_pb2.Progress], Any],
        result_update: Callable[[T], Any],
        result_id: Callable[[T], str] = lambda _: "",
    ) -> AsyncIterator[Any]:
        """Run ``work`` in a worker thread; yield progress updates, then the result update."""
        rec = self._start(method)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[common_pb2.Progress] = asyncio.Queue()
        rem = context.time_remaining()
        deadline = None if rem is None else time.monotonic() + rem

        def emit(p: common_pb2.Progress) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, p)

        jctx = JobContext(rec, deadline, emit)
        fut = loop.run_in_executor(self.executor, work, jctx)
        getter: asyncio.Future[common_pb2.Progress] | None = None
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({fut, getter}, return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
                if getter in done:
                    yield progress_update(getter.result())
                    continue
                while not queue.empty():
                    yield progress_update(queue.get_nowait())
                break
            result = fut.result()
        except asyncio.CancelledError:
            # client went away or deadline passed: tell the worker, let it unwind
            rec.cancel.set()
            self._finish(rec, common_pb2.JOB_STATE_CANCELLED, errors.Cancelled("the client cancelled the call or its deadline passed"))
            raise
        except (errors.Cancelled, errors.DeadlineExceeded) as exc:
            # the job stopped because it was told to (cancelled, or its deadline passed)
            self._finish(rec, common_pb2.JOB_STATE_CANCELLED, exc)
            raise
        except BaseException as exc:
            self._finish(rec, common_pb2.JOB_STATE_FAILED, exc)
            raise
        finally:
            if getter is not None and not getter.done():
                getter.cancel()
        self._finish(rec, common_pb2.JOB_STATE_SUCCEEDED, result_id=result_id(result))
        yield result_update(result)

    async def run(self, context: grpc.aio.ServicerContext, method: str, work: Callable[[JobContext], T]) -> T:
        """Unary variant: run ``work`` in a worker thread under a job record, return its result."""
        final = None
        async for item in self.stream(context, method, work, lambda p: None, lambda r: ("result", r)):
            if isinstance(item, tuple):
                final = item[1]
        return final  # type: ignore[return-value]

    def cancel_all(self) -> None:
        with self._lock:
            for rec in self._jobs.values():
                if rec.job.state == common_pb2.JOB_STATE_RUNNING:
                    rec.cancel.set()

    # --- Jobs service -------------------------------------------------------------------------
    def _get(self, job_id: str) -> _JobRecord:
        with self._lock:
            rec = self._jobs.get(job_id)
        if rec is None:
            raise errors.NotFound.resource("job", job_id, f"this {self.service} server knows only its recent jobs; list them with ListJobs")
        return rec

    async def GetJob(self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> common_pb2.Job:
        return self._get(request.job_id).job

    async def ListJobs(self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext) -> jobs_pb2.ListJobsResponse:
        with self._lock:
            jobs = [r.job for r in self._jobs.values() if not request.state or r.job.state == request.state]
        return jobs_pb2.ListJobsResponse(jobs=jobs)

    async def CancelJob(self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext) -> common_pb2.Job:
        rec = self._get(request.job_id)
        rec.cancel.set()
        return rec.job
