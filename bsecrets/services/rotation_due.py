"""``bsecrets rotate --due``: the secrets whose policy's ``max_age`` has passed, and
rotating each of them with its policy's generator (services/rotation.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bsecrets.errors import BsecretsError
from bsecrets.services.rotation import policy_for, start
from bsecrets.timeutil import iso

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


def due(manager: SecretsManager, env: str | None, now: datetime) -> list[dict[str, Any]]:
    """Each secret of the environment(s) whose policy's max_age has passed."""
    envs = [manager.env_name(env)] if env else list(manager.profile.environments)
    out = []
    for env_name in envs:
        config = manager.profile.environment(env_name)
        if not config.rotation:
            continue
        for summary in manager.list_secrets(env_name):
            policy = policy_for(config, summary.name)
            if policy is None or policy.max_age is None:
                continue
            due_at = summary.updated_at + policy.max_age
            if due_at <= now:
                out.append(
                    {
                        "env": env_name,
                        "name": summary.name,
                        "version": summary.version,
                        "updated_at": iso(summary.updated_at),
                        "due_at": iso(due_at),
                        "generate": policy.generate,
                    }
                )
    return out


def rotate_due(
    manager: SecretsManager, env: str | None, *, dry_run: bool, warn: Callable[[str], None]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """``rotate --due``: (due, rotated, failed). Each due secret with a generator is
    rotated; one that fails is reported (``warn``) and the others go on."""
    found = due(manager, env, manager.clock())
    rotated: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for item in [] if dry_run else found:
        where = f"{item['env']}/{item['name']}"
        if item["generate"] is None:
            warn(f"{where} is due and its policy has no generator")
            continue
        try:
            rotated.append(start(manager, item["env"], item["name"]).to_public())
        except BsecretsError as exc:
            warn(f"{where}: {exc.message}")
            failed.append({"env": item["env"], "name": item["name"], "error": exc.message})
    return found, rotated, failed


def has_policies(manager: SecretsManager) -> bool:
    return any(config.rotation for config in manager.profile.environments.values())
