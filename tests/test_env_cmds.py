"""``bsecrets env add/ls/rm/default`` and ``init --force`` over an existing
profile (issue #11, item 1): the profile is edited in place (comments, order,
provision sections kept), validated before it is written, written atomically;
nothing is ever dropped behind the user's back."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import invoke, put_secret
from helpers.openbao_server import OpenBao
from helpers.values import PASSPHRASE
from helpers.vault_env import unique_prefix

from bsecrets.config.loader import load_profile

# A hand-written profile: comments everywhere, a provision section, remote
# environments, an audit section, keys in an unusual order.
HAND_WRITTEN = """\
# Team profile (reviewed in PR #12)
version: 1
vault_file: .bsecrets/vault.db   # beside this file
default_env: dev   # what commands use without -e

environments:
  # developers' own machines
  dev:
    backend: local
    provision:
      db/password: password:24   # generated on first run
      api/url: {value: "http://localhost:8080"}
  staging:
    backend: vault
    address: https://vault.example.com:8200   # the team's Vault
    prefix: myapp/staging
    auth: {method: token}
  prod:
    backend: aws
    region: eu-west-1
    prefix: "myapp/prod/"
    protected: true   # guard rails
  # end of the environments: add new ones above this line
audit:
  retention: 365d
"""


def ok(args: list[str], input: str | None = None) -> str:
    result = invoke(args, input=input)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def fails(args: list[str], code: int, *words: str) -> str:
    result = invoke(args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    return result.stderr


@pytest.fixture
def hand_written(vault: Path) -> Path:
    """The vault fixture's folder with HAND_WRITTEN as its profile (mode 600)."""
    profile = vault / "bsecrets.yaml"
    profile.write_text(HAND_WRITTEN)
    profile.chmod(0o600)
    return profile


def audit_rows(folder: Path) -> int:
    with sqlite3.connect(folder / ".bsecrets" / "vault.db") as conn:
        (count,) = conn.execute("SELECT count(*) FROM audit_events").fetchone()
    conn.close()
    return int(count)


# --- env add ----------------------------------------------------------------------


def test_add_keeps_every_comment_and_the_order(hand_written: Path) -> None:
    ok(["env", "add", "qa", "--backend", "local"])
    text = hand_written.read_text()
    assert text.startswith(HAND_WRITTEN.split("  # end of the environments")[0])
    assert text.endswith(
        "  qa:\n    backend: local\n"
        "  # end of the environments: add new ones above this line\n"
        "audit:\n  retention: 365d\n"
    )
    profile = load_profile(hand_written)
    assert list(profile.environments) == ["dev", "staging", "prod", "qa"]
    assert profile.environment("dev").provision["db/password"] == ("password", 24)


def test_add_then_remove_gives_back_the_same_bytes(hand_written: Path) -> None:
    ok(["env", "add", "qa", "--backend", "vault", "--prefix", "myapp/qa", "--auth", "approle",
        "--auth-param", "role_id_env=QA_ID", "--auth-param", "secret_id_env=QA_S"])  # fmt: skip
    ok(["env", "rm", "qa"])
    assert hand_written.read_text() == HAND_WRITTEN


def test_add_to_a_profile_from_init_keeps_its_example_block_last(vault: Path) -> None:
    before = (vault / "bsecrets.yaml").read_text()
    ok(["env", "add", "qa", "--backend", "local"])
    after = (vault / "bsecrets.yaml").read_text()
    example = before[before.index("  # Remote backends look like this") :]
    assert after == before.replace(example, "  qa:\n    backend: local\n" + example)
    ok(["env", "rm", "qa"])
    assert (vault / "bsecrets.yaml").read_text() == before


def test_add_vault_and_aws_with_their_options(vault: Path) -> None:
    out = ok(["env", "add", "staging", "-b", "vault", "--address", "https://v.example:8200",
              "--mount", "kv", "--prefix", "/app/staging/", "--namespace", "team-a",
              "--auth", "kubernetes", "--auth-param", "role=app", "--protected",
              "--json"])  # fmt: skip
    data = json.loads(out)
    assert data["name"] == "staging" and data["backend"] == "vault" and data["protected"]
    assert data["options"]["auth"] == {
        "method": "kubernetes",
        "role": "app",
        "mount": "kubernetes",
        "jwt_path": "/var/run/secrets/kubernetes.io/serviceaccount/token",
    }
    ok(["env", "add", "prod-aws", "-b", "aws", "--region", "eu-west-1", "--prefix", "app/prod/",
        "--kms-key-id", "alias/app-prod", "--role-arn", "arn:aws:iam::123456789012:role/b",
        "--endpoint-url", "http://127.0.0.1:5000", "--insecure-http"])  # fmt: skip
    profile = load_profile(vault / "bsecrets.yaml")
    staging = profile.environment("staging")
    assert (staging.backend, staging.protected) == ("vault", True)
    assert staging.options["prefix"] == "app/staging" and staging.options["namespace"] == "team-a"
    aws = profile.environment("prod-aws").options
    assert aws["kms_key_id"] == "alias/app-prod" and aws["insecure_http"] is True
    assert aws["endpoint_url"] == "http://127.0.0.1:5000"


def test_add_quotes_what_yaml_would_read_as_something_else(vault: Path) -> None:
    ok(["env", "add", "on", "-b", "aws", "--region", "no", "--prefix", "1.5"])
    ok(["env", "default", "on"])
    profile = load_profile(vault / "bsecrets.yaml")
    assert profile.default_env == "on"
    assert profile.environment("on").options == {"region": "no", "prefix": "1.5"}


def test_ca_cert_is_written_relative_to_the_profile(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (vault / "certs").mkdir()
    (vault / "certs" / "ca.pem").write_text("not checked here\n")
    monkeypatch.chdir(vault / "certs")
    ok(["env", "add", "staging", "-b", "vault", "--prefix", "p", "--ca-cert", "ca.pem"])
    assert "ca_cert: certs/ca.pem" in (vault / "bsecrets.yaml").read_text()
    options = load_profile(vault / "bsecrets.yaml").environment("staging").options
    assert options["ca_cert"] == str(vault / "certs" / "ca.pem")


def test_an_added_vault_environment_works(
    vault: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao
) -> None:
    prefix = unique_prefix()
    ok(["env", "add", "staging", "-b", "vault", "--address", openbao.address, "--prefix", prefix])
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    ok(["put", "db/url", "-e", "staging"], input="postgres://staging")
    assert ok(["get", "db/url", "-e", "staging"]) == "postgres://staging\n"
    listed = json.loads(ok(["env", "ls", "--json"]))
    assert [e["secrets"] for e in listed] == [0, 0, None]  # remote: never counted here
    ok(["env", "rm", "staging"])
    kv = openbao.client().secrets.kv.v2
    assert kv.read_secret_version(f"{prefix}/db/url", raise_on_deleted_version=True)  # untouched


V = "qa -b vault --prefix p "
BAD_ADDS = [
    ("qa --backend nope", 2, "unknown backend 'nope'"),
    ("QA --backend local", 2, "invalid environment name"),
    ("-x --backend local", 2, "no such option: -x"),
    ("_qa --backend local", 2, "invalid environment name"),
    (f"{'q' * 64} --backend local", 2, "invalid environment name"),
    ("dev --backend local", 7, "environment 'dev' already exists"),
    ("qa", 2, "--backend"),
    ("qa -b local --region eu-west-1", 2, "--region is not used by backend local"),
    (V + "--region x", 2, "--region is not used by backend vault"),
    ("qa -b aws --address https://v", 2, "--address is not used by backend aws"),
    ("qa -b aws --auth token", 2, "--auth is not used by backend aws"),
    ("qa -b aws --auth-param role=x", 2, "--auth-param is not used by backend aws"),
    ("qa -b local --insecure-http", 2, "--insecure-http is not used by backend local"),
    ("qa -b vault", 2, "backend vault needs --prefix"),
    (V + "--address ftp://v", 2, "--address: must start with http://"),
    ("qa -b vault --prefix a/*", 2, "--prefix: 'a/*' may not contain '*'"),
    ("qa -b vault --prefix a/../b", 2, "--prefix"),
    (V + "--auth ldap", 2, "unknown Vault auth method 'ldap'"),
    (V + "--auth jwt", 2, "backend vault needs --auth-param role"),
    (V + "--auth-param role", 2, "--auth-param takes KEY=VALUE"),
    (V + "--auth-param role=x", 2, "--auth-param role: not used by auth method token"),
    (V + "--auth-param token_env=1X", 2, "--auth-param token_env: must be an environment"),
    ("qa -b aws --role-arn role/x", 2, "--role-arn: must be an ARN"),
    ("qa -b aws --prefix bad/prefix?", 2, "--prefix"),
]


@pytest.mark.parametrize(("args", "code", "words"), BAD_ADDS)
def test_bad_env_add_is_refused_and_writes_nothing(
    vault: Path, args: str, code: int, words: str
) -> None:
    profile = vault / "bsecrets.yaml"
    before, inode = profile.read_bytes(), profile.stat().st_ino
    result = invoke(["env", "add", *args.split()])
    assert result.exit_code == code, result.stderr
    assert words in result.stderr
    assert "hint: " in result.stderr
    assert profile.read_bytes() == before and profile.stat().st_ino == inode


def test_add_to_a_broken_profile_names_its_line_and_writes_nothing(vault: Path) -> None:
    profile = vault / "bsecrets.yaml"
    profile.write_text(profile.read_text().replace("backend: local", "backend: lokal", 1))
    before = profile.read_bytes()
    fails(
        ["env", "add", "qa", "--backend", "local"], 2, "bsecrets.yaml:7: environments.dev.backend"
    )
    assert profile.read_bytes() == before


def test_without_a_profile_env_commands_say_so(isolated: Path) -> None:
    for args in (["env", "ls"], ["env", "add", "qa", "-b", "local"], ["env", "rm", "x"],
                 ["env", "default", "x"]):  # fmt: skip
        fails(args, 3, "no profile found")


def test_the_rewrite_is_atomic_private_and_seen_by_the_profile_cache(vault: Path) -> None:
    profile = vault / "bsecrets.yaml"
    profile.chmod(0o644)
    inode = profile.stat().st_ino
    put_secret("k", b"in dev")
    put_secret("k", b"in prod", env="prod")
    assert ok(["get", "k"]) == "in dev\n"  # fills the parsed-profile cache
    ok(["env", "default", "prod"])
    assert profile.stat().st_ino != inode  # a new file renamed into place
    assert profile.stat().st_mode & 0o777 == 0o600
    assert ok(["get", "k"]) == "in prod\n"
    assert not [p for p in vault.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_edits_lose_nothing(vault: Path) -> None:
    names = [f"qa{i}" for i in range(4)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bsecrets", "env", "add", name, "--backend", "local"],
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in names
    ]
    assert [p.wait(timeout=120) for p in processes] == [0] * len(names)
    assert set(load_profile(vault / "bsecrets.yaml").environments) == {"dev", "prod", *names}


# --- env ls -------------------------------------------------------------------------


def test_ls_counts_local_secrets_without_unlocking(
    hand_written: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_secret("a", b"1")
    put_secret("b", b"2")
    ok(["rm", "b"])  # soft-deleted: still held
    events = audit_rows(hand_written.parent)
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    data = json.loads(ok(["env", "ls", "--json"]))
    assert data[0] == {"name": "dev", "backend": "local", "protected": False, "default": True,
                       "secrets": 2, "options": {}, "protection": None}  # fmt: skip
    assert [(e["name"], e["backend"], e["secrets"]) for e in data[1:]] == [
        ("staging", "vault", None),
        ("prod", "aws", None),
    ]
    assert data[2]["protected"] is True and data[2]["options"]["region"] == "eu-west-1"
    table = ok(["env", "ls"]).splitlines()
    assert table[0].split() == ["NAME", "BACKEND", "DEFAULT", "PROTECTED", "SECRETS", "WHERE"]
    assert table[1].split()[:5] == ["dev", "local", "*", "2", "vault"]
    assert table[2].split() == ["staging", "vault", "-", "https://vault.example.com:8200",
                                "secret/myapp/staging"]  # fmt: skip
    assert table[3].split() == ["prod", "aws", "declared", "-", "eu-west-1", "myapp/prod/"]
    assert ok(["env", "ls", "-q"]).split() == ["dev", "staging", "prod"]
    assert audit_rows(hand_written.parent) == events  # no vault operation, no event


def test_ls_with_an_unreadable_vault_still_lists(vault: Path) -> None:
    (vault / ".bsecrets" / "vault.db").write_bytes(b"\x00" * 4096)
    result = invoke(["env", "ls"])
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert rows == [
        ["dev", "local", "*", "-", "vault", "file"],
        ["prod", "local", "-", "vault", "file"],
    ]
    assert "local secrets not counted: " in result.stderr and "is damaged" in result.stderr
    assert [e["secrets"] for e in json.loads(ok(["env", "ls", "--json"]))] == [None, None]


# --- env rm -------------------------------------------------------------------------


def test_rm_an_empty_local_environment(vault: Path) -> None:
    result = invoke(["env", "rm", "prod", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "name": "prod", "backend": "local", "purged": 0, "profile": str(vault / "bsecrets.yaml"),
    }  # fmt: skip
    assert list(load_profile(vault / "bsecrets.yaml").environments) == ["dev"]
    ok(["audit", "verify"])
    ok(["env", "add", "prod", "--backend", "local"])  # its key was kept: it comes back empty
    put_secret("k", b"v", env="prod")
    ok(["audit", "verify"])


BAD_RMS = [
    (["nope"], 3, "unknown environment 'nope'"),
    (["dev"], 7, "'dev' is the default environment"),
    (["Bad!"], 3, "unknown environment"),
]


@pytest.mark.parametrize(("args", "code", "words"), BAD_RMS)
def test_bad_env_rm_is_refused(vault: Path, args: list[str], code: int, words: str) -> None:
    before = (vault / "bsecrets.yaml").read_bytes()
    stderr = fails(["env", "rm", *args], code, words)
    assert "hint: " in stderr
    assert (vault / "bsecrets.yaml").read_bytes() == before


def test_the_last_environment_cannot_be_removed(vault: Path) -> None:
    ok(["env", "rm", "prod"])
    stderr = fails(["env", "rm", "dev"], 7, "'dev' is the only environment")
    assert "hint: a profile needs at least one" in stderr


def test_rm_refuses_an_environment_that_holds_secrets(vault: Path) -> None:
    put_secret("a", b"1", env="prod")
    put_secret("b", b"2", env="prod")
    before = (vault / "bsecrets.yaml").read_bytes()
    stderr = fails(["env", "rm", "prod"], 7, "environment 'prod' holds 2 secrets")
    assert "bsecrets env rm prod --purge --yes" in stderr
    stderr = fails(["env", "rm", "prod", "--purge"], 2, "confirm with --yes")
    fails(["env", "rm", "prod", "--yes"], 7, "holds 2 secrets")
    assert (vault / "bsecrets.yaml").read_bytes() == before
    assert ok(["get", "a", "-e", "prod"]) == "1\n"  # nothing was purged


def test_rm_purge_destroys_through_the_audited_path(vault: Path) -> None:
    put_secret("a", b"1", env="prod")
    put_secret("b", b"2", env="prod")
    ok(["rm", "b", "-e", "prod"])  # soft-deleted ones go too
    put_secret("keep", b"dev stays")
    result = invoke(["env", "rm", "prod", "--purge", "--yes"])
    assert result.exit_code == 0, result.stderr
    assert "purged 2 secrets of 'prod'" in result.stderr
    assert list(load_profile(vault / "bsecrets.yaml").environments) == ["dev"]
    events = json.loads(ok(["audit", "log", "--json"]))
    purges = [e for e in events if e["action"] == "rm" and e.get("details", {}).get("purge")]
    assert sorted(e["name"] for e in purges) == ["a", "b"]
    assert all(e["env"] == "prod" and e["outcome"] == "ok" for e in purges)
    ok(["audit", "verify"])
    with sqlite3.connect(vault / ".bsecrets" / "vault.db") as conn:
        rows = conn.execute("SELECT count(*) FROM secrets WHERE env = 'prod'").fetchone()
        manifests = conn.execute("SELECT count(*) FROM manifests WHERE env = 'prod'").fetchone()
    conn.close()
    assert rows == (0,) and manifests == (1,)  # rows purged; the empty manifest stays
    assert ok(["get", "keep"]) == "dev stays\n"


def test_rm_purge_of_a_locked_vault_is_denied_and_changes_nothing(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_secret("a", b"1", env="prod")
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    fails(["env", "rm", "prod", "--purge", "--yes"], 4, "the vault is locked")
    assert "prod" in load_profile(vault / "bsecrets.yaml").environments


def test_rm_a_remote_environment_only_edits_the_profile(hand_written: Path) -> None:
    stderr = fails(["env", "rm", "staging", "--purge", "--yes"], 2, "--purge applies to local")
    assert "never deletes data" in stderr
    result = invoke(["env", "rm", "staging"])
    assert result.exit_code == 0, result.stderr
    assert "its secrets on vault were not touched" in result.stderr
    text = hand_written.read_text()
    assert "staging" not in text and "# the team's Vault" not in text
    assert "# developers' own machines" in text and "guard rails" in text
    ok(["env", "rm", "prod"])  # the last one: the section's closing comment stays
    assert hand_written.read_text().endswith(
        '      api/url: {value: "http://localhost:8080"}\n'
        "  # end of the environments: add new ones above this line\n"
        "audit:\n  retention: 365d\n"
    )


# --- env default ---------------------------------------------------------------------


def test_default(vault: Path) -> None:
    result = invoke(["env", "default", "prod", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "default_env": "prod", "previous": "dev", "profile": str(vault / "bsecrets.yaml"),
    }  # fmt: skip
    assert load_profile(vault / "bsecrets.yaml").default_env == "prod"
    ok(["put", "k"], input="v")
    assert ok(["get", "k", "-e", "prod"]) == "v\n"


def test_default_to_the_current_one_writes_nothing(vault: Path) -> None:
    inode = (vault / "bsecrets.yaml").stat().st_ino
    result = invoke(["env", "default", "dev"])
    assert result.exit_code == 0
    assert "'dev' is already the default environment" in result.stderr
    assert (vault / "bsecrets.yaml").stat().st_ino == inode


def test_default_unknown_lists_the_known(vault: Path) -> None:
    stderr = fails(["env", "default", "qa"], 3, "unknown environment 'qa'")
    assert "hint: known environments: dev, prod" in stderr


def test_default_is_added_when_the_profile_has_none(vault: Path) -> None:
    profile = vault / "bsecrets.yaml"
    profile.write_text("version: 1\nenvironments:\n  dev: {backend: local}\n"
                       "  prod: {backend: local}\n")  # fmt: skip
    ok(["env", "default", "prod"])
    assert profile.read_text().startswith("version: 1\ndefault_env: prod\nenvironments:\n")


# --- init over an existing profile ---------------------------------------------------


def test_init_without_force_still_refuses(hand_written: Path) -> None:
    stderr = fails(["init", "--env", "qa"], 7, "a profile already exists")
    assert "env add" in stderr
    assert hand_written.read_text() == HAND_WRITTEN


def test_init_force_adds_and_drops_nothing(hand_written: Path) -> None:
    result = invoke(["init", "--force", "--env", "dev", "--env", "qa", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["profile_action"] == "updated" and data["added"] == ["qa"]
    assert data["environments"] == ["dev", "staging", "prod", "qa"]
    assert data["vault_created"] is False
    text = hand_written.read_text()
    for line in HAND_WRITTEN.splitlines():
        assert line in text  # every line kept, comments and provision included
    profile = load_profile(hand_written)
    assert profile.environment("staging").backend == "vault"
    assert profile.environment("prod").backend == "aws"
    assert profile.environment("dev").provision


def test_init_force_with_nothing_new_keeps_the_file(hand_written: Path) -> None:
    inode = hand_written.stat().st_ino
    result = invoke(["init", "--force", "--env", "dev"])
    assert result.exit_code == 0, result.stderr
    assert "kept" in result.stderr and "as it is" in result.stderr
    assert hand_written.stat().st_ino == inode and hand_written.read_text() == HAND_WRITTEN


def test_init_force_creates_a_missing_vault_for_the_profile(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    profile = isolated / "bsecrets.yaml"
    profile.write_text(HAND_WRITTEN)
    result = invoke(["init", "--force"])
    assert result.exit_code == 0, result.stderr
    assert "created vault" in result.stderr
    assert profile.read_text() == HAND_WRITTEN
    ok(["put", "k"], input="v")
    ok(["audit", "verify"])


BROKEN_TAIL = "  broken: [\n"  # a profile that no longer parses


def test_init_force_over_a_broken_profile_refuses_to_drop_remote_environments(
    hand_written: Path,
) -> None:
    hand_written.write_text(HAND_WRITTEN.replace("audit:\n", "audit:\n  bogus: 1\n"))
    before = hand_written.read_bytes()
    stderr = fails(["init", "--force", "--env", "dev"], 7, "replacing it would drop")
    assert "staging (vault backend)" in stderr and "prod (aws backend)" in stderr
    assert "dev" not in stderr.split("would drop:")[1].split("\n")[0]
    assert hand_written.read_bytes() == before


def test_init_force_over_a_broken_profile_refuses_to_drop_secrets(vault: Path) -> None:
    put_secret("k", b"v", env="prod")
    profile = vault / "bsecrets.yaml"
    profile.write_text(profile.read_text() + "bogus: 1\n")
    stderr = fails(["init", "--force", "--env", "dev"], 7, "prod (holds 1 secrets)")
    assert "bogus" in stderr  # says why it does not parse
    result = invoke(["init", "--force", "--env", "dev", "--env", "prod"])  # both kept: fine
    assert result.exit_code == 0, result.stderr
    assert "replaced" in result.stderr
    assert ok(["get", "k", "-e", "prod"]) == "v\n"


def test_init_force_over_unreadable_yaml_changes_nothing(vault: Path) -> None:
    profile = vault / "bsecrets.yaml"
    profile.write_text(profile.read_text() + BROKEN_TAIL)
    before = profile.read_bytes()
    stderr = fails(["init", "--force"], 2, "bsecrets.yaml:")
    assert "cannot tell which environments" in stderr and f"mv {profile}" in stderr
    assert profile.read_bytes() == before
