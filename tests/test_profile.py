"""Tests for bsecrets.config.profile: loading, validation errors, rendering, finding."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import platformdirs
import pytest

from bsecrets.cli.exit_codes import ExitCode, exit_code_of
from bsecrets.cli.hints import hint_for
from bsecrets.config.loader import find_profile, load_profile, render_profile
from bsecrets.config.profile import K8S_JWT_PATH, PROFILE_FILENAME, Profile
from bsecrets.errors import (
    EnvironmentNotFound,
    ProfileError,
    ProfileNotFound,
    UsageError,
)

# The example from CLI.md, verbatim (line numbers matter below).
EXAMPLE = """\
version: 1
default_env: dev
vault_file: .bsecrets/vault.db       # local vault, relative to this file (default shown)
environments:
  dev:
    backend: local
  staging:
    backend: vault
    address: https://vault.example.com:8200   # else VAULT_ADDR
    mount: secret                    # KV v2 mount (default: secret)
    prefix: myapp/staging            # every secret of this env lives under it
    namespace: team-a                # optional, else VAULT_NAMESPACE
    ca_cert: /etc/ssl/vault-ca.pem   # optional, else VAULT_CACERT
    auth:
      method: token                  # token (VAULT_TOKEN or token_env) | approle | kubernetes | jwt
      # approle:    role_id_env, secret_id_env, mount (default approle)
      # kubernetes: role, jwt_path (default: the service-account token path), mount
      # jwt:        role, token_env (e.g. a CI OIDC token), mount
  prod:
    backend: aws
    region: eu-west-1                # else AWS_REGION / AWS_DEFAULT_REGION
    prefix: myapp/prod/              # secret name = prefix + name
    kms_key_id: alias/myapp-prod     # per-environment KMS key
    role_arn: arn:aws:iam::123456789012:role/bsecrets-prod   # optional: assume for cross-account
    endpoint_url: http://127.0.0.1:5000   # optional, else AWS_ENDPOINT_URL
    protected: true                  # extra guard rails: see rotate, promote, break-glass
"""

HEAD = "version: 1\nenvironments:\n"  # lines 1-2 of most small profiles below


def write(folder: Path, text: str, name: str = PROFILE_FILENAME) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Profile:
    return load_profile(write(tmp_path, text))


def profile_error(tmp_path: Path, text: str) -> ProfileError:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    exc = info.value
    assert exit_code_of(exc) == ExitCode.USAGE
    assert str(exc).startswith(f"{path}:")  # always names the file
    return exc


# --- loading -----------------------------------------------------------------


def test_cli_md_example_loads(tmp_path: Path) -> None:
    profile = load_text(tmp_path, EXAMPLE)

    assert Path(profile.path) == tmp_path / PROFILE_FILENAME
    assert Path(profile.path).is_absolute()
    assert profile.version == 1
    assert profile.default_env == "dev"
    assert Path(profile.vault_file) == tmp_path / ".bsecrets" / "vault.db"
    assert list(profile.environments) == ["dev", "staging", "prod"]  # file order

    dev = profile.environment("dev")
    assert (dev.backend, dict(dev.options), dev.protected, dev.line) == ("local", {}, False, 5)

    staging = profile.environment("staging")
    assert staging.backend == "vault"
    assert staging.line == 7
    assert dict(staging.options) == {
        "address": "https://vault.example.com:8200",
        "mount": "secret",
        "prefix": "myapp/staging",
        "namespace": "team-a",
        "ca_cert": "/etc/ssl/vault-ca.pem",
        "auth": {"method": "token"},
    }

    prod = profile.environment("prod")
    assert prod.backend == "aws"
    assert prod.protected is True
    assert dict(prod.options) == {
        "region": "eu-west-1",
        "prefix": "myapp/prod/",
        "kms_key_id": "alias/myapp-prod",
        "role_arn": "arn:aws:iam::123456789012:role/bsecrets-prod",
        "endpoint_url": "http://127.0.0.1:5000",
    }


def test_defaults_are_filled_in(tmp_path: Path) -> None:
    profile = load_text(
        tmp_path,
        HEAD
        + """\
          s:
            backend: vault
            prefix: /team/app/
            ca_cert: certs/ca.pem
          a:
            backend: aws
          d:
            backend: local
            protected: yes
        """,
    )
    assert profile.default_env == "s"  # the first environment
    assert Path(profile.vault_file) == tmp_path / ".bsecrets" / "vault.db"
    vault = profile.environment("s").options
    assert dict(vault) == {
        "mount": "secret",
        "prefix": "team/app",  # slashes stripped
        "ca_cert": str(tmp_path / "certs" / "ca.pem"),  # relative to the profile
        "auth": {"method": "token"},
    }
    assert dict(profile.environment("a").options) == {"prefix": ""}
    assert profile.environment("d").protected is True


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("{method: token, token_env: MY_TOKEN}", {"method": "token", "token_env": "MY_TOKEN"}),
        (
            "{method: approle, role_id_env: RID, secret_id_env: SID}",
            {"method": "approle", "role_id_env": "RID", "secret_id_env": "SID", "mount": "approle"},
        ),
        (
            "{method: kubernetes, role: app}",
            {
                "method": "kubernetes",
                "role": "app",
                "jwt_path": K8S_JWT_PATH,
                "mount": "kubernetes",
            },
        ),
        (
            "{method: jwt, role: ci, token_env: CI_JOB_JWT, mount: /gitlab/}",
            {"method": "jwt", "role": "ci", "token_env": "CI_JOB_JWT", "mount": "gitlab"},
        ),
    ],
)
def test_vault_auth_methods(tmp_path: Path, auth: str, expected: dict[str, str]) -> None:
    text = HEAD + f"  v:\n    backend: vault\n    prefix: p\n    auth: {auth}\n"
    assert load_text(tmp_path, text).environment("v").options["auth"] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("data/v.db", "proj/data/v.db"),
        ("../v.db", "v.db"),
        ("~/v.db", "home/v.db"),
        ("/srv/v.db", "/srv/v.db"),
    ],
)
def test_vault_file_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    sub = tmp_path / "proj"
    sub.mkdir()
    text = f"vault_file: {value}\n" + HEAD + "  dev:\n    backend: local\n"
    assert Path(load_text(sub, text).vault_file) == tmp_path / expected


def test_path_in_messages_is_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "version: 1\nbogus: 1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError) as info:
        load_profile(Path(PROFILE_FILENAME))
    assert str(info.value) == "bsecrets.yaml:2: bogus: unknown key"


def test_profile_is_frozen(tmp_path: Path) -> None:
    profile = load_text(tmp_path, EXAMPLE)
    with pytest.raises(AttributeError):
        profile.default_env = "prod"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        profile.environment("dev").backend = "aws"  # type: ignore[misc]


def test_unknown_environment_is_exit_3_with_known_names(tmp_path: Path) -> None:
    profile = load_text(tmp_path, EXAMPLE)
    with pytest.raises(EnvironmentNotFound) as info:
        profile.environment("nope")
    assert exit_code_of(info.value) == ExitCode.NOT_FOUND
    assert str(info.value) == "unknown environment 'nope'"
    assert info.value.hint == "known environments: dev, staging, prod"


def test_importing_the_module_does_not_import_yaml() -> None:
    code = (
        "import sys, bsecrets.config.profile; "
        "assert 'yaml' not in sys.modules and 'platformdirs' not in sys.modules"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- render_profile --------------------------------------------------------------


def test_render_profile_round_trips(tmp_path: Path) -> None:
    text = render_profile(["dev", "staging", "prod"], "staging")
    assert text.startswith("#")
    assert "backend: vault" in text and "backend: aws" in text  # the commented pointers
    profile = load_text(tmp_path, text)
    assert list(profile.environments) == ["dev", "staging", "prod"]
    assert profile.default_env == "staging"
    assert {env.backend for env in profile.environments.values()} == {"local"}
    assert Path(profile.vault_file) == tmp_path / ".bsecrets" / "vault.db"


def test_render_profile_quotes_what_yaml_would_misread(tmp_path: Path) -> None:
    text = render_profile(["yes", "123", "dev"], "123", vault_file="my vault: #1.db")
    profile = load_text(tmp_path, text)
    assert list(profile.environments) == ["yes", "123", "dev"]
    assert profile.default_env == "123"
    assert Path(profile.vault_file) == tmp_path / "my vault: #1.db"


@pytest.mark.parametrize(
    ("envs", "default", "message"),
    [
        ([], "dev", "at least one environment"),
        (["Prod"], "Prod", "invalid environment name 'Prod'"),
        (["dev"], "prod", "default environment 'prod' is not one of: dev"),
    ],
)
def test_render_profile_refuses_bad_input(envs: list[str], default: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        render_profile(envs, default)
    assert exit_code_of(info.value) == ExitCode.USAGE


# --- errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (HEAD + "  dev:\n    backend: local\n   bad: 1\n", 5, "did not find expected key"),
        (HEAD + "  dev:\n    backend: 'local\n", 5, "while scanning a quoted scalar, line 4"),
        ("version: 1\n\tenvironments: {}\n", 2, "tab character"),
        (HEAD + "  dev: {backend: local}\n---\nversion: 1\n", 4, "another document"),
    ],
)
def test_malformed_yaml_names_the_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    exc = profile_error(tmp_path, text)
    assert exc.line == line
    assert exc.key_path == ""
    assert exc.problem.startswith("invalid YAML: ")
    assert message in exc.problem


# Building blocks, so that line numbers are easy to check: each ends at the line noted.
LOCAL = HEAD + "  dev:\n    backend: local\n"  # line 4
VAULT = HEAD + "  v:\n    backend: vault\n    prefix: p\n"  # line 5
AWS = HEAD + "  a:\n    backend: aws\n"  # line 4
ENVS = "environments:\n  dev:\n    backend: local\n"  # 3 lines

# fmt: off
SCHEMA_ERRORS = [
    # (text, line, key path, problem)
    # unknown keys
    (LOCAL + "colour: blue\n", 5, "colour", "unknown key"),
    (LOCAL + "    colour: blue\n", 5, "environments.dev.colour", "unknown key"),
    (LOCAL + "    region: x\n", 5, "environments.dev.region", "not used by backend local"),
    (VAULT + "    kms_key_id: k\n", 6, "environments.v.kms_key_id", "not used by backend vault"),
    (VAULT + "    auth:\n      method: token\n      role: r\n", 8,
     "environments.v.auth.role", "not used by method token"),
    (VAULT + "    auth: {method: jwt, role: r, token_env: T,\n      secret_id_env: S}\n", 7,
     "environments.v.auth.secret_id_env", "not used by method jwt"),
    (VAULT + "    auth: {colour: red}\n", 6, "environments.v.auth.colour", "unknown key"),
    (HEAD + "  dev:\n    <<: {backend: local}\n", 4, "environments.dev",
     "keys must be plain strings"),
    # duplicates
    (LOCAL + "  dev:\n    backend: aws\n", 5, "environments.dev",
     "duplicate key (first on line 3)"),
    ("version: 1\nversion: 1\n", 2, "version", "duplicate key (first on line 1)"),
    (LOCAL + "    backend: aws\n", 5, "environments.dev.backend",
     "duplicate key (first on line 4)"),
    # version
    ("version: 2\n" + ENVS, 1, "version", "the profile is version 2, written by a newer bsecrets"),
    ("version: 0\n" + ENVS, 1, "version", "must be 1"),
    ("version: " + "9" * 5000 + "\n" + ENVS, 1, "version", "must be 1"),
    ("version: '1'\n" + ENVS, 1, "version", 'must be an integer (got "1")'),
    (ENVS, 1, "version", "required key is missing"),
    # environments and their names
    ("version: 1\n", 1, "environments", "required key is missing"),
    (HEAD + "  {}\n", 3, "environments", "must not be empty"),
    ("version: 1\nenvironments: [dev]\n", 2, "environments", "must be a mapping (got a list)"),
    (HEAD + "  Prod:\n    backend: local\n", 3, "environments.Prod", "invalid environment name"),
    (HEAD + "  -x:\n    backend: local\n", 3, "environments.-x", "invalid environment name"),
    (HEAD + f"  {'a' * 64}:\n    backend: local\n", 3, f"environments.{'a' * 64}",
     "invalid environment name"),
    (HEAD + "  dev: local\n", 3, "environments.dev", 'must be a mapping (got "local")'),
    (HEAD + "  dev:\n", 3, "environments.dev", "must be a mapping (got nothing)"),
    # backend
    (HEAD + "  p:\n    backend: gcp\n", 4, "environments.p.backend",
     "must be one of local, vault, aws"),
    (HEAD + "  p:\n    protected: true\n", 3, "environments.p.backend", "required key is missing"),
    (HEAD + "  p:\n    backend: [local]\n", 4, "environments.p.backend",
     "must be a string (got a list)"),
    # default_env
    ("version: 1\ndefault_env: qa\n" + ENVS, 2, "default_env", "no environment named 'qa'"),
    ("version: 1\ndefault_env: yes\n" + ENVS, 2, "default_env", 'must be a string (got "yes")'),
    # wrong types and values
    (LOCAL + "    protected: 'yes'\n", 5, "environments.dev.protected",
     'must be true or false (got "yes")'),
    (VAULT + "    address: yes\n", 6, "environments.v.address", 'must be a string (got "yes")'),
    (VAULT + "    address: vault.example.com\n", 6, "environments.v.address",
     "must start with http:// or https://"),
    (VAULT + "    auth: token\n", 6, "environments.v.auth", 'must be a mapping (got "token")'),
    (HEAD + "  v:\n    backend: vault\n    prefix: 2024\n", 5, "environments.v.prefix",
     'must be a string (got "2024")'),
    (HEAD + "  v:\n    backend: vault\n", 3, "environments.v.prefix", "required key is missing"),
    (HEAD + "  v:\n    backend: vault\n    prefix: /\n", 5, "environments.v.prefix",
     "must not be empty"),
    (VAULT + "    auth: {method: ldap}\n", 6, "environments.v.auth.method",
     "must be one of token, approle, kubernetes, jwt"),
    (VAULT + "    auth:\n      method: approle\n      secret_id_env: SID\n", 7,
     "environments.v.auth.role_id_env", "required key is missing"),
    (VAULT + "    auth: {method: token, token_env: my-token}\n", 6,
     "environments.v.auth.token_env", "must be an environment variable name"),
    (AWS + "    role_arn: iam::123:role/x\n", 5, "environments.a.role_arn", "must be an ARN"),
    (AWS + "    endpoint_url: localhost:5000\n", 5, "environments.a.endpoint_url",
     "must start with http:// or https://"),
    (AWS + "    region: {name: eu}\n", 5, "environments.a.region",
     "must be a string (got a mapping)"),
]
# fmt: on


@pytest.mark.parametrize(("text", "line", "key_path", "problem"), SCHEMA_ERRORS)
def test_schema_errors(tmp_path: Path, text: str, line: int, key_path: str, problem: str) -> None:
    exc = profile_error(tmp_path, text)
    assert (exc.line, exc.key_path) == (line, key_path)
    assert problem in exc.problem
    assert str(exc) == f"{tmp_path / PROFILE_FILENAME}:{line}: {key_path}: {exc.problem}"


def test_bad_backend_message_matches_cli_md(tmp_path: Path) -> None:
    exc = profile_error(tmp_path, HEAD + "  prod:\n    backend: gcp\n")
    assert str(exc).endswith(":4: environments.prod.backend: must be one of local, vault, aws")


def test_newer_version_hints_upgrade(tmp_path: Path) -> None:
    exc = profile_error(tmp_path, "version: 7\nenvironments:\n  dev:\n    backend: local\n")
    assert "newer bsecrets" in exc.problem
    assert exc.hint is not None and "upgrade" in exc.hint


def test_unknown_key_hint_lists_allowed_keys(tmp_path: Path) -> None:
    exc = profile_error(tmp_path, HEAD + "  a:\n    backend: aws\n    regoin: eu\n")
    assert exc.hint == (
        "allowed here: backend, protected, region, prefix, kms_key_id, role_arn, endpoint_url, "
        "insecure_http, timeout, offline"
    )


def test_default_env_hint_lists_environments(tmp_path: Path) -> None:
    exc = profile_error(tmp_path, "version: 1\ndefault_env: qa\n" + EXAMPLE.split("\n", 3)[3])
    assert exc.hint == "known environments: dev, staging, prod"


def test_string_type_error_suggests_quoting(tmp_path: Path) -> None:
    exc = profile_error(tmp_path, HEAD + "  a:\n    backend: aws\n    region: no\n")
    assert exc.hint == 'quote it to keep it as text: "no"'


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_profile(tmp_path: Path, text: str) -> None:
    exc = profile_error(tmp_path, text)
    assert exc.problem == "the profile is empty"


@pytest.mark.parametrize(
    ("text", "got"),
    [("- version: 1\n- environments: {}\n", "a list"), ("just text\n", '"just text"')],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    exc = profile_error(tmp_path, text)
    assert (exc.line, exc.key_path) == (1, "")
    assert exc.problem == f"must be a mapping (got {got})"


def test_missing_file_is_profile_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ProfileNotFound) as info:
        load_profile(path)
    assert exit_code_of(info.value) == ExitCode.NOT_FOUND
    assert str(path) in str(info.value)


def test_unreadable_file_is_profile_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, EXAMPLE)

    def denied(file: object, mode: str = "r") -> object:
        raise PermissionError(13, "Permission denied", str(file))

    # chmod 000 does not stop root: the loader's open() is refused instead
    monkeypatch.setattr("bsecrets.config.loader.open", denied, raising=False)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert exit_code_of(info.value) == ExitCode.USAGE
    assert str(info.value) == f"{path}: cannot read the file: permission denied"


def test_directory_is_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read the file") as info:
        load_profile(tmp_path)
    assert exit_code_of(info.value) == ExitCode.USAGE


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / PROFILE_FILENAME
    path.write_bytes(b"version: 1\nenvironments:\n  dev:\n    backend: l\xffcal\n")
    with pytest.raises(ProfileError, match="not valid UTF-8") as info:
        load_profile(path)
    assert info.value.line == 4


# --- find_profile ----------------------------------------------------------------


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty per-user config location inside tmp_path; returns the fallback profile path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    fallback = Path(platformdirs.user_config_dir("bsecrets")) / "profile.yaml"
    assert tmp_path in fallback.parents
    return fallback


@pytest.fixture
def deep(tmp_path: Path) -> Path:
    """tmp_path/project/a/b, with no profile anywhere above tmp_path (else skip)."""
    for folder in tmp_path.parents:
        if (folder / PROFILE_FILENAME).exists():
            pytest.skip(f"a stray {folder / PROFILE_FILENAME} would be found")
    folder = tmp_path / "project" / "a" / "b"
    folder.mkdir(parents=True)
    return folder


def test_find_explicit_wins(tmp_path: Path, deep: Path, config_home: Path) -> None:
    write(tmp_path / "project", EXAMPLE)
    chosen = write(tmp_path, EXAMPLE, "chosen.yaml")
    environ = {"BSECRETS_PROFILE": str(write(tmp_path, EXAMPLE, "env.yaml"))}
    assert Path(find_profile(str(chosen), environ, deep)) == chosen
    # relative to cwd, returned absolute
    assert Path(find_profile("../../../chosen.yaml", environ, deep)).resolve() == chosen
    assert Path(find_profile("../../../chosen.yaml", environ, deep)).is_absolute()


def test_find_explicit_missing(tmp_path: Path, deep: Path, config_home: Path) -> None:
    write(tmp_path / "project", EXAMPLE)  # would be found by the search: must not be used
    with pytest.raises(ProfileNotFound) as info:
        find_profile("missing.yaml", {}, deep)
    assert exit_code_of(info.value) == ExitCode.NOT_FOUND
    assert "missing.yaml" in str(info.value)
    assert "--profile" in str(info.value)


def test_find_env_var(tmp_path: Path, deep: Path, config_home: Path) -> None:
    write(tmp_path / "project", EXAMPLE)
    chosen = write(tmp_path, EXAMPLE, "env.yaml")
    assert Path(find_profile(None, {"BSECRETS_PROFILE": str(chosen)}, deep)) == chosen
    with pytest.raises(ProfileNotFound, match="BSECRETS_PROFILE") as info:
        find_profile(None, {"BSECRETS_PROFILE": str(tmp_path / "gone.yaml")}, deep)
    assert str(tmp_path / "gone.yaml") in str(info.value)


def test_find_empty_values_count_as_unset(tmp_path: Path, deep: Path, config_home: Path) -> None:
    found = write(deep, EXAMPLE)
    assert Path(find_profile("", {"BSECRETS_PROFILE": ""}, deep)) == found


def test_find_searches_upward_nearest_first(tmp_path: Path, deep: Path, config_home: Path) -> None:
    config_home.parent.mkdir(parents=True)
    write(config_home.parent, EXAMPLE, "profile.yaml")  # the fallback exists but comes last
    outer = write(tmp_path / "project", EXAMPLE)
    assert Path(find_profile(None, {}, deep)) == outer
    inner = write(tmp_path / "project" / "a", EXAMPLE)
    assert Path(find_profile(None, {}, deep)) == inner
    assert Path(find_profile(None, {}, deep)).is_absolute()


def test_find_ignores_a_directory_named_like_the_profile(
    tmp_path: Path, deep: Path, config_home: Path
) -> None:
    (deep / PROFILE_FILENAME).mkdir()
    outer = write(tmp_path / "project", EXAMPLE)
    assert Path(find_profile(None, {}, deep)) == outer


def test_find_falls_back_to_user_config_dir(deep: Path, config_home: Path) -> None:
    config_home.parent.mkdir(parents=True)
    write(config_home.parent, EXAMPLE, "profile.yaml")
    assert Path(find_profile(None, {}, deep)) == config_home


def test_find_nothing(deep: Path, config_home: Path) -> None:
    with pytest.raises(ProfileNotFound) as info:
        find_profile(None, {}, deep)
    assert exit_code_of(info.value) == ExitCode.NOT_FOUND
    assert str(info.value) == (
        f"no profile found (looked for bsecrets.yaml from {deep} upward and {config_home})"
    )
    assert "bsecrets init" in (hint_for(info.value) or "")
