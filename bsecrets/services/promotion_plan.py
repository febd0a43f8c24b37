"""The plan of ``bsecrets promote``: which secrets of the source environment go to the
target, under which names, and what each would do there (add, change, same, skipped
and why), compared by keyed hash and never shown (docs/promotion.md).

What goes is what a route names: the profile's ``promote: {SOURCE: {TARGET: ...}}``
or a ``--map FILE``, narrowed by ``--only`` globs (which alone stand for a route when
there is none). Without either, nothing goes: promote refuses rather than copying an
environment. ``never`` globs win over everything; an ``--only`` that selects a name
``never`` excludes is a usage error, as is a rename that makes two names one.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bsecrets.audit.events import Action
from bsecrets.config.profile import PromotionRoute
from bsecrets.errors import NextStep, SecretNotFound, UsageError
from bsecrets.named_tuples import NamedTuple
from bsecrets.services.transfer import keyed_digests
from bsecrets.vaultfile.rotations import new_id

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager

GLOB_CHARS = "*?["


class PlanItem(NamedTuple):
    source: str
    target: str  # the name in the target environment
    action: str  # "add", "change", "same", "skipped"
    source_version: int = 0
    target_version: int = 0  # the target's current version (0: none)
    why: str | None = None  # why it is skipped


class Plan(NamedTuple):
    id: str
    source: str
    target: str
    items: tuple[PlanItem, ...]
    values: dict[str, bytes]  # target name -> the value to write (never shown)

    @property
    def writes(self) -> list[PlanItem]:
        return [i for i in self.items if i.action in ("add", "change")]

    def to_public(self) -> dict[str, object]:
        """What the plan shows and --json prints: names, versions, actions; no value."""
        return {
            "id": self.id,
            "from": self.source,
            "to": self.target,
            "items": [i._asdict() for i in self.items],
            "counts": {
                a: sum(1 for i in self.items if i.action == a)
                for a in ("add", "change", "same", "skipped")
            },
        }


def route_for(
    manager: SecretsManager, source: str, target: str, map_file: Path | None, only: list[str]
) -> PromotionRoute:
    """The route of this promotion: ``--map FILE``, else the profile's, else --only's."""
    if source == target:
        raise UsageError(f"--from and --to are both '{source}'", step=NextStep("promote_other_env"))
    for env in (source, target):
        manager.profile.environment(env)  # EnvironmentNotFound (3) for an unknown one
    if map_file is not None:
        from bsecrets.config.parser import read_route

        route = read_route(map_file)
    else:
        route = manager.profile.route(source, target) or PromotionRoute(source, target)
    route = route._replace(source=source, target=target)
    if not route.names and not route.rename and not only:
        raise UsageError(
            f"nothing says what goes from '{source}' to '{target}': promote copies only "
            "what a mapping names",
            step=NextStep("promote_mapping", source=source, target=target),
        )
    return route


def needs_approval(manager: SecretsManager, target: str) -> bool:
    """Whether ``target``'s protection asks for a second admin's approval of promotions
    into it (``env protect --promote-approval``; services/promotion_approval.py)."""
    remote = manager.profile.environment(target).backend != "local"
    protection = manager.gate.policy(remote=remote).protected.get(target)
    return protection is not None and protection.promote_approval


def _matches(name: str, globs: tuple[str, ...] | list[str]) -> str | None:
    return next((g for g in globs if fnmatch.fnmatchcase(name, g)), None)


def _literal(pattern: str) -> bool:
    return not any(c in pattern for c in GLOB_CHARS)


def select(
    route: PromotionRoute, only: list[str], present: set[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(source name -> target name of what goes, source name -> why it does not)."""
    hits = sorted({n for n in present | set(filter(_literal, only)) if _matches(n, only)
                   and _matches(n, route.never)})  # fmt: skip
    if hits:
        raise UsageError(
            f"--only selects what 'never' keeps out: {', '.join(hits[:10])}",
            step=NextStep("promote_never"),
        )
    named = (*route.names, *route.rename)
    wanted = [p for p in named if _literal(p) and (not only or _matches(p, only))]
    wanted += [p for p in only if _literal(p) and (not named or _matches(p, named))]
    missing = sorted({p for p in wanted if p not in present and not _matches(p, route.never)})
    if missing:
        raise SecretNotFound(
            f"not in environment '{route.source}': {', '.join(missing)}; nothing was promoted",
            step=NextStep("list_secrets_in_env", env=route.source),
        )
    going: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in sorted(present):
        never = _matches(name, route.never)
        if named and not _matches(name, named):
            skipped[name] = "not in the mapping"
        elif only and not _matches(name, only):
            skipped[name] = "not in --only"
        elif never is not None:
            skipped[name] = f"never: {never}"
        else:
            going[name] = route.rename.get(name, name)
    targets: dict[str, list[str]] = {}
    for name, target in going.items():
        targets.setdefault(target, []).append(name)
    clashes = {t: names for t, names in targets.items() if len(names) > 1}
    if clashes:
        text = "; ".join(f"{' and '.join(n)} -> {t}" for t, n in sorted(clashes.items()))
        raise UsageError(f"two secrets would become one: {text}", step=NextStep("promote_rename"))
    return going, skipped


def make_plan(
    manager: SecretsManager, source: str, target: str, route: PromotionRoute, only: list[str]
) -> Plan:
    """Read both environments (one audited ``promote`` event, ``details.step`` "plan",
    at the target) and compare by keyed hash."""
    gate = manager.gate
    remote = {env: manager.profile.environment(env).backend != "local" for env in (source, target)}
    with manager.refusals_recorded(Action.PROMOTE, target):
        for env in (source, target):
            gate.check(Action.READ, env, remote=remote[env])
    plan_id = new_id()
    with manager.audit.operation(
        Action.PROMOTE, target, remote=remote[target], changes=False
    ) as note:
        note.details = {"id": plan_id, "step": "plan", "from": source}
        from_backend, to_backend = manager.backend(source), manager.backend(target)
        src = {s.name: s.version for s in from_backend.list_secrets()
               if gate.in_scope_of(source, s.name)}  # fmt: skip
        going, skipped = select(route, only, set(src))
        values = from_backend.values_of(sorted(going))
        dst = {s.name: s.version for s in to_backend.list_secrets()}
        current = to_backend.values_of(sorted(set(going.values()) & set(dst)))
        key = os.urandom(32)  # for this run only; never printed or stored
        a, b = keyed_digests(values, key), keyed_digests(current, key)
        items = [PlanItem(name, name, "skipped", src[name], 0, why)
                 for name, why in skipped.items()]  # fmt: skip
        for name, to_name in going.items():
            if name not in values:  # deleted since it was listed
                items.append(PlanItem(name, to_name, "skipped", src[name], 0, "deleted meanwhile"))
                continue
            action = "add" if to_name not in dst else "same" if a[name] == b[to_name] else "change"
            items.append(PlanItem(name, to_name, action, src[name], dst.get(to_name, 0)))
        items.sort(key=lambda i: (i.action == "skipped", i.source))
        note.names = [i.target for i in items if i.action in ("add", "change")]
    writes = {i.target: values[i.source] for i in items if i.action in ("add", "change")}
    return Plan(plan_id, source, target, tuple(items), writes)
