"""``exec --watch``: re-read what the child was given, and say when it changed.

Each poll runs ``exec_env.prepare`` again, exactly as a fresh ``exec`` would (the
access policy read anew: a revoked token or grant stops the updates), with its
events held back: a poll that finds nothing new writes no event (at a 1 s interval
that would be 86,400 a day). A change is one audited ``exec`` event per environment,
naming the secrets that changed (never a value) and what the child was told
(``details.watch``: ``restart`` or the signal's name). docs/exec.md, "Watch".

A poll that fails (a backend outage, a locked vault, a secret gone) keeps the child
running with the values it has; the first failure and the recovery are one stderr
line each. A refusal (exit 4 kinds) ends the watching: it is recorded as any refused
``exec`` is, and the child keeps running.
"""

from __future__ import annotations

from collections.abc import Callable
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

    def poll(self) -> Prepared | None:
        if self.stopped:
            return None
        try:
            fresh = self._quiet_prepare()
            changed = changed_variables(self.current.injected, fresh.injected)
            if changed:  # handed on only once recorded (an event that fails: no change)
                self._record_change(changed, fresh)
        except Denied:
            self.stopped = True
            self._record_refusal()
            return None
        except BsecretsError as exc:
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

    def _quiet_prepare(self) -> Prepared:
        manager = self.manager
        manager.refresh(checks=False)  # the policy and the environment keys, read anew
        audit = manager.audit
        sink, audit.sink = audit.sink, NullAuditSink()  # held back: see the docstring
        try:
            return prepare(manager, self.request)
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
        names: dict[str, list[str]] = {}
        for variable in changed:
            source = fresh.sources.get(variable) or self.current.sources.get(variable)
            if source is None:
                continue
            env, name = source
            if name not in names.setdefault(env, []):
                names[env].append(name)
        for env, secret_names in names.items():
            self.manager.audit.record(
                Action.EXEC, env, names=sorted(secret_names), details={"watch": self.told}
            )


def changed_variables(before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    """Variables added, removed or given another value, sorted."""
    return sorted(v for v in before.keys() | after.keys() if before.get(v) != after.get(v))
