"""A backend's own rotation (AWS: a rotation Lambda and its schedule), which
``bsecrets rotate`` asks to rotate instead of rotating client-side, and ``rotate
schedule``, which configures it (docs/rotation.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bsecrets.audit.events import Action
from bsecrets.errors import NextStep, UsageError
from bsecrets.models import validate_name
from bsecrets.timeutil import iso
from bsecrets.vaultfile.rotations import Rotation, new_id

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


def delegate(
    manager: SecretsManager,
    env: str,
    name: str,
    service: dict[str, Any],
    reason: str | None,
    principal: str,
) -> Rotation:
    """Ask the backend's own rotation to rotate ``name`` now (its Lambda does the
    steps): an audited ``rotate`` event (intent, then outcome), no record to resume."""
    backend = manager.backend(env)
    with manager.audit.operation(
        Action.ROTATE, env, name=name, remote=True, justification=reason
    ) as note:
        note.details = {"by": backend.kind, "lambda": service["lambda"]}
        backend.rotate_with_service(name)
    now = iso(manager.clock())
    return Rotation(new_id(), env, name, "service", "delegated", 0, None, now, now,
                    principal, reason)  # fmt: skip


def schedule(
    manager: SecretsManager, env: str | None, name: str, function: str, every: timedelta
) -> dict[str, Any]:
    """Configure the backend's own rotation of ``name`` (AWS: RotateSecret with a Lambda
    and a rule of every N days); a change, audited."""
    validate_name(name)
    env_name = manager.env_name(env)
    remote = manager.profile.environment(env_name).backend != "local"
    days = every.days
    if days < 1 or every != timedelta(days=days) or days > 1000:
        raise UsageError("--every takes whole days, 1d to 1000d", step=NextStep("every_days"))
    with manager.refusals_recorded(Action.ROTATE, env_name, name=name):
        reason = manager.gate.check(Action.ROTATE, env_name, remote=remote, names=(name,))
    backend = manager.backend(env_name)
    with manager.audit.operation(
        Action.ROTATE, env_name, name=name, remote=remote, justification=reason
    ) as note:
        note.details = {"schedule": {"lambda": function, "every_days": days}}
        backend.schedule_rotation(name, function, days)
    return {"env": env_name, "name": name, "lambda": function, "every_days": days}
