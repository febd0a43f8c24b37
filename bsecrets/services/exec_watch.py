"""``exec --watch``: re-read what the child was given, and say when it changed.

Each poll runs ``exec_env.prepare`` again, exactly as a fresh ``exec`` would (the
access policy read anew: a revoked token or grant stops the updates), with its
events held back: a poll that finds nothing new writes no event (at a 1 s interval
that would be 86,400 a day). A change is one audited ``exec`` event per environment,
naming the secrets that changed (never a value) and what the child was told
(``details.watch``: ``restart`` or the signal's name). docs/exec.md, "Watch".

When every environment involved is local and the vault file has not been written
since the last full read (SQLite's data_version), a poll only checks access again
(a token's expiry, with the manager's clock) and reads nothing: bench/bench_watch.py.

A poll that fails (a backend outage, a locked vault, a secret gone) keeps the child
running with the values it has; the first failure and the recovery are one stderr
line each. A refusal (exit 4 kinds) ends the watching: it is recorded as any refused
``exec`` is, and the child keeps running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from bsecrets.audit.events import Action
from bsecrets.audit.logger import NullAuditSink
from bsecrets.errors import BsecretsError, Denied
from bsecrets.services.exec_env import Prepared, Request, prepare

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


class Watch:
    """``poll()`` -> the new ``Prepared`` when an injected value changed, else None."""

    def __init__(
        self,
        manager: SecretsManager,
        request: Request,
        current: Prepared,
        *,
        told: str,  # what the child is told of a change: "restart", "SIGHUP", ...
        warn: Callable[[str], None],
    ) -> None:
        self.manager = manager
        self.request = request
        self.current = current
        self.told = told
        self.warn = warn
        self.stopped = False  # access was refused: no more polls
        self._failing = False
        self._read_at: int | None = None  # the file's data_version at the last full read
        self._local = all(
            manager.profile.environment(manager.env_name(env)).backend == "local"
            for env in [*request.envs, *(line.env for line in request.lines if line.env)]
        )

    def poll(self) -> Prepared | None:
        if self.stopped:
            return None
        try:
            fresh = self._quiet_prepare()
            if fresh is None:  # nothing written since the last read; access still holds
                changed = []
                fresh = self.current
            else:
                changed = changed_variables(self.current.injected, fresh.injected)
            if changed:  # handed on only once recorded (an event that fails: no change)
                self._record_change(changed, fresh)
        except Denied:
            self.stopped = True
            self._record_refusal()
            return None
        except BsecretsError as exc:
            self._read_at = None  # read in full next time (a change whose event failed too)
            if not self._failing:
                self._failing = True
                self.warn(
                    f"watch: the secrets could not be read again ({exc.kind}: "
                    f"{exc.message}); the command keeps the values it has"
                )
            return None
        if self._failing:
            self._failing = False
            self.warn("watch: the secrets can be read again")
        if not changed:
            return None
        self.current = fresh
        return fresh

    def _quiet_prepare(self) -> Prepared | None:
        """The fresh preparation, or None when the local vault file is as it was at the
        last one (access checked again all the same)."""
        manager = self.manager
        manager.refresh(checks=False)  # the policy and the environment keys, read anew
        audit = manager.audit
        sink, audit.sink = audit.sink, NullAuditSink()  # held back: see the docstring
        try:
            version = manager.local_vault().store.data_version() if self._local else None
            if version is not None and version == self._read_at:
                for env, names in _by_env(self.current.sources.values()).items():
                    about = tuple(name.partition("#")[0] for name in names)  # NAME#field
                    manager.gate.check(Action.EXEC, env, remote=False, names=about)
                return None
            fresh = prepare(manager, self.request)
            self._read_at = version
            return fresh
        finally:
            audit.sink = sink

    def _record_refusal(self) -> None:
        """Once more with the events written, so the refusal is recorded as exec's."""
        try:
            prepare(self.manager, self.request)
        except BsecretsError as exc:
            self.warn(f"watch stopped: {exc.message}; the command keeps the values it has")
        else:  # allowed again already: the next poll would say so; stop anyway
            self.warn("watch stopped: access was refused; the command keeps the values it has")

    def _record_change(self, changed: list[str], fresh: Prepared) -> None:
        sources = [fresh.sources.get(v) or self.current.sources.get(v) for v in changed]
        for env, secret_names in _by_env(s for s in sources if s is not None).items():
            self.manager.audit.record(
                Action.EXEC, env, names=sorted(secret_names), details={"watch": self.told}
            )


def _by_env(sources: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(env, secret) pairs -> each environment's secrets, once each, in order."""
    names: dict[str, list[str]] = {}
    for env, name in sources:
        if name not in names.setdefault(env, []):
            names[env].append(name)
    return names


def changed_variables(before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    """Variables added, removed or given another value, sorted."""
    return sorted(v for v in before.keys() | after.keys() if before.get(v) != after.get(v))
