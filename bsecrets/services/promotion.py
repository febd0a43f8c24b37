"""``bsecrets promote``: writing a plan (services/promotion_plan.py) into the target
environment, all or nothing (docs/promotion.md).

* Each write is a check-and-set against the target version the plan saw (0: the
  secret must not exist): anyone who wrote in between stops the promotion, exit 7.
* **Local target**: every write in one SQLite transaction; a failure rolls all back.
* **Remote target**: writes in order, a sealed record in the local vault noting each
  one (vaultfile/promotions.py). On any failure the ones already written are put
  back (compensation): a change by writing the version the plan saw again, with a
  check-and-set against the version written, an add by purging the secret if it is
  still at the version written. Then the original error (6, 7, ...) with a report
  of what was written and undone. A kill -9 leaves the record in flight:
  ``--resume`` finishes it (a write that landed is recognised by its value),
  ``--abort`` undoes it, and until then another promotion into the target is exit 7.
* **Audit**: the plan event, one event per promoted secret (source env, name and
  version -> target version) and one for the promotion, sharing the plan's id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bsecrets.audit.events import Action
from bsecrets.errors import (
    ApprovalRequired,
    BsecretsError,
    NextStep,
    PromotionInFlight,
    PromotionNotFound,
    SecretNotFound,
    VersionConflict,
)
from bsecrets.models import validate_reason
from bsecrets.services.promotion_plan import Plan, needs_approval
from bsecrets.timeutil import iso
from bsecrets.vaultfile.promotions import Item, Promotion, PromotionStore, Request

if TYPE_CHECKING:
    from bsecrets.ports import SecretBackend
    from bsecrets.services.manager import SecretsManager

Progress = Callable[[int, int], None]


def _remote(manager: SecretsManager, env: str) -> bool:
    return manager.profile.environment(env).backend != "local"


def promote(
    manager: SecretsManager,
    plan: Plan,
    progress: Progress | None = None,
    *,
    approval: Request | None = None,
) -> Promotion:
    """Write the plan's adds and changes; returns the promotion (``done``). A target
    protected with ``--promote-approval`` needs ``approval`` (promotion_approval.py)."""
    target = plan.target
    remote = _remote(manager, target)
    names = [i.target for i in plan.writes]
    if approval is None and needs_approval(manager, target):
        with manager.refusals_recorded(Action.PROMOTE, target, names=names):
            raise ApprovalRequired(
                f"promotions into '{target}' need another admin's approval",
                step=NextStep("promote_request", source=plan.source, target=target),
            )
    with manager.refusals_recorded(Action.PROMOTE, target, names=names):
        reason = manager.gate.check(Action.PROMOTE, target, remote=remote, names=tuple(names))
    given = manager.confirmation.reason
    if reason is None and given is not None:  # recorded whenever given
        reason = validate_reason(given)
    now = iso(manager.clock())
    items = tuple(Item(i.source, i.target, i.action, i.source_version, i.target_version)
                  for i in plan.writes)  # fmt: skip
    promotion = Promotion(plan.id, plan.source, target, "writing", items, manager.gate.principal,
                          now, now, reason)  # fmt: skip
    if not remote:
        return _promote_local(manager, plan, promotion, progress)
    store = _store(manager)
    with store.store.read():
        for other, principal in store.in_flight(target):
            raise PromotionInFlight(
                f"promotion {other} into '{target}' (principal '{principal}') stopped midway",
                step=NextStep("resume_or_abort_promotion", id=other),
            )
    _save(manager, store, promotion)
    return _run(manager, store, promotion, plan.values, progress)


def _promote_local(
    manager: SecretsManager, plan: Plan, promotion: Promotion, progress: Progress | None
) -> Promotion:
    backend = manager.backend(plan.target)
    items = list(promotion.items)
    with manager.audit.operation(
        Action.PROMOTE, plan.target, names=[i.target for i in items],
        justification=promotion.reason,
    ) as note, backend.transaction():  # fmt: skip
        note.details = _promotion_details(promotion)
        for index, item in enumerate(items):
            items[index] = _write(manager, backend, promotion, item, plan.values[item.target])
            if progress is not None:
                progress(index + 1, len(items))
    return promotion._replace(step="done", items=tuple(items))


def _write(
    manager: SecretsManager,
    backend: SecretBackend,
    promotion: Promotion,
    item: Item,
    value: bytes,
) -> Item:
    """One promoted secret: a check-and-set write and its audited event."""
    with manager.audit.operation(
        Action.PROMOTE, promotion.target, name=item.target,
        remote=_remote(manager, promotion.target), justification=promotion.reason,
    ) as note:  # fmt: skip
        note.details = {
            "id": promotion.id,
            "from": {"env": promotion.source, "name": item.source, "version": item.source_version},
        }
        written = backend.put(
            item.target, value, actor=manager.context.actor, if_version=item.target_version
        )
        note.version = written.version
    return item._replace(written=written.version)


def _promotion_details(promotion: Promotion) -> dict[str, Any]:
    return {"id": promotion.id, "step": "promote", "from": promotion.source,
            "count": len(promotion.items)}  # fmt: skip


def _store(manager: SecretsManager) -> PromotionStore:
    return PromotionStore(manager.gate.require_vault("a promotion's state"))


def _save(manager: SecretsManager, store: PromotionStore, promotion: Promotion) -> Promotion:
    promotion = promotion._replace(updated_at=iso(manager.clock()))
    with store.store.write():
        store.put(promotion)
    return promotion


def _run(
    manager: SecretsManager,
    store: PromotionStore,
    promotion: Promotion,
    values: dict[str, bytes],
    progress: Progress | None,
) -> Promotion:
    """The remote writes in order, each noted in the record; on a failure, the undo."""
    backend = manager.backend(promotion.target)
    items = list(promotion.items)
    with manager.audit.operation(
        Action.PROMOTE, promotion.target, names=[i.target for i in items], remote=True,
        justification=promotion.reason,
    ) as note:  # fmt: skip
        note.details = _promotion_details(promotion)
        for index, item in enumerate(items):
            if item.written is None:
                try:
                    items[index] = _write(manager, backend, promotion, item, values[item.target])
                except BsecretsError as exc:
                    promotion = promotion._replace(items=tuple(items))
                    raise _undone(manager, store, promotion, exc, item) from exc
                promotion = _save(manager, store, promotion._replace(items=tuple(items)))
            if progress is not None:
                progress(index + 1, len(items))
        return _save(manager, store, promotion._replace(step="done"))


def _undone(
    manager: SecretsManager,
    store: PromotionStore,
    promotion: Promotion,
    exc: BsecretsError,
    failed: Item,
) -> BsecretsError:
    """After a failed write: put back what was written (newest first), record the
    outcome, and return ``exc`` (same class, same exit code) with the report."""
    promotion, kept = _undo(manager, promotion)
    result = {"failed_at": failed.target, "error": exc.kind, "not_undone": kept}
    _save(manager, store, promotion._replace(step="failed" if kept else "undone", result=result))
    undone = [i.target for i in promotion.items if i.undone]
    written = any(i.written is not None for i in promotion.items)
    report = f"undone: {', '.join(undone) or ('nothing' if written else 'nothing was written')}"
    if kept:
        report += f"; NOT undone (changed meanwhile or unreachable): {', '.join(kept)}"
    step = NextStep("resume_or_abort_promotion", id=promotion.id) if kept else exc.step
    return type(exc)(
        f"promotion {promotion.id} stopped at '{failed.target}': {exc.message}; {report}",
        hint=exc.hint if not kept else None,
        step=step,
        applied="no" if not kept else "yes",
    )


def _undo(manager: SecretsManager, promotion: Promotion) -> tuple[Promotion, list[str]]:
    """Put each written item back to the version the plan saw; (promotion, the names
    that could not be put back)."""
    backend = manager.backend(promotion.target)
    items = list(promotion.items)
    kept: list[str] = []
    for index in reversed(range(len(items))):
        item = items[index]
        if item.written is None or item.undone:
            continue
        try:
            with manager.audit.operation(
                Action.PROMOTE, promotion.target, name=item.target, remote=True,
                justification=promotion.reason,
            ) as note:  # fmt: skip
                note.details = {"id": promotion.id, "undo": True}
                note.version = _put_back(manager, backend, item)
            items[index] = item._replace(undone=True)
        except BsecretsError:
            kept.append(item.target)
    return promotion._replace(items=tuple(items)), sorted(kept)


def _put_back(manager: SecretsManager, backend: SecretBackend, item: Item) -> int | None:
    """``item``'s target as the plan saw it, if it is still what the promotion wrote:
    the earlier version's value written again, or (an add) the secret purged."""
    assert item.written is not None
    try:
        current = backend.get(item.target).version
    except SecretNotFound:
        current = 0
    if current != item.written:
        raise VersionConflict(f"'{item.target}' changed after the promotion wrote it")
    if item.action == "add":
        backend.purge(item.target)
        return None
    old = backend.get(item.target, item.target_version).value
    return backend.put(
        item.target, old, actor=manager.context.actor, if_version=item.written
    ).version


def _mine(store: PromotionStore, promotion_id: str) -> Promotion:
    with store.store.read():
        promotion = store.get(promotion_id.strip().lower())
    if promotion is None:
        raise PromotionNotFound(
            f"no promotion '{promotion_id[:20]}' of yours in this vault",
            step=NextStep("promotion_log"),
        )
    if not promotion.in_flight:
        raise PromotionInFlight(
            f"promotion {promotion.id} is {promotion.step}: there is nothing to resume or abort",
            step=NextStep("promotion_log"),
        )
    return promotion


def _landed(manager: SecretsManager, promotion: Promotion) -> tuple[Promotion, dict[str, bytes]]:
    """After a kill: items whose write landed before the record noted it (the target's
    current value is the source version's), and the values of those still to write."""
    source, target = manager.backend(promotion.source), manager.backend(promotion.target)
    items = list(promotion.items)
    values: dict[str, bytes] = {}
    for index, item in enumerate(items):
        if item.written is not None:
            continue
        value = source.get(item.source, item.source_version).value
        try:
            current = target.get(item.target)
        except SecretNotFound:
            current = None
        moved = current is not None and current.version != item.target_version
        if moved and current is not None and current.value == value:  # landed before the kill
            items[index] = item._replace(written=current.version)
            continue
        values[item.target] = value
    return promotion._replace(items=tuple(items)), values


def resume(manager: SecretsManager, promotion_id: str) -> Promotion:
    """Finish a promotion that stopped: the remaining writes, each still checked
    against the version the plan saw (a change meanwhile: undone, exit 7). One whose
    undo had begun is refused (exit 7): only ``abort`` finishes that."""
    store = _store(manager)
    promotion = _mine(store, promotion_id)
    undone = [i.target for i in promotion.items if i.undone]
    if undone:  # its undo began: the versions the plan saw are gone for those
        raise PromotionInFlight(
            f"promotion {promotion.id} was partly undone ({', '.join(undone)}) when it "
            "stopped: it cannot be finished, only its undo",
            step=NextStep("abort_promotion", id=promotion.id),
        )
    _check(manager, promotion)
    promotion, values = _landed(manager, promotion)
    return _run(manager, store, promotion._replace(step="writing"), values, None)


def abort(manager: SecretsManager, promotion_id: str) -> Promotion:
    """Undo a promotion that stopped: what it wrote is put back."""
    store = _store(manager)
    promotion = _mine(store, promotion_id)
    _check(manager, promotion)
    promotion, _ = _landed(manager, promotion)
    promotion, kept = _undo(manager, promotion)
    result = {"aborted": True, "not_undone": kept}
    promotion = _save(
        manager, store, promotion._replace(step="failed" if kept else "undone", result=result)
    )
    if kept:
        raise VersionConflict(
            f"promotion {promotion.id}: could not put back {', '.join(kept)} "
            "(changed meanwhile or unreachable)",
            step=NextStep("resume_or_abort_promotion", id=promotion.id),
        )
    return promotion


def _check(manager: SecretsManager, promotion: Promotion) -> None:
    names = tuple(i.target for i in promotion.items)
    with manager.refusals_recorded(Action.PROMOTE, promotion.target, names=list(names)):
        manager.gate.check(Action.PROMOTE, promotion.target, remote=True, names=names)


def log(manager: SecretsManager) -> list[dict[str, Any]]:
    """Past promotions from the audit log: who, when, from, to, each secret's source
    and target versions, the reason and the outcome (``promote log``)."""
    from bsecrets.audit.query import EventFilter
    from bsecrets.services.audit_ops import query

    events = query(manager, EventFilter(action=str(Action.PROMOTE)), None)
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        details = event.get("details") or {}
        pid = details.get("id")
        if not pid or event.get("outcome") == "started":
            continue
        entry = out.setdefault(pid, {"id": pid, "to": event.get("env"), "secrets": []})
        if details.get("step") == "promote":
            entry.update(time=event.get("time"), by=_who(event.get("actor")),
                         reason=event.get("justification"), outcome=event.get("outcome"),
                         **{"from": details.get("from")})  # fmt: skip
        elif isinstance(details.get("from"), dict):
            origin = details["from"]
            entry["secrets"].append({
                "name": event.get("name"), "from_name": origin.get("name"),
                "from_version": origin.get("version"), "to_version": event.get("version"),
                "outcome": event.get("outcome"),
            })  # fmt: skip
        elif details.get("undo"):
            entry.setdefault("undone", []).append(event.get("name"))
    return [entry for entry in out.values() if "time" in entry]


def _who(actor: Any) -> str:
    """``principal (user@host)`` of an event's actor."""
    if not isinstance(actor, dict):
        return str(actor)
    return f"{actor.get('principal', 'owner')} ({actor.get('user')}@{actor.get('host')})"
