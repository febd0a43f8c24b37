"""``bsecrets rotate``: a secret's new value in the steps of AWS's rotation protocol,
on every backend, resumable after a crash (docs/rotation.md).

1. **create**: the new value is kept as *pending* in the rotation's record (sealed in
   the local vault: vaultfile/rotations.py), with the version that was current; where
   the backend keeps pending versions (Capability.PENDING: AWS, labelled AWSPENDING)
   it is also staged there, and the record notes the version;
2. **set**: the ``set`` hook applies it at the consumer (value on stdin);
3. **test**: the ``test`` hook proves it works;
4. **finish**: pending becomes current with one check-and-set write (``put
   --if-version``; a staged version: AWSCURRENT moved to it from the version the
   rotation started from): a writer in between makes it stop (exit 7), nothing clobbered;
   then the ``finish`` hook runs (e.g. revoking the old credential).

The record is stored after each step, each time with an audited ``rotate`` event, so
a kill at any point leaves exactly one current value, and ``resume`` finishes (a
finish whose write landed before the kill is recognised by the value) or ``cancel``
discards the pending value. A failing hook leaves the current value untouched; the
record keeps the step, the exit code and the hook's output (values masked).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bsecrets.audit.events import Action
from bsecrets.config.generators import generate, parse_generator
from bsecrets.config.profile import STRATEGIES, EnvironmentConfig
from bsecrets.errors import (
    NextStep,
    RotationFailed,
    RotationInFlight,
    RotationNotFound,
    SecretNotFound,
    UsageError,
    VersionConflict,
    VersionNotFound,
)
from bsecrets.models import RotationPolicy, validate_name, validate_reason, validate_value
from bsecrets.ports import Capability
from bsecrets.run.hooks import HookResult, hook_environment, run_hook
from bsecrets.services.rotation_service import delegate
from bsecrets.services.slots import PREVIOUS
from bsecrets.timeutil import iso, parse_duration
from bsecrets.vaultfile.rotations import Rotation, RotationStore, new_id

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager
    from bsecrets.vaultfile.vault import LocalVault

DEFAULT_OVERLAP = timedelta(hours=24)


def policy_for(config: EnvironmentConfig, name: str) -> RotationPolicy | None:
    """The policy of the first glob of the environment's ``rotation:`` that matches."""
    for glob, spec in config.rotation.items():
        if fnmatch.fnmatchcase(name, glob):
            return _policy(spec)
    return None


def _policy(spec: Mapping[str, Any]) -> RotationPolicy:
    """A policy as the profile parser validated it (durations as written)."""

    def duration(key: str) -> timedelta | None:
        text = spec.get(key)
        return parse_duration(str(text)) if text is not None else None

    hooks = tuple((step, tuple(argv)) for step, argv in dict(spec.get("hooks", {})).items())
    return RotationPolicy(
        max_age=duration("max_age"),
        strategy=str(spec.get("strategy", "immediate")),
        overlap=duration("overlap"),
        generate=spec.get("generate"),
        retries=int(spec.get("retries", 0)),
        backoff=duration("backoff") or timedelta(seconds=10),
        hooks=hooks,
    )


def _store(manager: SecretsManager) -> tuple[LocalVault, RotationStore]:
    vault = manager.gate.require_vault("a rotation's state")
    return vault, RotationStore(vault)


def _save(manager: SecretsManager, store: RotationStore, rotation: Rotation) -> Rotation:
    """Store the record, with its audited ``rotate`` event, in one transaction."""
    rotation = rotation._replace(updated_at=iso(manager.clock()))
    local = manager.profile.environment(rotation.env).backend == "local"
    details: dict[str, Any] = {
        "id": rotation.id,
        "step": rotation.step,
        "strategy": rotation.strategy,
    }
    if rotation.emergency:
        details["emergency"] = True
    if rotation.staged is not None:
        details["staged"] = rotation.staged
    with manager.audit.operation(
        Action.ROTATE, rotation.env, name=rotation.name, justification=rotation.reason
    ) as note:
        note.details = details
        if rotation.version is not None:
            note.version = rotation.version
        lookup = store.lookup(rotation.env, rotation.name, local)
        if rotation.emergency and rotation.step == "finished":
            store.end_overlaps(lookup)  # the previous value is revoked at once
        if rotation.grace_until is not None and rotation.version is not None:
            store.set_grace(lookup, rotation.version, rotation.base_version, rotation.grace_until)
        if rotation.strategy == "blue-green" and rotation.version is not None:
            _fill_slot(store, lookup, rotation)
        store.put(rotation, lookup)
    return rotation


def _fill_slot(store: RotationStore, lookup: bytes, rotation: Rotation) -> None:
    """Blue-green: the version the rotation wrote fills the slot that was inactive, and
    that slot becomes active (the first rotation puts the old version in blue)."""
    assert rotation.version is not None
    found = store.slots(lookup)
    active, versions = found or ("blue", {"blue": rotation.base_version, "green": 0})
    if versions[active] == rotation.version:
        return  # this rotation's slot is filled already
    other = "green" if active == "blue" else "blue"
    store.set_slots(lookup, other, {**versions, other: rotation.version})


def flip(manager: SecretsManager, env: str | None, name: str) -> tuple[str, int]:
    """Blue-green: make the other slot's value current (a check-and-set write of it) and
    that slot active; a rollback is a flip. Returns the active slot and the version."""
    validate_name(name)
    env_name = manager.env_name(env)
    vault, store = _store(manager)
    local = manager.profile.environment(env_name).backend == "local"
    with manager.refusals_recorded(Action.ROTATE, env_name, name=name):
        manager.gate.check(Action.ROTATE, env_name, remote=not local, names=(name,))
    with vault.store.read():
        lookup = store.lookup(env_name, name, local)
        found = store.slots(lookup)
    if found is None:
        raise RotationNotFound(
            f"'{name}' ({env_name}) has no blue-green slots to flip",
            step=NextStep("rotate_blue_green", name=name),
        )
    active, versions = found
    other = "green" if active == "blue" else "blue"
    backend = manager.backend(env_name)
    if versions[other] < 1:
        raise RotationNotFound(f"the {other} slot of '{name}' holds nothing to flip to")
    value = backend.get(name, versions[other]).value
    current = backend.get(name).version
    written = manager.put(env_name, name, value, if_version=current)
    with manager.audit.operation(Action.ROTATE, env_name, name=name) as note:
        note.details = {"flip": other}
        note.version = written.version
        store.set_slots(lookup, other, {**versions, other: written.version})
    return other, written.version


def start(
    manager: SecretsManager,
    env: str | None,
    name: str,
    *,
    value: bytes | None = None,
    generator: str | None = None,
    strategy: str | None = None,
    emergency: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> Rotation:
    """Rotate ``name``: a new value (given, or from ``generator`` or the policy's),
    through the four steps. Returns the finished rotation; raises what stopped it.
    ``emergency``: immediate, an admin's, with a reason; the previous value of any
    earlier graceful rotation stops being readable at once; hooks are told."""
    validate_name(name)
    env_name = manager.env_name(env)
    config = manager.profile.environment(env_name)
    policy = policy_for(config, name) or RotationPolicy()
    if emergency:
        if manager.confirmation.reason is None:
            raise UsageError(
                "an emergency rotation needs a reason for the audit log",
                step=NextStep("give_reason"),
            )
        strategy = "immediate"
    chosen = strategy or policy.strategy
    if chosen not in STRATEGIES:
        raise UsageError(
            f"--strategy takes {', '.join(STRATEGIES)}", step=NextStep("rotate_immediate")
        )
    vault, store = _store(manager)
    remote = config.backend != "local"
    with manager.refusals_recorded(Action.ROTATE, env_name, name=name):
        needs = "admin" if emergency else None
        reason = manager.gate.check(
            Action.ROTATE, env_name, remote=remote, names=(name,), needs=needs
        )
    given = manager.confirmation.reason
    if reason is None and given is not None:  # recorded whenever given
        reason = validate_reason(given)
    service = manager.backend(env_name).rotation_service(name) if remote else None
    if service is not None:  # the backend rotates it itself (AWS: a rotation Lambda)
        if value is not None or generator is not None:
            raise UsageError(
                f"'{name}' is rotated by {config.backend}'s own rotation "
                f"({service['lambda']}): it makes the new value",
                step=NextStep("rotate_without_value", name=name, env=env_name),
            )
        return delegate(manager, env_name, name, service, reason, vault.principal)
    new_value = value if value is not None else _generated(manager, name, generator, policy)
    validate_value(new_value, name=name)
    with vault.store.read():
        lookup = store.lookup(env_name, name, not remote)
        for rotation_id, principal in store.in_flight(lookup):
            theirs = f" (principal '{principal}')" if principal != vault.principal else ""
            raise RotationInFlight(
                f"a rotation of '{name}' ({env_name}) is in flight: {rotation_id}{theirs}",
                step=NextStep("resume_or_cancel_rotation", id=rotation_id),
            )
    try:
        base = manager.backend(env_name).get(name).version
    except SecretNotFound:
        base = 0
    now = iso(manager.clock())
    rotation = Rotation(
        new_id(), env_name, name, chosen, "created", base, new_value, now, now,
        vault.principal, reason, emergency=emergency,
    )  # fmt: skip
    rotation = _save(manager, store, rotation)
    return _run(manager, store, rotation, policy, sleep)


def _generated(
    manager: SecretsManager, name: str, generator: str | None, policy: RotationPolicy
) -> bytes:
    spec = generator or policy.generate
    if spec is None:
        raise UsageError(
            f"rotating '{name}' needs a new value", step=NextStep("give_rotation_value")
        )
    try:
        parsed = parse_generator(spec)
    except ValueError as exc:
        raise UsageError(f"--generate: {exc}", step=NextStep("generator_forms")) from None
    if parsed[0] in ("value", "from_env"):
        raise UsageError("--generate takes a generator", step=NextStep("generator_forms"))
    return generate(name, parsed, manager.environ)


def resume(
    manager: SecretsManager, rotation_id: str, *, sleep: Callable[[float], None] | None = None
) -> Rotation:
    """Go on with a rotation that stopped (a kill, a failed hook, a conflict)."""
    _, store = _store(manager)
    rotation = _mine(store, rotation_id)
    if not rotation.in_flight:
        raise RotationInFlight(
            f"rotation {rotation_id} is {rotation.step}: there is nothing to resume",
            step=NextStep("rotate_again", name=rotation.name),
        )
    with manager.refusals_recorded(Action.ROTATE, rotation.env, name=rotation.name):
        remote = manager.profile.environment(rotation.env).backend != "local"
        manager.gate.check(Action.ROTATE, rotation.env, remote=remote, names=(rotation.name,))
    policy = policy_for(manager.profile.environment(rotation.env), rotation.name)
    return _run(manager, store, rotation, policy or RotationPolicy(), sleep)


def cancel(manager: SecretsManager, rotation_id: str) -> Rotation:
    """Discard a rotation that did not finish: its pending value is dropped, the current
    value was never touched."""
    _, store = _store(manager)
    rotation = _mine(store, rotation_id)
    if not rotation.in_flight:
        raise RotationInFlight(
            f"rotation {rotation_id} is {rotation.step}: it cannot be cancelled",
            step=NextStep("rollback_instead", name=rotation.name, env=rotation.env),
        )
    version, landed = _landed(manager, rotation)
    if landed:  # killed after its finish write: the new value is current already
        raise RotationInFlight(
            f"rotation {rotation.id} made '{rotation.name}' v{version} current before it "
            "stopped: there is nothing to cancel; resume records it",
            step=NextStep("rollback_instead", name=rotation.name, env=rotation.env),
        )
    if rotation.staged is not None:  # the backend's pending version is pending no more
        manager.backend(rotation.env).unstage(rotation.name, rotation.staged)
    return _save(manager, store, rotation._replace(step="cancelled", pending=None))


def _mine(store: RotationStore, rotation_id: str) -> Rotation:
    with store.store.read():
        rotation = store.get(rotation_id.strip().lower())
    if rotation is None:
        raise RotationNotFound(
            f"no rotation '{rotation_id[:20]}' of yours in this vault",
            step=NextStep("rotation_status"),
        )
    return rotation


def _hook(
    manager: SecretsManager,
    rotation: Rotation,
    policy: RotationPolicy,
    step: str,
    sleep: Callable[[float], None] | None,
) -> HookResult | None:
    argv = policy.hooks_of(step)
    if argv is None:
        return None
    env = hook_environment(
        manager.environ,
        {
            "BSECRETS_ROTATION_ID": rotation.id,
            "BSECRETS_ROTATION_ENV": rotation.env,
            "BSECRETS_ROTATION_NAME": rotation.name,
            "BSECRETS_ROTATION_STEP": step,
            "BSECRETS_ROTATION_EMERGENCY": "1" if rotation.emergency else "0",
        },
    )
    kwargs: dict[str, Any] = {"retries": policy.retries, "backoff": policy.backoff}
    if sleep is not None:
        kwargs["sleep"] = sleep
    return run_hook(step, argv, rotation.pending or b"", env, **kwargs)


def _run(
    manager: SecretsManager,
    store: RotationStore,
    rotation: Rotation,
    policy: RotationPolicy,
    sleep: Callable[[float], None] | None,
) -> Rotation:
    rotation = _stage(manager, store, rotation)
    step = rotation.step
    if step == "failed":  # go on from the step that failed
        step = {"set": "created", "test": "set", "finish": "tested"}[
            str((rotation.result or {}).get("step", "set"))
        ]
    for hook_step, before, after in (("set", "created", "set"), ("test", "set", "tested")):
        if step != before:
            continue
        result = _hook(manager, rotation, policy, hook_step, sleep)
        if result is not None and not result.ok:
            failed = rotation._replace(step="failed", result=result._asdict())
            _save(manager, store, failed)
            raise RotationFailed(
                f"the {hook_step} hook of rotation {rotation.id} exited {result.exit_code}: "
                f"'{rotation.name}' keeps its current value",
                step=NextStep("resume_or_cancel_rotation", id=rotation.id),
            )
        rotation = _save(manager, store, rotation._replace(step=after, result=None))
        step = after
    version = _finish(manager, store, rotation)
    grace = None
    if rotation.strategy == "graceful":  # the previous value stays readable a while
        grace = iso(manager.clock() + (policy.overlap or DEFAULT_OVERLAP))
    finished = rotation._replace(step="finished", pending=None, version=version, grace_until=grace)
    rotation = _save(manager, store, finished)
    result = _hook(manager, rotation._replace(pending=None), policy, "finish", sleep)
    if result is not None:
        rotation = _save(manager, store, rotation._replace(result=result._asdict()))
        if not result.ok:
            raise RotationFailed(
                f"rotation {rotation.id} finished ('{rotation.name}' is v{version}), but its "
                f"finish hook exited {result.exit_code}",
                step=NextStep("rotation_status"),
            )
    return rotation


def _stage(manager: SecretsManager, store: RotationStore, rotation: Rotation) -> Rotation:
    """The rest of the create step where the backend keeps pending versions (AWS: the
    new value labelled AWSPENDING): staged once, the record notes the version (a kill
    before that: staged again, which finds the version holding the value)."""
    backend = manager.backend(rotation.env)
    if (
        rotation.step != "created"
        or rotation.staged is not None
        or rotation.pending is None
        or Capability.PENDING not in backend.capabilities
    ):
        return rotation
    remote = manager.profile.environment(rotation.env).backend != "local"
    with manager.audit.operation(
        Action.ROTATE, rotation.env, name=rotation.name, remote=remote,
        justification=rotation.reason,
    ) as note:  # fmt: skip
        note.details = {"id": rotation.id, "step": "staging", "strategy": rotation.strategy}
        staged = backend.stage(rotation.name, rotation.pending, actor=manager.context.actor)
        note.version = staged
    if staged is None:  # nothing current to stage against: the finish creates it
        return rotation
    return _save(manager, store, rotation._replace(staged=staged))


def _landed(manager: SecretsManager, rotation: Rotation) -> tuple[int, bool]:
    """(the current version, whether it is this rotation's finish write, landed before
    a kill): the staged version, or else a later version holding the pending value."""
    try:
        current = manager.backend(rotation.env).get(rotation.name)
    except SecretNotFound:
        return 0, False
    if rotation.staged is not None:
        landed = current.version == rotation.staged
    else:
        landed = current.value == rotation.pending
    return current.version, landed and current.version > rotation.base_version


def _finish(manager: SecretsManager, store: RotationStore, rotation: Rotation) -> int:
    """Pending becomes current with one check-and-set write; a finish whose write landed
    before a kill is recognised by its value. VersionConflict (7) if another writer
    came in between (the record says so; resume checks again, cancel discards)."""
    version, landed = _landed(manager, rotation)
    if landed:
        return version  # the write of an earlier run landed: nothing to do
    try:
        if version != rotation.base_version:
            raise VersionConflict(
                f"'{rotation.name}' changed while rotation {rotation.id} ran "
                f"(v{rotation.base_version} then v{version}): nothing was written"
            )
        if rotation.staged is not None:
            written = manager.make_current(
                rotation.env, rotation.name, rotation.staged, if_version=version
            )
        else:
            assert rotation.pending is not None
            written = manager.put(rotation.env, rotation.name, rotation.pending, if_version=version)
    except VersionConflict as exc:  # seen before the write, or the store's own check-and-set
        seen = {"from": rotation.base_version, "now": version}
        _save(
            manager,
            store,
            rotation._replace(step="failed", result={"step": "finish", "conflict": seen}),
        )
        exc.step = NextStep("resume_or_cancel_rotation", id=rotation.id)
        raise
    return written.version


def with_previous(
    manager: SecretsManager,
    env: str,
    secrets: dict[str, bytes],
    mapping: dict[str, str],
) -> tuple[dict[str, bytes], dict[str, str]]:
    """``exec --with-previous``: each secret within a graceful rotation's overlap adds
    ``VAR_PREVIOUS`` (its ``NAME#previous``, read and audited as such); a variable that
    is already a secret's is a usage error (exit 2), before anything runs."""
    secrets, mapping = dict(secrets), dict(mapping)
    for variable, name in sorted(mapping.items()):
        try:
            previous = manager.get(env, f"{name}#{PREVIOUS}").value
        except VersionNotFound:
            continue
        extra = f"{variable}_PREVIOUS"
        if extra in mapping:
            raise UsageError(
                f"{extra} is both secret '{mapping[extra]}' and the previous value of '{name}'",
                step=NextStep("rename_or_leave_out"),
            )
        mapping[extra] = f"{name}#{PREVIOUS}"
        secrets[mapping[extra]] = previous
    return secrets, mapping


def status(manager: SecretsManager) -> list[dict[str, Any]]:
    """The rotations the unlocking principal started, newest last (never a value)."""
    _, store = _store(manager)
    with store.store.read():
        return [rotation.to_public() for rotation in store.mine()]
