"""Python client of the failurelens services, for MLOps pipelines.

    from failurelens.clients import FailureLensClient
    fl = FailureLensClient.from_stack(".state")            # or FailureLensClient({"registry": "host:port", ...})
    ds = fl.register_dataset(name="pets", manifest_uri="s3://bucket/pets/manifest.csv", class_names=[...])
    emb = fl.embed(dataset_id="pets", model_id="resnet", on_progress=print)

The raw generated stubs are there too (``fl.registry``, ``fl.embedding``, ...); every call carries
the bearer token and a default deadline. Streaming jobs are consumed by :meth:`run_job`, which
passes each Progress to a callback and returns the final result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import message
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from failurelens import topology
from failurelens.v1 import (
    captioning_pb2,
    captioning_pb2_grpc,
    common_pb2,
    embedding_pb2,
    embedding_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    jobs_pb2_grpc,
    pipeline_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    retraining_pb2,
    retraining_pb2_grpc,
    slice_discovery_pb2,
    slice_discovery_pb2_grpc,
)

ProgressCallback = Callable[[common_pb2.Progress], None]
#: the google.rpc detail types failurelens servers send
DETAIL_TYPES = (
    error_details_pb2.BadRequest,
    error_details_pb2.ResourceInfo,
    error_details_pb2.PreconditionFailure,
    error_details_pb2.ErrorInfo,
    common_pb2.RowErrors,
)


class _CallDefaults(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the bearer token and a default deadline to every call."""

    def __init__(self, token: str | None, timeout: float | None) -> None:
        self._md = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout

    def _details(self, d: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        md = tuple(d.metadata or ()) + self._md
        timeout = d.timeout if d.timeout is not None else self._timeout
        return _Details(d.method, timeout, md, d.credentials, getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


class FailureLensError(RuntimeError):
    """A failed call, with the status code and the server's rich error details."""

    def __init__(self, err: grpc.RpcError | None, message: str = "") -> None:
        self.code = err.code() if err is not None and hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        self.details_text = err.details() if err is not None and hasattr(err, "details") else message or str(err)
        self.rich = rpc_status.from_call(err) if err is not None and hasattr(err, "trailing_metadata") else None
        super().__init__(describe_error(err) if err is not None else f"UNKNOWN: {message}")

    @classmethod
    def local(cls, code: grpc.StatusCode, message: str) -> FailureLensError:
        """A refusal decided on the client side (before any call), with the status it stands for."""
        err = cls(None, message)
        err.code = code
        err.args = (f"{code.name}: {message}",)
        return err


def unpack_details(status: status_pb2.Status) -> list[message.Message]:
    """The known detail messages of a google.rpc.Status (``rpc_status.from_call(err)``)."""
    out: list[message.Message] = []
    for packed in status.details:
        for t in DETAIL_TYPES:
            if packed.Is(t.DESCRIPTOR):
                m = t()
                packed.Unpack(m)
                out.append(m)
                break
    return out


def describe_error(err: grpc.RpcError) -> str:
    """One readable text for a failed call: code, message, and the error details."""
    code = err.code().name if hasattr(err, "code") else "UNKNOWN"
    lines = [f"{code}: {err.details() if hasattr(err, 'details') else err}"]
    status = rpc_status.from_call(err) if hasattr(err, "trailing_metadata") else None
    if status is not None:
        for d in unpack_details(status):
            name = type(d).__name__
            if name == "BadRequest":
                lines += [f"  - {v.field}: {v.description}" for v in d.field_violations[:20]]
            elif name == "RowErrors":
                lines.append(f"  {d.total} bad row(s)")
            elif name == "PreconditionFailure":
                lines += [f"  - {v.subject}: {v.description}" for v in d.violations]
    return "\n".join(lines)


class FailureLensClient:
    """One channel per service named in ``addresses`` (see :data:`failurelens.topology.SERVICES`),
    each with its generated stub as an attribute of the service's name."""

    registry: registry_pb2_grpc.RegistryStub
    embedding: embedding_pb2_grpc.EmbeddingStub
    slice_discovery: slice_discovery_pb2_grpc.SliceDiscoveryStub
    captioning: captioning_pb2_grpc.CaptioningStub
    generation: generation_pb2_grpc.GenerationStub
    retraining: retraining_pb2_grpc.RetrainingStub
    pipeline: pipeline_pb2_grpc.PipelineStub

    def __init__(
        self, addresses: Mapping[str, str], token: str | None = None, timeout: float | None = 600.0, max_message_bytes: int = 16 * 1024 * 1024
    ) -> None:
        self.addresses = dict(addresses)
        self.token = token if token is not None else os.environ.get("FAILURELENS_AUTH_TOKEN") or None
        self._channels: dict[str, grpc.Channel] = {}
        opts = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # reconnect within seconds when a service comes back (the stack restarts crashed ones)
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        defaults = _CallDefaults(self.token, timeout)
        for name, addr in self.addresses.items():
            self._channels[name] = grpc.intercept_channel(grpc.insecure_channel(addr, options=opts), defaults)
        for service in topology.SERVICES:
            if service.name in self._channels:
                setattr(self, service.name, service.stub(self._channels[service.name]))
        self.store_uri: str = ""

    @classmethod
    def from_stack(cls, state_dir: str | os.PathLike[str] = ".state", **kw: Any) -> FailureLensClient:
        path = Path(state_dir) / "stack.json"
        if not path.exists():
            raise FileNotFoundError(f"no running stack recorded in {path}; start one with `failurelens up`")
        rec = json.loads(path.read_text())
        client = cls({n: s["address"] for n, s in rec["services"].items()}, **kw)
        client.store_uri = rec.get("store", "")
        return client

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()

    def __enter__(self) -> FailureLensClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- generic helpers ------------------------------------------------------------------
    def health(self, service: str, timeout: float = 3.0) -> str:
        resp = health_pb2_grpc.HealthStub(self._channels[service]).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    def jobs(self, service: str) -> jobs_pb2_grpc.JobsStub:
        return jobs_pb2_grpc.JobsStub(self._channels[service])

    @staticmethod
    def run_job(updates: Iterable[Any], result_field: str, on_progress: ProgressCallback | None = None) -> Any:
        """Consume a job's update stream; return its result message."""
        try:
            for u in updates:
                if u.HasField("progress"):
                    if on_progress is not None:
                        on_progress(u.progress)
                elif u.HasField(result_field):
                    return getattr(u, result_field)
        except grpc.RpcError as err:
            raise FailureLensError(err) from None
        raise FailureLensError(None, f"the job's stream ended without a {result_field!r} update")

    @staticmethod
    def call(fn: Callable[..., Any], request: Any, **kw: Any) -> Any:
        try:
            return fn(request, **kw)
        except grpc.RpcError as err:
            raise FailureLensError(err) from None

    # --- workflows ------------------------------------------------------------------------
    def register_dataset(self, on_progress: ProgressCallback | None = None, timeout: float | None = None, **fields: Any) -> registry_pb2.Dataset:
        req = registry_pb2.RegisterDatasetRequest(**fields)
        return self.run_job(self.registry.RegisterDataset(req, timeout=timeout), "dataset", on_progress)

    def register_model(self, timeout: float | None = None, **fields: Any) -> registry_pb2.Model:
        return self.call(self.registry.RegisterModel, registry_pb2.RegisterModelRequest(**fields), timeout=timeout)

    def embed(self, on_progress: ProgressCallback | None = None, timeout: float | None = None, **fields: Any) -> embedding_pb2.EmbeddingSet:
        req = embedding_pb2.EmbedRequest(**fields)
        return self.run_job(self.embedding.Embed(req, timeout=timeout), "result", on_progress)

    def embed_texts(self, model_id: str, texts: list[str], name: str = "") -> embedding_pb2.EmbedTextsResponse:
        return self.call(self.embedding.EmbedTexts, embedding_pb2.EmbedTextsRequest(model_id=model_id, texts=texts, name=name))

    # --- discovery and captioning ------------------------------------------------------------
    def fit_failure_trees(
        self, on_progress: ProgressCallback | None = None, timeout: float | None = None, **fields: Any
    ) -> slice_discovery_pb2.FailureTreesReport:
        req = slice_discovery_pb2.FitFailureTreesRequest(**fields)
        return self.run_job(self.slice_discovery.FitFailureTrees(req, timeout=timeout), "result", on_progress)

    def fit_failure_directions(
        self, on_progress: ProgressCallback | None = None, timeout: float | None = None, **fields: Any
    ) -> slice_discovery_pb2.FailureDirectionsReport:
        req = slice_discovery_pb2.FitFailureDirectionsRequest(**fields)
        return self.run_job(self.slice_discovery.FitFailureDirections(req, timeout=timeout), "result", on_progress)

    def render_feature_evidence(
        self, on_progress: ProgressCallback | None = None, timeout: float | None = None, **fields: Any
    ) -> slice_discovery_pb2.FeatureEvidenceReport:
        req = slice_discovery_pb2.RenderFeatureEvidenceRequest(**fields)
        return self.run_job(self.slice_discovery.RenderFeatureEvidence(req, timeout=timeout), "result", on_progress)

    def caption_directions(self, timeout: float | None = None, **fields: Any) -> captioning_pb2.CaptionDirectionsResponse:
        return self.call(self.captioning.CaptionDirections, captioning_pb2.CaptionDirectionsRequest(**fields), timeout=timeout)

    def caption_rules(self, timeout: float | None = None, **fields: Any) -> captioning_pb2.CaptionRulesResponse:
        return self.call(self.captioning.CaptionRules, captioning_pb2.CaptionRulesRequest(**fields), timeout=timeout)

    def validate_caption(self, timeout: float | None = None, **fields: Any) -> captioning_pb2.CaptionValidation:
        return self.call(self.captioning.ValidateCaption, captioning_pb2.ValidateCaptionRequest(**fields), timeout=timeout)

    def propose_backgrounds(self, timeout: float | None = None, **fields: Any) -> captioning_pb2.ProposeBackgroundsResponse:
        return self.call(self.captioning.ProposeBackgrounds, captioning_pb2.ProposeBackgroundsRequest(**fields), timeout=timeout)

    def assign_backgrounds(
        self, on_progress: ProgressCallback | None = None, timeout: float | None = None, **fields: Any
    ) -> captioning_pb2.BackgroundAssignment:
        req = captioning_pb2.AssignBackgroundsRequest(**fields)
        return self.run_job(self.captioning.AssignBackgrounds(req, timeout=timeout), "result", on_progress)

    def split_debug_set(self, timeout: float | None = None, **fields: Any) -> slice_discovery_pb2.DebugSplit:
        return self.call(self.slice_discovery.SplitDebugSet, slice_discovery_pb2.SplitDebugSetRequest(**fields), timeout=timeout)

    def compare_failures(self, prediction_embedding_ids: list[str], timeout: float | None = None) -> slice_discovery_pb2.FailureOverlap:
        req = slice_discovery_pb2.CompareFailuresRequest(prediction_embedding_ids=prediction_embedding_ids)
        return self.call(self.slice_discovery.CompareFailures, req, timeout=timeout)

    # --- repair ------------------------------------------------------------------------------
    def list_generators(self) -> generation_pb2.ListGeneratorsResponse:
        return self.call(self.generation.ListGenerators, generation_pb2.ListGeneratorsRequest())

    def generate(self, on_progress: ProgressCallback | None = None, timeout: float | None = None, **fields: Any) -> generation_pb2.GenerateResult:
        req = generation_pb2.GenerateRequest(**fields)
        return self.run_job(self.generation.Generate(req, timeout=timeout), "result", on_progress)

    def retrain_head(
        self, on_progress: ProgressCallback | None = None, timeout: float | None = None, **fields: Any
    ) -> retraining_pb2.RetrainHeadResult:
        req = retraining_pb2.RetrainHeadRequest(**fields)
        return self.run_job(self.retraining.RetrainHead(req, timeout=timeout), "result", on_progress)

    def evaluate_head(self, timeout: float | None = None, **fields: Any) -> retraining_pb2.HeadEvaluation:
        return self.call(self.retraining.EvaluateHead, retraining_pb2.EvaluateHeadRequest(**fields), timeout=timeout)
