"""Doctor's checks of what is owed: rotations overdue and break-glass follow-ups.

* ``rotation.ENV``: the secrets past their policy's ``max_age`` (rotation_due.due, what
  ``rotate --due --dry-run`` lists), a WARN naming them (names, never values). Listing
  an environment is an audited ``ls`` of it, as for any caller; it needs the vault's
  keys (they seal the audit log), so without them it is SKIP. ``--fix`` rotates
  nothing: a rotation changes a value other systems use.
* ``break_glass.ENV``: a setup whose emergency key was used (``rekey_needed``: the
  custodians' shares still open it) and requests that ended without a review, each a
  WARN (break_glass.status, which reads the setups' records without a key and records
  nothing). ``--fix`` re-keys nothing: that is an admin's act.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bsecrets.errors import BsecretsError
from bsecrets.services import break_glass
from bsecrets.services.doctor import at_hand
from bsecrets.services.doctor.findings import Finding, Status
from bsecrets.services.rotation_due import due

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager

SHOWN = 5  # names listed in a finding; the command that lists them all is in the hint


def check_rotation(manager: SecretsManager, fix: bool) -> list[Finding]:
    del fix  # rotating changes values other systems use: the operator's call
    envs = [name for name, config in manager.profile.environments.items() if config.rotation]
    if not envs:
        return [Finding("rotation", Status.OK, "no rotation policies in the profile")]
    if Path(manager.profile.vault_file).exists():
        keys = at_hand.keys(manager)
        if not keys.ok:
            return [at_hand.skipped(f"rotation.{env}", keys) for env in envs]
        vault = at_hand.vault_of(manager)
        if not isinstance(vault, BsecretsError) and at_hand.damaged_pages(vault):
            why = "not checked: listing is an audited read, and nothing writes to a damaged file"
            return [Finding(f"rotation.{env}", Status.SKIP, why, "see vault.pages") for env in envs]
    now = manager.clock()
    findings = []
    for env in envs:
        check = f"rotation.{env}"
        try:
            overdue = due(manager, env, now)
        except BsecretsError as exc:
            findings.append(Finding(check, Status.SKIP, f"not checked: {exc.message}"))
            continue
        if not overdue:
            findings.append(Finding(check, Status.OK, f"no secret of '{env}' is past its max_age"))
            continue
        findings.append(_overdue(env, overdue))
    return findings


def _overdue(env: str, items: list[dict[str, Any]]) -> Finding:
    items = sorted(items, key=lambda item: str(item["due_at"]))
    names = ", ".join(f"{i['name']} (due {i['due_at']})" for i in items[:SHOWN])
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    count = f"{len(items)} secret{'s' if len(items) > 1 else ''}"
    detail = f"{count} of '{env}' past the policy's max_age: {names}{more}"
    manual = [i["name"] for i in items if not i["generate"]]
    hint = f"bsecrets rotate --due -e {env} (rotates each with its policy's generator)"
    if manual:
        hint += f"; without a generator: bsecrets rotate NAME -e {env} --from-file FILE"
    return Finding(f"rotation.{env}", Status.WARN, detail, hint)


def check_break_glass(manager: SecretsManager, fix: bool) -> list[Finding]:
    del fix  # a rekey is an admin's act, with its own audit event
    vault = at_hand.vault_of(manager)
    if isinstance(vault, BsecretsError):
        return at_hand.not_open(manager, vault, "break_glass")
    try:
        found = break_glass.status(manager)
    except BsecretsError as exc:
        return [Finding("break_glass", Status.SKIP, f"not checked: {exc.message}")]
    if not found["setups"] and not found["requests"]:
        return [Finding("break_glass", Status.OK, "no break-glass setup in this vault")]
    findings = []
    for setup in found["setups"]:
        env = setup["env"]
        unreviewed = [
            r["id"]
            for r in found["requests"]
            if r["env"] == env and r["review_pending"] and not r["live"]
        ]
        findings.append(_setup(env, setup, unreviewed))
    return findings


def _setup(env: str, setup: dict[str, Any], unreviewed: list[str]) -> Finding:
    check = f"break_glass.{env}"
    problems, hints = [], []
    if setup["rekey_needed"]:
        problems.append(
            f"'{env}''s emergency key was used: the custodians' shares still open it until "
            "it is re-keyed"
        )
        hints.append(f"bsecrets break-glass rekey -e {env}")
    if unreviewed:
        problems.append(
            f"{len(unreviewed)} ended request(s) not reviewed ({', '.join(unreviewed)}): "
            "a new request waits for the review"
        )
        hints.append(f"bsecrets break-glass review {unreviewed[0]} --notes '...'")
    if not problems:
        detail = f"'{env}': {setup['threshold']} of {len(setup['custodians'])} custodians, "
        detail += f"generation {setup['generation']}, nothing pending"
        return Finding(check, Status.OK, detail)
    return Finding(check, Status.WARN, "; ".join(problems), "; ".join(hints))
