"""Events of principals other than the owner, who hold no audit key.

Such a principal cannot chain an event, nor read the chain. So each of its
events is sealed to the audit key's public half with authenticated sealing
(X25519 with the principal's own static key: only that principal can make an
entry that opens as its), together with the manifests its transaction found
(``before``: each environment it checked) and left (``after``: every witnessed
environment), in table ``audit_intake_members``, in the same transaction as
the change it records.

The owner's next command opens them in order (``read``), and the chain witness
accepts the changes they vouch for (``advance``): an entry applies only if its
``before`` is what the chain (and the entries before it) recorded, the
environments it did not check are unchanged, and its principal holds a write
grant on every environment it changed. An entry that does not apply is left
out, so the change it claims is reported like any change the chain never saw
(exit 5). The owner's next event folds them into the chain, marked ``late``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bsecrets import json_codec
from bsecrets.audit.witness import is_witnessed, state_of
from bsecrets.crypto.keys import encode_aad, hkdf, public_key_of, seal_to, unseal
from bsecrets.errors import IntegrityError
from bsecrets.named_tuples import NamedTuple
from bsecrets.vaultfile.credentials import OWNER
from bsecrets.vaultfile.policy import ACCESS_ENV, AccessPolicy, PolicyStore
from bsecrets.vaultfile.store import VaultStore
from bsecrets.vaultfile.vault import LocalVault

TABLE = (
    "CREATE TABLE IF NOT EXISTS audit_intake_members (id INTEGER PRIMARY KEY,"
    " principal TEXT NOT NULL, sealed BLOB NOT NULL)"
)
State = dict[str, list[Any]]  # env -> [generation, MAC prefix hex] (witness.state_of)


def intake_private_key(audit_master: bytes) -> bytes:
    """The X25519 private key entries are sealed to, derived from the audit key."""
    return hkdf(audit_master, "bsecrets/v1/audit-member-intake")


def intake_public_key(audit_master: bytes) -> bytes:
    return public_key_of(intake_private_key(audit_master))


class Entry(NamedTuple):
    id: int
    principal: str
    fields: dict[str, Any] | None  # None: the entry did not open (failed authentication)
    before: State
    after: State


def _context(vault_id: bytes, principal: str) -> bytes:
    return encode_aad(vault_id, "__audit__", "member-intake", principal)


def write(
    store: VaultStore,
    principal: str,
    private_key: bytes,
    audit_public: bytes,
    entry: dict[str, Any],
) -> None:
    """Inside the caller's write transaction: ``entry`` ({"fields", "before", "after"})."""
    body = json_codec.canonical(entry).encode()
    sealed = seal_to(private_key, audit_public, body, _context(store.vault_id, principal))
    store.execute_write(TABLE)
    store.execute_write(
        "INSERT INTO audit_intake_members (principal, sealed) VALUES (?, ?)", (principal, sealed)
    )


def marker(store: VaultStore) -> tuple[int, int]:
    """(count, last id) of the entries waiting: changes when one is added or folded."""
    rows = store.query_optional_table(
        "audit_intake_members", "SELECT count(*), coalesce(max(id), 0) FROM audit_intake_members"
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


def read(
    store: VaultStore, audit_master: bytes, public_of: Callable[[str], bytes | None]
) -> list[Entry]:
    """The entries waiting, in the order they were written, each opened with the audit
    key and authenticated as its principal's (``public_of``: the verified policy)."""
    rows = store.query_optional_table(
        "audit_intake_members",
        "SELECT id, principal, sealed FROM audit_intake_members ORDER BY id",
    )
    private_key = intake_private_key(audit_master)
    entries = []
    for entry_id, principal, sealed in rows:
        name = principal if isinstance(principal, str) else "?"
        public = public_of(name)
        try:
            if public is None or type(sealed) is not bytes or type(entry_id) is not int:
                raise IntegrityError("an audit intake entry is damaged")
            plain = unseal(private_key, public, sealed, _context(store.vault_id, name), "entry")
            data = json_codec.loads(plain)
            entries.append(
                Entry(entry_id, name, dict(data["fields"]), data["before"], data["after"])
            )
        except (IntegrityError, ValueError, KeyError, TypeError):
            entries.append(Entry(int(entry_id or 0), name, None, {}, {}))
    return entries


def advance(state: State, entries: list[Entry], may_write: Callable[[str, str], bool]) -> State:
    """``state`` (what the chain recorded) moved on by the entries that vouch for each
    change from it (see the module's docstring); the others are left out."""
    current = {env: list(value) for env, value in state.items()}
    for entry in entries:
        if entry.fields is None:
            continue
        checked = {env: value for env, value in entry.before.items() if value is not None}
        if any(current.get(env) != value for env, value in checked.items()):
            continue
        unchecked_changed = any(
            current.get(env) != value for env, value in entry.after.items() if env not in checked
        )
        changed = [env for env, value in checked.items() if entry.after.get(env) != value]
        if unchecked_changed or not all(may_write(entry.principal, env) for env in changed):
            continue
        current.update({env: list(value) for env, value in entry.after.items()})
    return current


# --- for the local audit log --------------------------------------------------


def record(vault: LocalVault, found: dict[str, Any], fields: dict[str, Any]) -> State:
    """Inside the caller's write transaction: an event of the unlocked principal (not
    the owner), with the manifests its transaction ``found`` (the witness's record)
    and those it leaves (returned: where the next entry of the transaction starts)."""
    policy = PolicyStore(vault).load()
    if len(policy.audit_public) != 32:
        raise IntegrityError("the vault's access policy names no audit key")
    before = {env: value for env, value in found.items() if is_witnessed(env)}
    entry = {"fields": fields, "before": before, "after": state_of(vault.store.manifest_macs())}
    write(vault.store, vault.principal, vault.private_key(), policy.audit_public, entry)
    return entry["after"]


def entries(vault: LocalVault, audit_env: str) -> tuple[list[Entry], AccessPolicy]:
    """The entries waiting (the owner, holding the audit key), and the policy they were
    authenticated against (not checked against the chain: the witness asks)."""
    policy = PolicyStore(vault).load(witnessed=False)
    master = vault.env_master(audit_env)
    if master is None:
        return [], policy

    def public_of(name: str) -> bytes | None:
        found = policy.principals.get(name)
        return found.public_key if found is not None and name != OWNER else None

    return read(vault.store, master, public_of), policy


def advance_by_policy(vault: LocalVault, audit_env: str, state: State) -> State:
    """``state`` advanced by the waiting entries whose principals may write what they
    changed (a write grant in the policy, or an activated break-glass request for
    write on that environment: services/break_glass.py)."""
    waiting, policy = entries(vault, audit_env)
    emergency: set[tuple[str, str]] | None = None

    def may_write(name: str, env: str) -> bool:
        nonlocal emergency
        if env == ACCESS_ENV:  # the policy: an admin's (it holds the policy key)
            return any(g.get(name) is not None and g[name].role == "admin"
                       for g in policy.grants.values())  # fmt: skip
        grant = policy.grant_of(env, name)
        if grant is not None and grant.role in ("write", "admin"):
            return True
        if emergency is None:  # a seam: break-glass records load only when asked
            from bsecrets.vaultfile.break_glass import BreakGlassStore

            emergency = {(r.requester, r.env) for r in BreakGlassStore(vault).requests()
                         if r.write and r.activated_at is not None}  # fmt: skip
        return (name, env) in emergency

    return advance(state, waiting, may_write)
