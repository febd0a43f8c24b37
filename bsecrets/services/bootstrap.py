"""``bsecrets init``: write a profile and create the local vault it points to.

What callers may rely on:

* Nothing is ever dropped. Without ``force`` an existing profile is refused
  (AlreadyExists, exit 7). With ``force`` a valid profile is kept as it is
  (every environment, its options and ``provision:``, comments, order) and the
  environments named that it lacks are added as local ones. A profile that
  does not parse is replaced only when that drops no environment that is
  remote or holds secrets; otherwise Conflict (exit 7) names them.
* The vault either exists whole or not at all: it is built in a temporary file
  beside its path, with the owner key, each local environment's key and the
  audit log's first event (``init``), and moved into place only when complete
  (LocalVault.create). An existing vault file is never overwritten; it is
  kept only if it is a whole vault, else IntegrityError (exit 5) says what is
  wrong and how to replace it. A temporary file left by an interrupted init is
  reported (Conflict, exit 7), never used.
* The vault is written before the profile, so a profile never points to a vault
  that an interrupted init left half made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bsecrets.audit.events import Action
from bsecrets.audit.local_log import LocalAuditLog
from bsecrets.audit.logger import AuditLogger
from bsecrets.config.edit import merge_local_environments, profile_lock, read_profile, validate
from bsecrets.config.loader import render_profile
from bsecrets.config.profile import DEFAULT_VAULT_FILE, Profile
from bsecrets.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    NextStep,
    ProfileError,
)
from bsecrets.files import write_private_file
from bsecrets.models import AccessContext
from bsecrets.services.environments import stored_counts
from bsecrets.timeutil import Clock
from bsecrets.vaultfile.build import leftover_builds
from bsecrets.vaultfile.credentials import OWNER, Credentials
from bsecrets.vaultfile.store import VaultStore
from bsecrets.vaultfile.vault import LocalVault


@dataclass(frozen=True)
class InitResult:
    profile: Path
    vault_file: Path
    environments: list[str]  # every environment of the profile written
    vault_created: bool  # False: an existing vault was kept
    keyring: bool  # the new vault's key went to the OS keyring (never for a kept vault)
    # "created", "kept" (init --force, nothing to add), "updated" (environments
    # added), "replaced" (the old profile did not parse; nothing of value dropped)
    profile_action: str = "created"
    added: list[str] = field(default_factory=list)  # environments new in the profile
    removed: list[Path] = field(default_factory=list)  # leftovers that were the vault itself


def initialize(
    profile_path: Path,
    environments: list[str],
    *,
    passphrase: str | None,
    use_keyring: bool,
    force: bool,
    clock: Clock,
) -> InitResult:
    """Write or merge the profile, then create the vault (see the module docstring)."""
    names = list(dict.fromkeys(environments))
    with profile_lock(profile_path):
        action, text, added = _profile_text(profile_path, names, force)
        profile = validate(text, profile_path)  # a bad environment name fails here
        vault_file = Path(profile.vault_file)
        removed = _check_leftovers(vault_file)
        vault_created = not os.path.lexists(vault_file)
        if vault_created:
            _create_vault(profile, passphrase=passphrase, use_keyring=use_keyring, clock=clock)
        else:
            check_whole_vault(vault_file)
        if action != "kept":
            write_private_file(profile_path, text.encode())
    return InitResult(
        profile_path,
        vault_file,
        list(profile.environments),
        vault_created,
        use_keyring and vault_created,
        action,
        added,
        removed,
    )


def _profile_text(path: Path, names: list[str], force: bool) -> tuple[str, str, list[str]]:
    """(what happens to the profile, its new text, the environments added)."""
    if not os.path.lexists(path):
        envs = names or ["dev"]
        return "created", render_profile(envs, envs[0]), envs
    if not force:
        raise AlreadyExists(
            f"a profile already exists at {path}",
            step=NextStep("use_or_extend_profile"),
        )
    try:
        text, _ = read_profile(path)
    except ProfileError as exc:
        return _replacement(path, names, exc)
    new_text, added = merge_local_environments(text, path, names)
    return ("updated" if added else "kept"), new_text, added


def _replacement(path: Path, names: list[str], error: ProfileError) -> tuple[str, str, list[str]]:
    """A new profile in place of one that does not parse, unless that would drop an
    environment that is remote or holds secrets (or one it cannot read at all)."""
    envs = names or ["dev"]
    seen = _environments_in(path)
    if seen is None:
        raise ProfileError(
            error.path,
            error.line,
            error.key_path,
            error.problem,
            step=NextStep("fix_or_move_profile", path=str(path)),
        ) from None
    backends, vault_file = seen

    vault_path = path.parent / os.path.expanduser(vault_file or DEFAULT_VAULT_FILE)
    counts = stored_counts(vault_path).counts
    blocking = []
    for name, backend in backends.items():
        if backend != "local":
            blocking.append(f"{name} ({backend or 'unknown'} backend)")
        elif counts is None:
            blocking.append(f"{name} (may hold secrets: the vault could not be read)")
        elif counts.get(name, 0) and name not in envs:
            blocking.append(f"{name} (holds {counts[name]} secrets)")
    if blocking:
        raise Conflict(
            f"the profile {path} does not parse ({error.message}), and replacing it would "
            f"drop: {', '.join(blocking)}",
            step=NextStep("fix_profile_then_reinit"),
        )
    return "replaced", render_profile(envs, envs[0], vault_file or DEFAULT_VAULT_FILE), envs


def _environments_in(path: Path) -> tuple[dict[str, str | None], str | None] | None:
    """Environment name -> backend (None if unreadable) and the vault_file, read
    leniently from a profile that does not validate; None if there is no
    ``environments`` mapping to read."""
    import yaml

    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("environments"), dict):
        return None
    backends: dict[str, str | None] = {}
    for name, entry in data["environments"].items():
        backend = entry.get("backend") if isinstance(entry, dict) else None
        backends[str(name)] = backend if isinstance(backend, str) else None
    vault_file = data.get("vault_file")
    return backends, vault_file if isinstance(vault_file, str) and vault_file else None


def _create_vault(
    profile: Profile, *, passphrase: str | None, use_keyring: bool, clock: Clock
) -> None:
    local = [name for name, env in profile.environments.items() if env.backend == "local"]

    def fill(vault: Any) -> None:
        """In the temporary file: each local environment's key, and the chain's first event."""
        audit = AuditLogger(LocalAuditLog(vault), AccessContext.current(), clock, os.environ)
        with vault.store.write():
            for env in local:
                vault.env_keys(env, create=True)
            audit.record(Action.INIT, details={"environments": list(profile.environments)})

    try:
        vault = LocalVault.create(
            profile.vault_file,
            Credentials(),
            clock,
            passphrase=passphrase,
            use_keyring=use_keyring,
            fill=fill,
        )
    except FileExistsError:
        raise AlreadyExists(
            f"a vault appeared at {profile.vault_file} while this init was creating one "
            "(another 'bsecrets init'?); it was left as it is",
            step=NextStep("rerun_init_keeping_vault"),
        ) from None
    vault.close()
    gitignore = Path(profile.vault_file).parent / ".gitignore"
    if not gitignore.exists():
        write_private_file(gitignore, b"# the encrypted vault and its WAL files\n*\n")


def _check_leftovers(vault_file: Path) -> list[Path]:
    """Refuse to go on beside a vault being built, or a leftover of one (exit 7);
    remove a leftover that is only a second name of the vault, and return it."""
    removed, stale = [], []
    for leftover in leftover_builds(vault_file):
        if leftover.state == "installed":  # a kill between link and unlink: the same file
            for path in leftover.files:
                os.unlink(path)
            removed += leftover.files
        elif leftover.state == "building":
            raise Conflict(
                f"another 'bsecrets init' is creating the vault {vault_file} right now "
                f"(in {leftover.path.name})",
                step=NextStep("wait_then_rerun_init"),
            )
        else:
            stale += leftover.files
    if stale:
        raise Conflict(
            f"found {stale[0]}{' and more' if len(stale) > 1 else ''}, left by an interrupted "
            "'bsecrets init': never a complete vault, and not used",
            hint=f"remove it, then run init again: rm {' '.join(map(str, stale))}",
        )
    return removed


def check_whole_vault(path: Path) -> None:
    """Refuse (IntegrityError, exit 5) a vault file that is not a whole vault: empty,
    not a database, without its header or without the owner's key, as an init of
    an older bsecrets that was killed could leave. The hint names the files and
    how to replace them. InsecureFile (exit 4) and UnsupportedFormat pass through."""
    try:
        if os.stat(path).st_size == 0:
            raise IntegrityError(f"{path} is empty (0 bytes)")
        store = VaultStore.open(path)
        try:
            if not store.key_wraps(OWNER):
                raise IntegrityError(f"{path} has no owner key")
            store.public_key(OWNER)
        finally:
            store.close()
    except IntegrityError as exc:
        detail = exc.message
        moves = [f"mv {path} {path}.damaged"]
        for suffix in ("-journal", "-wal", "-shm"):
            if os.path.lexists(f"{path}{suffix}"):
                moves.append(f"mv {path}{suffix} {path}.damaged{suffix}")
        raise IntegrityError(
            f"the existing vault is not a whole vault, so init does not keep it: {detail} "
            "(an init of an older bsecrets that was interrupted leaves such a file)",
            hint="if it holds nothing you need, move it aside and run init again: "
            f"{' && '.join(moves)}; otherwise restore it from a backup",
        ) from None
