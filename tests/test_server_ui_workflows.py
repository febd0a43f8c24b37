"""The web UI's rotation and promotion pages (#18; bsecrets/server/ui_workflows.py): a
real ``bsecrets serve`` process, Debian's headless Chromium driven by Playwright, and
plain HTTP (httpx) for the refusals.

A rotation finished and one stopped by its failing ``set`` hook, both started with the
CLI as the signed-in token, are on /ui/rotations; an environment of a few hundred
secrets has its rotation status a page at a time; a secret's is ``rotate status
NAME``'s. The promote form shows the dry-run plan of the profile's ``promote:`` map
(a rename, a ``never`` glob) and writes nothing. A token without access to the target
gets the error page (403); a POST without the form's CSRF token is 403; a reason, a
hook's output, a profile glob and the form's own input with ``<script>`` are shown as
text; no value is in any of these pages.

BSECRETS_UI_SCREENSHOTS=1 saves the two screenshots of docs/server.md to docs/img/;
the other pages' go to the test's folder. Without Chromium or Playwright, the browser
tests skip.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.bsecrets_server import Server, cli, server_env
from test_server_ui import (
    Recorded,
    UiClient,
    browser,  # noqa: F401 - the shared fixture: Chromium, once per module
    message_of,
    no_leak,
    screenshot,
    sign_in,
)

STAGING = {
    "db/url": "pg://staging-db-41f2",
    "db/password": "pw-staging-7d10",
    "db/debug": "debug-staging-c3a9",
    "api/key": "key-staging-9e1b",
    "other": "other-staging-55d0",
}
PROD = {"db/password": "pw-prod-0a8e", "hooked/key": "hooked-old-1f3c", "stale/key": "stale-2b7e"}
BULK = {f"bulk/{i:03d}": f"bulk-value-{i:03d}-e5" for i in range(230)}
ROTATED = "pw-prod-rotated-6b2c"  # db/password's new value (a finished rotation)
PENDING = "hooked-new-88d4"  # hooked/key's (its set hook fails: pending, never current)
EVERY_VALUE = (*STAGING.values(), *PROD.values(), *BULK.values(), ROTATED, PENDING)
XSS = "<script>window.__xss=1</script>"
XSS_NO_SPACE = '"><img/src=x/onerror=window.__xss=1>'  # one "only" glob: no space in it
REASON = f"{XSS} quarterly"


def profile_with_policies_and_a_route(root: Path) -> None:
    """prod's rotation policies (one with a failing set hook, one due a second after a
    write, one glob with markup) and the staging -> prod route with a rename and a
    never glob."""
    hook = root / "fail-set.sh"
    hook.write_text(f'#!/bin/sh\nvalue=$(cat)\necho "{XSS} cannot set $value" >&2\nexit 3\n')
    hook.chmod(0o700)
    profile = root / "bsecrets.yaml"
    text = profile.read_text()
    head = "  prod:\n    backend: local\n"
    assert head in text, text
    policies = (
        "    rotation:\n"
        "      'db/*': {max_age: 30d, strategy: graceful, generate: 'password:24'}\n"
        f"      'hooked/*': {{hooks: {{set: [{hook}]}}}}\n"
        "      'stale/*': {max_age: 1s}\n"
        f"      '{XSS}*': {{max_age: 90d}}\n"
    )
    route = (
        "promote:\n  staging:\n    prod:\n"
        '      names: ["db/*", "api/key"]\n'
        "      rename: {db/url: db/primary_url}\n"
        '      never: ["*/debug"]\n'
    )
    profile.write_text(text.replace(head, head + policies, 1) + route)


def as_token(work: Path, token: str, *args: str, code: int = 0) -> str:
    """The CLI run with ``token`` alone (no passphrase): as the UI's principal."""
    env = server_env(work, BSECRETS_TOKEN=token)
    env.pop("BSECRETS_PASSPHRASE")
    done = subprocess.run([sys.executable, "-m", "bsecrets", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == code, done.stderr
    return done.stdout


def issue(work: Path, *args: str) -> str:
    return str(json.loads(cli(work, "token", "issue", *args, "--json"))["token"])


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server-ui-workflows")
    cli(root, "init", "--env", "dev", "--env", "staging", "--env", "prod")
    profile_with_policies_and_a_route(root)
    for name, value in STAGING.items():
        cli(root, "put", name, "-e", "staging", input=value)
    for name, value in PROD.items():
        cli(root, "put", name, "-e", "prod", input=value)
    (root / "bulk.json").write_text(json.dumps(BULK))
    cli(root, "import", "bulk.json", "-e", "prod")
    (root / "bulk.json").unlink()
    return root


@pytest.fixture(scope="module")
def writer(work: Path) -> str:
    return issue(work, "-e", "staging", "-e", "prod", "--role", "write")


@pytest.fixture(scope="module")
def stager(work: Path) -> str:
    """Read access to staging only: no promotion plan into prod."""
    return issue(work, "-e", "staging", "--role", "read")


@pytest.fixture(scope="module")
def rotated(work: Path, writer: str) -> dict[str, str]:
    """A rotation finished (db/password, graceful, with a reason) and one in flight
    (hooked/key: its set hook exits 3), both the writer token's; and stale/key due."""
    (work / "new.txt").write_text(ROTATED)
    (work / "pending.txt").write_text(PENDING)
    as_token(work, writer, "rotate", "db/password", "-e", "prod", "--from-file", "new.txt",
             "--reason", REASON)  # fmt: skip
    as_token(work, writer, "rotate", "hooked/key", "-e", "prod", "--from-file", "pending.txt",
             code=1)  # fmt: skip
    rows = json.loads(as_token(work, writer, "rotate", "status", "--json"))
    ids = {row["name"]: str(row["id"]) for row in rows}
    assert [row["step"] for row in rows] == ["finished", "failed"], rows
    listed = json.loads(cli(work, "ls", "-e", "prod", "--json"))
    written = next(s["updated_at"] for s in listed if s["name"] == "stale/key")
    due = datetime.datetime.fromisoformat(written.replace("Z", "+00:00"))
    deadline = time.monotonic() + 30  # a hang guard: the policy's max_age is 1 s
    while datetime.datetime.now(datetime.UTC) <= due + datetime.timedelta(seconds=1):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return ids


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[Server]:
    running = Server(work)
    yield running
    running.stop()


@pytest.fixture
def page(browser: Any, writer: str, stager: str) -> Iterator[Any]:  # noqa: F811
    """A browser page whose every response is checked at the end: no token, no value."""
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    recorded = Recorded(context.new_page())
    yield recorded.page
    context.close()
    assert recorded.responses
    for _method, url, headers, body in recorded.responses:
        for secret in (writer, stager, *EVERY_VALUE):
            assert secret not in url and secret not in headers and secret not in body, url


def shot(page: Any, name: str, folder: Path, docs: bool = False) -> None:
    """Every page's screenshot in the test's folder; ``docs``: also docs/img's."""
    page.screenshot(path=str(folder / f"ui-{name}.png"), full_page=True)
    if docs:
        screenshot(page, name)


# --- rotations -------------------------------------------------------------------


def test_the_rotations_page_shows_a_finished_and_an_in_flight_rotation(
    page: Any, server: Server, writer: str, rotated: dict[str, str], tmp_path: Path
) -> None:
    sign_in(page, server, writer)
    page.click("nav a:text-is('Rotations')")
    page.wait_for_url(server.url + "/ui/rotations")
    in_flight = page.inner_text("#in-flight")
    assert rotated["hooked/key"] in in_flight and "prod/hooked/key" in in_flight
    assert "failed" in in_flight and "set hook exit 3" in in_flight
    recent = page.inner_text("#recent")
    assert rotated["db/password"] in recent and "prod/db/password" in recent
    assert "finished" in recent and "graceful" in recent and "v2" in recent
    assert REASON in recent  # the reason, as text
    assert "rotate resume ID" in page.inner_text("main")
    shot(page, "rotations", tmp_path, docs=True)
    page.click("#envs a:text-is('prod')")
    page.wait_for_url(server.url + "/ui/envs/prod/rotations")
    assert "233 of 233 secrets; page 1 of 3" in page.inner_text("#count")
    assert page.locator("#status tbody tr").count() == 100
    assert " ".join(page.inner_text("#quick").split()) == "1 due now 1 in flight 3 with a policy"
    assert "db/*" in page.inner_text("#policies") and "max_age=30d" in page.inner_text("#policies")
    shot(page, "rotations-env", tmp_path)
    page.click("#next")
    page.wait_for_url("**/ui/envs/prod/rotations?prefix=&show=all&page=2")
    assert "page 2 of 3" in page.inner_text("#count")
    page.select_option("#show", "in_flight")
    page.click("form.filter button")
    page.wait_for_url("**/ui/envs/prod/rotations?prefix=&show=in_flight")
    (row,) = page.locator("#status tbody tr").all_inner_texts()
    assert "hooked/key" in row and rotated["hooked/key"] in row and "failed" in row
    page.goto(server.url + "/ui/envs/prod/rotations?show=due")
    (row,) = page.locator("#status tbody tr").all_inner_texts()
    assert "stale/key" in row and "due" in row
    page.goto(server.url + "/ui/envs/prod/rotations?prefix=db/")
    rows = page.locator("#status tbody tr").all_inner_texts()
    assert len(rows) == 1 and "db/password" in rows[0] and "db/*" in rows[0]
    assert "finished" in rows[0] and "never" not in rows[0]  # due in 30 days


def test_a_secrets_rotation_status_is_rotate_status_names(
    page: Any, server: Server, work: Path, writer: str, rotated: dict[str, str], tmp_path: Path
) -> None:
    sign_in(page, server, writer)
    page.goto(server.url + "/ui/envs/prod/secrets/hooked/key")
    page.click("#rotation-link")
    page.wait_for_url(server.url + "/ui/envs/prod/rotations/hooked/key")
    found = json.loads(as_token(work, writer, "rotate", "status", "hooked/key", "-e", "prod",
                                "--json"))  # fmt: skip
    assert page.inner_text("#in-flight") == f"{rotated['hooked/key']} ({found['last']['by']})"
    policy = page.inner_text("#policy")
    assert "glob=hooked/*" in policy and "hooks=set" in policy
    assert page.inner_text("#due") == "never (no max_age)"
    assert "the set hook (fail-set.sh) exited 3 after 1 attempt" in page.inner_text("#result")
    output = page.inner_text("#output")
    assert XSS in output and "cannot set" in output and PENDING not in output  # masked
    assert "rotate resume " + rotated["hooked/key"] in page.inner_text("#last-rotation")
    shot(page, "rotation-secret", tmp_path)
    page.goto(server.url + "/ui/envs/prod/rotations/db/password")
    assert "v2" in page.inner_text("#rotation-status") and page.inner_text("#reason") == REASON
    assert "previous readable until" in page.inner_text("#last-rotation").lower()


# --- promotion -------------------------------------------------------------------


def test_the_promote_page_shows_the_dry_run_plan_and_writes_nothing(
    page: Any, server: Server, work: Path, writer: str, rotated: dict[str, str], tmp_path: Path
) -> None:
    before = cli(work, "ls", "-e", "prod", "--json")
    sign_in(page, server, writer)
    page.click("nav a:text-is('Promote')")
    page.wait_for_url(server.url + "/ui/promote")
    assert "db/url → db/primary_url" in page.inner_text("#routes")
    assert page.input_value("#from") == "staging" and page.input_value("#to") == "prod"
    shot(page, "promote", tmp_path)
    page.click("#plan")
    page.wait_for_url(server.url + "/ui/promote/plan")
    assert "Dry run: nothing was written" in page.inner_text("#dry-run")
    assert "bsecrets promote --from staging --to prod" in page.inner_text("#dry-run")
    counts = page.inner_text("#counts")
    for text in ("2 to create", "1 to update", "0 unchanged", "2 skipped"):
        assert text in counts
    rows = {r.split("\t")[0].strip(): r for r in page.locator("#plan-items tbody tr")
            .all_inner_texts()}  # fmt: skip
    assert "db/primary_url" in rows["db/url"] and "renamed" in rows["db/url"]
    assert "create" in rows["db/url"] and "create" in rows["api/key"]
    assert "update" in rows["db/password"] and "v2" in rows["db/password"]  # prod's, rotated
    assert "skip" in rows["db/debug"] and "never: */debug" in rows["db/debug"]
    assert "not in the mapping" in rows["other"]
    assert page.inner_text("#renames") == "db/url → db/primary_url"
    assert page.inner_text("#never") == "*/debug"
    shot(page, "promote-plan", tmp_path, docs=True)
    page.fill("#only", "db/url, db/password")  # narrowed: api/key is not in --only
    page.click("#plan")
    page.wait_for_url(server.url + "/ui/promote/plan")
    assert page.input_value("#only") == "db/url, db/password"
    assert "not in --only" in page.inner_text("#plan-items")
    assert "--only 'db/url' --only 'db/password'" in page.inner_text("#dry-run")
    assert cli(work, "ls", "-e", "prod", "--json") == before  # a dry run wrote nothing
    principal = "token-" + writer.split(".")[2]
    plans = [e for e in json.loads(cli(work, "audit", "log", "--json"))
             if e["action"] == "promote" and (e.get("details") or {}).get("step") == "plan"
             and e["actor"]["principal"] == principal]  # fmt: skip
    assert len(plans) == 2 and plans[0]["env"] == "prod"


def test_a_token_without_access_to_the_target_gets_the_error_page(
    page: Any, server: Server, stager: str, tmp_path: Path
) -> None:
    sign_in(page, server, stager)
    page.goto(server.url + "/ui/promote")
    page.select_option("#from", "staging")
    page.select_option("#to", "prod")
    with page.expect_navigation() as navigation:
        page.click("#plan")
    assert navigation.value.status == 403
    assert page.inner_text("h1") == "Refused"
    assert "no access to environment 'prod'" in page.inner_text("#message")
    shot(page, "promote-refused", tmp_path)
    response = page.goto(server.url + "/ui/envs/prod/rotations")
    assert response.status == 403 and "no access" in page.inner_text("#message")
    assert page.goto(server.url + "/ui/rotations").status == 200  # its own: none
    assert page.inner_text("#no-in-flight") == "None of yours."


def test_a_post_without_the_csrf_token_is_403_and_plans_nothing(
    server: Server, work: Path, writer: str
) -> None:
    def plans() -> int:
        events = json.loads(cli(work, "audit", "log", "--json"))
        return sum(1 for e in events if e["action"] == "promote")

    before = plans()
    session = UiClient(server, writer)
    other = UiClient(server, writer)
    fields = {"from": "staging", "to": "prod", "only": ""}
    for csrf in (None, "forged", other.csrf):
        data = fields if csrf is None else {**fields, "csrf": csrf}
        refused = session.post("/ui/promote/plan", data)
        assert refused.status_code == 403, refused.text
        assert "this form expired" in message_of(refused.text)
        no_leak(refused, writer, *EVERY_VALUE)
    assert httpx.post(server.url + "/ui/promote/plan", data=fields).status_code == 403
    assert plans() == before
    assert session.post("/ui/promote/plan", {**fields, "csrf": session.csrf}).status_code == 200


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"from": "prod", "to": "prod"}, 400, "are both 'prod'"),
        ({"from": "staging", "to": "nowhere"}, 404, "nowhere"),
        ({"from": "dev", "to": "staging"}, 400, "nothing says what goes"),
        ({"from": "../etc", "to": "prod"}, 400, "choose the environment to promote from"),
        ({"from": "staging", "to": "prod", "only": " ".join(["a*"] * 21)}, 400, "at most 20"),
        ({"from": "staging", "to": "prod", "only": "api/key db/nope"}, 404, "db/nope"),
    ],
)
def test_a_bad_plan_request_is_the_error_page(
    server: Server, writer: str, fields: dict[str, str], status: int, words: str
) -> None:
    session = UiClient(server, writer)
    refused = session.post("/ui/promote/plan", {**fields, "csrf": session.csrf})
    assert refused.status_code == status, refused.text
    assert words in message_of(refused.text).replace("&#39;", "'")
    assert 'class="card narrow problem"' in refused.text  # error.html
    no_leak(refused, writer, *EVERY_VALUE)


def test_bad_page_requests_and_no_session(server: Server, writer: str) -> None:
    session = UiClient(server, writer)
    assert session.get("/ui/envs/prod/rotations?page=abc").status_code == 400
    assert session.get("/ui/envs/prod/rotations?page=99").status_code == 200  # the last one
    missing = session.get("/ui/envs/prod/rotations/no/such")
    assert missing.status_code == 404 and "not found" in message_of(missing.text)
    assert session.get("/ui/envs/nowhere/rotations").status_code == 404
    for path in ("/ui/rotations", "/ui/promote", "/ui/envs/prod/rotations"):
        gone = httpx.get(server.url + path)
        assert gone.status_code == 303 and gone.headers["location"] == "/ui/signin"


# --- what the pages never show ---------------------------------------------------


def test_user_text_is_shown_as_text_with_and_without_the_csp(
    browser: Any,  # noqa: F811
    server: Server,
    writer: str,
    rotated: dict[str, str],
) -> None:
    for bypass_csp in (False, True):
        context = browser.new_context(bypass_csp=bypass_csp)
        page = context.new_page()
        sign_in(page, server, writer)
        page.goto(server.url + "/ui/rotations")
        assert REASON in page.inner_text("#recent")
        page.goto(server.url + "/ui/envs/prod/rotations")
        assert XSS + "*" in page.inner_text("#policies")
        page.goto(server.url + "/ui/envs/prod/rotations/hooked/key")
        assert XSS in page.inner_text("#output")
        page.goto(server.url + "/ui/envs/prod/rotations/db/password")
        assert page.inner_text("#reason") == REASON
        page.goto(server.url + "/ui/promote")
        page.fill("#only", XSS_NO_SPACE)
        page.click("#plan")
        page.wait_for_url(server.url + "/ui/promote/plan")
        assert page.input_value("#only") == XSS_NO_SPACE
        assert XSS_NO_SPACE in page.inner_text("#mapping")
        assert page.locator("main script, main img").count() == 0
        page.wait_for_timeout(300)  # an onerror would have fired by now
        assert page.evaluate("window.__xss") is None
        context.close()


def test_no_token_or_value_in_any_of_these_pages(
    server: Server, writer: str, stager: str, rotated: dict[str, str]
) -> None:
    session = UiClient(server, writer)
    pages = [
        session.get(path) for path in (
            "/ui/rotations", "/ui/envs/prod/rotations", "/ui/envs/prod/rotations?page=3",
            "/ui/envs/prod/rotations?show=due", "/ui/envs/prod/rotations/db/password",
            "/ui/envs/prod/rotations/hooked/key", "/ui/envs/staging/rotations",
            "/ui/promote", "/ui/envs/prod/rotations/no/such",
        )
    ]  # fmt: skip
    pages.append(session.post("/ui/promote/plan",
                              {"csrf": session.csrf, "from": "staging", "to": "prod"}))  # fmt: skip
    denied = UiClient(server, stager)
    pages.append(denied.post("/ui/promote/plan",
                             {"csrf": denied.csrf, "from": "staging", "to": "prod"}))  # fmt: skip
    assert [p.status_code for p in pages[-3:]] == [404, 200, 403]
    for response in pages:
        no_leak(response, writer, stager, *EVERY_VALUE)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp and response.headers["cache-control"] == "no-store"
        assert "<script>" not in response.text  # no inline script; user text is escaped
    nav = pages[0].text
    assert 'href="/ui/rotations"' in nav and 'href="/ui/promote"' in nav
    for secret in (writer, stager, *EVERY_VALUE):
        assert secret not in server.output()


# --- a profile edited while the server runs (server/core.py CorePool) -------------


def test_a_profile_edited_while_the_server_runs_applies_to_the_next_page(
    tmp_path: Path,
) -> None:
    root = tmp_path / "edited"
    root.mkdir()
    cli(root, "init", "--env", "prod")
    cli(root, "put", "db/password", "-e", "prod", input=PROD["db/password"])
    token = issue(root, "-e", "prod", "--role", "read")
    running = Server(root)
    try:
        session = UiClient(running, token)
        assert "No rotation policy" in session.get("/ui/envs/prod/rotations").text
        profile = root / "bsecrets.yaml"
        head = "  prod:\n    backend: local\n"
        policy = "    rotation:\n      'db/*': {max_age: 30d}\n"
        profile.write_text(profile.read_text().replace(head, head + policy, 1))
        cli(root, "ls", "-e", "prod")  # the CLI sees the new profile
        assert "max_age=30d" in session.get("/ui/envs/prod/rotations").text
    finally:
        running.stop()
