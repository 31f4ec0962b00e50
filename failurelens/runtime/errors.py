"""Exceptions that become gRPC statuses with google.rpc rich error details.

Services raise these (or library errors mapped by :func:`to_status`); the runtime's interceptor
turns them into a status whose message says what to fix, with details a client can read through
``grpc_status.rpc_status.from_call``.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import grpc
from google.protobuf import any_pb2, message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from failurelens.v1 import common_pb2

DOMAIN = "failurelens.dev"
MAX_ROW_ERRORS = 100


class ServiceError(Exception):
    """An error with a gRPC status code and optional rich details."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, details: Iterable[message.Message] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    @classmethod
    def field(cls, field: str, description: str) -> "InvalidArgument":
        """One bad request field; the message names the field and says what to fix."""
        return cls(
            f"{field}: {description}",
            details=[error_details_pb2.BadRequest(field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field, description=description)])],
        )


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND

    @classmethod
    def resource(cls, resource_type: str, name: str, hint: str = "") -> "NotFound":
        msg = f"{resource_type} {name!r} not found" + (f"; {hint}" if hint else "")
        return cls(msg, details=[error_details_pb2.ResourceInfo(resource_type=resource_type, resource_name=name, description=msg)])


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS

    @classmethod
    def resource(cls, resource_type: str, name: str) -> "AlreadyExists":
        msg = f"{resource_type} {name!r} already exists; choose another name or set overwrite=true"
        return cls(msg, details=[error_details_pb2.ResourceInfo(resource_type=resource_type, resource_name=name, description=msg)])


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION

    @classmethod
    def violation(cls, type_: str, subject: str, description: str) -> "FailedPrecondition":
        return cls(
            description,
            details=[error_details_pb2.PreconditionFailure(violations=[error_details_pb2.PreconditionFailure.Violation(type=type_, subject=subject, description=description)])],
        )


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(ServiceError):
    code = grpc.StatusCode.CANCELLED


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED


def row_errors_detail(rows: Sequence[tuple[int, str, str]], total: int | None = None) -> common_pb2.RowErrors:
    """RowErrors detail from (row, uri, reason) tuples, keeping the first MAX_ROW_ERRORS."""
    out = common_pb2.RowErrors(total=len(rows) if total is None else total)
    for row, uri, reason in list(rows)[:MAX_ROW_ERRORS]:
        out.rows.add(row=row, uri=uri or "", reason=reason)
    return out


def _from_library(exc: BaseException) -> ServiceError | None:
    """Map errors of the pure library modules (which know nothing of gRPC) to service errors."""
    from failurelens.data.errors import ValidationError
    from failurelens.store.base import InvalidKeyError, ObjectNotFoundError

    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ValidationError):
        bad = error_details_pb2.BadRequest()
        rows = []
        for v in exc.violations[:MAX_ROW_ERRORS]:
            bad.field_violations.add(field=v.field, description=v.description)
            if v.row is not None:
                rows.append((v.row, v.uri or "", v.description))
        details: list[message.Message] = [bad]
        if rows:
            details.append(row_errors_detail(rows, total=exc.violation_count))
        return InvalidArgument(exc.message, details=details)
    if isinstance(exc, InvalidKeyError):
        return InvalidArgument(str(exc))
    if isinstance(exc, ObjectNotFoundError):
        return NotFound(f"artifact not found: {exc}; check the URI or upload the object first")
    try:
        from failurelens.triton.client import TritonInferenceError
    except ImportError:  # pragma: no cover - triton extras always installed
        TritonInferenceError = ()  # type: ignore[assignment]
    if TritonInferenceError and isinstance(exc, TritonInferenceError):
        code = getattr(exc, "code", None)
        err = ServiceError(f"Triton inference failed: {exc}")
        if isinstance(code, grpc.StatusCode) and code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            err.code = code
        else:
            err.code = grpc.StatusCode.INTERNAL
        return err
    return None


def to_status(exc: BaseException, fallback_message: str = "internal error") -> tuple[grpc.StatusCode, str, status_pb2.Status]:
    """(code, message, google.rpc.Status with details) for an exception."""
    err = _from_library(exc)
    if err is None:
        err = ServiceError(fallback_message)
    status = status_pb2.Status(code=_code_number(err.code), message=err.message)
    for d in err.details:
        a = any_pb2.Any()
        a.Pack(d)
        status.details.append(a)
    if err.code == grpc.StatusCode.INTERNAL and not err.details:
        info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN)
        a = any_pb2.Any()
        a.Pack(info)
        status.details.append(a)
    return err.code, err.message, status


def _code_number(code: grpc.StatusCode) -> int:
    return int(code.value[0]) if isinstance(code.value, tuple) else int(code_pb2.INTERNAL)


def unpack_details(status: status_pb2.Status) -> list[message.Message]:
    """Unpack the known detail types of a google.rpc.Status (client-side helper)."""
    known = [
        error_details_pb2.BadRequest,
        error_details_pb2.ResourceInfo,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.ErrorInfo,
        common_pb2.RowErrors,
    ]
    out: list[message.Message] = []
    for a in status.details:
        for t in known:
            if a.Is(t.DESCRIPTOR):
                m = t()
                a.Unpack(m)
                out.append(m)
                break
    return out
