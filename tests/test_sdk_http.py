"""The SDK over HTTP (#18): ``Client(url=..., token=...)`` against a real ``bsecrets
serve`` process: the same methods and results as the local client, check-and-set, the
same exception kinds (from the server's JSON errors), and an unreachable server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.bsecrets_server import Server, cli

from bsecrets import Client
from bsecrets.errors import (
    AccessDenied,
    BackendUnavailable,
    BsecretsError,
    SecretNotFound,
    TokenInvalid,
    UsageError,
    VersionConflict,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    """A server, a write token for prod and a read token for prod's db/* only."""
    work = tmp_path_factory.mktemp("sdk-http")
    cli(work, "init", "--env", "dev", "--env", "prod")
    cli(work, "put", "db/password", "-e", "prod", input="pw-http-31")
    cli(work, "put", "api/key", "-e", "prod", input="key-http-42")
    issue = ["token", "issue", "-e", "prod", "--json"]
    write = json.loads(cli(work, *issue, "--role", "write"))["token"]
    read = json.loads(cli(work, *issue, "--role", "read", "--only", "db/*"))["token"]
    server = Server(work)
    yield server, write, read
    server.stop()


def test_the_same_methods_over_http(served: tuple[Server, str, str]) -> None:
    server, write, _ = served
    with Client(url=server.url, token=write, env="prod", cache_ttl=0) as c:
        assert c.env == "prod"
        assert c.value("db/password") == "pw-http-31"
        secret = c.get("api/key")
        assert (secret.name, secret.version, secret.value) == ("api/key", 1, b"key-http-42")
        assert [s.name for s in c.ls()] == ["api/key", "db/password"]
        assert [s.name for s in c.ls("db/")] == ["db/password"]
        assert c.put("app/bytes", b"\x00\xffraw").version == 1
        assert c.get("app/bytes").value == b"\x00\xffraw"
        assert c.put("api/key", "key-2", if_version=1).version == 2
        with pytest.raises(VersionConflict):
            c.put("api/key", "key-3", if_version=1)
        assert [v.version for v in c.history("api/key")] == [1, 2]
        assert c.health()["healthy"] is True


def test_environ_rotate_and_promote_over_http(
    served: tuple[Server, str, str], tmp_path: Path
) -> None:
    server, write, read = served
    with Client(url=server.url, token=write, env="prod", cache_ttl=0) as c:
        before = c.put("app/rotated", "first").version
        env = c.environ(prefix="APP_")
        assert env["APP_DB_PASSWORD"] == c.value("db/password")
        assert set(c.environ(["db/*"])) == {"DB_PASSWORD"}
        with pytest.raises(SecretNotFound):
            c.environ(["nothing/*"])  # a glob that matches nothing is an error, as on the CLI
        done = c.rotate("app/rotated", generate="hex:8")
        assert done["step"] == "finished" and done["name"] == "app/rotated", done
        assert "value" not in json.dumps(done)
        after = c.get("app/rotated")
        assert after.version == before + 1 and len(after.value) == 16
        with pytest.raises(AccessDenied):  # the write token has no grant on dev
            c.promote("prod", "dev", only=["db/*"], dry_run=True)
        with pytest.raises(UsageError):
            c.promote("prod", "dev", map_file=tmp_path / "map.yaml")
    with Client(url=server.url, token=read, env="prod", cache_ttl=0) as scoped:
        assert set(scoped.environ()) == {"DB_PASSWORD"}  # its scope: db/* only
        with pytest.raises(AccessDenied):
            scoped.environ(["api/key"])


def test_errors_become_the_same_classes(served: tuple[Server, str, str]) -> None:
    server, write, read = served
    with Client(url=server.url, token=read, env="prod") as reader:
        with pytest.raises(AccessDenied):
            reader.value("api/key")
        with pytest.raises(AccessDenied):
            reader.put("db/password", "x")
    with (
        Client(url=server.url, token=write, env="prod") as writer,
        pytest.raises(SecretNotFound) as caught,
    ):
        writer.value("no/such")
    assert caught.value.kind == "secret_not_found" and caught.value.hint
    with (
        Client(url=server.url, token="bst1.wrong", env="prod") as wrong,
        pytest.raises(TokenInvalid),
    ):
        wrong.ls()


def test_an_unreachable_server_is_backend_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        Client(url=f"http://127.0.0.1:{port}", token="bst1.x", env="prod") as c,
        pytest.raises(BackendUnavailable),
    ):
        c.ls()


def test_a_url_client_needs_a_token_and_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSECRETS_TOKEN", raising=False)
    with pytest.raises(UsageError):
        Client(url="http://127.0.0.1:1")
    with pytest.raises(BsecretsError):
        Client(url="ftp://x", token="bst1.x")


def test_no_vault_is_opened_for_a_url_client(
    served: tuple[Server, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no profile anywhere near
    monkeypatch.setenv("BSECRETS_PROFILE", str(tmp_path / "none.yaml"))
    server, write, _ = served
    with Client(url=server.url, token=write, env="prod") as c:
        assert c.value("db/password") == "pw-http-31"
