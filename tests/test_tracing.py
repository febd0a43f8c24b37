"""OpenTelemetry traces (issue #19, bsecrets/tracing, docs/observability.md): a span
per audited operation, a child span per HTTP request to Vault (real OpenBao) and AWS
(moto's server), never a value, a name or a token in a span; off (nothing imported:
tests/test_fast_path.py) unless asked for; asked for without opentelemetry, one warning.

The spans go to an in-memory exporter through ``bsecrets.tracing.install``; the
commands run in-process (``invoke``) except where the process is the subject.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke
from helpers.moto_server import REGION, MotoServer
from helpers.openbao_server import OpenBao
from helpers.values import CANARY
from helpers.vault_env import unique_prefix, vault_env, write_profile
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bsecrets import tracing
from bsecrets.tracing.calls import vault_call
from bsecrets.tracing.provider import from_environment, resource

NAME = "db/primary-pw"  # the secret's name: in no span either
ALICE = "alice's own long passphrase 1"
OTEL_VARIABLES = ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")  # fmt: skip


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Traces on (BSECRETS_OTEL=1), into memory; off again afterwards."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    monkeypatch.setenv("BSECRETS_OTEL", "1")
    try:
        yield exporter
    finally:
        tracing.install(None)
        provider.shutdown()


def ok(args: list[str], input: str | None = None, **env: str) -> str:
    result = invoke(args, input=input, env=env or None)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def taken(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    finished = list(exporter.get_finished_spans())
    exporter.clear()
    return finished


def summary(span: ReadableSpan) -> tuple[str, dict[str, Any], StatusCode]:
    """Name, attributes (the request id only checked to be there), status."""
    attributes = dict(span.attributes or {})
    assert len(str(attributes.pop("bsecrets.request_id"))) == 16
    return span.name, attributes, span.status.status_code


def everything_said(span: ReadableSpan) -> str:
    """Every string a span carries: name, attributes, events, links, resource."""
    parts = [span.name, str(span.status.description or "")]
    parts += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
    for event in span.events:
        parts += [event.name, *(f"{k}={v}" for k, v in (event.attributes or {}).items())]
    parts += [f"{k}={v}" for k, v in span.resource.attributes.items()]
    return "\n".join(parts)


def assert_says_nothing_of(finished: list[ReadableSpan], *secrets: str) -> None:
    assert finished
    for span in finished:
        said = everything_said(span)
        for secret in secrets:
            assert secret not in said, (secret, span.name)


# --- (a) the operations of one local sequence -----------------------------------------


def test_local_operations_give_one_span_each_with_their_outcome(
    vault: Path, spans: InMemorySpanExporter
) -> None:
    ok(["access", "principal", "add", "alice"], BSECRETS_NEW_PASSPHRASE=ALICE)
    taken(spans)
    ok(["put", NAME], input=CANARY)
    assert ok(["get", NAME]) == CANARY + "\n"
    denied = invoke(["--as", "alice", "get", NAME], env={"BSECRETS_PASSPHRASE": ALICE})
    assert denied.exit_code == 4
    assert invoke(["get", "db/missing"]).exit_code == 3
    finished = taken(spans)
    local = {"bsecrets.env": "dev", "bsecrets.remote": False, "bsecrets.backend": "local"}
    assert [summary(s) for s in finished] == [
        ("bsecrets.put", {"bsecrets.action": "put", **local, "bsecrets.outcome": "ok"},
         StatusCode.UNSET),
        ("bsecrets.get", {"bsecrets.action": "get", **local, "bsecrets.outcome": "ok"},
         StatusCode.UNSET),
        # refused by the access checks before the operation: its event, its span
        ("bsecrets.get", {"bsecrets.action": "get", "bsecrets.env": "dev",
                          "bsecrets.outcome": "denied", "error.type": "access_denied"},
         StatusCode.ERROR),
        ("bsecrets.get", {"bsecrets.action": "get", **local, "bsecrets.outcome": "not_found",
                          "error.type": "secret_not_found"}, StatusCode.ERROR),
    ]  # fmt: skip
    assert all(s.parent is None and s.kind == SpanKind.INTERNAL for s in finished)
    assert len({s.context.trace_id for s in finished}) == 4  # one command, one trace
    assert_says_nothing_of(finished, CANARY, NAME, "db/missing", ALICE)


def test_flush_sends_what_the_batch_holds(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    tracing.install(provider)
    monkeypatch.setenv("BSECRETS_OTEL", "1")
    try:
        ok(["put", NAME], input=CANARY)
        assert exporter.get_finished_spans() == ()  # still in the batch
        tracing.flush()
        assert [s.name for s in exporter.get_finished_spans()] == ["bsecrets.put"]
    finally:
        tracing.install(None)
        provider.shutdown()


# --- (b) Vault: the operation's span and its requests --------------------------------


def status_of(span: ReadableSpan) -> object:
    return dict(span.attributes or {}).get("http.response.status_code")


def children_of(operation: ReadableSpan, finished: list[ReadableSpan]) -> list[ReadableSpan]:
    assert operation.parent is None
    context = operation.context
    below = [s for s in finished if s.parent is not None]
    assert below and all(s.context.trace_id == context.trace_id for s in below)
    assert all(s.parent is not None and s.parent.span_id == context.span_id for s in below)
    assert all(s.kind == SpanKind.CLIENT for s in below)
    return below


def test_a_vault_get_has_its_requests_as_child_spans(
    vault: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao, spans: InMemorySpanExporter
) -> None:
    prefix = unique_prefix()
    write_profile(vault, monkeypatch, {"staging": vault_env(openbao.address, prefix)})
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    ok(["put", NAME, "-e", "staging"], input=CANARY)
    wrote = taken(spans)
    assert ok(["get", NAME, "-e", "staging"]) == CANARY + "\n"
    read = taken(spans)
    assert invoke(["get", "db/missing", "-e", "staging"]).exit_code == 3
    missing = taken(spans)

    (operation,) = [s for s in read if s.parent is None]
    assert summary(operation) == (
        "bsecrets.get",
        {"bsecrets.action": "get", "bsecrets.env": "staging", "bsecrets.remote": True,
         "bsecrets.backend": "vault", "bsecrets.outcome": "ok"},
        StatusCode.UNSET,
    )  # fmt: skip
    requests = children_of(operation, read)
    host, port = openbao.address.removeprefix("http://").split(":")
    assert {dict(s.attributes or {})["server.address"] for s in requests} == {host}
    assert {dict(s.attributes or {})["server.port"] for s in requests} == {int(port)}
    assert [(s.name, status_of(s)) for s in requests] == [("vault GET kv.data", 200)]
    assert requests[0].status.status_code == StatusCode.UNSET

    (operation,) = [s for s in missing if s.parent is None]
    assert operation.status.status_code == StatusCode.ERROR
    assert dict(operation.attributes or {})["error.type"] == "secret_not_found"
    first = children_of(operation, missing)[0]  # then the mount is checked again
    assert (first.name, status_of(first), first.status.status_code) == (
        "vault GET kv.data",
        404,
        StatusCode.ERROR,
    )

    for name in ("a/one", "a/two"):
        ok(["put", name, "-e", "staging"], input="x")
    taken(spans)
    assert len(json.loads(ok(["ls", "-e", "staging", "--json"]))) == 3
    listed = taken(spans)  # the metadata of each, read by worker threads
    (operation,) = [s for s in listed if s.parent is None]
    assert [s.name for s in children_of(operation, listed)].count("vault GET kv.metadata") == 3

    write_calls = [s.name for s in children_of(wrote[-1], wrote)]
    assert "vault POST kv.data" in write_calls and "vault PATCH kv.metadata" in write_calls
    everything = wrote + read + missing + listed
    assert_says_nothing_of(everything, CANARY, NAME, "a/one", prefix, openbao.root_token)


def test_vault_calls_are_named_without_the_secret() -> None:
    assert vault_call("GET", f"/v1/secret/data/app/{NAME}?version=2", "secret") == "kv.data"
    assert vault_call("LIST", "/v1/kv/team/metadata/app/", "kv/team") == "kv.metadata"
    assert vault_call("GET", "/v1/secret/weird/x", "secret") == "kv.other"
    assert vault_call("GET", "/v1/sys/internal/ui/mounts/secret", "secret") == "sys.internal"
    assert vault_call("POST", "/v1/auth/userpass/login/someone", "secret") == "auth.login"
    assert vault_call("GET", "/v1/auth/token/lookup-self", "secret") == "auth.lookup-self"
    assert vault_call("GET", f"/v1/other/{NAME}", "secret") == "other"


# --- (c) AWS: the operation's span and its requests ----------------------------------


def test_an_aws_get_has_its_requests_as_child_spans(
    vault: Path, aws: MotoServer, spans: InMemorySpanExporter
) -> None:
    (vault / "bsecrets.yaml").write_text(
        "version: 1\ndefault_env: dev\nenvironments:\n  dev:\n    backend: local\n"
        f"  prod:\n    backend: aws\n    region: {REGION}\n    prefix: app/\n"
        f"    endpoint_url: {aws.endpoint}\n"
    )
    ok(["put", NAME, "-e", "prod"], input=CANARY)
    wrote = taken(spans)
    assert ok(["get", NAME, "-e", "prod"]) == CANARY + "\n"
    read = taken(spans)

    (operation,) = [s for s in read if s.parent is None]
    attributes = dict(operation.attributes or {})
    assert (attributes["bsecrets.backend"], attributes["bsecrets.outcome"]) == ("aws", "ok")
    requests = children_of(operation, read)
    assert [s.name for s in requests] == [
        "aws Secrets Manager DescribeSecret",
        "aws Secrets Manager GetSecretValue",
    ]
    for span in requests:
        said = dict(span.attributes or {})
        assert said["rpc.system"] == "aws-api" and said["cloud.region"] == REGION
        assert said["http.response.status_code"] == 200 and said["bsecrets.backend"] == "aws"
        assert said["server.address"] == "127.0.0.1"
    assert_says_nothing_of(wrote + read, CANARY, NAME, "app/")


# --- (e), (f) off unless asked for; asked for without opentelemetry ------------------


@pytest.mark.parametrize(
    ("environ", "asked"),
    [
        ({}, False),
        ({"BSECRETS_OTEL": "1"}, True),
        ({"BSECRETS_OTEL": "0", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "BSECRETS_OTEL": "1"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_SDK_DISABLED": "true", "BSECRETS_OTEL": "1"}, False),
        ({"OTEL_SERVICE_NAME": "app"}, False),  # names a service, asks for no exporter
    ],
)
def test_what_asks_for_traces(environ: dict[str, str], asked: bool) -> None:
    assert tracing.requested(environ) is asked
    if not asked:
        assert tracing.observers_from(environ, pytest.fail) == []


@pytest.mark.parametrize(
    ("environ", "warning"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin is not supported"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTLP protocol 'http/json' is not"),
    ],
)
def test_an_exporter_that_can_not_be_made_is_one_warning(
    environ: dict[str, str], warning: str
) -> None:
    said: list[str] = []
    assert from_environment(environ, said.append) is None
    assert len(said) == 1 and said[0].startswith(warning), said


def test_the_resource_names_the_service() -> None:
    assert resource({}).attributes["service.name"] == "bsecrets"
    given = {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,team=a%2Cb"}
    assert {k: resource(given).attributes[k] for k in ("service.name", "team")} == {
        "service.name": "from-attrs",
        "team": "a,b",
    }
    assert resource({**given, "OTEL_SERVICE_NAME": "job"}).attributes["service.name"] == "job"


def test_no_span_where_the_environment_does_not_ask(
    vault: Path, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BSECRETS_OTEL")
    assert tracing.observers_from(dict(os.environ), pytest.fail) == []
    ok(["put", NAME], input=CANARY)
    assert ok(["get", NAME]) == CANARY + "\n"
    assert taken(spans) == []


def run_get(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``bsecrets get NAME`` as a real process (its exit flushes the spans)."""
    return subprocess.run(
        [sys.executable, "-m", "bsecrets", "get", NAME], capture_output=True, text=True,
        env={**os.environ, **environ}, timeout=60, check=False,
    )  # fmt: skip


SITE_WITHOUT_OTEL = """
import sys
sys.modules["opentelemetry"] = None  # import opentelemetry... raises ImportError
"""


def test_asked_for_without_opentelemetry_warns_once_and_works(vault: Path, tmp_path: Path) -> None:
    ok(["put", NAME], input=CANARY)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE_WITHOUT_OTEL)
    result = run_get({"BSECRETS_OTEL": "1", "PYTHONPATH": str(site)})
    assert (result.returncode, result.stdout) == (0, CANARY + "\n"), result.stderr
    assert result.stderr.splitlines() == [
        "warning: traces were asked for but opentelemetry is not installed: "
        "pip install 'bsecrets[otel]'"
    ]


def test_console_spans_go_to_stderr_and_are_flushed_at_exit(vault: Path) -> None:
    ok(["put", NAME], input=CANARY)
    result = run_get({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "ci-job"})
    assert (result.returncode, result.stdout) == (0, CANARY + "\n"), result.stderr
    assert '"name": "bsecrets.get"' in result.stderr
    assert '"service.name": "ci-job"' in result.stderr
    assert CANARY not in result.stderr and NAME not in result.stderr


def test_exec_without_masking_sends_its_spans_before_the_command_takes_over(
    vault: Path,
) -> None:
    """``exec --no-mask`` replaces the process (no exit-time flush): the batch goes first."""
    ok(["put", NAME], input=CANARY)
    result = subprocess.run(
        [sys.executable, "-m", "bsecrets", "exec", "--no-mask", "--", "true"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "console"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"name": "bsecrets.exec"' in result.stderr
    assert CANARY not in result.stderr and NAME not in result.stderr


# --- the default exporter: OTLP over HTTP, flushed before the command exits ------------


class Collector:
    """A loopback OTLP/HTTP receiver: the raw bodies POSTed to /v1/traces."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/v1/traces":
                    collector.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def span_names(self) -> list[str]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        names = []
        for body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    names += [span.name for span in scope_spans.spans]
        return names


def test_otlp_is_the_default_and_flushed_at_exit(vault: Path) -> None:
    ok(["put", NAME], input=CANARY)
    collector = Collector()
    thread = threading.Thread(target=collector.server.serve_forever, daemon=True)
    thread.start()
    try:
        result = run_get({"BSECRETS_OTEL": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint})
    finally:
        collector.server.shutdown()
        collector.server.server_close()
    assert (result.returncode, result.stdout, result.stderr) == (0, CANARY + "\n", "")
    assert collector.span_names() == ["bsecrets.get"]
    for body in collector.bodies:
        assert CANARY.encode() not in body and NAME.encode() not in body


def test_a_collector_that_is_down_is_one_warning(vault: Path) -> None:
    ok(["put", NAME], input=CANARY)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = run_get({"OTEL_EXPORTER_OTLP_ENDPOINT": closed})
    assert (result.returncode, result.stdout) == (0, CANARY + "\n")
    (line,) = result.stderr.splitlines()
    assert line.startswith("warning: OpenTelemetry could not export every trace")
