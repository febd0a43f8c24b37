"""Dev provisioning: create the secrets of an environment's ``provision:`` that
do not exist yet (idempotent); the generators are bsecrets.config.generators."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bsecrets.audit.events import Action
from bsecrets.config.generators import generate
from bsecrets.errors import UsageError
from bsecrets.named_tuples import NamedTuple

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


class ProvisionResult(NamedTuple):
    env: str
    created: list[str]
    present: list[str]


def provision(
    manager: SecretsManager, env: str | None, *, dry_run: bool = False, allow_empty: bool = False
) -> ProvisionResult:
    """Create every secret of the environment's ``provision:`` that does not exist
    (or is deleted); the others are left alone. All values are generated (and every
    ``from_env`` checked) before anything is written, in one transaction."""
    env_name = manager.env_name(env)
    wanted = manager.profile.environment(env_name).provision
    if not wanted:
        raise UsageError(
            f"environment '{env_name}' has no 'provision:' section in the profile",
            hint="add one, e.g. 'provision: {db/password: password:32, api/key: hex:32}'",
        )
    existing = {s.name for s in manager.list_secrets(env_name)}
    missing = sorted(n for n in wanted if n not in existing)
    present = sorted(n for n in wanted if n in existing)
    values = {n: generate(n, wanted[n], manager.environ, allow_empty=allow_empty) for n in missing}
    if not dry_run and values:
        with manager.transaction(env_name, action=Action.PROVISION, names=sorted(values)):
            for name, value in values.items():
                manager.put(env_name, name, value, allow_empty=allow_empty)
    return ProvisionResult(env_name, missing, present)
