"""``bsecrets serve`` without a vault file (server/pass_through.py): Vault environments
served with each caller's own Vault token, as two replicas of one profile, against a
real OpenBao dev server over real HTTP.

The server's own VAULT_TOKEN (the root token here) must never be used: a token whose
policy covers one environment is refused on the other one. Nothing is written beside
the profile (no vault file, no session), so either replica answers the same."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.bsecrets_server import Server, server_env
from helpers.openbao_server import OpenBao


def _profile(work: Path, environments: dict[str, dict[str, Any]], default: str) -> None:
    lines = ["version: 1", f"default_env: {default}", "environments:"]
    for name, options in environments.items():
        lines.append(f"  {name}:")
        for key, value in options.items():
            if isinstance(value, dict):
                lines.append(f"    {key}:")
                lines.extend(f"      {k}: {v}" for k, v in value.items())
            else:
                lines.append(f"    {key}: {value}")
    (work / "bsecrets.yaml").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def setting(
    tmp_path_factory: pytest.TempPathFactory, openbao: OpenBao
) -> Iterator[tuple[Path, str, str, list[Server]]]:
    """The profile (no vault file), a token for 'app' only, and two replicas."""
    work = tmp_path_factory.mktemp("stateless")
    app, other = f"app-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    _profile(work, {
        "app": {"backend": "vault", "address": openbao.address, "prefix": app},
        "other": {"backend": "vault", "address": openbao.address, "prefix": other},
        "loc": {"backend": "local"},
        "role": {"backend": "vault", "address": openbao.address, "prefix": other,
                 "auth": {"method": "approle", "role_id_env": "RID", "secret_id_env": "SID"}},
    }, default="app")  # fmt: skip
    root = openbao.client()
    policy = f'path "secret/data/{app}/*" {{ capabilities = ["create", "read", "update"] }}\n'
    policy += f'path "secret/metadata/{app}/*" {{ capabilities = ["read", "list"] }}\n'
    policy += f'path "secret/metadata/{app}" {{ capabilities = ["list"] }}\n'
    root.sys.create_or_update_policy(name=f"only-{app}", policy=policy)
    limited = root.auth.token.create(policies=[f"only-{app}"], ttl="1h")["auth"]["client_token"]
    root.secrets.kv.v2.create_or_update_secret(path=f"{other}/db", secret={"value": "other-v"})
    own = {"VAULT_TOKEN": openbao.root_token}  # the server's own: never to be used
    replicas = [Server(work, env=own), Server(work, env=own)]
    yield work, openbao.root_token, limited, replicas
    for replica in replicas:
        replica.stop()


def call(
    server: Server, method: str, path: str, token: str | None,
    headers: dict[str, str] | None = None, **kw: Any,
) -> httpx.Response:  # fmt: skip
    sent = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.request(method, server.url + path, headers={**sent, **(headers or {})},
                         timeout=30, **kw)  # fmt: skip


def test_two_replicas_answer_the_same_and_nothing_is_kept_beside_the_profile(
    setting: tuple[Path, str, str, list[Server]],
) -> None:
    work, root, _, (one, two) = setting
    put = call(one, "PUT", "/v1/envs/app/secrets/db/password", root, json={"value": "v-1"})
    assert put.status_code == 200, put.text
    got = call(two, "GET", "/v1/envs/app/secrets/db/password", root)
    assert got.status_code == 200 and got.json()["value"] == "v-1", got.text
    again = call(two, "PUT", "/v1/envs/app/secrets/db/password", root,
                 json={"value": "v-2"}, headers={"If-Match": "1"})  # fmt: skip
    assert call(one, "GET", "/v1/envs/app/secrets/db/password", root).json()["value"] == "v-2"
    assert again.status_code == 200, again.text
    stale = call(one, "PUT", "/v1/envs/app/secrets/db/password", root,
                 json={"value": "lost"}, headers={"If-Match": "1"})  # fmt: skip
    assert stale.status_code == 412, stale.text
    assert [s["name"] for s in call(two, "GET", "/v1/envs/app/secrets", root).json()] == [
        "db/password"
    ]
    assert not (work / ".bsecrets").exists()
    assert not (work / "run" / "bsecrets").exists()  # no session either
    history = call(one, "GET", "/v1/envs/app/history/db/password", root).json()
    assert history[-1]["created_by"].startswith("vault-token-")
    assert history[-1]["created_by"].endswith("via bsecrets serve from 127.0.0.1")
    assert root not in str(history)


def test_each_call_is_made_with_the_callers_token_not_the_servers(
    setting: tuple[Path, str, str, list[Server]],
) -> None:
    _, root, limited, (one, _) = setting
    assert call(one, "PUT", "/v1/envs/app/secrets/mine", limited,
                json={"value": "mine-v"}).status_code == 200  # fmt: skip
    assert call(one, "GET", "/v1/envs/app/secrets/mine", limited).json()["value"] == "mine-v"
    refused = call(one, "GET", "/v1/envs/other/secrets/db", limited)
    assert refused.status_code == 403, refused.text  # the server's root token would read it
    assert "other-v" not in refused.text
    assert call(one, "GET", "/v1/envs/other/secrets/db", root).json()["value"] == "other-v"
    for bearer in ("not-a-vault-token", "hvs.AAAAAAAAAAAAAAAAAAAAAAAA"):
        bad = call(one, "GET", "/v1/envs/app/secrets/mine", bearer)
        assert bad.status_code == 403, bad.text
        assert set(bad.json()) == {"error", "hint", "kind"}
        assert "mine-v" not in bad.text and bearer not in bad.text


@pytest.mark.parametrize(
    ("path", "token", "status", "kind"),
    [
        ("/v1/envs/app/secrets", None, 401, "token_invalid"),
        ("/v1/envs/loc/secrets", "root", 404, "environment_not_found"),
        ("/v1/envs/role/secrets", "root", 404, "environment_not_found"),
        ("/v1/envs/nowhere/secrets", "root", 404, "environment_not_found"),
    ],
)
def test_what_is_not_served_without_a_vault_file(
    setting: tuple[Path, str, str, list[Server]], path: str, token: str | None, status: int,
    kind: str,
) -> None:  # fmt: skip
    _, root, _, (one, _) = setting
    answer = call(one, "GET", path, root if token == "root" else token)
    assert answer.status_code == status, answer.text
    assert answer.json()["kind"] == kind


def test_the_served_environments_are_listed_and_the_others_named_at_start(
    setting: tuple[Path, str, str, list[Server]],
) -> None:
    _, root, _, (one, _) = setting
    listed = call(one, "GET", "/v1/envs", root).json()
    assert [e["name"] for e in listed["environments"]] == ["app", "other"]
    assert "not served: loc, role" in one.output()


def test_serve_refuses_a_profile_with_nothing_to_serve(tmp_path: Path) -> None:
    _profile(tmp_path, {"loc": {"backend": "local"}}, default="loc")
    done = subprocess.run(
        [sys.executable, "-m", "bsecrets", "serve", "--port", "1"], cwd=tmp_path,
        env=server_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("error: nothing to serve") and lines[1].startswith("hint: ")
    assert "Traceback" not in done.stderr


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_the_web_ui_signs_in_with_a_vault_token_and_reveals_through_it(
    setting: tuple[Path, str, str, list[Server]],
) -> None:
    """The UI without a vault file: the token form takes the caller's Vault token; the
    environments, the secret's page and a reveal go to Vault with it, and a token whose
    policy does not cover an environment gets Vault's refusal (403)."""
    _, root, limited, (one, _) = setting
    call(one, "PUT", "/v1/envs/app/secrets/ui/shown", root, json={"value": "ui-value-7"})
    with httpx.Client(base_url=one.url, timeout=30) as browser:
        form = browser.get("/ui/signin").text
        signed = browser.post("/ui/signin", data={"token": limited, "csrf": csrf_in(form)})
        assert signed.status_code == 303, signed.text
        envs = browser.get("/ui/envs")
        assert envs.status_code == 200 and "app" in envs.text and "other" in envs.text
        page = browser.get("/ui/envs/app/secrets/ui/shown")
        assert page.status_code == 200, page.text
        assert "ui-value-7" not in page.text  # hidden until a reveal
        reveal = {"csrf": csrf_in(page.text), "version": ""}
        shown = browser.post("/ui/envs/app/reveal/ui/shown", data=reveal)
        assert shown.status_code == 200 and "ui-value-7" in shown.text
        refused = browser.get("/ui/envs/other/secrets")
        assert refused.status_code == 403, refused.status_code
        assert limited not in refused.text + shown.text + page.text
