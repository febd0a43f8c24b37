"""``bsecrets init``: write a profile and create the local vault it points to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bsecrets.core.credentials import Credentials
from bsecrets.core.errors import AlreadyExists, ProfileError
from bsecrets.core.files import write_private_file
from bsecrets.core.profile import load_profile, render_profile
from bsecrets.core.timeutil import Clock


@dataclass(frozen=True)
class InitResult:
    profile: Path
    vault_file: Path
    environments: list[str]
    vault_created: bool  # False: an existing vault was kept (init --force)
    keyring: bool  # the new vault's key went to the OS keyring (never for a kept vault)


def initialize(
    profile_path: Path,
    environments: list[str],
    *,
    passphrase: str | None,
    use_keyring: bool,
    force: bool,
    clock: Clock,
) -> InitResult:
    """Write the profile, then create the vault and each environment's key.

    An existing profile is refused without ``force`` (exit 7). An existing
    vault file is never overwritten, even with ``force``: it is kept and the
    new profile points to it.
    """
    from bsecrets.backends.local.vault import LocalVault

    if profile_path.exists() and not force:
        raise AlreadyExists(
            f"a profile already exists at {profile_path}",
            hint="use it as it is, or pass --force to rewrite it (the vault is kept)",
        )
    envs = list(dict.fromkeys(environments or ["dev"]))
    text = render_profile(envs, envs[0])
    # Validate before touching the disk: a bad environment name fails here.
    staging = profile_path.with_name(f".{profile_path.name}.new")
    write_private_file(staging, text.encode())
    try:
        profile = load_profile(staging)
    except ProfileError as exc:
        staging.unlink()
        raise ProfileError(str(profile_path), None, exc.key_path, exc.problem) from None
    vault_created = not profile.vault_file.exists()
    if vault_created:
        try:
            vault = LocalVault.create(
                profile.vault_file,
                Credentials(),
                clock,
                passphrase=passphrase,
                use_keyring=use_keyring,
            )
        except BaseException:
            staging.unlink()
            raise
        from bsecrets.backends.local.audit_log import LocalAuditLog
        from bsecrets.core.audit import AuditLogger
        from bsecrets.core.models import AccessContext

        audit = AuditLogger(LocalAuditLog(vault), AccessContext.current(), clock, os.environ)
        with vault.store.write():
            for env in envs:
                vault.env_keys(env, create=True)
            audit.record("init", details={"environments": envs})  # the chain's first event
        vault.close()
        gitignore = profile.vault_file.parent / ".gitignore"
        if not gitignore.exists():
            write_private_file(gitignore, b"# the encrypted vault and its WAL files\n*\n")
    staging.replace(profile_path)
    return InitResult(
        profile_path, profile.vault_file, envs, vault_created, use_keyring and vault_created
    )
