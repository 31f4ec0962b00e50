"""Calls to the failurelens services, shared by the SDK and by services that call their peers.

:class:`ServiceCalls` holds one typed method per RPC a workflow uses (``embed``,
``fit_failure_trees``, ``generate``, ...): streaming jobs are consumed by :meth:`run_job`, which
passes each Progress to a callback and returns the final result; a failed call raises
:class:`FailureLensError` with the status code and the server's rich error details. Subclasses
say where the stubs come from: the SDK's :class:`~failurelens.clients.FailureLensClient` opens a
channel per service; the pipeline service resolves its peers.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from google.protobuf import message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from failurelens.v1 import (
    captioning_pb2,
    captioning_pb2_grpc,
    common_pb2,
    embedding_pb2,
    embedding_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    pipeline_pb2,
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


class FailureLensError(RuntimeError):
    """A failed call, with the status code and the server's rich error details."""

    def __init__(self, err: grpc.RpcError | None, message: str = "") -> None:
        self.rpc_error = err  # a service relaying this error answers with the same status
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


class ServiceCalls(abc.ABC):
    """Typed calls over the generated stubs; :meth:`stub` says where a service's stub comes from."""

    @abc.abstractmethod
    def stub(self, name: str) -> Any:
        """The generated stub of service ``name`` (see :data:`failurelens.topology.SERVICES`)."""

    @property
    def registry(self) -> registry_pb2_grpc.RegistryStub:
        return self.stub("registry")

    @property
    def embedding(self) -> embedding_pb2_grpc.EmbeddingStub:
        return self.stub("embedding")

    @property
    def slice_discovery(self) -> slice_discovery_pb2_grpc.SliceDiscoveryStub:
        return self.stub("slice_discovery")

    @property
    def captioning(self) -> captioning_pb2_grpc.CaptioningStub:
        return self.stub("captioning")

    @property
    def generation(self) -> generation_pb2_grpc.GenerationStub:
        return self.stub("generation")

    @property
    def retraining(self) -> retraining_pb2_grpc.RetrainingStub:
        return self.stub("retraining")

    @property
    def pipeline(self) -> pipeline_pb2_grpc.PipelineStub:
        return self.stub("pipeline")

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
        except BaseException:
            # the caller stopped following (its progress callback raised, Ctrl-C): cancel the job
            cancel = getattr(updates, "cancel", None)
            if cancel is not None:
                cancel()
            raise
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

    # --- pipeline ----------------------------------------------------------------------------
    def analyze(self, on_progress: ProgressCallback | None = None, timeout: float | None = None, **fields: Any) -> pipeline_pb2.PipelineRun:
        """Submit an analysis run (``RunPipelineRequest`` fields) and follow it to its end; returns
        the finished PipelineRun (whatever its state: check ``run.state`` and ``run.error``)."""
        return self.run_job(self.pipeline.Run(pipeline_pb2.RunPipelineRequest(**fields), timeout=timeout), "result", on_progress)

    def watch_run(self, run_id: str, on_progress: ProgressCallback | None = None, timeout: float | None = None) -> pipeline_pb2.PipelineRun:
        return self.run_job(self.pipeline.WatchRun(pipeline_pb2.GetRunRequest(run_id=run_id), timeout=timeout), "result", on_progress)

    def get_run(self, run_id: str) -> pipeline_pb2.PipelineRun:
        return self.call(self.pipeline.GetRun, pipeline_pb2.GetRunRequest(run_id=run_id))

    def list_runs(self, **fields: Any) -> list[pipeline_pb2.PipelineRun]:
        return list(self.call(self.pipeline.ListRuns, pipeline_pb2.ListRunsRequest(**fields)).runs)

    def cancel_run(self, run_id: str, timeout: float | None = None) -> pipeline_pb2.PipelineRun:
        return self.call(self.pipeline.CancelRun, pipeline_pb2.GetRunRequest(run_id=run_id), timeout=timeout)
