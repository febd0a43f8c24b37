"""``bsecrets serve`` keeps what a token opened between requests (server/core.py CorePool)
and answers refused tokens (server/auth_guard.py): a real uvicorn process over HTTP.

What a kept manager must still see at every request: a revoked token (401), an expired
one, an environment re-keyed by another token's revocation (the same token keeps
reading), a changed grant, and who wrote a version (the principal, through the server).
Refused tokens are audit events without any secret part, and past the limit an address
gets 429 with Retry-After, while a token that already opened the vault keeps working."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.bsecrets_server import Server, cli

from bsecrets.server.auth_guard import FAILURES

VALUE = "pw-pool-7f3a"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server-auth")
    cli(root, "init", "--env", "dev", "--env", "prod")
    cli(root, "put", "db/password", "-e", "prod", input=VALUE)
    cli(root, "put", "api/key", "-e", "prod", input="api-pool-1")
    return root


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[Server]:
    running = Server(work)
    yield running
    running.stop()


def issue(work: Path, *args: str) -> dict[str, Any]:
    issued: dict[str, Any] = json.loads(cli(work, "token", "issue", *args, "--json"))
    return issued


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}


def get(server: Server, path: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(server.url + path, headers=headers, timeout=30)


def events(work: Path, action: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(cli(work, "audit", "log", "--json"))
    return [e for e in found if e["action"] == action]


def test_a_token_revoked_between_two_requests_is_refused_at_the_second(
    server: Server, work: Path
) -> None:
    token = issue(work, "-e", "prod", "--role", "read")
    for _ in range(3):  # the manager is kept, and taken back
        assert get(server, "/v1/envs/prod/secrets/db/password", bearer(token)).status_code == 200
    cli(work, "token", "revoke", token["id"])
    refused = get(server, "/v1/envs/prod/secrets/db/password", bearer(token))
    assert refused.status_code == 401, refused.text
    assert refused.json()["kind"] == "token_invalid"
    assert VALUE not in refused.text


def test_a_re_key_by_another_revocation_does_not_strand_a_kept_token(
    server: Server, work: Path
) -> None:
    kept = issue(work, "-e", "prod", "--role", "read")
    other = issue(work, "-e", "prod", "--role", "read")
    assert get(server, "/v1/envs/prod/secrets/db/password", bearer(kept)).json()["value"] == VALUE
    cli(work, "token", "revoke", other["id"])  # re-keys prod: kept's key is sealed anew
    cli(work, "put", "db/password", "-e", "prod", input=VALUE + "-2")  # under the new key
    again = get(server, "/v1/envs/prod/secrets/db/password", bearer(kept))
    assert again.status_code == 200, again.text
    assert again.json()["value"] == VALUE + "-2"
    assert get(server, "/v1/envs/prod/secrets/db/password", bearer(other)).status_code == 401
    cli(work, "put", "db/password", "-e", "prod", input=VALUE)


def test_an_extended_token_and_a_scope_are_read_at_each_request(server: Server, work: Path) -> None:
    token = issue(work, "-e", "prod", "--role", "read", "--only", "db/*")
    assert get(server, "/v1/envs/prod/secrets/db/password", bearer(token)).status_code == 200
    assert get(server, "/v1/envs/prod/secrets/api/key", bearer(token)).status_code == 403
    cli(work, "token", "extend", token["id"], "--ttl", "2h")  # a policy change in between
    assert get(server, "/v1/envs/prod/secrets/db/password", bearer(token)).status_code == 200
    assert get(server, "/v1/envs/prod/secrets/api/key", bearer(token)).status_code == 403


def test_a_write_through_the_server_names_its_principal_and_the_way(
    server: Server, work: Path
) -> None:
    token = issue(work, "-e", "prod", "--role", "write")
    put = httpx.put(server.url + "/v1/envs/prod/secrets/app/from-server", headers=bearer(token),
                    json={"value": "through-the-server"}, timeout=30)  # fmt: skip
    assert put.status_code == 200, put.text
    history = get(server, "/v1/envs/prod/history/app/from-server", bearer(token)).json()
    principal = f"token-{token['id']}"
    assert history[-1]["created_by"] == f"{principal} via bsecrets serve from 127.0.0.1"
    cli_history = json.loads(cli(work, "history", "app/from-server", "-e", "prod", "--json"))
    assert principal in json.dumps(cli_history)
    put_events = [e for e in events(work, "put") if e.get("name") == "app/from-server"]
    assert put_events[-1]["actor"]["principal"] == principal
    assert put_events[-1]["actor"]["via"] == "bsecrets serve from 127.0.0.1"


def test_each_request_through_a_kept_manager_has_its_own_request_id(
    server: Server, work: Path
) -> None:
    token = issue(work, "-e", "prod", "--role", "read")
    for _ in range(3):
        assert get(server, "/v1/envs/prod/secrets/api/key", bearer(token)).status_code == 200
    principal = f"token-{token['id']}"
    mine = [e for e in events(work, "get") if e["actor"]["principal"] == principal]
    assert len(mine) == 3
    assert len({e["request_id"] for e in mine}) == 3


def _bad_tokens(work: Path) -> dict[str, str]:
    good = issue(work, "-e", "prod", "--role", "read")
    prefix = good["token"].rpartition(".")[0]
    revoked = issue(work, "-e", "prod", "--role", "read")
    cli(work, "token", "revoke", revoked["id"])
    return {
        "not a token": "hello",
        "another vault": "bst1.0000000000000000.abcdefabcdef."
        "uXJ9XYQtqnZtUoFEV3sBO-EOmlVvduJkuJub7qKUzhg",
        "wrong secret": prefix + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "revoked": revoked["token"],
    }


def test_refused_tokens_are_audited_without_their_secret(server: Server, work: Path) -> None:
    bad = _bad_tokens(work)
    for what, token in bad.items():
        refused = get(
            server, "/v1/envs/prod/secrets/db/password", {"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 401, (what, refused.text)
    refusals = events(work, "server.auth")  # the owner's command chains the intake
    assert len(refusals) >= len(bad)
    last = refusals[-len(bad) :]
    assert all(e["outcome"] == "denied" and e.get("late") for e in last), last
    assert {e["actor"]["via"] for e in last} == {"bsecrets serve from 127.0.0.1"}
    text = json.dumps(refusals)
    for token in bad.values():
        secret = token.rpartition(".")[2]
        assert len(secret) < 20 or secret not in text
    assert f"token-{bad['revoked'].split('.')[2]}" in text  # the public id is named


def test_too_many_refusals_from_an_address_answer_429_but_not_to_a_known_token(
    work: Path,
) -> None:
    alone = Server(work)  # its own counts: the other tests' server is not locked out
    try:
        good = issue(work, "-e", "prod", "--role", "read")
        assert get(alone, "/v1/envs/prod/secrets/api/key", bearer(good)).status_code == 200
        bad = {"Authorization": "Bearer bst1.nope"}
        codes = [get(alone, "/v1/envs/prod/secrets", bad).status_code for _ in range(FAILURES)]
        assert codes == [401] * FAILURES
        limited = get(alone, "/v1/envs/prod/secrets", bad)
        assert limited.status_code == 429, limited.text
        assert limited.json()["kind"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        fresh = issue(work, "-e", "prod", "--role", "read")  # never seen: not tried now
        assert get(alone, "/v1/envs/prod/secrets", bearer(fresh)).status_code == 429
        assert get(alone, "/v1/envs/prod/secrets/api/key", bearer(good)).status_code == 200
        before = len(events(work, "server.auth"))
        get(alone, "/v1/envs/prod/secrets", bad)
        assert len(events(work, "server.auth")) == before  # past the limit: no write either
    finally:
        alone.stop()


# --- principals signing in (server/sign_in.py) ---------------------------------------

PASSPHRASE_OF = {"dana": "dana's own long passphrase 41"}


def sign_in(server: Server, **body: Any) -> httpx.Response:
    return httpx.post(server.url + "/v1/sign-in", json=body, timeout=60)


def sessions_in(work: Path) -> int:
    folder = work / "run" / "bsecrets" / "sessions"
    return len(list(folder.glob("*.json"))) if folder.is_dir() else 0


def test_the_owner_signs_in_reads_the_audit_log_and_signs_out(server: Server, work: Path) -> None:
    from helpers.values import PASSPHRASE

    before = sessions_in(work)
    signed = sign_in(server, passphrase=PASSPHRASE)
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert body["principal"] == "owner" and body["token"].startswith("bsw1.")
    assert PASSPHRASE not in signed.text
    assert sessions_in(work) == before + 1
    auth = {"Authorization": f"Bearer {body['token']}"}
    assert get(server, "/v1/whoami", auth).json()["principal"] == "owner"
    log = get(server, "/v1/audit?limit=5", auth)
    assert log.status_code == 200 and log.json(), log.text
    out = httpx.post(server.url + "/v1/sign-out", headers=auth, timeout=30)
    assert out.status_code == 200 and out.json()["signed_out"] is True
    assert sessions_in(work) == before  # the vault session ended with the sign-in
    after = get(server, "/v1/whoami", auth)
    assert after.status_code == 401 and after.json()["kind"] == "session_invalid"
    assert httpx.post(server.url + "/v1/sign-out", headers=auth, timeout=30).status_code == 401
    unlocks = [e for e in events(work, "unlock") if e["actor"].get("via")]
    assert unlocks[-1]["outcome"] == "ok" and unlocks[-1]["actor"]["principal"] == "owner"
    assert PASSPHRASE not in server.output()


def test_a_principal_signs_in_and_sees_only_its_grants(server: Server, work: Path) -> None:
    cli_env = {"BSECRETS_NEW_PASSPHRASE": PASSPHRASE_OF["dana"]}
    cli(work, "access", "principal", "add", "dana", env_extra=cli_env)
    cli(work, "access", "grant", "dana", "-e", "dev", "--role", "read")
    signed = sign_in(server, principal="dana", passphrase=PASSPHRASE_OF["dana"])
    assert signed.status_code == 200, signed.text
    auth = {"Authorization": f"Bearer {signed.json()['token']}"}
    assert get(server, "/v1/envs/dev/secrets", auth).status_code == 200
    assert get(server, "/v1/envs/prod/secrets", auth).status_code == 403
    assert get(server, "/v1/audit", auth).status_code == 403  # the owner's log
    cli(work, "access", "principal", "rm", "dana")
    gone = get(server, "/v1/envs/dev/secrets", auth)
    assert gone.status_code == 401, gone.text


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"passphrase": "not the passphrase"}, 401, "wrong_passphrase"),
        ({"principal": "nobody", "passphrase": "not the passphrase"}, 401, "wrong_passphrase"),
        ({"passphrase": ""}, 400, "usage_error"),
        ({}, 400, "usage_error"),
        ({"principal": "Owner; DROP", "passphrase": "x"}, 400, "usage_error"),
        ({"passphrase": "x", "ttl_seconds": 10}, 400, "usage_error"),
        ({"passphrase": "x", "ttl_seconds": 9 * 3600}, 400, "usage_error"),
    ],
)
def test_bad_sign_ins_are_refused(
    server: Server, work: Path, body: dict[str, Any], status: int, kind: str
) -> None:
    before = sessions_in(work)
    refused = sign_in(server, **body)
    assert refused.status_code == status, refused.text
    assert refused.json()["kind"] == kind
    assert set(refused.json()) == {"error", "hint", "kind"}
    assert "not the passphrase" not in refused.text
    assert sessions_in(work) == before


def test_a_wrong_passphrase_is_audited_and_an_unknown_sign_in_too(
    server: Server, work: Path
) -> None:
    sign_in(server, passphrase="wrong passphrase 7")
    unlocks = [e for e in events(work, "unlock") if e["outcome"] != "ok"]
    assert unlocks and "wrong passphrase 7" not in json.dumps(unlocks)
    made_up = {"Authorization": "Bearer bsw1.made-up-sign-in"}
    refused = get(server, "/v1/whoami", made_up)
    assert refused.status_code == 401 and refused.json()["kind"] == "session_invalid"
    assert "made-up-sign-in" not in json.dumps(events(work, "server.auth"))


def test_a_protected_environment_takes_the_reason_and_code_headers(
    server: Server, work: Path
) -> None:
    from helpers.totp import Authenticator
    from helpers.values import PASSPHRASE

    auth_app = Authenticator(cli(work, "mfa", "enroll").strip())
    cli(work, "mfa", "confirm", env_extra={"BSECRETS_OTP": auth_app.code()})
    cli(work, "env", "protect", "dev",
        env_extra={"BSECRETS_OTP": auth_app.code()})  # fmt: skip
    token = sign_in(server, passphrase=PASSPHRASE).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    url = server.url + "/v1/envs/dev/secrets/protected/one"
    bare = httpx.put(url, headers=auth, json={"value": "v1"}, timeout=30)
    assert bare.status_code == 400 and bare.json()["kind"] == "confirmation_needed", bare.text
    no_code = httpx.put(url, headers={**auth, "X-Bsecrets-Reason": "ticket 7"},
                        json={"value": "v1"}, timeout=30)  # fmt: skip
    assert no_code.status_code == 403, no_code.text
    headers = {**auth, "X-Bsecrets-Reason": "ticket 7", "X-Bsecrets-OTP": auth_app.code()}
    done = httpx.put(url, headers=headers, json={"value": "v1"}, timeout=30)
    assert done.status_code == 200, done.text
    puts = [e for e in events(work, "put") if e.get("name") == "protected/one"]
    assert puts[-1]["justification"] == "ticket 7"


def test_each_sign_in_has_its_own_rate_limit(work: Path) -> None:
    from helpers.values import PASSPHRASE

    limited = Server(work, "--rate", "3/minute")
    try:
        first, second = (sign_in(limited, passphrase=PASSPHRASE).json()["token"] for _ in "12")
        one = {"Authorization": f"Bearer {first}"}
        codes = [get(limited, "/v1/whoami", one).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert get(limited, "/v1/whoami", {"Authorization": f"Bearer {second}"}).status_code == 200
    finally:
        limited.stop()


def test_a_vault_session_token_is_not_taken_over_http(server: Server, work: Path) -> None:
    session_token = json.loads(cli(work, "unlock", "--ttl", "10m", "--json"))["session"]
    assert session_token.startswith("bss1."), session_token
    refused = get(server, "/v1/whoami", {"Authorization": f"Bearer {session_token}"})
    assert refused.status_code == 401 and refused.json()["kind"] == "token_invalid"
    assert session_token not in refused.text
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        form = browser.get("/ui/signin").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf, form
        ui = browser.post("/ui/signin", data={"token": session_token, "csrf": csrf.group(1)})
    assert ui.status_code == 401, ui.status_code
    assert "not taken over HTTP" in ui.text and session_token not in ui.text
    assert "bss1." not in json.dumps(events(work, "server.auth"))
    cli(work, "lock")


def test_a_token_unused_for_a_while_has_its_kept_cores_closed(work: Path) -> None:
    """In-process, with a moved clock: no request waits for it."""
    from helpers.bsecrets_server import server_env

    from bsecrets.server.core import CorePool

    now = [1000.0]
    environ = server_env(work)
    pool = CorePool(work / "bsecrets.yaml", environ, idle_seconds=600, clock=lambda: now[0])
    first = issue(work, "-e", "prod", "--role", "read")["token"]
    second = issue(work, "-e", "prod", "--role", "read")["token"]
    with pool.core(first, "127.0.0.1") as (core, _):
        assert core.get("prod", "api/key").value == b"api-pool-1"
    assert pool.idle_count() == 1
    now[0] += 601  # the first token unused for longer than idle_seconds
    with pool.core(second, "127.0.0.1"):
        pass
    assert pool.idle_count() == 1  # the first token's core was closed, the second's kept
    now[0] += 601
    pool.sweep()
    assert pool.idle_count() == 0
    pool.close()


def test_a_sign_in_past_the_limit_leaves_no_vault_session(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the bound on signed-in principals refuses the next one and ends the
    vault session it had started (no session file left)."""
    from helpers.bsecrets_server import server_env
    from helpers.values import PASSPHRASE

    import bsecrets.server.sign_in as sign_in_module
    from bsecrets.errors import UsageError
    from bsecrets.server.sign_in import DEFAULT_TTL, SignIns

    monkeypatch.setattr(sign_in_module, "MAX_SIGNED_IN", 1)
    environ = server_env(work)
    monkeypatch.setenv("XDG_RUNTIME_DIR", environ["XDG_RUNTIME_DIR"])
    before = sessions_in(work)
    held = SignIns(work / "bsecrets.yaml", environ)
    bearer, _ = held.sign_in("owner", PASSPHRASE, DEFAULT_TTL, "a test")
    assert sessions_in(work) == before + 1
    with pytest.raises(UsageError, match="too many principals"):
        held.sign_in("owner", PASSPHRASE, DEFAULT_TTL, "a test")
    assert sessions_in(work) == before + 1  # the refused one's session file is gone
    held.sign_out(bearer)
    assert sessions_in(work) == before
