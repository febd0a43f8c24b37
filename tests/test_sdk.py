"""The Python SDK (#17): ``from bsecrets import Client`` against a real vault in a temp
folder: the reads and writes, the same audit events and error kinds as the CLI, the
cache (a fake monotonic clock where its expiry is the subject), 16 threads, a closed
client, a pipeline token, rotate and promote, typing (mypy --strict on a sample
program) and what ``import bsecrets`` loads."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke
from helpers.values import PASSPHRASE

import bsecrets.sdk.client as client_module
from bsecrets import BeastSecretsClient, Client
from bsecrets.errors import BsecretsError, VersionConflict


def ok(args: list[str], **env: str) -> str:
    result = invoke(args, env=env or None)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def events(action: str) -> list[dict[str, object]]:
    return [e for e in json.loads(ok(["audit", "log", "--json"])) if e["action"] == action]


def cli_kind(args: list[str], **env: Any) -> str:
    result = invoke([*args, "--json"], env=env or None)
    assert result.exit_code != 0
    return str(json.loads(result.stderr.splitlines()[-1])["kind"])


@pytest.fixture
def prod(vault: Path) -> Path:
    ok(["put", "db/password", "--value", "p1", "-e", "prod"])
    ok(["put", "api/key", "--value", "k1", "-e", "prod"])
    ok(["put", "dev-only", "--value", "d1", "-e", "dev"])
    return vault


def test_reads_and_writes_are_the_facades_with_its_audit_events(prod: Path) -> None:
    with Client(env="prod") as secrets:
        assert secrets.env == "prod"
        assert secrets.value("db/password") == "p1"
        assert [s.name for s in secrets.ls()] == ["api/key", "db/password"]
        written = secrets.put("db/password", "p2", if_version=1)
        assert written.version == 2 and secrets.value("db/password") == "p2"
        assert [v.version for v in secrets.history("db/password")] == [1, 2]
        assert secrets.environ(prefix="APP_") == {"APP_API_KEY": "k1", "APP_DB_PASSWORD": "p2"}
        assert secrets.environ(["db/*"]) == {"DB_PASSWORD": "p2"}
        with pytest.raises(VersionConflict):
            secrets.put("db/password", "p3", if_version=1)
        assert secrets.health()["healthy"] is True
    gets = events("get")
    assert {(e["env"], e["name"]) for e in gets} >= {("prod", "db/password")}
    assert [e["outcome"] for e in events("put")][-2:] == ["ok", "failed"]  # the conflict
    assert events("read")[-1]["env"] == "prod"
    assert BeastSecretsClient is Client


def test_a_cached_read_is_served_until_its_ttl_and_after_refresh_read_again(
    prod: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]  # a fake monotonic clock: the cache's expiry is the subject
    monkeypatch.setattr(client_module.time, "monotonic", lambda: now[0])
    with Client(env="prod", cache_ttl=60) as secrets:
        secrets.get("api/key")
        before = len(events("get"))
        ok(["put", "api/key", "--value", "k2", "-e", "prod"])  # another writer
        now[0] += 59
        assert secrets.value("api/key") == "k1"  # cached: no read, no event
        assert len(events("get")) == before
        now[0] += 2
        assert secrets.value("api/key") == "k2"  # expired: read again
        ok(["put", "api/key", "--value", "k3", "-e", "prod"])
        secrets.refresh()
        assert secrets.value("api/key") == "k3"
    with Client(env="prod", cache_ttl=0) as uncached:
        uncached.value("api/key")
        count = len(events("get"))
        uncached.value("api/key")
        assert len(events("get")) == count + 1


def test_sixteen_threads_share_one_client(prod: Path) -> None:
    errors: list[BaseException] = []
    with Client(env="prod", cache_ttl=0.0) as secrets:

        def work(i: int) -> None:
            try:
                for _ in range(5):
                    assert secrets.value("db/password").startswith("p")
                secrets.put(f"thread/{i:02d}", f"v{i}")
                assert secrets.value(f"thread/{i:02d}") == f"v{i}"
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)  # a hang guard, far past what it needs
        assert not errors, errors
        assert len([s for s in secrets.ls("thread/")]) == 16
    assert ok(["verify"]).startswith("ok")


def test_after_close_every_call_is_a_clear_error(prod: Path) -> None:
    secrets = Client(env="prod")
    assert secrets.value("api/key") == "k1"
    secrets.close()
    with pytest.raises(BsecretsError) as caught:
        secrets.get("api/key")
    assert caught.value.kind == "client_closed" and "closed" in caught.value.message
    with Client(env="prod") as inner:
        inner.value("api/key")
    with pytest.raises(BsecretsError):
        inner.ls()


@pytest.mark.parametrize(
    ("client_args", "cli_args", "cli_env"),
    [
        ({"env": "nowhere"}, ["get", "x", "-e", "nowhere"], {}),
        ({"env": "prod", "environ": {}}, ["get", "api/key", "-e", "prod"],
         {"BSECRETS_PASSPHRASE": None}),
        ({"env": "prod", "token": "bst1.notatoken"}, ["get", "api/key", "-e", "prod"],
         {"BSECRETS_TOKEN": "bst1.notatoken"}),
    ],
    ids=["unknown-environment", "locked-without-a-credential", "wrong-token"],
)  # fmt: skip
def test_bad_input_has_the_same_error_kinds_as_the_cli(
    prod: Path, client_args: dict[str, Any], cli_args: list[str], cli_env: dict[str, Any]
) -> None:
    with Client(**client_args) as secrets, pytest.raises(BsecretsError) as caught:  # type: ignore[arg-type]
        secrets.value(cli_args[1])
    assert caught.value.kind == cli_kind(cli_args, **cli_env)
    assert caught.value.kind in ("environment_not_found", "vault_locked", "token_invalid")
    assert "p1" not in str(caught.value) and "k1" not in str(caught.value)


def test_a_pipeline_token_reads_with_nothing_else(prod: Path) -> None:
    issued = json.loads(ok(["token", "issue", "-e", "prod", "--role", "read", "--json"]))
    with Client(env="prod", token=issued["token"], passphrase="") as ci:
        assert ci.value("db/password") == "p1"
        with pytest.raises(BsecretsError) as caught:
            ci.put("db/password", "x")
    assert caught.value.kind == "access_denied"


def test_a_long_lived_client_sees_a_revocation_and_a_re_key(prod: Path) -> None:
    """A client kept open (a service) reads the access policy and the environment keys
    again at each uncached call: a token revoked since is refused, and a re-key by
    another revocation does not strand the client."""
    issue = ["token", "issue", "-e", "prod", "--role", "read", "--json"]
    kept, other, gone = (json.loads(ok(issue)) for _ in range(3))
    with (
        Client(env="prod", token=kept["token"], passphrase="", cache_ttl=0) as service,
        Client(env="prod", token=gone["token"], passphrase="", cache_ttl=0) as revoked,
    ):
        assert service.value("db/password") == "p1" and revoked.value("db/password") == "p1"
        ok(["token", "revoke", other["id"]])  # re-keys prod: each token's key sealed anew
        ok(["put", "db/password", "--value", "p-after-rekey", "-e", "prod"])
        assert service.value("db/password") == "p-after-rekey"
        ok(["token", "revoke", gone["id"]])
        with pytest.raises(BsecretsError) as caught:
            revoked.value("db/password")
        assert caught.value.kind in ("token_invalid", "access_denied"), caught.value.kind
        assert service.value("api/key") == "k1"


def test_rotate_and_promote_through_the_sdk(prod: Path) -> None:
    with Client(env="prod") as secrets:
        done = secrets.rotate("api/key", generate="hex:16")
        assert done["step"] == "finished" and "pending" not in done
        assert len(secrets.value("api/key")) == 32
        plan = secrets.promote("prod", "dev", only=["api/*"], dry_run=True)
        assert plan["plan"]["counts"]["add"] == 1 and "promotion" not in plan
        done = secrets.promote("prod", "dev", only=["api/*"])
        assert done["promotion"]["step"] == "done"
    with Client(env="dev") as dev:
        assert len(dev.value("api/key")) == 32


def test_a_typed_program_passes_mypy_strict_and_a_wrong_one_fails(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text(
        "from bsecrets import Client\n"
        "from bsecrets.models import Secret\n\n"
        "def password() -> str:\n"
        "    with Client(env='prod', cache_ttl=30) as c:\n"
        "        s: Secret = c.get('db/password')\n"
        "        assert s.version >= 1\n"
        "        return c.value('db/password')\n"
    )
    bad = tmp_path / "bad.py"
    bad.write_text("from bsecrets import Client\n\nn: int = Client().value('x')\n")
    mypy = [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
    passed = subprocess.run([*mypy, str(good)], capture_output=True, text=True, check=False)
    assert passed.returncode == 0, passed.stdout
    failed = subprocess.run([*mypy, str(bad)], capture_output=True, text=True, check=False)
    assert failed.returncode == 1 and "Incompatible types" in failed.stdout


def test_import_bsecrets_loads_nothing_heavy() -> None:
    code = (
        "import sys, bsecrets\n"
        "heavy = ('typer', 'rich', 'cryptography', 'yaml', 'boto3', 'hvac', 'keyring')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or m.startswith('bsecrets')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['bsecrets']"


def test_passphrase_given_to_the_client_unlocks(
    prod: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    with Client(env="prod", passphrase=PASSPHRASE) as secrets:
        assert secrets.value("api/key") == "k1"
