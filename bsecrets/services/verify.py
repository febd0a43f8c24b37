"""``bsecrets verify``: is the local vault file intact? One answer for all of it.

Checks (docs/security.md, "Checking a whole vault"):

1. pages: SQLite's own check of every page, b-tree and index
   (``VaultStore.page_problems``: ``PRAGMA integrity_check``, at most 100
   problems), named by table;
2. keys: the owner key the unlock proved against the file's principal row (and,
   under a session, the session's), and every environment key sealed in the file
   opens with it and is the key in use;
3. rows: every environment the file holds, including ones the profile does not
   name and the internal ones: its manifest authenticates, every bucket matches
   it, every record and value authenticates, each secret's versions are complete
   (``LocalAdapter.verify_rows``); values are opened only to check their tags;
4. audit: the chain, its archives and the anchor (``audit_ops.verify``, the
   check ``audit verify`` makes), and every environment's manifest against the
   newest event (the witness), each environment named.

Each problem is listed once: one line per damaged table; a message found in
several places names them all; an environment whose rows or key are wrong is
not listed again for disagreeing with the audit log. A file whose pages are
damaged is not written to, so the check records no event there; otherwise it
is recorded as a ``verify`` event before the chain is walked (as ``audit
verify`` does), and not at all when the chain cannot take one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bsecrets.audit.events import Action
from bsecrets.audit.witness import is_internal
from bsecrets.backends.local.adapter import LocalAdapter
from bsecrets.errors import IntegrityError
from bsecrets.named_tuples import NamedTuple
from bsecrets.services import audit_ops
from bsecrets.vaultfile.credentials import OWNER
from bsecrets.vaultfile.policy import ACCESS_ENV, AccessPolicy, PolicyStore

if TYPE_CHECKING:
    from bsecrets.audit.chain import Anchor, Verification
    from bsecrets.services.manager import SecretsManager

CHECKS = ("pages", "keys", "rows", "audit")


class Problem(NamedTuple):
    check: str  # one of CHECKS
    where: str  # "vault file", "table NAME", an environment, "owner key", "audit log"
    problem: str


class VaultCheck(NamedTuple):
    vault_file: str
    environments: dict[str, dict[str, int]]  # env -> {"generation", "secrets"}, not internal
    audit: Verification | None  # None when the chain could not be walked
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document (docs/cli.md, "verify"): stable keys."""
        return {
            "ok": self.ok,
            "vault_file": self.vault_file,
            "checks": list(CHECKS),
            "environments": self.environments,
            "audit": self.audit.to_dict() if self.audit is not None else None,
            "problems": [p._asdict() for p in self.problems],
        }


class _Findings:
    """Problems, each once: the same message from another place adds the place."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, check: str, where: str, problem: str) -> None:
        for i, seen in enumerate(self.items):
            if seen.check == check and seen.problem == problem:
                self.items[i] = seen._replace(where=f"{seen.where}, {where}")
                return
        self.items.append(Problem(check, where, problem))

    def places(self) -> set[str]:
        return {place for p in self.items for place in p.where.split(", ")}


def verify_vault(manager: SecretsManager, anchor: Anchor | None = None) -> VaultCheck:
    """Every check of the module docstring on the profile's vault file. Raises only
    what stops it from looking: no vault (exit 3), a wrong passphrase or a locked
    vault (exit 4); everything it finds wrong is in ``problems``."""
    path = str(manager.profile.vault_file)
    found = _Findings()
    try:
        vault = manager.local_vault()
    except IntegrityError as exc:  # not a database, a damaged header: nothing else to read
        found.add("pages", "vault file", exc.message)
        return VaultCheck(path, {}, None, found.items)
    store = vault.store
    _check_pages(store.page_problems(), found)
    damaged_pages = bool(found.items)
    try:
        vault.private_key()  # the owner row against the unlock (and the session)
    except IntegrityError as exc:
        found.add("keys", "owner key", exc.message)
        return VaultCheck(path, {}, None, found.items)
    try:
        manifests = store.manifest_macs()
        envs = sorted(set(store.environments()) | set(manifests))
    except IntegrityError as exc:
        found.add("pages", "vault file", exc.message)
        return VaultCheck(path, {}, None, found.items)
    environments: dict[str, dict[str, int]] = {}
    for env in envs:
        try:
            vault.check_env_key(env)
        except IntegrityError as exc:
            found.add("keys", env, exc.message)
            continue
        try:
            if env == ACCESS_ENV:  # one signed document, not rows (vaultfile/policy.py)
                _check_grants(manager, PolicyStore(vault).load(), found)
                continue
            secrets = LocalAdapter(vault, env, manager.clock).verify_rows()
        except IntegrityError as exc:
            found.add("rows", env, exc.message)
            continue
        if not is_internal(env):
            environments[env] = {"generation": manifests.get(env, (0, b""))[0], "secrets": secrets}
    audit = _check_audit(manager, anchor, found, record=not damaged_pages)
    return VaultCheck(path, environments, audit, found.items)


def _check_grants(manager: SecretsManager, policy: AccessPolicy, found: _Findings) -> None:
    """Every grant on a local environment has its key sealed to the principal, and every
    key sealed to a principal other than the owner has a grant: a row removed or copied
    by SQL is named here (a principal's own command would only be refused)."""
    store = manager.local_vault().store
    local = {name for name, env in manager.profile.environments.items() if env.backend == "local"}
    for env, grants in sorted(policy.grants.items()):
        for principal in sorted(grants):
            if env in local and store.sealed_env_key(env, principal) is None:
                found.add("keys", env, f"the key sealed to principal '{principal}' was removed")
    for env, principal in store.sealed_keys():
        granted = principal in policy.grants.get(env, {})
        if principal != OWNER and not granted and not is_internal(env):
            found.add("keys", env, f"a key sealed to '{principal}', who has no grant")


def _check_pages(pages: list[tuple[str, str]], found: _Findings) -> None:
    """One problem per damaged table: its first message, and how many more there are."""
    by_table: dict[str, list[str]] = {}
    for table, message in pages:
        by_table.setdefault(table, []).append(message)
    for table, messages in by_table.items():
        more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
        where = "vault file" if table == "file" else f"table {table}"
        found.add("pages", where, messages[0] + more)


def _check_audit(
    manager: SecretsManager, anchor: Anchor | None, found: _Findings, *, record: bool
) -> Verification | None:
    """The chain (audit_ops.verify), then each environment against its newest event."""
    try:
        result = audit_ops.verify(manager, anchor, action=Action.VERIFY if record else None)
    except IntegrityError as exc:
        found.add("audit", "audit log", exc.message)
        return None
    problem = result.problem
    if problem is not None and problem.kind != "rollback":
        found.add("audit", "audit log", f"{problem.kind} at event {problem.seq}: {problem.detail}")
        return result  # a chain that does not hold vouches for no environment
    log = manager.audit_log()
    already = found.places()
    try:
        for env, why in log.witness.mismatches(log.store.manifest_macs()):
            if env not in already:  # its own rows or key are the problem to fix first
                found.add("audit", env, why)
    except IntegrityError as exc:
        found.add("audit", "audit log", exc.message)
    return result
