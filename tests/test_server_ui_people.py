"""People in the web UI (#18; bsecrets/server/ui_people.py, ui_break_glass.py): a real
``bsecrets serve`` process, Debian's headless Chromium driven by Playwright, plain
HTTP (httpx) for the refusals, and the CLI for what the browser must have changed.

The owner signs in with its passphrase (a real vault session: the ``unlock`` event, a
session file that sign-out deletes), reads the audit log that a token may not; a wrong
passphrase writes no session and counts in the shared guard of failed sign-ins. A
rollback on a protected environment takes a reason and a one-time code from the form.
A custodian signs in, opens the break-glass page and approves a request with its code:
the page counts it, and the owner sees the ``break_glass.approve`` event (CLI and
audit page). A wrong code, the requester, a non-custodian, a token, a revoked request,
another custodian's offline words and a POST without the CSRF token are refused; a
custodian whose share is offline approves with its words; a reason with markup is
shown as text.

No passphrase, vault session token (``bss1``) or sign-in bearer (``bsw1``) is in any
page, URL, header or log line. BSECRETS_UI_SCREENSHOTS=1 saves the sign-in and
break-glass screenshots of docs/server.md to docs/img/. Without Chromium or
Playwright, the browser tests skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.bsecrets_server import Server, cli, server_env
from helpers.totp import Authenticator
from helpers.values import PASSPHRASE
from test_server_ui import (
    Recorded,
    browser,  # noqa: F401 - the shared fixture: Chromium, once per module
    csrf_of,
    message_of,
    screenshot,
)

from bsecrets.server.auth_guard import FAILURES
from bsecrets.server.sign_in import SignIns
from bsecrets.server.ui_people import ender
from bsecrets.server.ui_session import IDLE_SECONDS, SessionStore

PASS = {"alice": "alice-ui-pass-4411", "bob": "bob-ui-pass-5522", "carol": "carol-ui-pass-6633",
        "dana": "dana-ui-pass-7744"}  # fmt: skip
CUSTODIANS = ("alice", "bob", "carol")
VALUES = {"db/password": "pw-people-0c3d", "app/rolled": "rolled-one-77ab"}
ROLLED_TWO = "rolled-two-e41f"
REASON = "INC-18 payments down"
XSS_REASON = "<script>alert(1)</script> and <img src=x onerror=alert(1)> INC-19"
WRONG = "not the passphrase 9"
SECRETS = (*PASS.values(), PASSPHRASE, WRONG, *VALUES.values(), ROLLED_TWO)


def as_(work: Path, name: str, *args: str, otp: str | None = None, code: int = 0) -> str:
    """The CLI as principal ``name`` (its own passphrase; ``otp``: BSECRETS_OTP)."""
    env = {**server_env(work), "BSECRETS_PASSPHRASE": PASS[name]}
    if otp is not None:
        env["BSECRETS_OTP"] = otp
    argv = [sys.executable, "-m", "bsecrets", "--as", name, *args]
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == code, done.stderr
    return done.stdout


def sessions_in(work: Path) -> int:
    """The vault session files of the server's user (``unlock``'s folder)."""
    folder = work / "run" / "bsecrets" / "sessions"
    return len(list(folder.glob("*.json"))) if folder.is_dir() else 0


def audit(work: Path, action: str) -> list[dict[str, Any]]:
    """The owner's audit log (the CLI: it chains the principals' entries), one action's."""
    found: list[dict[str, Any]] = json.loads(cli(work, "audit", "log", "--json"))
    return [e for e in found if e["action"] == action]


def request(work: Path, env: str, reason: str) -> str:
    """dana asks for ``env`` (the last request of ``env`` reviewed first by the owner:
    a new one waits for that)."""
    status = json.loads(cli(work, "break-glass", "status", "--json"))
    for pending in status["requests"]:
        if pending["env"] == env and pending["review_pending"]:
            cli(work, "break-glass", "review", pending["id"], "--notes", "tested")
    return as_(work, "dana", "break-glass", "request", "-e", env, "--reason", reason,
               "--ttl", "1h").strip()  # fmt: skip


def approvals(work: Path, rid: str) -> list[str]:
    status = json.loads(cli(work, "break-glass", "status", "--json"))
    return next(list(r["approvals"]) for r in status["requests"] if r["id"] == rid)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev, prod, staging and ops; the principals; prod's and ops' break-glass: 2 of
    alice, bob and carol; dana asks."""
    root = tmp_path_factory.mktemp("server-ui-people")
    cli(root, "init", "--env", "dev", "--env", "prod", "--env", "staging", "--env", "ops")
    cli(root, "put", "db/password", "-e", "prod", input=VALUES["db/password"])
    cli(root, "put", "app/rolled", "-e", "staging", input=VALUES["app/rolled"])
    cli(root, "put", "app/rolled", "-e", "staging", input=ROLLED_TWO)
    for name, passphrase in PASS.items():
        cli(root, "access", "principal", "add", name,
            env_extra={"BSECRETS_NEW_PASSPHRASE": passphrase})  # fmt: skip
    for env in ("prod", "ops"):
        cli(root, "break-glass", "setup", "-e", env, "--custodians", ",".join(CUSTODIANS),
            "--threshold", "2")  # fmt: skip
    return root


@pytest.fixture(scope="module")
def authenticators(work: Path) -> dict[str, Authenticator]:
    """alice and bob enrolled (one code of each used)."""
    found = {}
    for name in ("alice", "bob"):
        app = Authenticator(as_(work, name, "mfa", "enroll").strip())
        as_(work, name, "mfa", "confirm", otp=app.code())
        found[name] = app
    return found


@pytest.fixture(scope="module")
def offline_words(work: Path) -> dict[str, str]:
    """dev's break-glass with its shares printed as words (once), 2 of the three."""
    out = cli(work, "break-glass", "setup", "-e", "dev", "--custodians", ",".join(CUSTODIANS),
              "--threshold", "2", "--offline-shares")  # fmt: skip
    return {line.split(": ")[0]: line.split(": ", 1)[1] for line in out.splitlines()}


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[Server]:
    running = Server(work)
    yield running
    running.stop()


def no_secret_in(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, secret
        assert "bss1." not in text and "bsw1." not in text  # a vault session, a sign-in


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:  # noqa: F811
    """A browser page whose every response is checked at the end (no passphrase, no
    session token or bearer, no value), and on which no dialog may open."""
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    recorded = Recorded(context.new_page())
    dialogs: list[str] = []
    recorded.page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield recorded.page
    cookies = json.dumps(context.cookies())
    context.close()
    assert recorded.responses and not dialogs, dialogs
    no_secret_in(cookies)
    for _method, url, headers, body in recorded.responses:
        no_secret_in(url, headers, body)


def sign_in_as(page: Any, server: Server, principal: str, passphrase: str) -> None:
    page.goto(server.url + "/ui/signin")
    page.fill("#principal", principal)
    page.fill("#passphrase", passphrase)
    page.click("#signin-person")
    page.wait_for_url(server.url + "/ui/envs")
    assert page.inner_text(".who .principal") == principal


def sign_out(page: Any, server: Server) -> None:
    page.click("#signout")
    page.wait_for_url(server.url + "/ui/signin")


class Person:
    """A browser-less session signed in with a name and passphrase through the form."""

    def __init__(self, server: Server, principal: str, passphrase: str) -> None:
        self.http = httpx.Client(base_url=server.url, follow_redirects=False, timeout=60)
        server.clients.append(self.http)
        self.csrf = csrf_of(self.http.get("/ui/signin").text)
        signed = self.http.post("/ui/signin/person", data={
            "csrf": self.csrf, "principal": principal, "passphrase": passphrase})  # fmt: skip
        assert signed.status_code == 303, signed.text
        self.csrf = csrf_of(self.http.get("/ui/envs").text)

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        response = self.http.post(path, data=data)
        no_secret_in(str(response.request.url), str(response.headers), response.text)
        return response

    def sign_out(self) -> None:
        assert self.http.post("/ui/signout", data={"csrf": self.csrf}).status_code == 303


# --- signing in ------------------------------------------------------------------


def test_the_owner_signs_in_with_its_passphrase_reads_the_audit_log_and_signs_out(
    page: Any, server: Server, work: Path
) -> None:
    before = sessions_in(work)
    page.goto(server.url + "/ui/")
    assert page.get_attribute("#passphrase", "type") == "password"
    assert page.input_value("#principal") == "owner"
    screenshot(page, "signin")
    sign_in_as(page, server, "owner", PASSPHRASE)
    assert sessions_in(work) == before + 1  # a real vault session, as 'unlock' starts
    rows = page.inner_text("table")
    assert "prod" in rows and "admin" in rows
    page.click("nav a:text-is('Audit log')")
    page.wait_for_url(server.url + "/ui/audit")
    events = page.inner_text("#events")
    assert "unlock" in events and "owner" in events
    page.click("nav a:text-is('Break-glass')")
    page.wait_for_url(server.url + "/ui/break-glass")
    assert "prod" in page.inner_text("#setups") and page.locator("form.approve").count() == 0
    sign_out(page, server)
    assert "Signed out" in page.inner_text(".flash")
    assert sessions_in(work) == before  # the vault session ended: its file is gone
    page.goto(server.url + "/ui/audit")
    assert page.url == server.url + "/ui/signin"
    unlocks = [e for e in audit(work, "unlock") if "serve" in str(e["actor"].get("via"))]
    assert unlocks[-1]["outcome"] == "ok" and unlocks[-1]["actor"]["principal"] == "owner"
    assert unlocks[-1]["actor"]["via"] == "bsecrets serve from 127.0.0.1"
    no_secret_in(server.output())


def test_a_wrong_passphrase_shows_an_error_and_writes_no_session(
    page: Any, server: Server, work: Path
) -> None:
    before = sessions_in(work)
    for principal in ("owner", "nobody", "alice"):
        page.goto(server.url + "/ui/signin")
        page.fill("#principal", principal)
        page.fill("#passphrase", WRONG)
        with page.expect_response(server.url + "/ui/signin/person") as answer:
            page.click("#signin-person")
        assert answer.value.status == 401
        assert page.inner_text("#signin-error") == "Not signed in: wrong principal or passphrase."
        assert page.input_value("#passphrase") == ""  # never filled back
        assert page.locator("nav").count() == 0
    assert sessions_in(work) == before
    refused = [e for e in audit(work, "unlock") if e["outcome"] != "ok"]
    assert refused and WRONG not in json.dumps(refused)
    no_secret_in(server.output())
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    server.clients.append(anonymous)
    anonymous.get("/ui/signin")  # a session, but the form's CSRF token not sent
    forged = anonymous.post("/ui/signin/person", data={"passphrase": PASSPHRASE})
    assert forged.status_code == 403 and sessions_in(work) == before


def test_failed_sign_ins_count_in_the_guard_the_token_form_shares(work: Path) -> None:
    """A server of its own: its guard then locks out this test's address only."""
    running = Server(work)
    try:
        client = httpx.Client(base_url=running.url, follow_redirects=False, timeout=60)
        running.clients.append(client)
        csrf = csrf_of(client.get("/ui/signin").text)
        for _ in range(FAILURES):
            wrong = client.post("/ui/signin/person", data={"csrf": csrf, "passphrase": WRONG})
            assert wrong.status_code == 401, wrong.text
        before = sessions_in(work)
        right = client.post("/ui/signin/person", data={"csrf": csrf, "passphrase": PASSPHRASE})
        assert right.status_code == 429 and "Too many failed sign-ins" in right.text
        token = client.post("/ui/signin", data={"csrf": csrf, "token": "bst1.x.y.z"})
        assert token.status_code == 429
        assert sessions_in(work) == before
        no_secret_in(running.output(), right.text)
    finally:
        running.stop()


def test_an_idle_person_session_ends_its_vault_session(vault: Path) -> None:
    """In-process, with the store's clock moved on: 15 minutes idle end the UI session,
    and with it the vault session (its file deleted)."""
    from bsecrets.server.core import CorePool
    from bsecrets.server.sign_in import DEFAULT_TTL

    folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "bsecrets" / "sessions"
    now = [1000.0]
    profile = vault / "bsecrets.yaml"
    sign_ins = SignIns(profile, dict(os.environ))
    pool = CorePool(profile, dict(os.environ))
    store = SessionStore(clock=lambda: now[0], on_end=ender(sign_ins, pool))
    bearer, held = sign_ins.sign_in("owner", PASSPHRASE, DEFAULT_TTL, "a test")
    assert len(list(folder.glob("*.json"))) == 1
    session = store.sign_in(store.anonymous(), held.session_token, "owner", bearer=bearer)
    assert session.person and "bss1" not in repr(session)
    now[0] += IDLE_SECONDS - 1
    assert store.get(session.id) is session
    now[0] += IDLE_SECONDS + 1
    assert store.get(session.id) is None
    assert session.token is None and session.bearer is None
    assert list(folder.glob("*.json")) == []
    assert sign_ins.sign_out(bearer) is None  # already ended
    # a person's session never seen again: another browser's request sweeps it
    bearer, held = sign_ins.sign_in("owner", PASSPHRASE, DEFAULT_TTL, "a test")
    forgotten = store.sign_in(store.anonymous(), held.session_token, "owner", bearer=bearer)
    other = store.anonymous()
    now[0] += IDLE_SECONDS + 1
    assert store.get(other.id) is None  # the anonymous one expired too (10 min)
    assert forgotten.token is None and list(folder.glob("*.json")) == []
    pool.close()


# --- a protected environment ---------------------------------------------------------


def test_a_rollback_on_a_protected_environment_needs_a_reason_and_a_code(
    page: Any, server: Server, work: Path
) -> None:
    owner = Authenticator(cli(work, "mfa", "enroll").strip())
    cli(work, "mfa", "confirm", env_extra={"BSECRETS_OTP": owner.code()})
    cli(work, "env", "protect", "staging", env_extra={"BSECRETS_OTP": owner.code()})
    sign_in_as(page, server, "owner", PASSPHRASE)
    url = server.url + "/ui/envs/staging/secrets/app/rolled"
    page.goto(url)
    assert "staging is protected" in page.inner_text("#protected-note")
    with page.expect_navigation():
        page.click("[data-rollback-to='1']")  # neither a reason nor a code
    assert "needs a reason" in page.inner_text("#message")
    page.goto(url)
    page.fill("[data-reason-for='1']", "INC-20 bad config")
    with page.expect_response(url.replace("/secrets/", "/rollback/")) as answer:
        page.click("[data-rollback-to='1']")  # a reason, no code
    assert answer.value.status == 403
    assert "one-time code" in page.inner_text("#message")
    assert "authenticator" in page.inner_text(".hint")
    written = json.loads(cli(work, "get", "app/rolled", "-e", "staging", "--json"))
    assert written["version"] == 2  # nothing written
    page.goto(url)
    page.fill("[data-reason-for='1']", "INC-20 bad config")
    page.fill("[data-otp-for='1']", owner.code())
    with page.expect_navigation():
        page.click("[data-rollback-to='1']")
    assert page.inner_text(".flash") == "Rolled back: version 3 has version 1's value."
    assert cli(work, "get", "app/rolled", "-e", "staging") == VALUES["app/rolled"] + "\n"
    rollbacks = [e for e in audit(work, "rollback") if e.get("env") == "staging"]
    done = rollbacks[-1]
    assert done["outcome"] == "ok" and done["justification"] == "INC-20 bad config"
    assert done["actor"]["principal"] == "owner"
    refused = [e for e in rollbacks if e["outcome"] != "ok"]
    assert len(refused) == 2  # the two refusals are audited too


# --- break-glass -------------------------------------------------------------------


def test_a_custodian_approves_a_break_glass_request_in_the_browser(
    page: Any, server: Server, work: Path, authenticators: dict[str, Authenticator]
) -> None:
    rid = request(work, "prod", REASON)
    sign_in_as(page, server, "alice", PASS["alice"])
    page.click("nav a:text-is('Break-glass')")
    page.wait_for_url(server.url + "/ui/break-glass")
    row = page.locator(f"tr[data-request='{rid}']")
    assert "dana" in row.inner_text() and REASON in row.inner_text()
    assert row.locator(".approvals .count").inner_text() == "0"
    assert "0 of 2" in row.locator(".approvals").inner_text()
    assert "waiting for approvals" in row.inner_text()
    assert page.locator(f"textarea#words-{rid}").count() == 0  # shares sealed, not offline
    screenshot(page, "break-glass")
    page.fill(f"#otp-{rid}", authenticators["alice"].code())
    with page.expect_navigation():
        page.click(f"[data-approve-button='{rid}']")
    assert page.url == server.url + "/ui/break-glass"
    assert page.inner_text(".flash") == (
        f"Approved break-glass request {rid}: 1 of 2 approvals: 1 more needed."
    )
    row = page.locator(f"tr[data-request='{rid}']")
    assert row.locator(".approvals .count").inner_text() == "1"
    assert "alice" in row.locator(".approvals").inner_text()
    assert row.locator("[data-approved-by-me]").count() == 1
    assert page.locator(f"form[data-approve='{rid}']").count() == 0  # once is enough
    assert approvals(work, rid) == ["alice"]
    sign_out(page, server)
    # the owner's log has it (the CLI chains alice's entry) ...
    approved = [e for e in audit(work, "break_glass.approve") if e["outcome"] == "ok"]
    assert approved[-1]["actor"]["principal"] == "alice"
    assert approved[-1]["actor"]["via"] == "bsecrets serve from 127.0.0.1"
    assert approved[-1]["details"]["id"] == rid and approved[-1]["justification"] == REASON
    # ... and so does the owner's audit page
    sign_in_as(page, server, "owner", PASSPHRASE)
    page.goto(server.url + "/ui/audit")
    rows = page.locator("#events tbody tr", has_text="break_glass.approve")
    assert rows.count() >= 1 and "alice" in rows.first.inner_text()


def test_approvals_are_refused_to_a_wrong_code_the_requester_and_a_non_custodian(
    page: Any, server: Server, work: Path, authenticators: dict[str, Authenticator]
) -> None:
    rid = request(work, "ops", "INC-21 queue stuck")
    sign_in_as(page, server, "bob", PASS["bob"])
    page.goto(server.url + "/ui/break-glass")
    page.fill(f"#otp-{rid}", authenticators["bob"].wrong())
    with page.expect_response(f"{server.url}/ui/break-glass/{rid}/approve") as answer:
        page.click(f"[data-approve-button='{rid}']")
    assert answer.value.status == 403
    assert "wrong one-time code" in page.inner_text("#message")
    assert "(mfa_rejected)" in page.inner_text("main")
    assert approvals(work, rid) == []
    path = f"/ui/break-glass/{rid}/approve"
    bob = Person(server, "bob", PASS["bob"])
    no_csrf = bob.post(path, {"otp": "123456"})  # (codes of bob's are kept for later)
    assert no_csrf.status_code == 403 and "this form expired" in message_of(no_csrf.text)
    no_code = bob.post(path, {"csrf": bob.csrf})
    assert no_code.status_code == 403 and "one-time code" in message_of(no_code.text)
    unknown = bob.post("/ui/break-glass/0123456789ab/approve", {"csrf": bob.csrf, "otp": "1"})
    assert unknown.status_code == 404
    bob.sign_out()
    dana = Person(server, "dana", PASS["dana"])
    own = dana.post(path, {"csrf": dana.csrf, "otp": "123456"})
    assert own.status_code == 403 and "another custodian approves it" in message_of(own.text)
    assert 'data-approve="' not in dana.http.get("/ui/break-glass").text  # none for dana
    log = dana.http.get("/ui/audit")  # the owner's, not another principal's
    assert log.status_code == 403 and "Not for this principal" in log.text
    dana.sign_out()
    owner = Person(server, "owner", PASSPHRASE)
    other = owner.post(path, {"csrf": owner.csrf, "otp": "123456"})
    assert other.status_code == 403 and "not a custodian" in message_of(other.text)
    owner.sign_out()
    as_(work, "dana", "break-glass", "revoke", rid)
    bob = Person(server, "bob", PASS["bob"])
    revoked = bob.post(path, {"csrf": bob.csrf, "otp": "123456"})  # refused before the code
    assert revoked.status_code == 403 and "was revoked" in message_of(revoked.text)
    assert f'data-approve="{rid}"' not in bob.http.get("/ui/break-glass").text
    bob.sign_out()
    assert approvals(work, rid) == []
    denied = [e for e in audit(work, "break_glass.approve") if e["outcome"] != "ok"]
    assert {e["actor"]["principal"] for e in denied} >= {"bob", "dana", "owner"}


def test_a_token_sees_the_break_glass_page_and_may_not_approve(server: Server, work: Path) -> None:
    rid = request(work, "prod", "INC-22 token check")
    token = json.loads(cli(work, "token", "issue", "-e", "dev", "--role", "read", "--json"))
    client = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
    server.clients.append(client)
    csrf = csrf_of(client.get("/ui/signin").text)
    signed = client.post("/ui/signin", data={"csrf": csrf, "token": token["token"]})
    assert signed.status_code == 303
    shown = client.get("/ui/break-glass")
    assert shown.status_code == 200 and 'id="token-note"' in shown.text and rid in shown.text
    assert 'data-approve="' not in shown.text and token["token"] not in shown.text
    refused = client.post(f"/ui/break-glass/{rid}/approve",
                          data={"csrf": csrf_of(shown.text), "otp": "123456"})  # fmt: skip
    assert refused.status_code == 403 and "not a custodian" in message_of(refused.text)
    assert approvals(work, rid) == []


def test_a_break_glass_reason_with_markup_is_shown_as_text(
    browser: Any,  # noqa: F811
    server: Server,
    work: Path,
) -> None:
    rid = request(work, "ops", XSS_REASON)
    dialogs: list[str] = []
    for bypass_csp in (False, True):  # the escaping alone must keep it inert
        context = browser.new_context(bypass_csp=bypass_csp)
        page = context.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        sign_in_as(page, server, "carol", PASS["carol"])
        page.goto(server.url + "/ui/break-glass")
        reason = page.locator(f"tr[data-request='{rid}'] .reason")
        assert reason.inner_text() == XSS_REASON
        assert page.locator("main script, main img").count() == 0
        page.wait_for_timeout(300)  # an onerror would have fired by now
        assert dialogs == []
        context.close()


def test_a_custodian_whose_share_is_offline_gives_its_words(
    page: Any,
    server: Server,
    work: Path,
    authenticators: dict[str, Authenticator],
    offline_words: dict[str, str],
) -> None:
    carol = Authenticator(as_(work, "carol", "mfa", "enroll").strip())
    as_(work, "carol", "mfa", "confirm", otp=carol.code())
    rid = request(work, "dev", "INC-23 dev outage")
    sign_in_as(page, server, "bob", PASS["bob"])
    page.goto(server.url + "/ui/break-glass")
    assert page.locator(f"textarea#words-{rid}").count() == 1
    page.fill(f"#otp-{rid}", authenticators["bob"].code())
    page.fill(f"#words-{rid}", offline_words["carol"])  # another custodian's words
    with page.expect_response(f"{server.url}/ui/break-glass/{rid}/approve") as answer:
        page.click(f"[data-approve-button='{rid}']")
    assert answer.value.status == 403  # access_denied, as the API's (exit 4 on the CLI)
    assert "not custodian 'bob's share" in page.inner_text("#message")
    assert approvals(work, rid) == []
    assert offline_words["carol"] not in page.content()  # never filled back
    sign_out(page, server)
    sign_in_as(page, server, "carol", PASS["carol"])
    page.goto(server.url + "/ui/break-glass")
    page.fill(f"#otp-{rid}", carol.code())
    page.fill(f"#words-{rid}", offline_words["carol"])
    with page.expect_navigation():
        page.click(f"[data-approve-button='{rid}']")
    assert "1 of 2 approvals" in page.inner_text(".flash")
    assert approvals(work, rid) == ["carol"]
    shown = page.content() + server.output() + json.dumps(audit(work, "break_glass.approve"))
    for words in offline_words.values():
        assert words not in shown and words.split()[3] + " " + words.split()[4] not in shown


def test_server_env_takes_another_passphrase_on_top(tmp_path: Path) -> None:
    env = server_env(tmp_path, BSECRETS_PASSPHRASE=PASS["alice"])
    assert env["BSECRETS_PASSPHRASE"] == PASS["alice"]
