"""``bsecrets break-glass``: emergency access to a local environment that needs M of N
custodians, is time-limited, revocable and reviewed (docs/break-glass.md).

* **setup** (an admin of the environment): an emergency X25519 key pair; the
  environment key is sealed to it; its private key is split M-of-N with SLIP-39
  (shamir-mnemonic) and each share sealed to its custodian's principal key (or
  printed once as words with ``--offline-shares``). The private key exists in
  memory only during setup and activation.
* **request** (any principal but the owner): who, why, how long, read or write.
* **approve** (a custodian other than the requester, with a one-time code): its
  share, re-sealed to the requester for that request only (bound to its digest).
* **activate** (the requester): M approvals open, combine into the emergency key,
  which opens the environment key: a session limited to the request's TTL and mode.
* **revoke**, **review**, **rekey**, **status**: ending it early, the post-incident
  record (a new request waits for it), making the used shares worthless.

Which parts are cryptographic: that M shares are needed (Shamir), that a share opens
only for its custodian and an approval only for its requester and request (AEAD with
the request's digest), that the emergency session holds the environment key only
until its TTL (the session's sealed expiry). Enforced by code: the read-only mode,
revocation before the TTL, the one-time code of an approval, the review rule.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bsecrets.audit.events import Action
from bsecrets.crypto.keys import public_key_of, seal_to, unseal
from bsecrets.errors import (
    AccessDenied,
    BreakGlassNotFound,
    Conflict,
    IntegrityError,
    NextStep,
    UsageError,
)
from bsecrets.models import validate_reason
from bsecrets.services.break_glass_setup import OFFLINE, local_env, offline_hash, public_keys
from bsecrets.timeutil import iso, parse_iso
from bsecrets.vaultfile.break_glass import BreakGlassStore, Request, Setup
from bsecrets.vaultfile.credentials import OWNER

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager
    from bsecrets.vaultfile.session import Session
    from bsecrets.vaultfile.vault import LocalVault

MAX_TTL = timedelta(hours=24)
NOTIFY_TIMEOUT_S = 20.0  # an emergency does not wait longer on its notify command


def _notify(manager: SecretsManager, event: dict[str, Any]) -> None:
    """The profile's ``break_glass: {notify: ...}`` command at a request, approval,
    activation, revocation and review: the event as JSON on stdin (never a key or
    value); a failure is a warning: an emergency does not wait on it."""
    import json

    from bsecrets.run.hooks import TIMED_OUT, hook_environment, run_hook

    argv = manager.profile.break_glass_notify
    if not argv:
        return
    body = json.dumps(event, sort_keys=True).encode()
    result = run_hook("notify", list(argv), body, hook_environment(manager.environ, {}),
                      timeout=NOTIFY_TIMEOUT_S)  # fmt: skip
    if not result.ok:
        manager.warn(f"the break-glass notify command exited {result.exit_code}"
                     + (" (timed out)" if result.exit_code == TIMED_OUT else ""))  # fmt: skip


def _store(manager: SecretsManager) -> tuple[LocalVault, BreakGlassStore]:
    vault = manager.gate.require_vault("break-glass")
    return vault, BreakGlassStore(vault)


def _setup_of(store: BreakGlassStore, env: str) -> Setup:
    found = store.setup(env)
    if found is None:
        raise BreakGlassNotFound(
            f"environment '{env}' has no break-glass setup",
            step=NextStep("break_glass_setup", env=env),
        )
    return found


def _request_of(store: BreakGlassStore, request_id: str) -> Request:
    found = store.request(request_id.strip().lower())
    if found is None:
        raise BreakGlassNotFound(
            f"no break-glass request '{request_id[:20]}' in this vault",
            step=NextStep("break_glass_status"),
        )
    return found


def request(
    manager: SecretsManager,
    env: str | None,
    reason: str,
    ttl: timedelta,
    *,
    write: bool = False,
    override: bool = False,
) -> Request:
    """Ask for emergency access to ``env``; refused (7) while an earlier request of it
    is unreviewed, unless an admin of ``env`` ``override``s it (with the reason)."""
    env_name = local_env(manager, env)
    reason = validate_reason(reason)
    if not timedelta(minutes=1) <= ttl <= MAX_TTL:
        raise UsageError("--ttl takes 1m to 24h", step=NextStep("break_glass_ttl"))
    vault, store = _store(manager)
    requester = vault.principal
    if requester == OWNER:
        raise UsageError(
            "the owner holds every environment's key: break-glass is for other principals",
            step=NextStep("break_glass_as_principal"),
        )
    vault.private_key()  # who asks is proven by its key
    with vault.store.read():
        found = _setup_of(store, env_name)
        pending = [r.id for r in store.requests(env_name) if r.review is None]
    overridden = None
    if pending:
        if not override:
            raise Conflict(
                f"break-glass request {pending[-1]} of '{env_name}' is not reviewed yet",
                step=NextStep("break_glass_review", id=pending[-1]),
            )
        manager.gate.require_admin(env_name, "overriding a pending break-glass review")
        overridden = {"by": requester, "unreviewed": pending}
    now = iso(manager.clock())
    made = Request(os.urandom(6).hex(), env_name, requester, reason, int(ttl.total_seconds()),
                   write, now, found.generation, override=overridden)  # fmt: skip
    with manager.audit.operation(Action.BREAK_GLASS_REQUEST, env_name, justification=reason) as n:
        n.details = {"id": made.id, "ttl_seconds": made.ttl_seconds, "write": write,
                     **({"override": pending} if overridden else {})}  # fmt: skip
        store.put_request(made)
    _notify(manager, _event("request", made))
    return made


def _event(step: str, request: Request, **more: Any) -> dict[str, Any]:
    return {"event": f"break_glass.{step}", "id": request.id, "env": request.env,
            "requester": request.requester, "reason": request.reason,
            "expires_at": request.expires_at, "write": request.write, **more}  # fmt: skip


def approve(manager: SecretsManager, request_id: str, words: str | None = None) -> tuple[int, int]:
    """A custodian's approval: its share re-sealed to the requester for this request.
    Returns (approvals so far, threshold)."""
    vault, store = _store(manager)
    custodian = vault.principal
    with vault.store.read():
        found = _request_of(store, request_id)
        setup_ = _setup_of(store, found.env)
    with manager.refusals_recorded(Action.BREAK_GLASS_APPROVE, found.env):
        if custodian == found.requester:
            raise AccessDenied(
                f"principal '{custodian}' asked for break-glass request {found.id}: "
                "another custodian approves it",
                step=NextStep("break_glass_custodian", env=found.env),
            )
        if custodian not in setup_.custodians:
            raise AccessDenied(
                f"principal '{custodian}' is not a custodian of '{found.env}'s break-glass",
                step=NextStep("break_glass_custodian", env=found.env),
            )
        _usable(manager, found, setup_)
        manager.gate.second_factor("approving a break-glass request")
    share = _share(vault, setup_, custodian, words)
    requester_key = public_keys(manager, [found.requester])[found.requester]
    sealed = seal_to(vault.private_key(), requester_key, share,
                     found.approval_context(vault.vault_id, custodian))  # fmt: skip
    with manager.audit.operation(
        Action.BREAK_GLASS_APPROVE, found.env, justification=found.reason
    ) as note:
        note.details = {"id": found.id, "requester": found.requester}
        store.put_approval(found.id, custodian, sealed)
        count = len([c for c in store.approvals(found.id) if c in setup_.custodians])
    _notify(manager, _event("approve", found, custodian=custodian, approvals=count,
                            threshold=setup_.threshold))  # fmt: skip
    return count, setup_.threshold


def _share(vault: LocalVault, setup_: Setup, custodian: str, words: str | None) -> bytes:
    held = setup_.shares.get(custodian, "")
    if held.startswith(OFFLINE):
        given = " ".join((words or "").split())
        if not given:
            raise UsageError(
                "this custodian's share is offline: give its words on stdin",
                step=NextStep("break_glass_offline_words"),
            )
        if offline_hash(setup_, vault.vault_id, custodian, given) != held:
            # a wrong credential, typed or picked up wrongly: denied, not a damaged vault
            raise AccessDenied(
                f"these words are not custodian '{custodian}'s share of '{setup_.env}' "
                f"(generation {setup_.generation})",
                hint="give your own share's words, all of them, in order",
            )
        return given.encode()
    context = setup_.share_context(vault.vault_id, custodian)
    public = bytes.fromhex(setup_.public_key)
    return unseal(vault.private_key(), public, bytes.fromhex(held), context, "a break-glass share")


def _usable(manager: SecretsManager, found: Request, setup_: Setup) -> None:
    """Refused (4) once revoked or past its TTL; (7) when the setup changed since."""
    if found.state == "revoked":
        raise AccessDenied(f"break-glass request {found.id} was revoked")
    if manager.clock() >= parse_iso(found.expires_at):
        raise AccessDenied(
            f"break-glass request {found.id} expired at {found.expires_at}",
            step=NextStep("break_glass_request_again", env=found.env),
        )
    if found.generation != setup_.generation:
        raise Conflict(
            f"'{found.env}'s break-glass was set up again since request {found.id}",
            step=NextStep("break_glass_request_again", env=found.env),
        )


def activate(manager: SecretsManager, request_id: str) -> tuple[Request, Session]:
    """The requester, with M approvals: the emergency key rebuilt from the shares opens
    the environment key; a session limited to the request's TTL and mode."""
    import shamir_mnemonic

    from bsecrets.crypto.keys import EnvironmentKeys
    from bsecrets.vaultfile import session

    vault, store = _store(manager)
    with vault.store.read():
        found = _request_of(store, request_id)
        setup_ = _setup_of(store, found.env)
        approvals = store.approvals(found.id)
    with manager.refusals_recorded(Action.BREAK_GLASS_ACTIVATE, found.env):
        if vault.principal != found.requester:
            raise AccessDenied(f"break-glass request {found.id} is '{found.requester}'s")
        _usable(manager, found, setup_)
        counted = {c: blob for c, blob in approvals.items() if c in setup_.custodians}
        if len(counted) < setup_.threshold:
            raise AccessDenied(
                f"break-glass request {found.id} has {len(counted)} of the "
                f"{setup_.threshold} approvals it needs: {setup_.threshold - len(counted)} "
                "missing",
                step=NextStep("break_glass_wait", id=found.id),
            )
    keys = public_keys(manager, sorted(counted))
    shares = [
        unseal(vault.private_key(), keys[c], blob, found.approval_context(vault.vault_id, c),
               "a break-glass approval").decode()
        for c, blob in sorted(counted.items())
    ]  # fmt: skip
    try:
        emergency = shamir_mnemonic.combine_mnemonics(shares[: setup_.threshold])
    except (shamir_mnemonic.MnemonicError, ValueError):
        raise IntegrityError("the approved shares do not make this environment's key") from None
    public = bytes.fromhex(setup_.public_key)
    if len(emergency) != 32 or public_key_of(emergency) != public:
        raise IntegrityError("the approved shares do not make this environment's key")
    sealed_master = bytes.fromhex(setup_.sealed_master)
    context = setup_.master_context(vault.vault_id)
    master = unseal(emergency, public, sealed_master, context, "the emergency copy of a key")
    if not vault.master_opens(found.env, EnvironmentKeys.from_master(master)):
        raise Conflict(
            f"environment '{found.env}' was re-keyed since its break-glass setup",
            step=NextStep("break_glass_rekey", env=found.env),
        )
    ends = parse_iso(found.expires_at)
    mode = "write" if found.write else "read"
    with manager.audit.operation(
        Action.BREAK_GLASS_ACTIVATE, found.env, justification=found.reason
    ) as note:
        note.details = {"id": found.id, "mode": mode, "expires_at": found.expires_at,
                        "custodians": sorted(counted)}  # fmt: skip
        masters = {**vault.env_masters(), found.env: master}
        made = session.start(
            vault.vault_id, vault.private_key(), vault.owner_public_key(),
            ends - manager.clock(), manager.clock(), masters, principal=vault.principal,
            payload=vault.session_payload(), emergency=(found.id, found.env, mode),
        )  # fmt: skip
        found = found._replace(state="active", activated_at=iso(manager.clock()))
        store.put_request(found)
        store.put_setup(setup_._replace(used=True))
    _notify(manager, _event("activate", found, mode=mode))
    return found, made


def revoke(manager: SecretsManager, request_id: str) -> Request:
    """End a request and its session before the TTL: its requester, or an admin."""
    vault, store = _store(manager)
    with vault.store.read():
        found = _request_of(store, request_id)
    if vault.principal != found.requester:
        with manager.refusals_recorded(Action.BREAK_GLASS_REVOKE, found.env):
            manager.gate.require_admin(found.env, "revoking another's break-glass request")
    with manager.audit.operation(Action.BREAK_GLASS_REVOKE, found.env) as note:
        note.details = {"id": found.id, "was": found.state}
        found = found._replace(state="revoked", revoked_at=iso(manager.clock()),
                               revoked_by=vault.principal)  # fmt: skip
        store.put_request(found)
    _notify(manager, _event("revoke", found, by=vault.principal))
    return found


def review(manager: SecretsManager, request_id: str, notes: str) -> Request:
    """The post-incident record, by an admin of the environment other than the requester."""
    vault, store = _store(manager)
    with vault.store.read():
        found = _request_of(store, request_id)
    with manager.refusals_recorded(Action.BREAK_GLASS_REVIEW, found.env):
        if vault.principal == found.requester:
            raise AccessDenied(
                f"principal '{vault.principal}' asked for break-glass request {found.id}: "
                "another admin reviews it",
                step=NextStep("break_glass_reviewer", env=found.env),
            )
        manager.gate.require_admin(found.env, "reviewing a break-glass request")
    text = validate_reason(notes)
    with manager.audit.operation(Action.BREAK_GLASS_REVIEW, found.env, justification=text) as n:
        n.details = {"id": found.id}
        found = found._replace(review={"by": vault.principal, "at": iso(manager.clock()),
                                       "notes": text})  # fmt: skip
        store.put_request(found)
    _notify(manager, _event("review", found, by=vault.principal))
    return found


def status(manager: SecretsManager) -> dict[str, Any]:
    """Setups, requests (approvals so far, expiry, state), reviews pending, rekeys due."""
    _, store = _store(manager)
    now = manager.clock()
    with store.store.read():
        setups = store.setups()
        requests = store.requests()
        approvals = {r.id: sorted(store.approvals(r.id)) for r in requests}
    out_requests = []
    for r in requests:
        live = r.state != "revoked" and now < parse_iso(r.expires_at)
        out_requests.append({**r._asdict(), "expires_at": r.expires_at,
                             "approvals": approvals[r.id], "live": live,
                             "review_pending": r.review is None})  # fmt: skip
    return {
        "setups": [
            {
                "env": s.env,
                "generation": s.generation,
                "custodians": s.custodians,
                "threshold": s.threshold,
                "by": s.by,
                "at": s.at,
                "rekey_needed": s.used,
                "offline": any(v.startswith(OFFLINE) for v in s.shares.values()),
            }
            for s in setups
        ],
        "requests": out_requests,
    }
