"""The one place where exceptions become gRPC statuses.

Every failurelens error (:mod:`failurelens.errors`) names its canonical status and what it is
about; :func:`to_status` turns it into a ``google.rpc.Status`` whose message says what to fix and
whose details a client reads with ``grpc_status.rpc_status.from_call``:

* :class:`~failurelens.errors.InvalidArgument` -> ``BadRequest`` (one field violation per
  violation) and, when violations name manifest rows, :class:`~failurelens.v1.common_pb2.RowErrors`;
* :class:`~failurelens.errors.FailedPrecondition` -> ``PreconditionFailure`` (type, subject);
* NOT_FOUND / ALREADY_EXISTS / ABORTED about a resource -> ``ResourceInfo``;
* anything else that is not a failurelens error -> INTERNAL with an error id, logged with its
  traceback (the message never leaks internals).
"""

from __future__ import annotations

import logging
import uuid

import grpc
from google.protobuf import any_pb2, message
from google.rpc import error_details_pb2, status_pb2

from failurelens import errors
from failurelens.convert import row_errors_pb

log = logging.getLogger(__name__)
DOMAIN = "failurelens.dev"


def _details(exc: errors.Error) -> list[message.Message]:
    out: list[message.Message] = []
    if isinstance(exc, errors.InvalidArgument):
        out.append(
            error_details_pb2.BadRequest(
                field_violations=[error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description) for v in exc.violations]
            )
        )
        rows = [(v.row, v.uri or "", v.description) for v in exc.violations if v.row is not None]
        if rows:
            out.append(row_errors_pb(rows, total=exc.violation_count))
    elif isinstance(exc, errors.FailedPrecondition) and exc.subject:
        out.append(
            error_details_pb2.PreconditionFailure(
                violations=[error_details_pb2.PreconditionFailure.Violation(type=exc.type, subject=exc.subject, description=exc.message)]
            )
        )
    elif isinstance(exc, (errors.NotFound, errors.AlreadyExists, errors.Aborted)) and exc.resource_type:
        out.append(error_details_pb2.ResourceInfo(resource_type=exc.resource_type, resource_name=exc.name, description=exc.message))
    return out


def to_status(exc: BaseException, method: str = "") -> tuple[grpc.StatusCode, str, status_pb2.Status]:
    """(code, message, google.rpc.Status with details) for any exception raised by a handler."""
    if isinstance(exc, errors.Error):
        code = grpc.StatusCode[exc.canonical_code]
        text, details = str(exc), _details(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.error("%s failed: %s", method or "call", text, exc_info=exc)
    elif (peer := _peer_error(exc)) is not None:
        # a call to another service failed: its status and message, said to be the peer's
        code, details = peer.code(), []
        text = f"a call to another failurelens service failed: {peer.details()}"
    else:
        error_id = uuid.uuid4().hex[:12]
        log.error("%s failed with an unexpected error (error id %s)", method or "call", error_id, exc_info=exc)
        code, text, details = grpc.StatusCode.INTERNAL, f"internal error (error id {error_id}); see the server log", []
    if code == grpc.StatusCode.INTERNAL and not details:
        details = [error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN)]
    status = status_pb2.Status(code=code.value[0], message=text)
    for d in details:
        packed = any_pb2.Any()
        packed.Pack(d)
        status.details.append(packed)
    return code, text, status


async def abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str = "") -> None:
    """End the call with the status of ``exc`` (raises grpc's AbortError)."""
    code, text, status = to_status(exc, method)
    await context.abort(code, text, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),))


def _peer_error(exc: BaseException) -> grpc.RpcError | None:
    """The failed call to another service behind ``exc``: the RpcError itself, or the one a
    workflow's FailureLensError carries (``rpc_error``)."""
    err = exc if isinstance(exc, grpc.RpcError) else getattr(exc, "rpc_error", None)
    if isinstance(err, grpc.RpcError) and isinstance(getattr(err, "code", lambda: None)(), grpc.StatusCode):
        return err
    return None


def code_name(exc: BaseException) -> str:
    """The canonical status name of an exception (``INTERNAL`` for unexpected ones), for job records."""
    if isinstance(exc, errors.Error):
        return exc.canonical_code
    peer = _peer_error(exc)
    return peer.code().name if peer is not None else "INTERNAL"
