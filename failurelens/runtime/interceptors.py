"""Server interceptors every failurelens service runs, each with one job, outermost first:

1. :class:`MetricsInterceptor` — the standard go-grpc-prometheus metrics
   (``grpc_server_started_total``, ``grpc_server_handled_total``, ``grpc_server_msg_received_total``,
   ``grpc_server_msg_sent_total``, ``grpc_server_handling_seconds``), so every outcome is counted,
   refused calls included;
2. :class:`AuthInterceptor` — bearer tokens with roles (``authorization: Bearer <token>``,
   constant-time compare; :mod:`failurelens.runtime.auth`) except for exempt methods (health
   checks, so that probes work);
3. :class:`RateLimitInterceptor` — calls a second per client, when configured;
4. :class:`ErrorInterceptor` — exceptions to statuses through :mod:`failurelens.runtime.status`.
"""

from __future__ import annotations

import hmac
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from failurelens import errors
from failurelens.runtime import status
from failurelens.runtime.auth import READ, RateLimiter, TokenTable, client_key

HEALTH_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

Handler = Callable[[Any, grpc.aio.ServicerContext], Any]
Unary = Callable[[Handler, Any, grpc.aio.ServicerContext], Awaitable[Any]]
Stream = Callable[[Handler, Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


class GrpcMetrics:
    """The standard server-side gRPC metrics, in a given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter("grpc_server_started_total", "Total number of RPCs started on the server.", labels, registry=registry)
        self.handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            labels + ["grpc_code"],
            registry=registry,
        )
        self.received = Counter(
            "grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", labels, registry=registry
        )
        self.sent = Counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", labels, registry=registry)
        self.seconds = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            labels,
            buckets=_BUCKETS,
            registry=registry,
        )


async def _iterate(inner: Handler, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    """The items of a streaming handler: an async generator, or a coroutine that writes with
    ``context.write`` (e.g. health Watch) and yields nothing here."""
    result = inner(request, context)
    if inspect.isasyncgen(result):
        async for item in result:
            yield item
    else:
        await result


def rewrap(handler: grpc.RpcMethodHandler, unary: Unary, stream: Stream) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour wrapped: ``unary(inner, request, context)`` for unary-response
    methods, the async generator ``stream(inner, request, context)`` for streaming ones."""
    kw = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary or handler.stream_unary:
        inner = handler.unary_unary or handler.stream_unary

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await unary(inner, request, context)

        factory = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return factory(call, **kw)
    inner_stream = handler.unary_stream or handler.stream_stream

    async def call_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for item in stream(inner_stream, request, context):
            yield item

    factory = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return factory(call_stream, **kw)


def _is_abort(exc: BaseException) -> bool:
    """grpc's own way of ending a call (context.abort), which must pass through untouched."""
    return isinstance(exc, grpc.aio.AbortError) or type(exc).__name__ in ("AbortError", "InternalError", "UsageError")


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: GrpcMetrics) -> None:
        self._m = metrics

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        _, service, name = method.split("/", 2) if method.count("/") >= 2 else ("", "unknown", method)
        kind = (
            ("bidi_stream" if handler.response_streaming else "client_stream")
            if handler.request_streaming
            else ("server_stream" if handler.response_streaming else "unary")
        )
        labels = (kind, service, name)
        m = self._m

        def begin() -> float:
            m.started.labels(*labels).inc()
            if not handler.request_streaming:
                m.received.labels(*labels).inc()
            return time.perf_counter()

        def done(context: grpc.aio.ServicerContext, start: float) -> None:
            code = context.code()
            m.handled.labels(*labels, code.name if isinstance(code, grpc.StatusCode) else ("OK" if code is None else "UNKNOWN")).inc()
            m.seconds.labels(*labels).observe(time.perf_counter() - start)

        async def unary(inner: Handler, request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = begin()
            try:
                response = await inner(request, context)
                m.sent.labels(*labels).inc()
                return response
            finally:
                done(context, start)

        async def stream(inner: Handler, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            start = begin()
            try:
                async for item in _iterate(inner, request, context):
                    m.sent.labels(*labels).inc()
                    yield item
            finally:
                done(context, start)

        return rewrap(handler, unary, stream)


def _authorization(metadata: Iterable[Any]) -> bytes | None:
    value = next((item.value for item in metadata if item.key == "authorization"), None)
    return value.encode() if isinstance(value, str) else value


def _refuse(handler: grpc.RpcMethodHandler, refusal: errors.Error, method: str) -> grpc.RpcMethodHandler:
    async def unary(inner: Handler, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await status.abort(context, refusal, method)

    async def stream(inner: Handler, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await status.abort(context, refusal, method)
        yield  # pragma: no cover - abort raises

    return rewrap(handler, unary, stream)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Bearer tokens with roles (:mod:`failurelens.runtime.auth`): no or an unknown token is
    UNAUTHENTICATED, a read token calling a method that changes state is PERMISSION_DENIED; exempt
    methods (health) pass."""

    def __init__(self, tokens: TokenTable, read_methods: frozenset[str], exempt: Iterable[str] = HEALTH_METHODS) -> None:
        self._tokens = tokens
        self._read = read_methods
        self._exempt = frozenset(exempt)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or details.method in self._exempt:
            return handler
        refusal = self._refusal(_authorization(details.invocation_metadata or ()), details.method)
        return handler if refusal is None else _refuse(handler, refusal, details.method)

    def _refusal(self, value: bytes | None, method: str) -> errors.Error | None:
        if value is None:
            return errors.Unauthenticated(
                "missing bearer token: send metadata 'authorization: Bearer <token>' (the service's FAILURELENS_AUTH_TOKEN or a token of "
                "its FAILURELENS_AUTH_TOKENS_FILE)"
            )
        scheme, _, token = value.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return errors.Unauthenticated("malformed authorization metadata: expected 'Bearer <token>'")
        principal = self._tokens.lookup(token.strip())
        if principal is None:
            return errors.Unauthenticated("invalid bearer token")
        if principal.role == READ and method not in self._read:
            return errors.PermissionDenied(f"{method} changes state and your token has role read; call it with a token of role write")
        return None


class RateLimitInterceptor(grpc.aio.ServerInterceptor):
    """RESOURCE_EXHAUSTED once a client (its token, else its address) calls faster than the limit;
    the stack's own service token and exempt methods (health) are not limited."""

    def __init__(self, limiter: RateLimiter, internal_token: str = "", exempt: Iterable[str] = HEALTH_METHODS) -> None:
        self._limiter = limiter
        self._internal = f"Bearer {internal_token}".encode() if internal_token else None
        self._exempt = frozenset(exempt)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or details.method in self._exempt:
            return handler
        authorization = _authorization(details.invocation_metadata or ())
        if self._internal is not None and authorization is not None and hmac.compare_digest(authorization, self._internal):
            return handler
        limiter, method = self._limiter, details.method

        def check(context: grpc.aio.ServicerContext) -> errors.Error | None:
            wait = limiter.take(client_key(authorization, context.peer() or ""))
            if not wait:
                return None
            return errors.ResourceExhausted(
                f"rate limit: at most {limiter.rate:g} calls a second per client (bursts of {limiter.burst:g}); retry in {wait:.2f} s"
            )

        async def unary(inner: Handler, request: Any, context: grpc.aio.ServicerContext) -> Any:
            refusal = check(context)
            if refusal is not None:
                await status.abort(context, refusal, method)
            return await inner(request, context)

        async def stream(inner: Handler, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            refusal = check(context)
            if refusal is not None:
                await status.abort(context, refusal, method)
            async for item in _iterate(inner, request, context):
                yield item

        return rewrap(handler, unary, stream)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Ends a call whose handler raised with the status :mod:`~failurelens.runtime.status` maps."""

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method

        async def unary(inner: Handler, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await inner(request, context)
            except Exception as exc:
                if _is_abort(exc):
                    raise
                await status.abort(context, exc, method)

        async def stream(inner: Handler, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in _iterate(inner, request, context):
                    yield item
            except Exception as exc:
                if _is_abort(exc):
                    raise
                await status.abort(context, exc, method)

        return rewrap(handler, unary, stream)


def interceptors(
    metrics: GrpcMetrics,
    tokens: TokenTable | None = None,
    read_methods: frozenset[str] = frozenset(),
    limiter: RateLimiter | None = None,
    internal_token: str = "",
) -> list[grpc.aio.ServerInterceptor]:
    """The runtime's interceptor chain, outermost first."""
    chain: list[grpc.aio.ServerInterceptor] = [MetricsInterceptor(metrics)]
    if tokens is not None:
        chain.append(AuthInterceptor(tokens, read_methods))
    if limiter is not None:
        chain.append(RateLimitInterceptor(limiter, internal_token))
    chain.append(ErrorInterceptor())
    return chain
