"""The owner's and the custodians' routes of ``bsecrets serve`` (#18;
bsecrets/server/admin_routes.py): a real uvicorn process, real HTTP, people signed in
with ``POST /v1/sign-in``.

The owner searches, verifies and reports on the audit log and lists principals, grants
and tokens, with the CLI's answers; a pipeline token and a signed-in principal are
refused the audit log (403) as on the command line, and get the listings the command
line gives them. Break-glass end to end: dana requests (CLI or HTTP), the custodians
sign in and approve with their one-time codes over HTTP, dana activates on the command
line and reads prod; a wrong code is 403 and audited; no passphrase, code or share
word is in the server's log or a response. Every bad input of every route: one test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.bsecrets_server import Server, cli, server_env
from helpers.totp import Authenticator, events
from helpers.values import PASSPHRASE
from test_break_glass import (
    PASS,
    SECRET,
    activate,
    as_,
    in_session,
    mfa,  # noqa: F401 - the custodians, enrolled (test_break_glass's fixture)
    ok,
    request,
    request_of,
    status,
    team,  # noqa: F401 - principals and prod's 2-of-3 break-glass (test_break_glass's)
)

ALICE = "alice's own passphrase 7d"
VALUE = "pw-admin-5b9e"
OUTSIDE = "1:" + "ab" * 32  # a well-formed anchor no chain of these tests has


# --- a vault with the owner, alice (read on dev) and a token ---------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server-admin")
    cli(root, "init", "--env", "dev", "--env", "prod")
    cli(root, "put", "db/password", "-e", "prod", input=VALUE)
    cli(root, "access", "principal", "add", "alice", env_extra={"BSECRETS_NEW_PASSPHRASE": ALICE})
    cli(root, "access", "grant", "alice", "-e", "dev", "--role", "read")
    return root


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[Server]:
    running = Server(work)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def token(work: Path) -> dict[str, Any]:
    issued: dict[str, Any] = json.loads(
        cli(work, "token", "issue", "-e", "prod", "--role", "write", "--name", "ci", "--json")
    )
    return issued


def signed_in(server: Server, principal: str, passphrase: str) -> dict[str, str]:
    done = httpx.post(server.url + "/v1/sign-in", timeout=60,
                      json={"principal": principal, "passphrase": passphrase})  # fmt: skip
    assert done.status_code == 200, done.text
    return {"Authorization": f"Bearer {done.json()['token']}"}


@pytest.fixture(scope="module")
def owner(server: Server) -> dict[str, str]:
    return signed_in(server, "owner", PASSPHRASE)


@pytest.fixture(scope="module")
def alice(server: Server) -> dict[str, str]:
    return signed_in(server, "alice", ALICE)


@pytest.fixture(scope="module")
def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}


def call(server: Server, method: str, path: str, headers: dict[str, str] | None = None,
         **kw: Any) -> httpx.Response:  # fmt: skip
    return httpx.request(method, server.url + path, headers=headers, timeout=60, **kw)


def fine(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: httpx.Response, status: int, kind: str, *words: str) -> dict[str, Any]:
    """The one error shape, with ``status``, ``kind`` and ``words`` in its message."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "hint", "kind"} and body["kind"] == kind, body
    assert all(w in body["error"] for w in words), body
    return body


def audit(work: Path, action: str) -> list[dict[str, Any]]:
    found = json.loads(cli(work, "audit", "log", "--json", "--action", action))
    return [e for e in found if e["action"] == action]


def cli_as(work: Path, variables: dict[str, str], *args: str) -> str:
    """The CLI in ``work`` with ``variables`` over the test's (another principal's)."""
    env = {**server_env(work), **variables}
    if "BSECRETS_TOKEN" in variables:
        del env["BSECRETS_PASSPHRASE"]
    done = subprocess.run([sys.executable, "-m", "bsecrets", *args], cwd=work, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def no_secret_in(server: Server, *texts: str) -> None:
    log = server.output()
    for secret in (PASSPHRASE, ALICE, VALUE, *PASS.values(), SECRET):
        assert secret not in log
        assert all(secret not in text for text in texts)


# --- 1. the audit log ----------------------------------------------------------------


def test_the_owner_searches_the_log_as_the_cli_does(
    server: Server, work: Path, owner: dict[str, str]
) -> None:
    query = "q=db/password&env=prod&action=put&outcome=ok&actor=owner&since=30d&limit=5"
    found = fine(call(server, "GET", f"/v1/audit/search?{query}", owner))
    assert found and all(e["name"] == "db/password" for e in found)
    same = cli(work, "audit", "search", "db/password", "-e", "prod", "--action", "put",
               "--outcome", "ok", "--actor", "owner", "--since", "30d", "-n", "5",
               "--json")  # fmt: skip
    assert found == json.loads(same)
    filtered = fine(call(server, "GET", "/v1/audit/search?action=access.*&limit=1", owner))
    assert [e["action"] for e in filtered] == ["access.grant"]
    assert fine(call(server, "GET", "/v1/audit?limit=2", owner))  # the first route stands
    searches = [e for e in audit(work, "audit.search") if e["actor"].get("via")]
    assert searches[-1]["actor"]["via"] == "bsecrets serve from 127.0.0.1"
    assert audit(work, "audit.log")  # without q: 'audit log' with the filters
    no_secret_in(server, json.dumps(found))


def test_the_owner_verifies_a_clean_log_and_reports(
    server: Server, work: Path, owner: dict[str, str]
) -> None:
    checked = fine(call(server, "POST", "/v1/audit/verify", owner))
    assert checked["ok"] is True and checked["problem"] is None and checked["events"] > 0
    assert set(checked) == set(json.loads(cli(work, "audit", "verify", "--json")))
    live = fine(call(server, "POST", "/v1/audit/verify", owner, json={"skip_archives": True}))
    assert live["ok"] is True and live["archived_events"] == 0
    anchored = fine(call(server, "POST", "/v1/audit/verify", owner,
                         json={"anchor": checked["head"]}))  # fmt: skip
    assert anchored["ok"] is True
    report = fine(call(server, "GET", "/v1/audit/report?since=30d", owner))
    same = json.loads(cli(work, "audit", "report", "--format", "json", "--since", "30d"))
    assert set(report) == set(same) and report["chain"]["ok"] is True
    verified = [e for e in audit(work, "audit.verify") if e["actor"].get("via")]
    assert verified[-1]["actor"]["via"] == "bsecrets serve from 127.0.0.1"
    assert audit(work, "audit.report")


def test_a_log_that_does_not_match_its_anchor_is_the_integrity_error(
    server: Server, owner: dict[str, str]
) -> None:
    failed = call(server, "POST", "/v1/audit/verify", owner, json={"anchor": OUTSIDE})
    body = error(failed, 500, "audit_integrity_error", "audit log: anchor at event 1")
    assert body["hint"] and "outside bsecrets" in body["hint"]


@pytest.mark.parametrize("who", ["token", "alice"])
def test_a_token_and_a_principal_are_refused_the_log_as_on_the_cli(
    server: Server, work: Path, who: str, bearer: dict[str, str], alice: dict[str, str]
) -> None:
    headers = bearer if who == "token" else alice
    for method, path in [("GET", "/v1/audit/search?q=x"), ("GET", "/v1/audit/search"),
                         ("POST", "/v1/audit/verify"), ("GET", "/v1/audit/report"),
                         ("GET", "/v1/audit/search?since=nonsense&env=nowhere"),  # who first
                         ("GET", "/v1/audit/report?until=nonsense")]:  # fmt: skip
        error(call(server, method, path, headers), 403, "access_denied", "the owner's to read")
    principal = "alice" if who == "alice" else "token-"
    searched = [e for e in audit(work, "audit.search") if e["actor"].get("via")]
    assert searched[-1]["actor"]["principal"].startswith(principal)  # audited, as the CLI
    assert searched[-1]["outcome"] == "denied"  # a refusal, not an ok look
    reported = audit(work, "audit.report")[-1]
    assert reported["actor"]["principal"].startswith(principal)
    assert reported["outcome"] == "denied"
    verified = [e for e in audit(work, "audit.verify") if e["actor"].get("via")]
    assert verified[-1]["outcome"] == "denied"


@pytest.mark.parametrize(
    ("query", "status", "kind", "words"),
    [
        ("q=%20%20", 400, "usage_error", "empty search text"),
        ("q=", 400, "usage_error", "q"),
        ("since=yesterday", 400, "usage_error", "invalid since 'yesterday'"),
        ("until=2026-13-45", 400, "usage_error", "invalid until"),
        ("since=0s", 400, "usage_error", "longer than zero"),
        ("since=99999999d", 400, "usage_error", "longer than the maximum"),
        ("since=1d&until=2d", 400, "usage_error", "since is not before until"),
        ("outcome=maybe", 400, "usage_error", "outcome"),
        ("limit=0", 400, "usage_error", "limit"),
        ("limit=10001", 400, "usage_error", "limit"),
        ("limit=ten", 400, "usage_error", "limit"),
        ("env=Not%20One", 400, "usage_error", "env"),
        ("env=nowhere", 404, "environment_not_found", "nowhere"),
        ("name=", 400, "usage_error", "name"),
        ("action=" + "a" * 257, 400, "usage_error", "action"),
        ("actor=" + "a" * 257, 400, "usage_error", "actor"),
        ("since=" + "1" * 65, 400, "usage_error", "since"),
    ],
)
def test_bad_search_values_are_refused(
    server: Server, owner: dict[str, str], query: str, status: int, kind: str, words: str
) -> None:
    error(call(server, "GET", f"/v1/audit/search?{query}", owner), status, kind, words)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"anchor": "nope"}, "anchor"),
        ({"anchor": "1:abc"}, "anchor"),
        ({"anchor": "9" * 19 + ":" + "ab" * 32}, "anchor"),
        ({"skip_archives": "sometimes"}, "skip_archives"),
        ([1, 2], "body"),
    ],
)
def test_bad_verify_options_are_refused(
    server: Server, owner: dict[str, str], body: Any, words: str
) -> None:
    error(call(server, "POST", "/v1/audit/verify", owner, json=body), 400, "usage_error", words)


def test_a_verify_body_that_is_not_json_is_refused(server: Server, owner: dict[str, str]) -> None:
    headers = {**owner, "content-type": "application/json"}
    error(call(server, "POST", "/v1/audit/verify", headers, content=b"{not json"), 400,
          "usage_error")  # fmt: skip


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("since=soon", "invalid since 'soon'"),
        ("until=31/12/2026", "invalid until"),
        ("since=2d&until=3d", "since is not before until"),
        ("until=", "until"),
    ],
)
def test_bad_report_values_are_refused(
    server: Server, owner: dict[str, str], query: str, words: str
) -> None:
    error(call(server, "GET", f"/v1/audit/report?{query}", owner), 400, "usage_error", words)


# --- 2. principals, grants, tokens --------------------------------------------------------


def test_the_owner_lists_principals_grants_and_tokens_as_the_cli_does(
    server: Server, work: Path, owner: dict[str, str], token: dict[str, Any]
) -> None:
    listed = fine(call(server, "GET", "/v1/access/principals", owner))
    assert listed == json.loads(cli(work, "access", "principal", "ls", "--json"))
    assert {"owner", "alice", f"token-{token['id']}"} <= {p["principal"] for p in listed}
    shown = fine(call(server, "GET", "/v1/access/principals/alice", owner))
    assert shown == json.loads(cli(work, "access", "principal", "show", "alice", "--json"))
    grants = fine(call(server, "GET", "/v1/access/grants", owner))
    assert {(g["principal"], g["env"], g["role"]) for g in grants} >= {
        ("owner", "*", "admin"), ("alice", "dev", "read"),
        (f"token-{token['id']}", "prod", "write")}  # fmt: skip
    on_dev = fine(call(server, "GET", "/v1/access/grants?env=dev", owner))
    assert {(g["principal"], g["env"]) for g in on_dev} == {("owner", "*"), ("alice", "dev")}
    tokens = fine(call(server, "GET", "/v1/tokens", owner))
    assert tokens == json.loads(cli(work, "token", "ls", "--json"))
    assert [t["name"] for t in tokens if t["id"] == token["id"]] == ["ci"]
    secret = token["token"].rpartition(".")[2]
    for text in (json.dumps(listed), json.dumps(grants), json.dumps(tokens), server.output()):
        assert secret not in text and "bst1." not in text


@pytest.mark.parametrize("who", ["token", "alice"])
def test_the_listings_answer_a_token_and_a_principal_as_the_cli_does(
    server: Server, work: Path, who: str, token: dict[str, Any], bearer: dict[str, str],
    alice: dict[str, str],
) -> None:  # fmt: skip
    """The command line lets any principal list principals and tokens (the policy they
    verify names them): so does the server. No token's secret either way."""
    headers = bearer if who == "token" else alice
    as_cli = ({"BSECRETS_TOKEN": token["token"]} if who == "token"
              else {"BSECRETS_AS": "alice", "BSECRETS_PASSPHRASE": ALICE})  # fmt: skip
    listed = fine(call(server, "GET", "/v1/access/principals", headers))
    assert listed == json.loads(cli_as(work, as_cli, "access", "principal", "ls", "--json"))
    tokens = fine(call(server, "GET", "/v1/tokens", headers))
    assert tokens == json.loads(cli_as(work, as_cli, "token", "ls", "--json"))
    assert fine(call(server, "GET", "/v1/access/principals/owner", headers))["grants"]


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/v1/access/principals/nobody", 404, "principal_not_found"),
        ("/v1/access/principals/Not-A-Name", 400, "usage_error"),
        ("/v1/access/principals/" + "a" * 65, 400, "usage_error"),
        ("/v1/access/grants?env=nowhere", 404, "environment_not_found"),
        ("/v1/access/grants?env=BAD", 400, "usage_error"),
        ("/v1/access/grants?env=", 400, "usage_error"),
    ],
)
def test_bad_access_values_are_refused(
    server: Server, owner: dict[str, str], path: str, status: int, kind: str
) -> None:
    error(call(server, "GET", path, owner), status, kind)


@pytest.mark.parametrize(
    "path", ["/v1/access/principals", "/v1/access/principals/owner", "/v1/access/grants",
             "/v1/tokens", "/v1/audit/search", "/v1/audit/report"],
)  # fmt: skip
def test_the_routes_need_a_bearer(server: Server, path: str) -> None:
    error(call(server, "GET", path), 401, "token_invalid")
    error(call(server, "GET", path, {"Authorization": "Bearer bsw1.made-up"}), 401,
          "session_invalid")  # fmt: skip


# --- 3. break-glass over HTTP ---------------------------------------------------------


@contextmanager
def serving() -> Iterator[Server]:
    """A server for test_break_glass's vault (the test's working folder)."""
    running = Server(Path.cwd())
    try:
        yield running
    finally:
        running.stop()


def approve(server: Server, rid: str, who: dict[str, str], code: str | None = None,
            **body: Any) -> httpx.Response:  # fmt: skip
    headers = {**who, **({"X-Bsecrets-OTP": code} if code is not None else {})}
    return call(server, "POST", f"/v1/break-glass/{rid}/approve", headers,
                json=body or None)  # fmt: skip


def test_custodians_approve_over_http_and_the_requester_opens_prod(
    mfa: dict[str, Authenticator],  # noqa: F811 - test_break_glass's fixture
) -> None:
    rid = request()  # dana, on the command line
    with serving() as server:
        alice = signed_in(server, "alice", PASS["alice"])
        wrong = mfa["alice"].wrong()
        error(approve(server, rid, alice, wrong), 403, "mfa_rejected", "wrong one-time code")
        error(approve(server, rid, alice), 403, "mfa_required", "needs a one-time code")
        used = mfa["alice"].code()
        first = fine(approve(server, rid, alice, used))
        assert first == {"id": rid, "approvals": 1, "threshold": 2}
        seen = fine(call(server, "GET", "/v1/break-glass", alice))
        assert [r["approvals"] for r in seen["requests"] if r["id"] == rid] == [["alice"]]
        assert request_of(rid)["approvals"] == ["alice"]  # the CLI's status
        bob = signed_in(server, "bob", PASS["bob"])
        again = mfa["bob"].code()
        assert fine(approve(server, rid, bob, again))["approvals"] == 2
        texts = [json.dumps(first), json.dumps(seen)]
        no_secret_in(server, *texts)
        for code in (used, again, wrong):
            assert code not in server.output()
    assert in_session(activate(rid), ["get", "DB", "-e", "prod"]).stdout == SECRET + "\n"
    refused = [e for e in events("break_glass.approve") if e["outcome"] != "ok"]
    assert [e["actor"]["principal"] for e in refused] == ["alice", "alice"]
    assert {e["actor"]["via"] for e in refused} == {"bsecrets serve from 127.0.0.1"}
    approvals = [e for e in events("break_glass.approve") if e["outcome"] == "ok"]
    assert [e["actor"]["principal"] for e in approvals] == ["alice", "bob"]


def test_who_may_not_approve_gets_the_cli_refusal(
    mfa: dict[str, Authenticator],  # noqa: F811 - test_break_glass's fixture
) -> None:
    rid = request()
    issued = json.loads(ok(["token", "issue", "-e", "prod", "--role", "read", "--json"]))
    with serving() as server:
        pipeline = {"Authorization": f"Bearer {issued['token']}"}
        code = mfa["alice"].code()
        error(approve(server, rid, pipeline, code), 403, "access_denied", "not a custodian")
        owner = signed_in(server, "owner", PASSPHRASE)
        error(approve(server, rid, owner, code), 403, "access_denied", "not a custodian")
        erin = signed_in(server, "erin", PASS["erin"])
        error(approve(server, rid, erin, code), 403, "access_denied", "not a custodian")
        dana = signed_in(server, "dana", PASS["dana"])
        error(approve(server, rid, dana, code), 403, "access_denied", "another custodian")
        error(approve(server, rid, {}), 401, "token_invalid")
    assert request_of(rid)["approvals"] == []


def test_a_request_and_a_revocation_over_http(
    mfa: dict[str, Authenticator],  # noqa: F811 - test_break_glass's fixture
) -> None:
    with serving() as server:
        dana = signed_in(server, "dana", PASS["dana"])
        body = {"env": "prod", "reason": "INC-9 over HTTP", "ttl_seconds": 1800, "write": True}
        made = fine(call(server, "POST", "/v1/break-glass/request", dana, json=body))
        rid = made["id"]
        assert (made["requester"], made["write"], made["ttl_seconds"]) == ("dana", True, 1800)
        assert request_of(rid)["reason"] == "INC-9 over HTTP"
        alice = signed_in(server, "alice", PASS["alice"])
        assert fine(approve(server, rid, alice, mfa["alice"].code()))["approvals"] == 1
        error(call(server, "POST", f"/v1/break-glass/{rid}/revoke", alice), 403,
              "access_denied", "owner or an admin")  # fmt: skip
        done = fine(call(server, "POST", f"/v1/break-glass/{rid}/revoke", dana))
        assert (done["state"], done["revoked_by"]) == ("revoked", "dana")
        bob = signed_in(server, "bob", PASS["bob"])
        error(approve(server, rid, bob, mfa["bob"].code()), 403, "access_denied", "was revoked")
        no_secret_in(server, json.dumps(made), json.dumps(done))
        # no activation here: it rebuilds the emergency key and hands out a vault session
        # (docs/server.md, "No activation over HTTP"); the requester activates on the command line
        missing = call(server, "POST", f"/v1/break-glass/{rid}/activate", dana)
        assert missing.status_code in (404, 405), missing.text
        spec = fine(call(server, "GET", "/v1/openapi.json"))
        assert not [p for p in spec["paths"] if "activate" in p]
    assert request_of(rid)["state"] == "revoked"
    assert [e["details"]["id"] for e in events("break_glass.request")] == [rid]
    assert_via = {e["actor"]["via"] for e in events("break_glass.revoke")}
    assert assert_via == {"bsecrets serve from 127.0.0.1"}


# the bad inputs: one vault (prod's break-glass: 2 of alice and bob; dana asks) and server


@pytest.fixture(scope="module")
def glass_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server-glass")
    cli(root, "init", "--env", "dev", "--env", "prod")
    for name in ("alice", "bob", "dana"):
        cli(root, "access", "principal", "add", name,
            env_extra={"BSECRETS_NEW_PASSPHRASE": PASS[name]})  # fmt: skip
    cli(root, "break-glass", "setup", "-e", "prod", "--custodians", "alice,bob",
        "--threshold", "2")  # fmt: skip
    return root


@pytest.fixture(scope="module")
def glass(glass_work: Path) -> Iterator[tuple[Server, dict[str, dict[str, str]]]]:
    """The server, and a sign-in of each principal and of the owner."""
    running = Server(glass_work)
    people = {name: signed_in(running, name, PASS[name]) for name in ("alice", "bob", "dana")}
    people["owner"] = signed_in(running, "owner", PASSPHRASE)
    yield running, people
    running.stop()


def glass_requests(work: Path) -> list[dict[str, Any]]:
    return list(json.loads(cli(work, "break-glass", "status", "--json"))["requests"])


@pytest.mark.parametrize(
    ("who", "body", "status", "kind", "words"),
    [
        ("owner", {"env": "prod", "reason": "x"}, 400, "usage_error", "the owner holds"),
        ("dana", {"env": "prod", "reason": "x", "ttl_seconds": 59}, 400, "usage_error",
         "ttl_seconds"),
        ("dana", {"env": "prod", "reason": "x", "ttl_seconds": 86401}, 400, "usage_error",
         "ttl_seconds"),
        ("dana", {"env": "prod", "reason": ""}, 400, "usage_error", "reason"),
        ("dana", {"env": "prod", "reason": "   "}, 400, "usage_error", "reason"),
        ("dana", {"env": "prod", "reason": "two\nlines"}, 400, "usage_error", "reason"),
        ("dana", {"env": "prod", "reason": "r" * 513}, 400, "usage_error", "reason"),
        ("dana", {"env": "prod"}, 400, "usage_error", "reason"),
        ("dana", {"env": "PROD!", "reason": "x"}, 400, "usage_error", "env"),
        ("dana", {"env": "nowhere", "reason": "x"}, 404, "environment_not_found", "nowhere"),
        ("dana", {"env": "dev", "reason": "x"}, 404, "break_glass_not_found", "'dev'"),
        ("dana", {"env": "prod", "reason": "x", "write": "yes please"}, 400, "usage_error",
         "write"),
        ("dana", None, 400, "usage_error", "body"),
    ],
)  # fmt: skip
def test_bad_break_glass_requests_are_refused(
    glass: tuple[Server, dict[str, dict[str, str]]], glass_work: Path,
    who: str, body: Any, status: int, kind: str, words: str,
) -> None:  # fmt: skip
    server, people = glass
    refused = call(server, "POST", "/v1/break-glass/request", people[who], json=body)
    error(refused, status, kind, words)
    assert glass_requests(glass_work) == []


@pytest.mark.parametrize(
    ("rid", "body", "status", "kind"),
    [
        ("0123456789ab", None, 404, "break_glass_not_found"),
        ("0123", None, 400, "usage_error"),
        ("0123456789xz", None, 400, "usage_error"),
        ("0123456789abc", None, 400, "usage_error"),
        ("0123456789ab", {"words": ""}, 400, "usage_error"),
        ("0123456789ab", {"words": "w" * 4097}, 400, "usage_error"),
        ("0123456789ab", {"words": 7}, 400, "usage_error"),
    ],
)
def test_bad_approvals_are_refused(
    glass: tuple[Server, dict[str, dict[str, str]]],
    rid: str, body: Any, status: int, kind: str,
) -> None:  # fmt: skip
    server, people = glass
    refused = call(server, "POST", f"/v1/break-glass/{rid}/approve",
                   {**people["alice"], "X-Bsecrets-OTP": "000000"}, json=body)  # fmt: skip
    error(refused, status, kind)


@pytest.mark.parametrize(
    ("rid", "status", "kind"),
    [("0123456789ab", 404, "break_glass_not_found"), ("not-an-id!!!", 400, "usage_error"),
     ("0123456789abcdef", 400, "usage_error")],
)  # fmt: skip
def test_bad_revocations_are_refused(
    glass: tuple[Server, dict[str, dict[str, str]]], rid: str, status: int, kind: str
) -> None:
    server, people = glass
    error(call(server, "POST", f"/v1/break-glass/{rid}/revoke", people["dana"]), status, kind)


def test_a_second_request_waits_for_the_review_and_override_is_an_admins(
    team: Path,  # noqa: F811 - test_break_glass's fixture
) -> None:
    rid = request()
    with serving() as server:
        dana = signed_in(server, "dana", PASS["dana"])
        body = {"env": "prod", "reason": "INC-10", "ttl_seconds": 600}
        error(call(server, "POST", "/v1/break-glass/request", dana, json=body), 409, "conflict",
              f"{rid} of 'prod' is not reviewed")  # fmt: skip
        error(call(server, "POST", "/v1/break-glass/request", dana,
                   json={**body, "override": True}), 403, "access_denied")  # fmt: skip
    assert [r["id"] for r in status()["requests"]] == [rid]


def test_an_offline_custodian_approves_with_its_words_over_http(
    mfa: dict[str, Authenticator],  # noqa: F811 - test_break_glass's fixture
) -> None:
    out = ok(["break-glass", "setup", "-e", "prod", "--custodians", "alice,bob,carol",
              "--threshold", "2", "--offline-shares"])  # fmt: skip
    words = dict(line.split(": ", 1) for line in out.splitlines())
    rid = request()
    with serving() as server:
        bob = signed_in(server, "bob", PASS["bob"])
        error(approve(server, rid, bob, mfa["bob"].code()), 400, "usage_error", "offline")
        carol_words = approve(server, rid, bob, mfa["bob"].code(), words=words["carol"])
        # a share that is not this custodian's: a wrong credential (exit 4 on the CLI)
        error(carol_words, 403, "access_denied", "not custodian 'bob's share")
        alice = signed_in(server, "alice", PASS["alice"])
        done = approve(server, rid, alice, mfa["alice"].code(), words=words["alice"])
        assert fine(done)["approvals"] == 1
        for share in words.values():
            assert share not in server.output() and share not in done.text + carol_words.text
    assert request_of(rid)["approvals"] == ["alice"]
    as_("carol", ["break-glass", "approve", rid, "--offline-share"], input=words["carol"],
        BSECRETS_OTP=mfa["carol"].code())  # fmt: skip
    assert in_session(activate(rid), ["get", "DB", "-e", "prod"]).stdout == SECRET + "\n"
