"""``bsecrets serve`` (#18, first step): the REST API as a real uvicorn process on
loopback, over real HTTP, with pipeline tokens: every route, the error shape and its
statuses (401, 403, 404, 400, 412, 413, 429 with Retry-After), the audit events of the
token's principal, no value in the server's log, and the refusals of ``serve``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.bsecrets_server import Server, cli, server_env

VALUES = {"db/password": "pw-server-4e1b", "api/key": "key-server-9c2d"}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server")
    cli(root, "init", "--env", "dev", "--env", "prod")
    for name, value in VALUES.items():
        cli(root, "put", name, "-e", "prod", input=value)
    cli(root, "put", "dev-only", "-e", "dev", input="dev-value")
    return root


def token(work: Path, *args: str) -> str:
    out = cli(work, "token", "issue", "-e", "prod", *args, "--json")
    return str(json.loads(out)["token"])


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[Server]:
    running = Server(work)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def writer(work: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(work, '--role', 'write')}"}


@pytest.fixture(scope="module")
def reader(work: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(work, '--role', 'read', '--only', 'db/*')}"}


def call(server: Server, method: str, path: str, headers: dict[str, str] | None = None,
         **kw: Any) -> httpx.Response:  # fmt: skip
    return httpx.request(method, server.url + path, headers=headers, timeout=30, **kw)


def error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "hint", "kind"} and body["kind"] == kind, body
    for value in VALUES.values():
        assert value not in response.text
    return body


def test_the_routes_with_a_write_token(server: Server, writer: dict[str, str]) -> None:
    assert call(server, "GET", "/v1/health", writer).json()["healthy"] is True
    envs = call(server, "GET", "/v1/envs", writer).json()
    assert [e["name"] for e in envs["environments"]] == ["dev", "prod"]
    listed = call(server, "GET", "/v1/envs/prod/secrets", writer).json()
    assert {s["name"] for s in listed} >= {"db/password", "api/key"}
    got = call(server, "GET", "/v1/envs/prod/secrets/api/key", writer).json()
    assert (got["value"], got["encoding"], got["version"]) == (VALUES["api/key"], "utf-8", 1)
    written = call(server, "PUT", "/v1/envs/prod/secrets/app/new",
                   {**writer, "If-Match": "0"}, json={"value": "created-1"})  # fmt: skip
    assert written.json()["version"] == 1
    binary = call(server, "PUT", "/v1/envs/prod/secrets/app/bin", writer,
                  json={"value_base64": "AP8A"})  # fmt: skip
    assert binary.status_code == 200, binary.text
    read = call(server, "GET", "/v1/envs/prod/secrets/app/bin", writer).json()
    assert (read["value"], read["encoding"]) == ("AP8A", "base64")
    again = call(server, "PUT", "/v1/envs/prod/secrets/app/new",
                 {**writer, "If-Match": '"1"'}, json={"value": "created-2"})  # fmt: skip
    assert again.json()["version"] == 2
    history = call(server, "GET", "/v1/envs/prod/history/app/new", writer).json()
    assert [v["version"] for v in history] == [1, 2]
    back = call(server, "POST", "/v1/envs/prod/rollback/app/new", writer,
                json={"to": 1})  # fmt: skip
    assert back.json()["version"] == 3
    assert call(server, "GET", "/v1/envs/prod/secrets/app/new", writer).json()["value"] == (
        "created-1"
    )
    assert call(server, "DELETE", "/v1/envs/prod/secrets/app/new", writer).json()["deleted"]
    error(call(server, "GET", "/v1/envs/prod/secrets/app/new", writer), 404,
          "secret_not_found")  # fmt: skip
    restored = call(server, "POST", "/v1/envs/prod/restore/app/new", writer)
    assert restored.json()["version"] == 3


def test_errors_have_one_shape_and_their_status(
    server: Server, writer: dict[str, str], reader: dict[str, str]
) -> None:
    error(call(server, "GET", "/v1/envs/prod/secrets"), 401, "token_invalid")
    error(call(server, "GET", "/v1/envs/prod/secrets", {"Authorization": "Bearer bst1.x"}),
          401, "token_invalid")  # fmt: skip
    error(call(server, "GET", "/v1/envs/dev/secrets", writer), 403, "access_denied")
    error(call(server, "GET", "/v1/envs/prod/secrets/api/key", reader), 403, "access_denied")
    error(call(server, "PUT", "/v1/envs/prod/secrets/db/password", reader,
               json={"value": "x"}), 403, "access_denied")  # fmt: skip
    error(call(server, "GET", "/v1/envs/nowhere/secrets", writer), 404, "environment_not_found")
    error(call(server, "GET", "/v1/envs/prod/secrets/no/such", writer), 404, "secret_not_found")
    conflict = call(server, "PUT", "/v1/envs/prod/secrets/db/password",
                    {**writer, "If-Match": "7"}, json={"value": "lost"})  # fmt: skip
    error(conflict, 412, "version_conflict")
    error(call(server, "PUT", "/v1/envs/prod/secrets/db/password", {**writer, "If-Match": "x"},
               json={"value": "v"}), 400, "usage_error")  # fmt: skip
    error(call(server, "PUT", "/v1/envs/prod/secrets/db/password", writer, json={}), 400,
          "usage_error")  # fmt: skip
    huge = call(server, "PUT", "/v1/envs/prod/secrets/db/password",
                {**writer, "content-type": "application/json"},
                content=b'{"value": "' + b"x" * (3 * 1024 * 1024) + b'"}')  # fmt: skip
    error(huge, 413, "value_too_large")
    assert (
        call(server, "GET", "/v1/envs/prod/secrets/db/password", reader).json()["value"]
        == (VALUES["db/password"])
    )


def test_the_token_principal_is_audited_and_no_value_is_logged(
    server: Server, work: Path, reader: dict[str, str]
) -> None:
    call(server, "GET", "/v1/envs/prod/secrets/db/password", reader)
    events = json.loads(cli(work, "audit", "log", "--json"))
    gets = [e for e in events if e["action"] == "get" and e.get("name") == "db/password"]
    assert gets and gets[-1]["actor"]["principal"].startswith("token-")
    log = server.output()
    assert "GET /v1/envs/prod/secrets/db/password" in log
    for value in (*VALUES.values(), "created-1", "created-2"):
        assert value not in log
    assert "bst1." not in log


def test_rate_limits_answer_429_with_retry_after(work: Path) -> None:
    limited = Server(work, "--rate", "3/minute")
    try:
        headers = {"Authorization": f"Bearer {token(work, '--role', 'read')}"}
        codes = [call(limited, "GET", "/v1/envs/prod/secrets", headers).status_code
                 for _ in range(4)]  # fmt: skip
        assert codes[:3] == [200, 200, 200]
        last = call(limited, "GET", "/v1/envs/prod/secrets", headers)
        error(last, 429, "rate_limited")
        assert int(last.headers["Retry-After"]) >= 1
    finally:
        limited.stop()


def test_the_openapi_document_lists_the_v1_routes(server: Server) -> None:
    spec = call(server, "GET", "/v1/openapi.json").json()
    assert spec["info"]["title"] == "bsecrets"
    assert {"/v1/health", "/v1/envs", "/v1/envs/{env}/secrets",
            "/v1/envs/{env}/secrets/{name}"} <= set(spec["paths"])  # fmt: skip


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--host", "0.0.0.0"], "without TLS"),
        (["--tls-cert", "c.pem"], "go together"),
    ],
    ids=["public-without-tls", "cert-without-key"],
)
def test_serve_refuses_what_would_expose_tokens(work: Path, args: list[str], words: str) -> None:
    done = subprocess.run([sys.executable, "-m", "bsecrets", "serve", *args], cwd=work,
                          env=server_env(work), capture_output=True, text=True, check=False,
                          timeout=60)  # fmt: skip
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and lines[0].startswith("error: ") and words in lines[0]
    assert lines[1].startswith("hint: ")


def test_the_workflow_routes(server: Server, work: Path, writer: dict[str, str]) -> None:
    who = call(server, "GET", "/v1/whoami", writer).json()
    assert who["principal"].startswith("token-") and who["kind"] == "token"
    done = call(server, "POST", "/v1/envs/prod/rotate/api/key", writer,
                json={"generate": "hex:8"})  # fmt: skip
    assert done.status_code == 200, done.text
    assert done.json()["step"] == "finished" and "pending" not in done.json()
    assert len(call(server, "GET", "/v1/envs/prod/secrets/api/key", writer).json()["value"]) == 16
    assert [r["name"] for r in call(server, "GET", "/v1/rotations", writer).json()] == ["api/key"]
    error(call(server, "POST", "/v1/envs/prod/rotate/api/key", writer, json={}), 400,
          "usage_error")  # fmt: skip
    both = {"Authorization": f"Bearer {token(work, '-e', 'dev', '--role', 'write')}"}
    plan = call(server, "POST", "/v1/promote", both,
                json={"from": "prod", "to": "dev", "only": ["db/*"], "dry_run": True})  # fmt: skip
    assert plan.status_code == 200, plan.text
    assert plan.json()["plan"]["counts"]["add"] == 1 and "promotion" not in plan.json()
    assert call(server, "GET", "/v1/break-glass", writer).json() == {"setups": [], "requests": []}
    error(call(server, "GET", "/v1/audit", writer), 403, "access_denied")


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"only": ["bad name!"]}, 400, "invalid_name"),
        ({"only": "db/*"}, 400, "usage_error"),
        ({"only": ["nothing/*"]}, 404, "secret_not_found"),
        ({"only": ["no/such"]}, 404, "secret_not_found"),
    ],
)
def test_a_bulk_read_refuses_bad_input(
    server: Server, writer: dict[str, str], body: dict[str, Any], status: int, kind: str
) -> None:
    error(call(server, "POST", "/v1/envs/prod/read", writer, json=body), status, kind)


def test_a_bulk_read_is_one_audited_read_within_the_scope(
    server: Server, work: Path, reader: dict[str, str]
) -> None:
    got = call(server, "POST", "/v1/envs/prod/read", reader, json={"only": []})
    assert got.status_code == 200, got.text
    assert got.json()["values"] == {"db/password": {"value": VALUES["db/password"],
                                                    "encoding": "utf-8"}}  # fmt: skip
    error(call(server, "POST", "/v1/envs/prod/read", reader, json={"only": ["api/key"]}),
          403, "access_denied")  # fmt: skip
    reads = [e for e in json.loads(cli(work, "audit", "log", "--json")) if e["action"] == "read"]
    assert reads[-2]["outcome"] == "ok" and reads[-2]["names"] == ["db/password"]
    assert reads[-1]["outcome"] == "denied"


def test_a_body_without_a_length_is_bounded_as_it_is_read(
    server: Server, writer: dict[str, str]
) -> None:
    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"value": "'
        for _ in range(total // 65536):
            yield b"x" * 65536
        yield b'"}'

    url = "/v1/envs/prod/secrets/chunked/value"
    headers = {**writer, "content-type": "application/json"}
    huge = call(server, "PUT", url, headers, content=chunks(3 * 1024 * 1024))
    error(huge, 413, "value_too_large")
    assert "content-length" not in huge.request.headers  # sent chunked
    small = call(server, "PUT", url, headers, content=chunks(65536))
    assert small.status_code == 200, small.text
