"""What doctor's checks share: the local vault if it opens, whether the credentials at
hand open its keys without asking, and SQLite's page check, each found once per run.

Doctor never asks for anything: the keys are used only when a session, a passphrase
(BSECRETS_PASSPHRASE, BSECRETS_PASSPHRASE_FILE), a pipeline token, a key file or the
OS keyring opens them (``LocalVault.can_unlock_quietly``); otherwise the checks that
need them are SKIP with a hint, as ``status`` never prompts either.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from bsecrets.errors import BsecretsError, IntegrityError, VaultNotFound
from bsecrets.named_tuples import NamedTuple
from bsecrets.services.doctor.findings import Finding, Status

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager
    from bsecrets.vaultfile.vault import LocalVault

UNLOCK_STEP = (
    "run 'eval \"$(bsecrets unlock)\"' (or set BSECRETS_PASSPHRASE) and run 'bsecrets doctor' again"
)


class Keys(NamedTuple):
    """Whether the keys are at hand; ``why`` says why not, ``integrity`` when the reason
    is that the file's owner key does not match the one that unlocks it."""

    ok: bool
    why: str = ""
    integrity: bool = False


_KEYS: WeakKeyDictionary[LocalVault, Keys] = WeakKeyDictionary()
_PAGES: WeakKeyDictionary[LocalVault, list[tuple[str, str]]] = WeakKeyDictionary()


def has_local(manager: SecretsManager) -> bool:
    """Whether the profile has a local environment (so a vault file is expected)."""
    return any(env.backend == "local" for env in manager.profile.environments.values())


def vault_of(manager: SecretsManager) -> LocalVault | BsecretsError:
    """The profile's vault, open; else why not: VaultNotFound, InsecureFile (refused
    for its permissions), IntegrityError (not a database)..."""
    path = Path(manager.profile.vault_file)
    if not path.exists():
        return VaultNotFound(f"no vault file at {path}")
    try:
        return manager.local_vault()
    except BsecretsError as exc:
        return exc


def not_open(manager: SecretsManager, error: BsecretsError, *checks: str) -> list[Finding]:
    """The findings of ``checks`` when the vault does not open (``vault.file`` says why);
    none without a local environment, where no vault is expected."""
    if isinstance(error, VaultNotFound) and not has_local(manager):
        return []
    why = f"not checked: the vault does not open ({error.message})"
    return [Finding(check, Status.SKIP, why, "see vault.file") for check in checks]


def keys(manager: SecretsManager) -> Keys:
    """Whether the credentials at hand open the vault's keys, without a prompt."""
    vault = vault_of(manager)
    if isinstance(vault, BsecretsError):
        return Keys(False, vault.message, integrity=isinstance(vault, IntegrityError))
    if vault not in _KEYS:
        try:
            ok = vault.can_unlock_quietly()
            found = Keys(True) if ok else Keys(False, _locked_reason(manager))
        except IntegrityError as exc:
            found = Keys(False, exc.message, integrity=True)
        except BsecretsError as exc:
            found = Keys(False, exc.message)
        _KEYS[vault] = found
    return _KEYS[vault]


def _locked_reason(manager: SecretsManager) -> str:
    creds = manager.creds
    if creds.session_token:
        return "BSECRETS_SESSION does not open the vault (ended, expired or another vault's)"
    if creds.passphrase is not None:
        return "the passphrase given does not open the vault"
    return "no credentials at hand open the vault (no session, passphrase or keyring key)"


def skipped(check: str, why: Keys) -> Finding:
    """The finding of a check that needs the keys, when they are not at hand."""
    return Finding(check, Status.SKIP, f"not checked: {why.why}", "see vault.keys")


def damaged_pages(vault: LocalVault) -> list[tuple[str, str]]:
    """SQLite's page check of the vault file ((table, problem) pairs), run once."""
    if vault not in _PAGES:
        _PAGES[vault] = vault.store.page_problems()
    return _PAGES[vault]
