"""Issue #12, part B: the hints of the configuration, formats and services layers
that name a bsecrets command, option or variable are next steps
(``error.step``) worded by the command line (bsecrets.cli.hints.STEPS). These
pin the wording the CLI shows for each, byte for byte as it was, where no other
test checks it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from helpers.cli import hint_of

from bsecrets.config.edit import add_environment, check_removable
from bsecrets.config.envmap import child_environment, map_names, select_names
from bsecrets.config.generators import generate
from bsecrets.config.parser import parse_profile
from bsecrets.formats.codecs import Entry, dotenv_value, github_env_block, render_shell, variables
from bsecrets.models import validate_value
from bsecrets.services import bootstrap
from bsecrets.services.audit_ops import retention_cutoff
from bsecrets.services.manager import SecretsManager
from bsecrets.services.transfer import _text, check_settable, export_env, validate_entries
from bsecrets.vaultfile.build import Leftover

TWO_ENVS = (
    "version: 1\ndefault_env: dev\nenvironments:\n"
    "  dev: {backend: local}\n  prod: {backend: local}\n"
)
ONE_ENV = "version: 1\nenvironments:\n  dev: {backend: local}\n"


def test_environment_edits(tmp_path: Path) -> None:
    path = tmp_path / "bsecrets.yaml"
    path.write_text(TWO_ENVS)
    two = parse_profile(TWO_ENVS, str(path), path)
    one = parse_profile(ONE_ENV, str(path), path)
    assert hint_of(lambda: add_environment(path, "prod", "local", {})) == (
        "pick another name, or remove it first: bsecrets env rm prod"
    )
    assert hint_of(lambda: check_removable(one, "dev")) == (
        "a profile needs at least one: add another first (bsecrets env add NAME "
        "--backend local), then remove this one"
    )
    assert hint_of(lambda: check_removable(two, "dev")) == (
        "make another one the default first: bsecrets env default prod"
    )


def test_exec_environment() -> None:
    assert hint_of(lambda: map_names(["a/b", "a_b"])) == (
        "rename one of them, or pick one with --only"
    )
    assert hint_of(lambda: select_names(["x*"], lambda: ["a"], "dev")) == (
        "list the names with 'bsecrets ls'"
    )

    def child(variable: str, value: bytes = b"v") -> object:
        return child_environment({"s": value}, {}, mapping={variable: "s"})

    assert hint_of(lambda: child("BSECRETS_SESSION")) == (
        "rename the secret, or leave it out with --only"
    )
    assert hint_of(lambda: child("PATH")) == (
        "allow it with --allow-override PATH, keep the inherited value with "
        "--preserve-env PATH, or leave it out with --only"
    )
    assert hint_of(lambda: child("OK", b"a\0b")) == (
        "leave it out with --only, or use 'bsecrets render' to write it to a file"
    )


def test_provision_generators() -> None:
    assert hint_of(lambda: generate("db/pw", ("value", ""), {})) == (
        "give 'db/pw' a value or a generator, or pass --allow-empty; nothing was created"
    )
    assert hint_of(lambda: generate("db/pw", ("from_env", "PW"), {"PW": ""})) == (
        "set PW, or pass --allow-empty; nothing was created"
    )


def test_newer_profile(tmp_path: Path) -> None:
    path = tmp_path / "bsecrets.yaml"
    text = "version: 2\nenvironments:\n  dev: {backend: local}\n"
    assert hint_of(lambda: parse_profile(text, str(path), path)) == (
        "upgrade bsecrets: 'pip install --upgrade bsecrets'"
    )


def test_export_formats() -> None:
    assert hint_of(lambda: variables(["a/b", "a_b"])) == (
        "rename one of them, or export with --format json or yaml (keyed by name)"
    )
    assert hint_of(lambda: variables(["1x"])) == (
        "variables cannot start with a digit; rename the secret, "
        "or export with --format json or yaml"
    )
    assert hint_of(lambda: dotenv_value("K", "a\rb")) == (
        "export with --format json, yaml or shell (see docs/transfer.md)"
    )
    assert hint_of(lambda: render_shell([("K", "a\0b")])) == "export with --format json or yaml"
    assert hint_of(lambda: github_env_block("K", "a\0b", lambda: "EOF")) == (
        "use 'bsecrets exec' in the step instead"
    )


def test_empty_value() -> None:
    assert hint_of(lambda: validate_value(b"")) == (
        "nothing was stored; if an empty value is what you mean, pass --allow-empty"
    )


def test_transfer() -> None:
    assert hint_of(lambda: _text("bin", b"\xff")) == "read it with 'bsecrets get NAME --raw'"
    manager = cast(SecretsManager, SimpleNamespace(env_name=lambda env: "dev"))
    assert hint_of(lambda: export_env(manager, None, "json", prefix="APP_")) == (
        "drop --prefix, or use --format dotenv, shell or github-env"
    )
    assert hint_of(lambda: check_settable({"BSECRETS_SESSION": "s"})) == (
        "rename the secret, or export with --format json or yaml (keyed by name)"
    )
    assert hint_of(lambda: check_settable({"PATH": "s"})) == (
        "allow it with --allow-override PATH, rename the secret, "
        "or export with --format json or yaml (keyed by name)"
    )
    empty = [Entry("k", "", 3)]
    assert hint_of(lambda: validate_entries(empty, "in.env")) == (
        "pass --allow-empty to import empty values; nothing was imported"
    )
    large = [Entry("k", "x" * (1024 * 1024 + 1), 3)]
    assert hint_of(lambda: validate_entries(large, "in.env")) == (
        "store large files elsewhere and keep their key or path in bsecrets; nothing was imported"
    )


def test_audit_services() -> None:
    manager = cast(SecretsManager, SimpleNamespace(profile=SimpleNamespace(audit_retention=None)))
    assert hint_of(lambda: retention_cutoff(manager, cast(Any, None))) == (
        "add 'audit: {retention: 365d}' to the profile, or give --before DATE"
    )
    stub = cast(
        SecretsManager,
        SimpleNamespace(audit=SimpleNamespace(sink=None), profile=SimpleNamespace(vault_file="v")),
    )
    assert hint_of(lambda: SecretsManager.audit_log(stub)) == (
        "run 'bsecrets init': the audit log lives in the local vault"
    )


def test_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bsecrets.yaml"
    path.write_text(ONE_ENV)
    assert hint_of(lambda: bootstrap._profile_text(path, [], False)) == (
        "use it as it is (add environments with 'bsecrets env add'), or pass "
        "--force to add the --env environments it lacks (nothing in it is dropped)"
    )
    path.write_text("environments: [\n")
    assert hint_of(lambda: bootstrap._profile_text(path, [], True)) == (
        "init --force cannot tell which environments this profile holds, so it "
        f"does not replace it: fix it, or move it away (mv {path} {path}.old) and run "
        "init again"
    )
    path.write_text("version: 1\nenvironments:\n  cloud: {backend: aws, bogus: 1}\n")
    assert hint_of(lambda: bootstrap._profile_text(path, [], True)) == (
        "fix the profile: then 'bsecrets init --force' keeps every environment "
        "and adds the ones you name"
    )

    def exists(*args: object, **kwargs: object) -> object:
        raise FileExistsError

    profile = parse_profile(ONE_ENV, str(path), path)
    monkeypatch.setattr(bootstrap, "LocalVault", SimpleNamespace(create=exists))
    create = bootstrap._create_vault
    assert hint_of(
        lambda: create(profile, passphrase="p", use_keyring=False, clock=cast(Any, None))
    ) == ("run 'bsecrets init --force' again: it keeps that vault")
    building = Leftover(tmp_path / "vault.db.tmp-x", "building", [])
    monkeypatch.setattr(bootstrap, "leftover_builds", lambda vault_file: [building])
    assert hint_of(lambda: bootstrap._check_leftovers(tmp_path / "vault.db")) == (
        "wait for it to finish, then run 'bsecrets init' again"
    )
