"""One server interceptor for every failurelens service: auth, metrics, errors.

For every RPC, in this order:

1. bearer-token auth (``authorization: Bearer <token>`` metadata, constant-time compare) unless
   auth is off or the method is exempt (health checks, so that probes work);
2. Prometheus metrics with the standard go-grpc-prometheus names
   (``grpc_server_started_total``, ``grpc_server_handled_total``, ``grpc_server_msg_received_total``,
   ``grpc_server_msg_sent_total``, ``grpc_server_handling_seconds``);
3. exception -> gRPC status mapping with google.rpc rich details (``grpc-status-details-bin``);
   unexpected exceptions become INTERNAL with an error id that is also logged with the traceback.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import time
import uuid
from typing import Any, Callable, Iterable

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from failurelens.runtime import errors

log = logging.getLogger(__name__)

HEALTH_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class GrpcMetrics:
    """The standard server-side gRPC metrics, in a given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter("grpc_server_started_total", "Total number of RPCs started on the server.", labels, registry=registry)
        self.handled = Counter("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.", labels + ["grpc_code"], registry=registry)
        self.received = Counter("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", labels, registry=registry)
        self.sent = Counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", labels, registry=registry)
        self.seconds = Histogram("grpc_server_handling_seconds", "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.", labels, buckets=_BUCKETS, registry=registry)


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2) if method.count("/") >= 2 else ("", "unknown", method)
    return service, name


def _rpc_type(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming and handler.response_streaming:
        return "bidi_stream"
    if handler.request_streaming:
        return "client_stream"
    if handler.response_streaming:
        return "server_stream"
    return "unary"


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: GrpcMetrics, auth_token: str | None = None, auth_exempt: Iterable[str] = HEALTH_METHODS) -> None:
        self._metrics = metrics
        self._token = auth_token.encode() if auth_token else None
        self._exempt = frozenset(auth_exempt)

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        needs_auth = self._token is not None and method not in self._exempt
        metadata = details.invocation_metadata or ()
        auth_error = self._auth_error(metadata) if needs_auth else None
        return _wrap(handler, method, self._metrics, auth_error)

    def _auth_error(self, metadata: Iterable[Any]) -> errors.ServiceError | None:
        value = None
        for item in metadata:
            if item.key == "authorization":
                value = item.value
                break
        if value is None:
            return errors.Unauthenticated("missing bearer token: send metadata 'authorization: Bearer <token>' (the token the server was started with, FAILURELENS_AUTH_TOKEN)")
        if isinstance(value, str):
            value = value.encode()
        scheme, _, token = value.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return errors.Unauthenticated("malformed authorization metadata: expected 'Bearer <token>'")
        assert self._token is not None
        if not hmac.compare_digest(token.strip(), self._token):
            return errors.Unauthenticated("invalid bearer token")
        return None


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    if isinstance(exc, (errors.ServiceError,)) or errors._from_library(exc) is not None:
        code, message, status = errors.to_status(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.error("%s failed: %s", method, message, exc_info=exc)
    else:
        error_id = uuid.uuid4().hex[:12]
        log.error("%s failed with an unexpected error (error id %s)", method, error_id, exc_info=exc)
        code, message, status = errors.to_status(exc, f"internal error (error id {error_id}); see the server log")
    await context.abort(code, message, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),))


def _code_of(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    return grpc.StatusCode.UNKNOWN.name


def _wrap(handler: grpc.RpcMethodHandler, method: str, m: GrpcMetrics, auth_error: errors.ServiceError | None) -> grpc.RpcMethodHandler:
    rtype = _rpc_type(handler)
    service, name = _split(method)
    labels = (rtype, service, name)

    def _begin() -> float:
        m.started.labels(*labels).inc()
        if not handler.request_streaming:
            m.received.labels(*labels).inc()
        if auth_error is not None:
            raise auth_error
        return time.perf_counter()

    async def _fail(context: grpc.aio.ServicerContext, exc: Exception) -> None:
        if isinstance(exc, grpc.aio.AbortError) or _is_abort(exc):
            raise exc
        await _abort(context, exc, method)

    def _done(context: grpc.aio.ServicerContext, start: float) -> None:
        m.handled.labels(*labels, _code_of(context)).inc()
        m.seconds.labels(*labels).observe(time.perf_counter() - start)

    if handler.unary_unary or handler.stream_unary:
        inner = handler.unary_unary or handler.stream_unary

        async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                start = _begin()
                response = await inner(request, context)
                m.sent.labels(*labels).inc()
                return response
            except Exception as exc:  # noqa: BLE001 - mapped to a status
                await _fail(context, exc)
            finally:
                _done(context, start)

        factory = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return factory(unary_response, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)

    inner_stream = handler.unary_stream or handler.stream_stream

    async def stream_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
        start = time.perf_counter()
        try:
            start = _begin()
            if inspect.isasyncgenfunction(inner_stream) or inspect.isasyncgenfunction(getattr(inner_stream, "__func__", None)):
                async for item in inner_stream(request, context):
                    m.sent.labels(*labels).inc()
                    yield item
            else:  # coroutine that writes with context.write (e.g. health Watch)
                result = inner_stream(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        m.sent.labels(*labels).inc()
                        yield item
                else:
                    await result
        except Exception as exc:  # noqa: BLE001 - mapped to a status
            await _fail(context, exc)
        finally:
            _done(context, start)

    factory = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return factory(stream_response, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)


def _is_abort(exc: BaseException) -> bool:
    return type(exc).__name__ in ("AbortError", "InternalError", "UsageError")
