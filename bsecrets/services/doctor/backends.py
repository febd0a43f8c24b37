"""Doctor's backend checks (docs/doctor.md, "Backends"): for each environment on a remote
store (Vault, AWS; local ones are checked elsewhere), three findings from what the
backend's ``identity()`` (ports.py) reports:

* ``backend.ENV.reachable``: the store answers (Vault: ``sys/health``, unsealed; AWS:
  Secrets Manager). Unreachable is a FAIL naming the endpoint, a WARN where the
  environment has the offline fallback (reads are served from the copies kept).
* ``backend.ENV.identity``: who the credentials are (Vault: ``lookup-self``'s display
  name, policies, entity; AWS: the caller's ARN, account, region). Refused credentials
  (invalid, expired, revoked) are a FAIL; a Vault root token a WARN.
* ``backend.ENV.expiry``: when they end. A WARN when they end within
  :data:`WARN_WITHIN` and nothing renews them by itself, a FAIL when they have ended.

``--fix`` repairs nothing here: renewing a token or logging in again is the operator's
call, so the hint says how. No detail or hint holds a token, a key or a secret id: the
backends report none (their ``identity`` modules), and errors carry none.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bsecrets.errors import BsecretsError
from bsecrets.ports import BackendIdentity
from bsecrets.services.doctor.findings import Finding, Status
from bsecrets.timeutil import iso, short_span

if TYPE_CHECKING:
    from bsecrets.config.profile import EnvironmentConfig
    from bsecrets.services.manager import SecretsManager

# How long before credentials end that nothing renews by itself doctor warns. A Vault
# token given to bsecrets (method token) is used until it ends: a day ahead leaves time
# to renew it or log in. AWS's temporary credentials last 1 to 12 hours by design, so a
# day would flag every session; 15 minutes is when botocore itself starts refreshing
# the credentials it can refresh.
WARN_WITHIN = {"vault": timedelta(hours=24), "aws": timedelta(minutes=15)}
DEFAULT_WARN_WITHIN = timedelta(hours=24)

_WHAT = {"vault": ("the token", "ends", "it"), "aws": ("the credentials", "end", "them")}
_REPLACED = {
    "vault": "bsecrets logs in again when it ends",
    "aws": "replaced before then (the role assumed again, or refreshed by the AWS SDK)",
}
_RENEW_HINT = {
    "vault": "renew it before then ('vault token renew' / 'bao token renew', up to its "
    "max TTL), or log in again",
}
_RELOGIN_HINT = {
    "vault": "log in again ('vault login' / 'bao login') and export the new token",
    "aws": "get new credentials before then ('aws sso login', or export new "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN)",
}
_NO_EXPIRY = {
    "vault": "the token does not expire (TTL 0)",
    "aws": "static access keys: they do not expire (rotate them as your policy asks)",
}


def check_backends(manager: SecretsManager, fix: bool) -> list[Finding]:
    """Three findings per remote environment, in the profile's order."""
    del fix  # nothing remote is repaired without the operator: the hints say how
    findings: list[Finding] = []
    for name, config in manager.profile.environments.items():
        if config.backend != "local":
            findings += _environment(manager, name, config)
    return findings


def _environment(manager: SecretsManager, name: str, config: EnvironmentConfig) -> list[Finding]:
    check = f"backend.{name}"
    try:
        facts = manager.backend(name).identity()
    except BsecretsError as exc:
        detail = f"environment '{name}' ({config.backend}) cannot be used: {exc.message}"
        hint = exc.hint or f"check environments.{name} in the profile"
        return [Finding(check, Status.FAIL, detail, hint)]
    if facts is None:
        detail = f"the {config.backend} backend does not report its credentials: not checked"
        return [Finding(check, Status.SKIP, detail)]
    offline = bool(config.options.get("offline"))
    return [
        _reachable(check, name, facts, offline),
        _identity(check, name, facts),
        _expiry(check, config.backend, facts, manager.clock()),
    ]


def _reachable(check: str, name: str, facts: BackendIdentity, offline: bool) -> Finding:
    check += ".reachable"
    if facts.down is not None:
        detail = facts.down.message
        if facts.endpoint not in detail:
            detail = f"{facts.endpoint}: {detail}"
        hint = facts.down.hint or f"check environments.{name} in the profile and the network"
        if offline:
            detail += (
                "; reads fall back to the copies kept by the offline fallback "
                f"(environments.{name}.offline), writes fail"
            )
            return Finding(check, Status.WARN, detail, hint)
        return Finding(check, Status.FAIL, detail, hint)
    if not facts.service:
        return Finding(check, Status.SKIP, f"{facts.endpoint}: not asked (no credentials)")
    return Finding(check, Status.OK, f"{facts.endpoint}: {facts.service}")


def _identity(check: str, name: str, facts: BackendIdentity) -> Finding:
    check += ".identity"
    if facts.down is not None:
        return Finding(check, Status.SKIP, "not checked: the store is unreachable")
    if facts.refused is not None:
        hint = facts.refused.hint or f"check the credentials of environment '{name}'"
        return Finding(check, Status.FAIL, facts.refused.message, hint)
    about = f" ({'; '.join(facts.about)})" if facts.about else ""
    detail = f"{facts.principal}{about}, from {facts.source}"
    if facts.root:
        return Finding(
            check,
            Status.WARN,
            f"a root token is in use, which may do anything on this Vault: {detail}",
            f"use a token confined to the environment: 'bsecrets vault policy -e {name}' "
            "prints its policy",
        )
    return Finding(check, Status.OK, detail)


def _expiry(check: str, kind: str, facts: BackendIdentity, now: datetime) -> Finding:
    check += ".expiry"
    if facts.down is not None:
        return Finding(check, Status.SKIP, "not checked: the store is unreachable")
    if facts.refused is not None:
        return Finding(check, Status.SKIP, "not checked: the credentials were refused")
    if facts.temporary is None:
        return Finding(check, Status.SKIP, "the backend does not say whether they end")
    if not facts.temporary:
        return Finding(check, Status.OK, _NO_EXPIRY.get(kind, "the credentials do not expire"))
    if facts.expires_at is None:
        return Finding(
            check,
            Status.OK,
            "temporary credentials (a session token); when they end is not known "
            "(credentials from variables carry no expiry unless AWS_CREDENTIAL_EXPIRATION "
            "is set)",
        )
    what, left = _WHAT.get(kind, ("the credentials", "end", "them")), facts.expires_at - now
    at = iso(facts.expires_at)
    if left <= timedelta(0):
        return Finding(check, Status.FAIL, f"{what[0]} ended at {at}", _RELOGIN_HINT.get(kind))
    renewable = ", renewable" if facts.renewable else ""
    detail = f"{what[0]} {what[1]} at {at} (in {short_span(left.total_seconds())}{renewable})"
    if facts.renews_itself:
        return Finding(check, Status.OK, f"{detail}; {_REPLACED.get(kind, 'replaced')}")
    if left < WARN_WITHIN.get(kind, DEFAULT_WARN_WITHIN):
        hint = (_RENEW_HINT.get(kind) if facts.renewable else None) or _RELOGIN_HINT.get(kind)
        detail += f"; nothing renews {what[2]} automatically"
        return Finding(check, Status.WARN, detail, hint)
    return Finding(check, Status.OK, detail)
