"""What ``env ls`` shows and what ``env rm`` checks: the environments of a profile
and how many secrets the local ones hold.

Counts of local environments come from the vault file's rows, without the key
(environment names and row counts are not encrypted): no prompt, no unlock, no
audit event, as ``status`` does. They include soft-deleted secrets (still held,
recoverable with ``restore``) and, like any figure read without the key, are not
authenticated. Remote environments are never counted here: that would be a
network call per environment (``bsecrets ls -e ENV`` counts one).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bsecrets.errors import BsecretsError
from bsecrets.named_tuples import NamedTuple
from bsecrets.vaultfile.policy import peek_policy
from bsecrets.vaultfile.store import VaultStore

if TYPE_CHECKING:
    from bsecrets.config.profile import Profile
    from bsecrets.services.manager import SecretsManager


class StoredCounts(NamedTuple):
    """Secrets per environment in the vault file; ``problem`` says why ``counts`` is
    None (the file exists but cannot be read)."""

    counts: dict[str, int] | None
    problem: BsecretsError | None = None
    # environment -> what its protection asks a code for ("writes" or "all"), as the
    # vault's access policy states it (read without unlocking: not authenticated)
    protections: dict[str, str] | None = None


def stored_counts(vault_file: Path) -> StoredCounts:
    """Rows per environment in ``vault_file``, and its protections; {} when there is
    no vault file."""
    if not Path(vault_file).exists():
        return StoredCounts({})
    try:
        store = VaultStore.open(Path(vault_file))
        try:
            policy = peek_policy(store)
            modes = {env: p.mfa for env, p in policy.protected.items()}
            return StoredCounts(store.counts(), None, modes)
        finally:
            store.close()
    except BsecretsError as exc:
        return StoredCounts(None, exc)


class EnvironmentSummary(NamedTuple):
    name: str
    backend: str
    protected: bool  # the profile's declaration
    default: bool
    secrets: int | None  # None: not counted (remote, or the vault could not be read)
    options: dict[str, Any]  # the profile's keys for remote backends (no secrets there)
    protection: str | None = None  # the vault's record: "writes", "all", or None

    def protected_text(self) -> str:
        """The PROTECTED column: the vault's record, else 'declared' (the profile says
        so and the vault does not record it yet), else nothing."""
        return self.protection or ("declared" if self.protected else "")

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()

    def where(self) -> str:
        """A short description of where the secrets live."""
        options = self.options
        if self.backend == "vault":
            address = options.get("address") or "$VAULT_ADDR"
            return f"{address} {options.get('mount', 'secret')}/{options.get('prefix', '')}"
        if self.backend == "aws":
            region = options.get("region") or "$AWS_REGION"
            return f"{region} {options.get('prefix') or '(no prefix)'}"
        return "vault file"


def summaries(
    profile: Profile, counts: dict[str, int] | None, protections: dict[str, str] | None = None
) -> list[EnvironmentSummary]:
    """Every environment of ``profile`` in file order, with the local counts and the
    vault's protections given."""
    out = []
    for name, config in profile.environments.items():
        local = config.backend == "local"
        secrets = (counts or {}).get(name, 0) if local and counts is not None else None
        out.append(
            EnvironmentSummary(
                name,
                config.backend,
                config.protected,
                name == profile.default_env,
                secrets,
                {} if local else dict(config.options),
                (protections or {}).get(name),
            )
        )
    return out


def purge_environment(manager: SecretsManager, env: str) -> int:
    """Destroy every secret of the local environment ``env`` (soft-deleted ones too)
    through the façade: one audited ``rm`` (purge) per secret, so the audit log
    and each manifest stay bound (audit/witness.py). The environment's
    key and its empty manifest stay in the vault file. Returns how many."""
    names = [s.name for s in manager.list_secrets(env, include_deleted=True)]
    for name in names:
        manager.delete(env, name, purge=True)
    return len(names)
