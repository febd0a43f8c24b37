"""Promotions that need a second admin (``env protect ENV --promote-approval``): one
principal asks (``promote --request``), another admin of the target approves, which
plans again and runs the promotion only if the plan is still the one asked for
(``promote approve ID``; docs/promotion.md).

The requirement is in the vault's signed access policy (a protection's
``promote_approval``); that a request is approved by someone other than who made it
is enforced by code: both are principals of the same vault, each proven by its key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bsecrets.audit.events import Action
from bsecrets.config.profile import PromotionRoute
from bsecrets.errors import (
    ApprovalRequired,
    Conflict,
    NextStep,
    PromotionInFlight,
    PromotionNotFound,
)
from bsecrets.models import validate_reason
from bsecrets.services import promotion
from bsecrets.services.promotion_plan import Plan, make_plan
from bsecrets.timeutil import iso
from bsecrets.vaultfile.promotions import Promotion, Request, RequestStore

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


def _writes(plan: Plan) -> list[dict[str, Any]]:
    return [{k: v for k, v in i._asdict().items() if k != "why"} for i in plan.writes]


def request(manager: SecretsManager, plan: Plan, route: PromotionRoute, only: list[str]) -> Request:
    """Record ``plan`` as asked for, for another admin of the target to approve."""
    vault = manager.gate.require_vault("a promotion request")
    given = manager.confirmation.reason
    reason = validate_reason(given) if given is not None else None
    route_data = {"names": list(route.names), "rename": dict(route.rename),
                  "never": list(route.never)}  # fmt: skip
    made = Request(plan.id, plan.source, plan.target, route_data, only, _writes(plan),
                   vault.principal, iso(manager.clock()), reason)  # fmt: skip
    with manager.audit.operation(
        Action.PROMOTE, plan.target, names=[i.target for i in plan.writes], justification=reason
    ) as note:
        note.details = {"id": plan.id, "step": "request", "from": plan.source}
        RequestStore(vault).put(made)
    return made


def approve(
    manager: SecretsManager, request_id: str, confirm: Callable[[dict[str, Any]], None]
) -> tuple[Request, Plan, Promotion]:
    """Another admin of the target plans again, checks that it is the plan asked for,
    has it confirmed (``confirm`` raises to refuse) and runs it (with what a change of
    the target asks: reason, code)."""
    vault = manager.gate.require_vault("a promotion request")
    store = RequestStore(vault)
    with vault.store.read():
        found = store.get(request_id.strip().lower())
    if found is None:
        raise PromotionNotFound(
            f"no promotion request '{request_id[:20]}' in this vault",
            step=NextStep("promotion_log"),
        )
    if found.state != "requested":
        raise PromotionInFlight(
            f"promotion request {found.id} is {found.state} already",
            step=NextStep("promotion_log"),
        )
    with manager.refusals_recorded(Action.PROMOTE, found.target):
        if vault.principal == found.by:
            raise ApprovalRequired(
                f"principal '{found.by}' asked for promotion {found.id}: another admin of "
                f"'{found.target}' approves it",
                step=NextStep("promotion_approver", env=found.target),
            )
        manager.gate.require_admin(found.target, "approving a promotion")
    route = PromotionRoute(found.source, found.target, tuple(found.route["names"]),
                           dict(found.route["rename"]), tuple(found.route["never"]))  # fmt: skip
    plan = make_plan(manager, found.source, found.target, route, list(found.only))
    if _writes(plan) != found.items:
        raise Conflict(
            f"the plan of promotion request {found.id} changed since it was asked for "
            "(a source or target secret was written): nothing was promoted",
            step=NextStep("promote_request_again", source=found.source, target=found.target),
        )
    confirm(plan.to_public())
    done = promotion.promote(manager, plan, approval=found)
    approved = found._replace(state="approved", approved_by=vault.principal,
                              approved_at=iso(manager.clock()), promotion=done.id)  # fmt: skip
    with manager.audit.operation(Action.PROMOTE, found.target, justification=done.reason) as note:
        note.details = {"id": found.id, "step": "approve", "requested_by": found.by,
                        "promotion": done.id}  # fmt: skip
        store.put(approved)
    return approved, plan, done
