"""The web UI's pages for rotation and promotion (docs/server.md, "Web UI"; issue #18).

- ``GET /ui/rotations``: the rotations the signed-in token started (in flight, then
  the recent ones): what ``bsecrets rotate status`` lists (``rotation.status``);
- ``GET /ui/envs/{env}/rotations``: each secret of one environment with its rotation
  status (age, the policy that applies, next due, rotations in flight, your last one),
  filtered by a name prefix and a state, a page of PER_PAGE at a time;
- ``GET /ui/envs/{env}/rotations/{name}``: one secret's, exactly as ``bsecrets rotate
  status NAME`` gives it (``rotation_status.secret_status``);
- ``GET /ui/promote`` and ``POST /ui/promote/plan``: the dry-run plan of ``bsecrets
  promote`` (``promotion_plan.route_for``/``make_plan``): names and versions, never a
  value. Nothing is promoted from here.

Registered by ui.py (``add_workflow_pages``), which lends its session lookup, its
manager per request, its page renderer and its CSRF-checked form: these pages are
served, refused and escaped as the others are.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from jinja2 import Environment

from bsecrets.errors import UsageError
from bsecrets.server.core import grants_of
from bsecrets.server.routing import ENV_PATTERN
from bsecrets.server.ui_kit import UiKit
from bsecrets.services import promotion_plan, rotation, rotation_status
from bsecrets.services.manager import SecretsManager
from bsecrets.timeutil import iso
from bsecrets.vaultfile.rotations import IN_FLIGHT, RotationStore

PER_PAGE = 100  # secrets per page of an environment's rotation status
RECENT = 50  # ended rotations listed on /ui/rotations, newest first
MAX_GLOBS = 20  # of the promote form's "only" field
MAX_GLOB = 255
SHOWS = {
    "all": "every secret",
    "policy": "with a policy",
    "due": "due now",
    "in_flight": "with a rotation in flight",
}
ENV = re.compile(ENV_PATTERN)


def add_workflow_pages(ui: FastAPI, pages: Environment, kit: UiKit) -> None:
    """Add the rotation and promotion pages to ``ui``. ``token_of``: the signed-in
    session and its token (None: not signed in, then ``to_sign_in``); ``unlocked``:
    the request's SecretsManager for a token; ``render``: ui.py's page renderer;
    ``form``: the urlencoded form of a POST, 403 without the session's CSRF token."""
    token_of, unlocked, render, form, to_sign_in = kit[:5]
    pages.filters["age"] = age
    pages.filters["when"] = when
    Form = Depends(form)

    @ui.get("/rotations")
    def rotations(request: Request) -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, token = held
        with unlocked(token, request) as core:
            rows = rotation.status(core)  # the token's own: a record opens for its principal
            envs = _env_rows(core)
        rows.sort(key=lambda r: str(r["updated_at"]), reverse=True)
        in_flight = [r for r in rows if r["step"] in IN_FLIGHT]
        ended = [r for r in rows if r["step"] not in IN_FLIGHT]
        return render(request, "rotations.html", session, in_flight=in_flight,
                      recent=ended[:RECENT], more=max(0, len(ended) - RECENT),
                      envs=envs)  # fmt: skip

    @ui.get("/envs/{env}/rotations")
    def env_rotations(
        request: Request, env: str, prefix: str = "", show: str = "all", page: str = "1"
    ) -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, token = held
        if show not in SHOWS:
            show = "all"
        with unlocked(token, request) as core:
            rows, policies = status_rows(core, env, prefix)
        shown = [r for r in rows if _shows(r, show)]
        pages_count = max(1, math.ceil(len(shown) / PER_PAGE))
        number = min(_page(page), pages_count)
        start = (number - 1) * PER_PAGE
        return render(request, "rotations_env.html", session, env=env, prefix=prefix,
                      show=show, shows=SHOWS, rows=shown[start:start + PER_PAGE],
                      total=len(rows), matching=len(shown), page=number,
                      page_count=pages_count, policies=policies,
                      counts={k: sum(1 for r in rows if _shows(r, k)) for k in SHOWS})  # fmt: skip

    @ui.get("/envs/{env}/rotations/{name:path}")
    def secret_rotation(request: Request, env: str, name: str) -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, token = held
        with unlocked(token, request) as core:
            found = rotation_status.secret_status(core, env, name)
        return render(request, "rotation_secret.html", session, env=env, found=found)

    @ui.get("/promote")
    def promote_form(request: Request, source: str = "", target: str = "") -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, token = held
        with unlocked(token, request) as core:
            envs, routes = _env_rows(core), _routes(core)
        if not source and not target and routes:
            source, target = routes[0]["from"], routes[0]["to"]
        return render(request, "promote.html", session, envs=envs, routes=routes,
                      source=source, target=target, only="", plan=None,
                      route=None)  # fmt: skip

    @ui.post("/promote/plan")
    def promote_plan_page(request: Request, fields: dict[str, str] = Form) -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, token = held
        source, target = fields.get("from", "").strip(), fields.get("to", "").strip()
        only_text = fields.get("only", "")
        only = globs_of(only_text)
        for field, env in (("from", source), ("to", target)):
            if not ENV.fullmatch(env):
                raise UsageError(f"choose the environment to promote {field}")
        with unlocked(token, request) as core:
            envs, routes = _env_rows(core), _routes(core)
            route = promotion_plan.route_for(core, source, target, None, only)
            plan = promotion_plan.make_plan(core, source, target, route, only)
            in_profile = core.profile.route(source, target) is not None
        shown_route = {"names": list(route.names), "rename": dict(route.rename),
                       "never": list(route.never), "in_profile": in_profile}  # fmt: skip
        return render(request, "promote.html", session, envs=envs, routes=routes,
                      source=source, target=target, only=only_text.strip(),
                      only_globs=only, plan=plan.to_public(), route=shown_route)  # fmt: skip


def status_rows(
    core: SecretsManager, env: str, prefix: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(each secret of ``env`` starting with ``prefix`` with its rotation status, the
    environment's policies). The fields of ``rotate status NAME``, for a whole
    environment at once: one listing (one audited ``ls``), one read of the rotation
    records; never a value."""
    config = core.profile.environment(env)
    listed = core.list_secrets(env, prefix)  # the token's access and scope checked here
    now = core.clock()
    local = config.backend == "local"
    store = RotationStore(core.gate.require_vault("a rotation's state"))
    rows: list[dict[str, Any]] = []
    with store.store.read():
        last = {r.name: r for r in store.mine() if r.env == env}  # newest last: the last wins
        for summary in listed:
            glob = next((g for g in config.rotation if fnmatch.fnmatchcase(summary.name, g)), None)
            policy = rotation.policy_for(config, summary.name)
            due_at = None
            if policy is not None and policy.max_age is not None:
                due_at = summary.updated_at + policy.max_age
            lookup = store.lookup(env, summary.name, local)
            mine = last.get(summary.name)
            rows.append({
                "name": summary.name,
                "version": summary.version,
                "updated_at": iso(summary.updated_at),
                "age_seconds": _age(now, summary.updated_at),
                "glob": glob,
                "strategy": policy.strategy if policy is not None else None,
                "due_at": iso(due_at) if due_at is not None else None,
                "due": due_at is not None and due_at <= now,
                "in_flight": [{"id": i, "by": p} for i, p in store.in_flight(lookup)],
                "last": mine.to_public() if mine is not None else None,
            })  # fmt: skip
    policies = [{"glob": g, **written(spec)} for g, spec in config.rotation.items()]
    return rows, policies


def written(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A policy's keys as the profile writes them (hooks: their steps), as ``rotate
    status NAME`` shows them."""
    out: dict[str, Any] = {k: v if isinstance(v, int) else str(v)
                           for k, v in spec.items() if k != "hooks"}  # fmt: skip
    out.setdefault("strategy", "immediate")
    if spec.get("hooks"):
        out["hooks"] = sorted(dict(spec["hooks"]))
    return out


def globs_of(text: str) -> list[str]:
    """The promote form's "only": names or globs separated by spaces or commas."""
    found = [part for part in re.split(r"[\s,]+", text) if part]
    if len(found) > MAX_GLOBS or any(len(part) > MAX_GLOB for part in found):
        raise UsageError(f"give at most {MAX_GLOBS} names or globs of {MAX_GLOB} characters")
    return found


def age(seconds: int) -> str:
    """12 days, 5 h, 3 min: how long ago, roughly."""
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def when(text: str | None) -> str:
    """An ISO time of the core's (2026-01-02T03:04:05.678Z) as the pages write times."""
    if not text:
        return ""
    return f"{text[:19].replace('T', ' ')} UTC"


def _age(now: datetime, then: datetime) -> int:
    return max(0, int((now - then).total_seconds()))


def _shows(row: Mapping[str, Any], show: str) -> bool:
    if show == "policy":
        return row["glob"] is not None
    if show == "due":
        return bool(row["due"])
    if show == "in_flight":
        return bool(row["in_flight"])
    return True


def _page(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or len(text) > 6 or int(text) < 1:
        raise UsageError("page must be a page number")
    return int(text)


def _env_rows(core: SecretsManager) -> list[dict[str, Any]]:
    """The profile's environments, each with the token's grant and its policies' count."""
    grants = grants_of(core)
    return [{"name": name, "grant": grants.get(name), "policies": len(e.rotation)}
            for name, e in core.profile.environments.items()]  # fmt: skip


def _routes(core: SecretsManager) -> list[dict[str, Any]]:
    """The profile's ``promote:`` routes, as written."""
    return [{"from": r.source, "to": r.target, "names": list(r.names), "rename": dict(r.rename),
             "never": list(r.never)} for r in core.profile.promotions]  # fmt: skip
