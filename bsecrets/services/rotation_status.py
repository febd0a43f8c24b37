"""``bsecrets rotate status NAME``: one secret's rotation as it stands: its age, the
policy that applies, when it is next due, the rotations in flight and your last
one's result (never a value; docs/rotation.md)."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

from bsecrets.errors import NextStep, SecretNotFound
from bsecrets.models import validate_name
from bsecrets.services.rotation import policy_for
from bsecrets.timeutil import iso
from bsecrets.vaultfile.rotations import RotationStore

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


def secret_status(manager: SecretsManager, env: str | None, name: str) -> dict[str, Any]:
    validate_name(name)
    env_name = manager.env_name(env)
    config = manager.profile.environment(env_name)
    found = [s for s in manager.list_secrets(env_name, name) if s.name == name]
    if not found:
        raise SecretNotFound(
            f"secret '{name}' not found in environment '{env_name}'",
            step=NextStep("list_secrets_in_env", env=env_name),
        )
    summary, now = found[0], manager.clock()
    glob = next((g for g in config.rotation if fnmatch.fnmatchcase(name, g)), None)
    policy = policy_for(config, name)
    due_at = None
    if policy is not None and policy.max_age is not None:
        due_at = summary.updated_at + policy.max_age
    store = RotationStore(manager.gate.require_vault("a rotation's state"))
    with store.store.read():
        lookup = store.lookup(env_name, name, config.backend == "local")
        in_flight = [{"id": i, "by": p} for i, p in store.in_flight(lookup)]
        mine = [r for r in store.mine() if (r.env, r.name) == (env_name, name)]
    return {
        "env": env_name,
        "name": name,
        "version": summary.version,
        "updated_at": iso(summary.updated_at),
        "age_seconds": max(0, int((now - summary.updated_at).total_seconds())),
        "policy": None if glob is None else {"glob": glob, **_as_written(config.rotation[glob])},
        "due_at": iso(due_at) if due_at is not None else None,
        "due": due_at is not None and due_at <= now,
        "in_flight": in_flight,
        "last": mine[-1].to_public() if mine else None,
    }


def _as_written(spec: Any) -> dict[str, Any]:
    """A policy as the profile gives it (durations as written; hooks: their steps)."""
    out: dict[str, Any] = {
        k: v if isinstance(v, int) else str(v) for k, v in dict(spec).items() if k != "hooks"
    }
    out.setdefault("strategy", "immediate")
    if spec.get("hooks"):
        out["hooks"] = sorted(dict(spec["hooks"]))
    return out
