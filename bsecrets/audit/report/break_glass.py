"""The break-glass section of ``audit report``: each emergency request as the log tells
it (who asked, why, who approved, when it was activated, revoked, reviewed), the
setups and re-keys, and the uses still waiting for a review (docs/break-glass.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PREFIX = "break_glass."
FIELDS = ("env", "requester", "reason", "requested_at", "approvals", "activated_at",
          "mode", "revoked_at", "reviewed_at", "reviewed_by", "denied")  # fmt: skip


class BreakGlassLog:
    """Fed every event of the period, in order (aggregate.build_report)."""

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, Any]] = {}
        self.setups: list[dict[str, Any]] = []

    def add(self, event: Mapping[str, Any], who: str, outcome: str) -> None:
        action = str(event.get("action", ""))
        if not action.startswith(PREFIX):
            return
        step = action[len(PREFIX) :]
        details = event.get("details") if isinstance(event.get("details"), dict) else {}
        assert isinstance(details, dict)
        when, env = event.get("time"), event.get("env")
        if step in ("setup", "rekey"):
            if outcome == "ok":
                self.setups.append({"time": when, "env": env, "step": step, "by": who,
                                    "generation": details.get("generation")})  # fmt: skip
            return
        rid = details.get("id")
        if not isinstance(rid, str):
            if outcome == "denied" and isinstance(env, str):
                self._entry(f"(refused before an id: {env})", env)["denied"] += 1
            return
        entry = self._entry(rid, env)
        if outcome == "denied":
            entry["denied"] += 1
        elif outcome != "ok":
            return
        elif step == "request":
            entry.update(requester=who, reason=event.get("justification"), requested_at=when)
        elif step == "approve":
            if who not in entry["approvals"]:  # a custodian counts once
                entry["approvals"].append(who)
        elif step == "activate":
            entry.update(activated_at=when, mode=details.get("mode"))
        elif step == "revoke":
            entry["revoked_at"] = when
        elif step == "review":
            entry.update(reviewed_at=when, reviewed_by=who)

    def _entry(self, rid: str, env: Any) -> dict[str, Any]:
        return self.requests.setdefault(rid, {
            "id": rid, "env": env, "requester": None, "reason": None, "requested_at": None,
            "approvals": [], "activated_at": None, "mode": None, "revoked_at": None,
            "reviewed_at": None, "reviewed_by": None, "denied": 0,
        })  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        requests = sorted(self.requests.values(), key=lambda r: (str(r["requested_at"]), r["id"]))
        return {
            "setups": self.setups,
            "requests": requests,
            "activated": sum(1 for r in requests if r["activated_at"]),
            "unreviewed": [r["id"] for r in requests if r["activated_at"] and not r["reviewed_at"]],
        }


def rows(part: Mapping[str, Any]) -> list[list[str]]:
    """One table row per request (render.py)."""

    def cell(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(str(v) for v in value) or "-"
        return "-" if value is None else str(value)

    return [[cell(r["id"]), *(cell(r[f]) for f in FIELDS)] for r in part.get("requests", [])]


def csv_rows(part: Mapping[str, Any]) -> Iterable[tuple[str, str, str, Any]]:
    yield ("break_glass", "", "activated", part.get("activated", 0))
    yield ("break_glass", "", "unreviewed", len(part.get("unreviewed", [])))
    for r in part.get("requests", []):
        for metric in FIELDS:
            yield ("break_glass", str(r["id"]), metric, r[metric])
