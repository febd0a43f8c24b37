"""Doctor's profile checks: the file (who may change it, does it load) before anything
else, then a lint of what it says.

* ``profile.file``: a profile that others can write is a WARN (whoever edits it
  redirects your secrets: it names the Vault address and AWS endpoint that tokens and
  values go to); bsecrets refuses to load it until it is fixed. ``--fix``: chmod go-w.
* ``profile.load``: a profile that does not load is a FAIL with the parser's message
  (unknown keys, an environment without a backend, bad YAML...).
* ``profile.endpoint.ENV``: a Vault or AWS environment reached over plain ``http://``
  to another host is a WARN (tokens and values in clear text), unless the environment
  says ``insecure_http: true``.
* ``profile.protected.ENV``: an environment the profile declares protected that the
  vault does not protect (its changes are refused until it is applied) is a WARN.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bsecrets.backends.cleartext import cleartext_endpoint
from bsecrets.config.loader import find_profile, load_profile
from bsecrets.config.profile import PROFILE_FILENAME, EnvironmentConfig, Profile
from bsecrets.errors import BsecretsError, InsecureFile
from bsecrets.files import check_trusted_dirs
from bsecrets.services.doctor.at_hand import vault_of
from bsecrets.services.doctor.findings import Finding, Status
from bsecrets.vaultfile.policy import peek_policy

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager

_FILE, _LOAD = "profile.file", "profile.load"


def locate_profile(explicit: str | None, environ: Mapping[str, str], cwd: Path) -> Path:
    """The profile every command would use (config/loader.py ``find_profile``), also
    when it is refused for its permissions: doctor names it and can fix it. Raises
    what ``find_profile`` raises when there is none (ProfileNotFound, exit 3)."""
    try:
        return Path(find_profile(explicit, environ, cwd))
    except InsecureFile:
        pass
    # the same order of search, without the trust check
    cwd = Path(os.path.abspath(cwd))
    given = explicit or environ.get("BSECRETS_PROFILE")
    if given:
        path = Path(given).expanduser()
        return path if path.is_absolute() else cwd / path
    for folder in (cwd, *cwd.parents):
        if (folder / PROFILE_FILENAME).is_file():
            return folder / PROFILE_FILENAME
    import platformdirs

    return Path(platformdirs.user_config_dir("bsecrets")) / "profile.yaml"


def check_profile(path: Path, fix: bool) -> tuple[list[Finding], Profile | None]:
    """The profile file's permissions and whether it loads (the profile, or None)."""
    findings = [_file_permissions(path, fix)]
    try:
        profile = load_profile(path)
    except InsecureFile as exc:
        if findings[0].status is not Status.OK:  # why: said above
            detail = "not loaded: bsecrets refuses a profile someone else could have written"
            return [*findings, Finding(_LOAD, Status.SKIP, detail, "see profile.file")], None
        return [*findings, Finding(_LOAD, Status.FAIL, exc.message, exc.hint)], None
    except BsecretsError as exc:
        hint = exc.hint or "correct the profile (docs/profile.md)"
        return [*findings, Finding(_LOAD, Status.FAIL, exc.message, hint)], None
    count = len(profile.environments)
    detail = f"{path}: {count} environment{'s' if count != 1 else ''}"
    return [*findings, Finding(_LOAD, Status.OK, detail)], profile


def _file_permissions(path: Path, fix: bool) -> Finding:
    try:
        st = os.stat(path)
    except OSError as exc:
        return Finding(_FILE, Status.FAIL, f"cannot read {path}: {exc.strerror}")
    if st.st_uid not in (os.geteuid(), 0):
        detail = f"profile {path} belongs to another user (uid {st.st_uid}): bsecrets refuses it"
        return Finding(_FILE, Status.FAIL, detail, "use a profile you own: -p PATH")
    try:
        check_trusted_dirs(path.parent, what="the profile's folder")
    except InsecureFile as exc:  # a folder above it: not bsecrets' to change
        return Finding(_FILE, Status.FAIL, exc.message, exc.hint)
    if not st.st_mode & 0o022:
        return Finding(_FILE, Status.OK, f"{path} can be written only by you")
    was, mode = stat.S_IMODE(st.st_mode), stat.S_IMODE(st.st_mode) & ~0o022
    if fix:
        try:
            os.chmod(path, mode)
        except OSError as exc:
            return Finding(_FILE, Status.WARN, f"{path} is mode {was:o}; chmod failed: "
                           f"{exc.strerror}", f"chmod go-w {path}")  # fmt: skip
        return Finding(_FILE, Status.OK, f"{path} was writable by other users (mode {was:o})",
                       fixed=f"chmod go-w {path} (now {mode:o})")  # fmt: skip
    detail = (
        f"{path} can be written by other users (mode {was:o}): whoever edits it redirects "
        "your secrets, and bsecrets refuses to load it"
    )
    return Finding(_FILE, Status.WARN, detail, f"bsecrets doctor --fix, or: chmod go-w {path}")


def lint_profile(manager: SecretsManager, fix: bool) -> list[Finding]:
    """What the loaded profile says that deserves a look (the module docstring)."""
    del fix  # the profile is the operator's to edit
    profile = manager.profile
    findings: list[Finding] = []
    for name, config in profile.environments.items():
        if config.backend != "local":
            findings += _endpoints(manager, name, config)
    findings += _protections(manager)
    if not findings:
        findings.append(Finding("profile.lint", Status.OK, "nothing suspicious in the profile"))
    return findings


def _endpoint_urls(manager: SecretsManager, config: EnvironmentConfig) -> list[tuple[str, str]]:
    """(URL, where it comes from) of each endpoint the environment reaches."""
    key = f"environments.{config.name}"
    if config.backend == "vault":
        if config.options.get("address"):
            return [(str(config.options["address"]), f"{key}.address")]
        return [(manager.environ.get("VAULT_ADDR", ""), "VAULT_ADDR")]
    if config.options.get("endpoint_url"):
        return [(str(config.options["endpoint_url"]), f"{key}.endpoint_url")]
    from bsecrets.backends.aws.settings import AwsSettings  # only for an aws environment

    try:
        return AwsSettings.resolve(config, manager.environ).endpoint_sources(manager.environ)
    except BsecretsError:  # not usable as configured: the backend checks say why
        return []


def _endpoints(manager: SecretsManager, name: str, config: EnvironmentConfig) -> list[Finding]:
    check = f"profile.endpoint.{name}"
    plain = [
        f"{shown} (from {source})"
        for url, source in _endpoint_urls(manager, config)
        if (shown := cleartext_endpoint(url)) is not None
    ]
    if not plain:
        return [Finding(check, Status.OK, f"'{name}' ({config.backend}) uses TLS or loopback")]
    where = ", ".join(plain)
    if config.options.get("insecure_http"):
        detail = f"'{name}' talks to {where} without TLS, as its insecure_http: true accepts"
        return [Finding(check, Status.OK, detail)]
    detail = (
        f"'{name}' talks to {where} without TLS: its token and every value cross the "
        "network in clear text"
    )
    hint = f"use https://; if the network is trusted, set environments.{name}.insecure_http: true"
    return [Finding(check, Status.WARN, detail, hint)]


def _protections(manager: SecretsManager) -> list[Finding]:
    """Environments declared ``protected: true`` that the vault does not protect."""
    declared = [n for n, c in manager.profile.environments.items() if c.protected]
    if not declared:
        return []
    vault = vault_of(manager)
    if isinstance(vault, BsecretsError):
        return [Finding("profile.protected", Status.SKIP, f"not checked: {vault.message}")]
    try:
        applied = peek_policy(vault.store).protected
    except BsecretsError as exc:
        return [Finding("profile.protected", Status.SKIP, f"not checked: {exc.message}")]
    findings = []
    for name in declared:
        check = f"profile.protected.{name}"
        if name in applied:
            findings.append(Finding(check, Status.OK, f"'{name}' is protected as declared"))
            continue
        detail = (
            f"'{name}' is declared protected in the profile but the vault does not protect "
            "it: its changes are refused until it does"
        )
        hint = (
            f"bsecrets env protect {name} (after 'bsecrets mfa enroll'), or drop 'protected: true'"
        )
        findings.append(Finding(check, Status.WARN, detail, hint))
    return findings
