"""The web UI of ``bsecrets serve`` (#18) under /ui: a real uvicorn process (over HTTP,
and one over TLS with a self-signed certificate made here), a real browser (Debian's
headless Chromium driven by Playwright) and plain HTTP requests (httpx).

Sign-in with a pipeline token (never in a URL), browsing environments, secrets and a
secret, a reveal (audited as a ``get`` by the token's principal, hidden again by the
page's timer: BSECRETS_UI_REVEAL_SECONDS), a rollback (with its If-Match), CSRF (403
without the form's token), the session cookie's attributes (Secure over TLS), the
security headers, XSS payloads in tags and descriptions (shown as text, with and
without the CSP), and no token or value in any page, URL, header or log line, but the
revealed value in the reveal's response.

BSECRETS_UI_SCREENSHOTS=1 saves the screenshots of docs/server.md to docs/img/.
Without Chromium (``apt-get install chromium``) or Playwright, the browser tests skip.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.bsecrets_server import Server as SharedServer
from helpers.bsecrets_server import cli, free_port, server_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
REVEAL_SECONDS = 2  # the test server's BSECRETS_UI_REVEAL_SECONDS (default 30)
# read at import: the autouse fixture of conftest.py clears BSECRETS_* for each test
SCREENSHOTS = os.environ.get("BSECRETS_UI_SCREENSHOTS") == "1"
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"

VALUES = {
    "db/password": "pw-ui-demo-4c7e19",
    "api/key": "key-ui-demo-8b20d5",
    "app/rolled": "rolled-one-51aa",  # version 1; version 2 is ROLLED_TWO
}
ROLLED_TWO = "rolled-two-93fe"
XSS = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_VALUE = "<script>window.__xss=1</script>xss-value-2e6a"
DEV_VALUE = "dev-only-value-77c1"
EVERY_VALUE = (*VALUES.values(), ROLLED_TWO, XSS_VALUE, DEV_VALUE)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


# --- the server ------------------------------------------------------------------


class Server(SharedServer):
    """The shared test server with the UI's short reveal delay."""

    def __init__(self, work: Path, tls: tuple[Path, Path] | None = None) -> None:
        super().__init__(work, tls=tls, env={"BSECRETS_UI_REVEAL_SECONDS": str(REVEAL_SECONDS)})


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files), made now."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    key_file.chmod(0o600)
    return cert_file, key_file


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server-ui")
    cli(root, "init", "--env", "dev", "--env", "prod")
    for name, value in VALUES.items():
        cli(root, "put", name, "-e", "prod", input=value)
    cli(root, "put", "app/rolled", "-e", "prod", input=ROLLED_TWO)
    cli(root, "put", "xss/demo", "-e", "prod", "--tag", f"note={XSS}", "--tag", f"img={XSS_IMG}",
        "--description", f"{XSS} {XSS_IMG} & more", input=XSS_VALUE)  # fmt: skip
    cli(root, "put", "dev-only", "-e", "dev", input=DEV_VALUE)
    return root


def issue(work: Path, *args: str) -> dict[str, Any]:
    issued: dict[str, Any] = json.loads(cli(work, "token", "issue", *args, "--json"))
    return issued


@pytest.fixture(scope="module")
def writer(work: Path) -> str:
    return str(issue(work, "-e", "prod", "--role", "write")["token"])


@pytest.fixture(scope="module")
def reader(work: Path) -> str:
    return str(issue(work, "-e", "prod", "--role", "read", "--only", "db/*")["token"])


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[Server]:
    running = Server(work)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tls_server(work: Path) -> Iterator[Server]:
    running = Server(work, tls=self_signed(work))
    yield running
    running.stop()


# --- a signed-in session over plain HTTP -----------------------------------------


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html
    return found.group(1)


class UiClient:
    """A browser-less session: signs in with ``token`` through the form."""

    def __init__(self, server: Server, token: str | None) -> None:
        self.http = httpx.Client(base_url=server.url, follow_redirects=False, verify=False,
                                 timeout=30)  # fmt: skip
        server.clients.append(self.http)
        form = self.http.get("/ui/signin")
        self.first = form
        self.csrf = csrf_of(form.text)
        if token is not None:
            self.signed = self.http.post("/ui/signin", data={"csrf": self.csrf, "token": token})
            assert self.signed.status_code == 303, self.signed.text
            self.csrf = csrf_of(self.http.get("/ui/envs").text)

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post(path, data=data)


def no_leak(response: httpx.Response, *tokens: str, allowed: str | None = None) -> None:
    """No token and no value in the response (its body, headers, URL), but ``allowed``."""
    seen = f"{response.request.url}\n{response.headers}\n{response.text}"
    for token in tokens:
        assert token not in seen
    for value in EVERY_VALUE:
        if value != allowed:
            assert value not in seen, (response.request.url, value)


def message_of(html: str) -> str:
    found = re.search(r'id="message">([^<]*)<', html)
    return found.group(1) if found else ""


# --- the browser -----------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        # launch() gives the browser a fresh user-data folder of its own
        running = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield running
        running.close()


class Recorded:
    """A page whose every response is kept (URL, method, headers, body) for the checks
    of the ``page`` fixture's teardown."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.responses: list[tuple[str, str, str, str]] = []
        page.on("response", self.keep)

    def keep(self, response: Any) -> None:
        body = ""
        if not 300 <= response.status < 400:
            try:
                body = response.text()
            except Exception:  # a body the browser did not keep
                body = ""
        self.responses.append((response.request.method, response.url, str(response.headers), body))


@pytest.fixture
def page(browser: Any, writer: str, reader: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    recorded = Recorded(context.new_page())
    yield recorded.page
    context.close()
    assert recorded.responses
    for method, url, headers, body in recorded.responses:
        for token in (writer, reader):
            assert token not in url and token not in headers and token not in body, url
        reveal = method == "POST" and "/ui/envs/" in url and "/reveal/" in url
        for value in EVERY_VALUE:
            assert value not in url and value not in headers
            if not reveal:
                assert value not in body, (method, url)


def sign_in(page: Any, server: Server, token: str) -> None:
    page.goto(server.url + "/ui/")
    assert page.url == server.url + "/ui/signin"
    page.fill("#token", token)
    page.click("#signin")
    page.wait_for_url(server.url + "/ui/envs")


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / f"ui-{name}.png"), full_page=True)


# --- the tests -------------------------------------------------------------------


def test_sign_in_with_a_token_and_browse(page: Any, server: Server, writer: str) -> None:
    page.goto(server.url + "/ui/")
    assert page.url == server.url + "/ui/signin"
    assert page.get_attribute("#token", "type") == "password"
    screenshot(page, "signin")
    page.fill("#token", writer)
    page.click("#signin")
    page.wait_for_url(server.url + "/ui/envs")
    rows = page.inner_text("table")
    assert "prod" in rows and "write" in rows and "dev" in rows and "none" in rows
    assert page.locator("a", has_text="dev").count() == 0  # no access: no link
    cookie = next(c for c in page.context.cookies() if c["name"] == "bsecrets_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert writer not in cookie["value"] and not cookie["secure"]
    page.click("a:text-is('prod')")
    page.wait_for_url(server.url + "/ui/envs/prod/secrets")
    listed = page.inner_text("#secrets")
    for name in ("db/password", "api/key", "app/rolled", "xss/demo"):
        assert name in listed
    screenshot(page, "secrets")
    page.click("a:text-is('db/password')")
    page.wait_for_url(server.url + "/ui/envs/prod/secrets/db/password")
    assert page.inner_text("h1") == "db/password"
    assert page.locator("#versions tbody tr").count() == 1
    page.click("#signout")
    page.wait_for_url(server.url + "/ui/signin")
    assert "Signed out" in page.inner_text(".flash")
    page.goto(server.url + "/ui/envs")
    assert page.url == server.url + "/ui/signin"


def test_reveal_shows_the_value_hides_it_again_and_is_audited(
    page: Any, server: Server, work: Path, writer: str
) -> None:
    sign_in(page, server, writer)
    page.goto(server.url + "/ui/envs/prod/secrets/db/password")
    page.click("#reveal")
    page.wait_for_url(server.url + "/ui/envs/prod/reveal/db/password")
    assert page.inner_text("#value") == VALUES["db/password"]
    screenshot(page, "secret-revealed")
    page.wait_for_selector("#value", state="hidden", timeout=20_000)  # a hang guard: 10x
    assert page.is_visible("#rehidden")
    assert VALUES["db/password"] not in page.content()  # off the page, not only hidden
    principal = "token-" + writer.split(".")[2]
    events = json.loads(cli(work, "audit", "log", "--json"))
    gets = [e for e in events if e["action"] == "get" and e.get("name") == "db/password"
            and e["actor"]["principal"] == principal]  # fmt: skip
    assert gets and gets[-1]["outcome"] == "ok"


def test_rollback_writes_the_old_value_as_a_new_version(
    page: Any, server: Server, work: Path, writer: str
) -> None:
    sign_in(page, server, writer)
    page.goto(server.url + "/ui/envs/prod/secrets/app/rolled")
    assert page.inner_text("#current").strip() == "2"
    screenshot(page, "secret")
    with page.expect_navigation():  # back to the same page, with the outcome
        page.click("[data-rollback-to='1']")
    assert page.inner_text(".flash") == "Rolled back: version 3 has version 1's value."
    assert page.inner_text("#current").strip() == "3"
    assert cli(work, "get", "app/rolled", "-e", "prod") == VALUES["app/rolled"] + "\n"
    # a page loaded before the rollback still says If-Match: 2: refused, nothing written
    session = UiClient(server, writer)
    stale = session.post("/ui/envs/prod/rollback/app/rolled",
                         {"csrf": session.csrf, "to": "2", "if_version": "2"})  # fmt: skip
    assert stale.status_code == 412 and "changed since" in stale.text
    no_leak(stale, writer)
    unchecked = session.post("/ui/envs/prod/rollback/app/rolled", {"csrf": session.csrf, "to": "2"})
    assert unchecked.status_code == 400  # the UI always checks the version it showed
    assert json.loads(cli(work, "get", "app/rolled", "-e", "prod", "--json"))["version"] == 3


def test_xss_in_tags_and_description_is_shown_as_text(
    browser: Any, server: Server, writer: str
) -> None:
    # with the CSP, and without it: the escaping alone must keep the payloads inert
    for bypass_csp in (False, True):
        context = browser.new_context(bypass_csp=bypass_csp)
        page = context.new_page()
        sign_in(page, server, writer)
        page.goto(server.url + "/ui/envs/prod/secrets?prefix=xss/")
        assert XSS in page.inner_text("#secrets")
        page.click("a:text-is('xss/demo')")
        page.wait_for_url(server.url + "/ui/envs/prod/secrets/xss/demo")
        assert f"note={XSS}" in page.inner_text("#tags")
        assert page.evaluate("window.__xss") is None
        page.click("#reveal")
        page.wait_for_url(server.url + "/ui/envs/prod/reveal/xss/demo")
        assert page.inner_text("#description") == f"{XSS} {XSS_IMG} & more"
        assert page.inner_text("#value") == XSS_VALUE
        assert page.locator("main script, main img").count() == 0
        page.wait_for_timeout(300)  # an onerror would have fired by now
        assert page.evaluate("window.__xss") is None
        context.close()


def test_a_read_token_sees_its_scope_and_no_rollback(
    server: Server, reader: str, writer: str
) -> None:
    session = UiClient(server, reader)
    listed = session.get("/ui/envs/prod/secrets")
    assert "db/password" in listed.text and "api/key" not in listed.text
    page = session.get("/ui/envs/prod/secrets/db/password")
    assert page.status_code == 200 and "data-rollback-to" not in page.text
    outside = session.get("/ui/envs/prod/secrets/api/key")
    assert outside.status_code == 403 and "outside" in message_of(outside.text)
    denied = session.post("/ui/envs/prod/reveal/api/key", {"csrf": session.csrf})
    assert denied.status_code == 403
    assert session.get("/ui/envs/dev/secrets").status_code == 403
    audit = session.get("/ui/audit")
    assert audit.status_code == 403 and "Not for this token" in audit.text
    for response in (listed, page, outside, denied, audit):
        no_leak(response, reader, writer)


def test_a_post_without_the_csrf_token_is_403(server: Server, work: Path, writer: str) -> None:
    session = UiClient(server, writer)
    before = json.loads(cli(work, "get", "app/rolled", "-e", "prod", "--json"))["version"]
    for path, data in (
        ("/ui/envs/prod/reveal/db/password", {}),
        ("/ui/envs/prod/reveal/db/password", {"csrf": "forged"}),
        ("/ui/envs/prod/rollback/app/rolled", {"to": "1", "if_version": "3"}),
        ("/ui/signout", {}),
    ):
        refused = session.post(path, data)
        assert refused.status_code == 403, (path, refused.text)
        assert "this form expired" in message_of(refused.text)
        no_leak(refused, writer)
    other = UiClient(server, writer)  # another session's CSRF token is no good here
    assert session.post("/ui/envs/prod/reveal/db/password",
                        {"csrf": other.csrf}).status_code == 403  # fmt: skip
    anonymous = UiClient(server, None)
    assert anonymous.post("/ui/signin", {"token": writer}).status_code == 403
    assert httpx.post(server.url + "/ui/signin", data={"token": writer}).status_code == 403
    # nothing rolled back (the browser test before this one, when it runs, made version 3)
    assert json.loads(cli(work, "get", "app/rolled", "-e", "prod", "--json"))["version"] == before
    assert session.get("/ui/envs").status_code == 200  # still signed in


def test_the_session_cookie_and_sign_out(server: Server, writer: str) -> None:
    session = UiClient(server, writer)
    anonymous = session.first.headers["set-cookie"]
    signed = session.signed.headers["set-cookie"]
    for header in (anonymous, signed):
        assert re.fullmatch(r"bsecrets_ui=[A-Za-z0-9_-]{43}; Path=/ui; HttpOnly; SameSite=Strict",
                            header), header  # fmt: skip
    assert anonymous.split(";")[0] != signed.split(";")[0]  # a new id on sign-in
    assert writer not in signed
    stolen = signed.split(";")[0].split("=", 1)[1]
    replay = httpx.get(server.url + "/ui/envs", cookies={"bsecrets_ui": stolen})
    assert replay.status_code == 200
    out = session.post("/ui/signout", {"csrf": session.csrf})
    assert out.status_code == 303 and out.headers["location"] == "/ui/signin"
    replay = httpx.get(server.url + "/ui/envs", cookies={"bsecrets_ui": stolen})
    assert replay.status_code == 303 and replay.headers["location"] == "/ui/signin"
    old = anonymous.split(";")[0].split("=", 1)[1]  # the id before sign-in: dropped too
    assert httpx.get(server.url + "/ui/envs", cookies={"bsecrets_ui": old}).status_code == 303


def test_the_session_cookie_is_secure_over_tls(tls_server: Server, writer: str) -> None:
    session = UiClient(tls_server, writer)
    for response in (session.first, session.signed):
        header = response.headers["set-cookie"]
        assert header.endswith("; Path=/ui; HttpOnly; SameSite=Strict; Secure"), header
    assert session.get("/ui/envs/prod/secrets").status_code == 200
    assert "strict-transport-security" not in session.first.headers  # the operator's call


def test_every_ui_response_has_the_security_headers(server: Server, writer: str) -> None:
    session = UiClient(server, writer)
    responses = [
        session.first, session.signed, session.get("/ui/envs"),
        session.get("/ui/envs/prod/secrets"), session.get("/ui/envs/prod/secrets/db/password"),
        session.post("/ui/envs/prod/reveal/db/password", {"csrf": session.csrf}),
        session.get("/ui/static/ui.js"), session.get("/ui/static/ui.css"),
        session.get("/ui/nowhere"), session.get("/ui/envs/nowhere/secrets"),
        session.post("/ui/envs/prod/reveal/db/password"),
    ]  # fmt: skip
    assert [r.status_code for r in responses[-3:]] == [404, 404, 403]
    for response in responses:
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src 'self';" in csp and "unsafe" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in responses[2].text  # no inline script: only static/ui.js
    assert '<script src="/ui/static/ui.js" defer></script>' in responses[2].text


def test_no_token_or_value_in_a_page_a_url_or_the_log(
    server: Server, work: Path, writer: str, reader: str
) -> None:
    session = UiClient(server, writer)
    pages = [session.first, session.signed] + [
        session.get(path) for path in (
            "/ui/", "/ui/envs", "/ui/envs/prod/secrets", "/ui/envs/prod/secrets/db/password",
            "/ui/envs/prod/secrets/xss/demo", "/ui/envs/prod/secrets/api/key", "/ui/audit",
            "/ui/envs/dev/secrets", "/ui/envs/prod/secrets/no/such",
        )
    ]  # fmt: skip
    for response in pages:
        no_leak(response, writer, reader)
    revealed = session.post("/ui/envs/prod/reveal/api/key", {"csrf": session.csrf})
    assert revealed.status_code == 200 and VALUES["api/key"] in revealed.text
    no_leak(revealed, writer, reader, allowed=VALUES["api/key"])
    older = session.post("/ui/envs/prod/reveal/app/rolled", {"csrf": session.csrf, "version": "2"})
    assert ROLLED_TWO in older.text
    # a refused token is not echoed back
    vault, token_id = writer.split(".")[1:3]
    wrong = f"bst1.{vault}.{token_id}.{'A' * 43}"
    anonymous = UiClient(server, None)
    refused = anonymous.post("/ui/signin", {"csrf": anonymous.csrf, "token": wrong})
    assert refused.status_code == 401 and "not accepted" in refused.text
    no_leak(refused, writer, reader, wrong)
    log = server.output()
    assert "GET /ui/envs/prod/secrets/db/password" in log
    for secret in (writer, reader, wrong, *EVERY_VALUE):
        assert secret not in log


def test_a_revoked_token_signs_the_session_out(server: Server, work: Path) -> None:
    issued = issue(work, "-e", "dev", "--role", "read")
    session = UiClient(server, str(issued["token"]))
    assert session.get("/ui/envs/dev/secrets").status_code == 200
    cli(work, "token", "revoke", str(issued["id"]))
    gone = session.get("/ui/envs/dev/secrets")
    assert gone.status_code == 303 and gone.headers["location"] == "/ui/signin"
    again = session.get("/ui/signin")
    assert "Signed out" in again.text and "revoked" in again.text
    assert session.get("/ui/envs").status_code == 303


def test_a_bad_reveal_delay_is_refused(work: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bsecrets", "serve", "--port", str(free_port())],
                          cwd=work, env=server_env(work, BSECRETS_UI_REVEAL_SECONDS="soon"),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2 and "BSECRETS_UI_REVEAL_SECONDS" in done.stderr
