"""``bsecrets metrics``: the metrics of a host where bsecrets runs as CLI commands
(docs/observability.md). No process keeps counters there, so this command builds
them each time from what is kept:

- the audit chain, verified first (one ``audit.verify`` event: reading the trail is
  part of the trail), then replayed: operations by action, environment, backend and
  outcome since the log began; remote call times; each backend's last answer;
- each environment listed (one ``ls`` event each): secrets, rotations due within
  7 days and overdue, and whether its backend answers now;
- break-glass sessions active now.

The vault's owner runs it (the audit log is the owner's to read).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bsecrets.errors import BackendUnavailable, BsecretsError, Denied
from bsecrets.services import audit_ops, break_glass
from bsecrets.services.rotation import policy_for

if TYPE_CHECKING:
    from bsecrets.config.profile import Profile
    from bsecrets.metrics.registry import OperationMetrics
    from bsecrets.services.manager import SecretsManager

DUE_WITHIN = timedelta(days=7)  # bsecrets_rotation_due: ends within this


def metrics_for(profile: Profile) -> OperationMetrics:
    """Empty metrics labelled for ``profile`` (its environments' backends)."""
    from bsecrets.metrics.registry import OperationMetrics

    backends = {name: env.backend for name, env in profile.environments.items()}
    return OperationMetrics(backends, names=profile.metrics_names)


def collect(manager: SecretsManager) -> tuple[OperationMetrics, BsecretsError | None]:
    """The metrics, and the integrity problem the audit verification found (the
    metrics then say so, ``bsecrets_audit_verify_ok 0``, and hold no counters)."""
    from bsecrets.metrics.replay import replay

    metrics = metrics_for(manager.profile)
    result = audit_ops.verify(manager, None, archives=False)
    problem = audit_ops.problem_error(result)
    metrics.verified(problem is None, manager.clock().timestamp())
    log = manager.audit_log()
    keys = log.reading_keys()
    if problem is None and keys is not None:
        with log.store.read():
            replay(metrics, log.events(keys))
    _environments(manager, metrics)
    _break_glass(manager, metrics)
    with log.store.read():
        metrics.audit_events = log.count()
    return metrics, problem


def _environments(manager: SecretsManager, metrics: OperationMetrics) -> None:
    state = metrics.state_gauges()
    now = manager.clock()
    for env, config in manager.profile.environments.items():
        try:
            summaries = manager.list_secrets(env)
        except BackendUnavailable:
            metrics.contact(env, False, now.timestamp())
            continue
        except Denied:
            continue  # a grant that does not open it: not counted, not a failure
        metrics.contact(env, True, now.timestamp())
        state.secrets.labels(env, config.backend).set(len(summaries))
        due = overdue = 0
        for summary in summaries:
            policy = policy_for(config, summary.name) if config.rotation else None
            if policy is None or policy.max_age is None:
                continue
            due_at = summary.updated_at + policy.max_age
            if due_at <= now:
                overdue += 1
            elif due_at <= now + DUE_WITHIN:
                due += 1
        state.rotation_due.labels(env).set(due)
        state.rotation_overdue.labels(env).set(overdue)


def _break_glass(manager: SecretsManager, metrics: OperationMetrics) -> None:
    state = metrics.state_gauges()
    live = dict.fromkeys(manager.profile.environments, 0)
    for request in break_glass.status(manager)["requests"]:
        if request["live"] and request["state"] == "active":
            live[request["env"]] = live.get(request["env"], 0) + 1
    for env, count in live.items():
        state.break_glass_active.labels(env).set(count)


def chain_length(profile_path: Path) -> int | None:
    """Events in the audit chain of the profile's vault file, read without a key (a
    count any reader of the file sees); None without a vault file."""
    from bsecrets.audit.local_log import LocalAuditLog
    from bsecrets.config.cache import load_profile_cached
    from bsecrets.files import exists
    from bsecrets.timeutil import utcnow
    from bsecrets.vaultfile.credentials import Credentials
    from bsecrets.vaultfile.vault import LocalVault

    vault_file = load_profile_cached(profile_path).vault_file
    if not exists(vault_file):
        return None
    vault = LocalVault.open(vault_file, Credentials(use_keyring=False), utcnow)
    try:
        log = LocalAuditLog(vault)
        with log.store.read():
            return log.count()
    finally:
        vault.close()
