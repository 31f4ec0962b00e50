"""Access control and transport security of the service runtime, over real gRPC on loopback:
tokens with roles, secrets only from the environment or files, TLS and mutual TLS with
certificates made here, the per-client rate limit, and the proto marks the roles read."""

from __future__ import annotations

import logging
import os
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from failurelens import errors, topology
from failurelens.clients import FailureLensClient
from failurelens.runtime import ServiceConfig
from failurelens.runtime.auth import RateLimiter, parse_tokens_file, read_only_methods
from failurelens.transport import Tls, TlsConfigError, open_channel
from failurelens.v1 import jobs_pb2, pipeline_pb2, pipeline_pb2_grpc
from tests._fixtures.certs import make_pki
from tests._fixtures.servers import running
from tests.test_runtime import build_fake

SERVICE_TOKEN = "service-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef"
WRITER = "writer-token-0123456789abcdef"


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _code(fn, *args, **kw) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as ei:
        result = fn(*args, **kw)
        if hasattr(result, "__iter__") and not isinstance(result, (str, bytes)):
            list(result)
    return ei.value.code()


@pytest.fixture()
def tokens_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# role token\nread {READER}\nwrite {WRITER}  # the CI pipeline\n")
    return path


def test_roles_read_tokens_look_write_tokens_act_and_no_token_is_logged(tokens_file, caplog):
    caplog.set_level(logging.DEBUG)
    with running("fake", build_fake({}), auth_token=SERVICE_TOKEN, auth_tokens_file=str(tokens_file)) as ts:
        ch = grpc.insecure_channel(ts.address)
        stub = pipeline_pb2_grpc.PipelineStub(ch)
        get, run = pipeline_pb2.GetRunRequest(run_id="r"), pipeline_pb2.RunPipelineRequest(request_id="steps:1")
        # no token, an unknown token, a malformed header: UNAUTHENTICATED
        assert _code(stub.GetRun, get) == grpc.StatusCode.UNAUTHENTICATED
        assert _code(stub.GetRun, get, metadata=_md("nobody-knows-this-token")) == grpc.StatusCode.UNAUTHENTICATED
        assert _code(stub.GetRun, get, metadata=(("authorization", READER),)) == grpc.StatusCode.UNAUTHENTICATED
        # read: the NO_SIDE_EFFECTS methods; a method that changes state is PERMISSION_DENIED, with what to do
        assert stub.GetRun(get, metadata=_md(READER)).run_id == "r"
        with pytest.raises(grpc.RpcError) as ei:
            list(stub.Run(run, metadata=_md(READER)))
        assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "/failurelens.v1.Pipeline/Run changes state" in ei.value.details() and "role write" in ei.value.details()
        assert _code(stub.CancelRun, get, metadata=_md(READER)) == grpc.StatusCode.PERMISSION_DENIED
        jobs = ts.server.jobs
        assert jobs is not None
        # write (a file token, and the service's own token): everything
        assert [u.WhichOneof("update") for u in stub.Run(run, metadata=_md(WRITER))][-1] == "result"
        assert stub.GetRun(get, metadata=_md(SERVICE_TOKEN)).run_id == "r"
        # health needs no token (probes)
        assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        ch.close()
    for token in (SERVICE_TOKEN, READER, WRITER):
        assert token not in caplog.text


def test_the_protos_mark_exactly_the_methods_that_only_look():
    services = [s.stub.__module__ for s in topology.SERVICES]
    assert services  # every service's descriptor, and the Jobs service every server hosts
    from importlib import import_module

    descriptors = [jobs_pb2.DESCRIPTOR.services_by_name["Jobs"]]
    for spec in topology.SERVICES:
        module = import_module(spec.stub.__module__.replace("_pb2_grpc", "_pb2"))
        descriptors.append(module.DESCRIPTOR.services_by_name[spec.grpc_service.rsplit(".", 1)[1]])
    marked = {m.rsplit("/", 1)[1] for m in read_only_methods(descriptors) if "failurelens" in m}
    every = {m.name for d in descriptors for m in d.methods}
    looks = {name for name in every if name.startswith(("Get", "List", "Watch"))}
    assert marked == looks, f"mark these NO_SIDE_EFFECTS: {looks - marked}; these change state: {marked - looks}"
    assert {"GetRun", "ListDatasets", "WatchRun", "GetJob"} <= marked and not {"Run", "CancelJob", "RegisterDataset", "DeleteModel"} & marked


def test_secrets_come_only_from_the_environment_or_files(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        ServiceConfig.from_args(["--auth-token", "on-the-command-line"])
    assert "unrecognized arguments: --auth-token" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ServiceConfig.from_args(["--triton-key", "on-the-command-line"])
    (tmp_path / "token").write_text("from-a-file\n")
    (tmp_path / "key").write_text("triton-key-from-a-file\n")
    monkeypatch.setenv("FAILURELENS_AUTH_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("FAILURELENS_TRITON_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("FAILURELENS_RATE_LIMIT_PER_SECOND", "2.5")
    cfg = ServiceConfig.from_args(["--port", "5"])
    assert (cfg.auth_token, cfg.triton_key, cfg.port, cfg.rate_limit_per_second) == ("from-a-file", "triton-key-from-a-file", 5, 2.5)
    # a broken tokens file: the line is named, the token never shown
    bad = tmp_path / "tokens"
    bad.write_text("read ok-token-one\nadmin secret-admin-token\n")
    with pytest.raises(errors.FailedPrecondition, match="line 2") as ei:
        parse_tokens_file(str(bad))
    assert "secret-admin-token" not in str(ei.value)


def test_tls_and_mutual_tls_with_certificates_made_here(tmp_path):
    pki = make_pki(tmp_path / "pki")
    get = pipeline_pb2.GetRunRequest(run_id="r")
    server_tls = {"tls_cert_file": str(pki.server_cert), "tls_key_file": str(pki.server_key)}
    with running("fake", build_fake({}), **server_tls) as ts:
        good = Tls(ca_file=str(pki.ca))
        with open_channel(ts.address, good) as ch:
            assert pipeline_pb2_grpc.PipelineStub(ch).GetRun(get, timeout=10).run_id == "r"
        with open_channel(ts.address, None) as ch:  # plaintext to a TLS server
            assert _code(pipeline_pb2_grpc.PipelineStub(ch).GetRun, get, timeout=5) == grpc.StatusCode.UNAVAILABLE
        with open_channel(ts.address, Tls(ca_file=str(pki.rogue_ca))) as ch:  # a server we do not trust
            assert _code(pipeline_pb2_grpc.PipelineStub(ch).GetRun, get, timeout=5) == grpc.StatusCode.UNAVAILABLE
        # the SDK: TLS from its argument
        with FailureLensClient({"pipeline": ts.address}, tls=good) as fl:
            assert fl.health("pipeline") == "SERVING" and fl.stub("pipeline").GetRun(get).run_id == "r"
    with running("fake", build_fake({}), tls_client_ca_file=str(pki.ca), **server_tls) as ts:  # mutual TLS
        with open_channel(ts.address, Tls(ca_file=str(pki.ca))) as ch:  # no client certificate
            assert _code(pipeline_pb2_grpc.PipelineStub(ch).GetRun, get, timeout=5) == grpc.StatusCode.UNAVAILABLE
        stranger = Tls(ca_file=str(pki.ca), cert_file=str(pki.rogue_client_cert), key_file=str(pki.rogue_client_key))
        with open_channel(ts.address, stranger) as ch:
            assert _code(pipeline_pb2_grpc.PipelineStub(ch).GetRun, get, timeout=5) == grpc.StatusCode.UNAVAILABLE
        client = Tls(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
        with open_channel(ts.address, client) as ch:
            assert pipeline_pb2_grpc.PipelineStub(ch).GetRun(get, timeout=10).run_id == "r"
        # the SDK reads FAILURELENS_TLS_* when given nothing
        env = {f"FAILURELENS_TLS_{k}": str(v) for k, v in (("CA_FILE", pki.ca), ("CERT_FILE", pki.client_cert), ("KEY_FILE", pki.client_key))}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            with FailureLensClient({"pipeline": ts.address}) as fl:
                assert fl.stub("pipeline").GetRun(get).run_id == "r"
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    # settings that cannot work are refused with what to set
    with pytest.raises(TlsConfigError, match="both FAILURELENS_TLS_CERT_FILE and FAILURELENS_TLS_KEY_FILE"):
        Tls(cert_file=str(pki.server_cert)).validate()
    with pytest.raises(TlsConfigError, match="is not a readable file"):
        Tls(ca_file=str(tmp_path / "missing.pem")).validate()


def test_rate_limit_per_client_answers_resource_exhausted(tokens_file):
    with running(
        "fake", build_fake({}), auth_tokens_file=str(tokens_file), auth_token=SERVICE_TOKEN, rate_limit_per_second=5, rate_limit_burst=5
    ) as ts:
        ch = grpc.insecure_channel(ts.address)
        stub = pipeline_pb2_grpc.PipelineStub(ch)
        get = pipeline_pb2.GetRunRequest(run_id="r")
        for _ in range(5):
            stub.GetRun(get, metadata=_md(READER))
        with pytest.raises(grpc.RpcError) as ei:
            stub.GetRun(get, metadata=_md(READER))
        assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at most 5 calls a second per client" in ei.value.details() and "retry in" in ei.value.details()
        assert stub.GetRun(get, metadata=_md(WRITER)).run_id == "r"  # another client has its own budget
        for _ in range(20):  # the services' own token and health checks are not limited
            stub.GetRun(get, metadata=_md(SERVICE_TOKEN))
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
        time.sleep(0.5)  # the bucket refills at the rate
        assert stub.GetRun(get, metadata=_md(READER)).run_id == "r"
        ch.close()


def test_rate_limiter_refills_at_its_rate_and_forgets_old_clients():
    limiter = RateLimiter(rate=2, burst=3, max_clients=2)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a", now=0.0) == pytest.approx(0.5)
    assert limiter.take("a", now=0.6) == 0  # 1.2 tokens back
    limiter.take("b", now=1.0)
    limiter.take("c", now=1.0)
    assert len(limiter._buckets) == 2 and "a" not in limiter._buckets
