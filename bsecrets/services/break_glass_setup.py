"""``break-glass setup`` and ``break-glass rekey``: an environment's emergency key,
split M-of-N among custodians (services/break_glass.py has the rest; docs/break-glass.md).

The emergency X25519 private key exists in memory only here and during activation:
SLIP-39 (shamir-mnemonic, one group of M-of-N) splits it; each share is sealed to its
custodian's principal key by the emergency key itself (so only a setup can make a
share a custodian accepts), or printed once as words (``--offline-shares``, the setup
keeping only a hash of each). The environment key is sealed to the emergency key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bsecrets.audit.events import Action
from bsecrets.crypto.keys import generate_private_key, public_key_of, seal_to, sha256_hex
from bsecrets.errors import BreakGlassNotFound, NextStep, PrincipalUnknown, UsageError
from bsecrets.services.principals import admin_vault, rekey_without
from bsecrets.timeutil import iso
from bsecrets.vaultfile.break_glass import BreakGlassStore, Setup

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager
    from bsecrets.vaultfile.vault import LocalVault

OFFLINE = "offline:"  # a share printed as words: the setup keeps only its hash


def local_env(manager: SecretsManager, env: str | None) -> str:
    env_name = manager.env_name(env)
    if manager.profile.environment(env_name).backend != "local":
        raise UsageError(
            f"break-glass opens a local environment's key; '{env_name}' is remote "
            "(its store's own emergency access applies there)",
            step=NextStep("break_glass_local_only"),
        )
    return env_name


def public_keys(manager: SecretsManager, names: list[str]) -> dict[str, bytes]:
    principals = manager.gate.policy().principals
    missing = [n for n in names if n not in principals]
    if missing:
        raise PrincipalUnknown(
            f"no principal named {', '.join(repr(n) for n in missing)}",
            step=NextStep("list_principals"),
        )
    return {n: principals[n].public_key for n in names}


def offline_hash(setup: Setup, vault_id: bytes, custodian: str, words: str) -> str:
    return OFFLINE + sha256_hex(setup.share_context(vault_id, custodian) + words.encode())


def _split(
    vault: LocalVault, env: str, custodians: list[str], threshold: int, generation: int,
    keys: dict[str, bytes], offline: bool, by: str, at: str,
) -> tuple[Setup, list[str]]:  # fmt: skip
    """A new emergency key for ``env``'s current key, split among ``custodians``."""
    import shamir_mnemonic

    master = vault.env_master(env)
    if master is None:
        raise BreakGlassNotFound(f"environment '{env}' has no key yet: put a secret first")
    emergency = generate_private_key()
    public = public_key_of(emergency)
    words = shamir_mnemonic.generate_mnemonics(
        1, [(threshold, len(custodians))], emergency, b"", iteration_exponent=0
    )[0]
    setup = Setup(env, generation, public.hex(), custodians, threshold, "", {}, by, at)
    sealed = seal_to(emergency, public, master, setup.master_context(vault.vault_id))
    shares = {}
    for custodian, share in zip(custodians, words, strict=True):
        if offline:
            shares[custodian] = offline_hash(setup, vault.vault_id, custodian, share)
        else:
            context = setup.share_context(vault.vault_id, custodian)
            shares[custodian] = seal_to(emergency, keys[custodian], share.encode(), context).hex()
    return setup._replace(sealed_master=sealed.hex(), shares=shares), words if offline else []


def setup(
    manager: SecretsManager,
    env: str | None,
    custodians: list[str],
    threshold: int,
    *,
    offline: bool = False,
) -> tuple[Setup, list[str]]:
    """Set up (or set up again) ``env``'s emergency key; with ``offline``, the shares
    to print (once), in custodian order."""
    env_name = local_env(manager, env)
    names = [c.strip() for c in custodians if c.strip()]
    if len(set(names)) != len(names):
        raise UsageError("a custodian is named twice", step=NextStep("break_glass_custodians"))
    if not 2 <= threshold <= len(names) or len(names) > 16:
        raise UsageError(
            f"--threshold {threshold} with {len(names)} custodians: it takes 2 to the "
            "number of custodians (at most 16)",
            step=NextStep("break_glass_custodians"),
        )
    vault = admin_vault(manager, Action.BREAK_GLASS_SETUP, env_name, "setting up break-glass")
    with manager.refusals_recorded(Action.BREAK_GLASS_SETUP, env_name):
        reason = manager.gate.check(Action.BREAK_GLASS_SETUP, env_name, remote=False)
    keys = public_keys(manager, names)
    store = BreakGlassStore(vault)
    with manager.audit.operation(Action.BREAK_GLASS_SETUP, env_name, justification=reason) as note:
        old = store.setup(env_name)
        generation = old.generation + 1 if old else 1
        note.details = {"custodians": names, "threshold": threshold, "generation": generation,
                        "offline": offline}  # fmt: skip
        made, words = _split(vault, env_name, names, threshold, generation, keys, offline,
                             vault.principal, iso(manager.clock()))  # fmt: skip
        store.put_setup(made)
    return made, words


def rekey(manager: SecretsManager, env: str | None) -> tuple[Setup, int, list[str]]:
    """After an activation: the environment under a new key (sealed to everyone who
    keeps a grant) and a new emergency key split among the same custodians, so the
    shares used are worthless. Returns the setup, the secrets re-encrypted and, for an
    offline setup, the new shares to print."""
    env_name = local_env(manager, env)
    vault = admin_vault(manager, Action.BREAK_GLASS_REKEY, env_name, "re-keying break-glass")
    with manager.refusals_recorded(Action.BREAK_GLASS_REKEY, env_name):
        reason = manager.gate.check(Action.BREAK_GLASS_REKEY, env_name, remote=False)
    store = BreakGlassStore(vault)
    with vault.store.read():
        old = store.setup(env_name)
    if old is None:
        raise BreakGlassNotFound(
            f"environment '{env_name}' has no break-glass setup",
            step=NextStep("break_glass_setup", env=env_name),
        )
    keys = public_keys(manager, old.custodians)
    offline = any(s.startswith(OFFLINE) for s in old.shares.values())
    with manager.audit.operation(Action.BREAK_GLASS_REKEY, env_name, justification=reason) as note:
        count = rekey_without(manager, vault, env_name, "")
        made, words = _split(vault, env_name, old.custodians, old.threshold, old.generation + 1,
                             keys, offline, vault.principal, iso(manager.clock()))  # fmt: skip
        store.put_setup(made)
        note.details = {"generation": made.generation, "reencrypted": count}
    return made, count, words
