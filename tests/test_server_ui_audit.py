"""The web UI's audit page (server/ui_audit.py): the owner, signed in with its
passphrase, filters the log as ``audit log``/``audit search`` do and verifies the chain
from the page; a tampered event is shown as the problem ``audit verify`` finds; a
token is refused; bad filters are the error page. Real server, real HTTP (the browser
flows of the UI are in test_server_ui_people.py)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.bsecrets_server import Server, cli, server_env
from helpers.values import PASSPHRASE

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui-audit")
    cli(root, "init", "--env", "dev", "--env", "prod")
    cli(root, "put", "db/password", "-e", "prod", input="pw-audit-ui-1")
    cli(root, "put", "api/key", "-e", "dev", input="key-audit-ui-2")
    cli(root, "get", "db/password", "-e", "prod")
    dev = json.loads(cli(root, "token", "issue", "-e", "dev", "--role", "read", "--json"))
    denied = subprocess.run(
        [sys.executable, "-m", "bsecrets", "get", "db/password", "-e", "prod"], cwd=root,
        env=server_env(root, BSECRETS_TOKEN=dev["token"]), capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert denied.returncode == 4, denied.stderr  # a denied event for the outcome filter
    return root


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[Server]:
    running = Server(work)
    yield running
    running.stop()


class Browserless:
    """A UI session over plain HTTP: signs in through the person form."""

    def __init__(self, server: Server) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=60)
        self.csrf = ""

    def sign_in(self, principal: str, passphrase: str) -> httpx.Response:
        self._csrf_from(self.http.get("/ui/signin").text)
        done = self.http.post("/ui/signin/person", data={
            "principal": principal, "passphrase": passphrase, "csrf": self.csrf,
        })  # fmt: skip
        return done

    def sign_in_token(self, token: str) -> httpx.Response:
        self._csrf_from(self.http.get("/ui/signin").text)
        return self.http.post("/ui/signin", data={"token": token, "csrf": self.csrf})

    def audit(self, **filters: str) -> httpx.Response:
        page = self.http.get("/ui/audit", params=filters)
        self._csrf_from(page.text)
        return page

    def verify(self, csrf: bool = True) -> httpx.Response:
        return self.http.post("/ui/audit/verify", data={"csrf": self.csrf} if csrf else {})

    def _csrf_from(self, html: str) -> None:
        found = CSRF.search(html)
        if found:
            self.csrf = found.group(1)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def owner(server: Server) -> Iterator[Browserless]:
    client = Browserless(server)
    assert client.sign_in("owner", PASSPHRASE).status_code == 303
    yield client
    client.close()


def rows(page: httpx.Response) -> list[list[str]]:
    body = (
        page.text.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page.text else ""
    )
    return [re.findall(r"<td>(.*?)</td>", row, re.S) for row in body.split("<tr>")[1:]]


def test_the_owner_filters_the_log_as_the_cli_does(owner: Browserless, work: Path) -> None:
    every = owner.audit()
    assert every.status_code == 200, every.text
    assert rows(every)
    puts = owner.audit(action="put")
    assert puts.status_code == 200
    assert {r[1] for r in rows(puts)} == {"put"}
    assert {r[2] for r in rows(owner.audit(action="put", env="prod"))} == {"prod"}
    found = owner.audit(q="api/key")
    assert all("api/key" in "".join(r) for r in rows(found)) and rows(found)
    denied = rows(owner.audit(outcome="denied"))
    assert denied and {r[5] for r in denied} == {"denied"}
    looks = [e["action"] for e in json.loads(cli(work, "audit", "log", "--json"))]
    assert "audit.log" in looks and "audit.search" in looks  # each look is recorded
    for value in ("pw-audit-ui-1", "key-audit-ui-2"):
        assert value not in every.text


@pytest.mark.parametrize(
    ("filters", "status", "words"),
    [
        ({"since": "yesterday-ish"}, 400, "since"),
        ({"since": "1d", "until": "2d"}, 400, "since is not before until"),
        ({"env": "nowhere"}, 404, "nowhere"),
        ({"outcome": "maybe"}, 400, "outcome"),
    ],
)
def test_bad_filters_are_the_error_page(
    owner: Browserless, filters: dict[str, str], status: int, words: str
) -> None:
    page = owner.audit(**filters)
    assert page.status_code == status, page.text
    assert words in page.text


def test_verify_from_the_page_and_a_tampered_event_shown_as_the_problem(
    server: Server, tmp_path: Path
) -> None:
    work = tmp_path / "tampered"
    work.mkdir()
    cli(work, "init", "--env", "prod")
    cli(work, "put", "db/password", "-e", "prod", input="pw-tamper-ui")
    alone = Server(work)
    client = Browserless(alone)
    try:
        assert client.sign_in("owner", PASSPHRASE).status_code == 303
        client.audit()
        assert client.verify(csrf=False).status_code == 403  # no CSRF token: no check run
        ok = client.verify()
        assert ok.status_code == 200, ok.text
        assert "The chain verifies:" in ok.text
        with sqlite3.connect(work / ".bsecrets" / "vault.db") as db:
            seq, record = db.execute("SELECT seq, record FROM audit_events ORDER BY seq LIMIT 1 "
                                     "OFFSET 1").fetchone()  # fmt: skip
            flipped = bytes([record[0] ^ 1]) + record[1:]
            db.execute("UPDATE audit_events SET record = ? WHERE seq = ?", (flipped, seq))
        bad = client.verify()
        assert "The chain does not verify:" in bad.text, bad.text
        assert f"at event {seq}" in bad.text
        assert "pw-tamper-ui" not in bad.text
    finally:
        client.close()
        alone.stop()


def test_a_token_is_refused_the_audit_page(server: Server, work: Path) -> None:
    token = json.loads(cli(work, "token", "issue", "-e", "prod", "--role", "read", "--json"))
    client = Browserless(server)
    try:
        assert client.sign_in_token(token["token"]).status_code == 303
        page = client.audit(action="put")
        assert page.status_code == 403 and "Not for this token" in page.text
        assert client.verify().status_code == 403
    finally:
        client.close()
