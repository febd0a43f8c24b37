"""The verdict on each criterion of the compliance report: ``passed`` is True,
False or None (not applicable: not required, not checked, or not checkable for
lack of an inventory), with a one-line ``detail`` saying what was found.

Each verdict is the JSON-able dict ``{"id", "description", "passed", "detail"}``
of the report's ``criteria`` list; the ids are the criteria file's keys (and
``chain_valid``, ``never_read``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bsecrets.audit.report.criteria import Criteria, format_duration


def result_word(passed: bool | None) -> str:
    """PASS, FAIL or N/A."""
    return "N/A" if passed is None else ("PASS" if passed else "FAIL")


def _verdict(id_: str, description: str, passed: bool | None, detail: str) -> dict[str, Any]:
    return {"id": id_, "description": description, "passed": passed, "detail": detail}


def chain_verdict(criteria: Criteria, chain: Mapping[str, Any] | None) -> dict[str, Any]:
    """``chain_valid``: the verification result ``chain`` (None: not checked)."""
    description = "The audit chain verifies: no event changed, removed or reordered"
    if chain is None:
        status = "the chain was not checked"
    elif chain.get("ok"):
        status = f"the chain verifies ({chain.get('events')} events)"
    else:
        problem = chain.get("problem")
        if isinstance(problem, Mapping):
            status = (
                f"the chain is broken at event {problem.get('seq')}: "
                f"{problem.get('kind')}: {problem.get('detail')}"
            )
        else:
            status = "the chain does not verify"
    if not criteria.require_chain_valid:
        return _verdict(
            "chain_valid", description, None, f"not required (require_chain_valid: false); {status}"
        )
    if chain is None:
        return _verdict("chain_valid", description, None, status)
    return _verdict("chain_valid", description, bool(chain.get("ok")), status)


def limit_verdict(id_: str, what: str, count: int, limit: int | None) -> dict[str, Any]:
    """``count`` of ``what`` against ``limit`` (None: reported only)."""
    if limit is None:
        description = f"{what[0].upper()}{what[1:]}, reported only"
        return _verdict(id_, description, None, f"{what}: {count}; no limit set ({id_}: null)")
    description = f"At most {limit} {what}"
    return _verdict(id_, description, count <= limit, f"{what}: {count} (at most {limit})")


def some_names(names: list[str], limit: int = 5) -> str:
    """The first ``limit`` names, then "and N more"."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def never_read_verdict(
    criteria: Criteria, never_read: dict[str, list[str]], total: int, missing: list[str]
) -> dict[str, Any]:
    """``never_read``: every current secret of the inventoried environments was read."""
    description = "Every current secret was read in the period"
    names = [f"{env}/{name}" for env, items in never_read.items() for name in items]
    found = f"secrets never read: {total}" + (f" ({some_names(names)})" if names else "")
    if missing:
        found += f"; not inventoried: {', '.join(missing)}"
    if criteria.allow_never_read:
        return _verdict(
            "never_read", description, None, f"not required (allow_never_read: true); {found}"
        )
    if total:
        return _verdict("never_read", description, False, found)
    if missing:
        return _verdict("never_read", description, None, f"could not check all: {found}")
    return _verdict("never_read", description, True, found)


def age_verdict(
    criteria: Criteria, old: list[dict[str, Any]], missing: list[str]
) -> dict[str, Any]:
    """``max_secret_age``: ``old`` lists the current secrets older than the limit."""
    age = criteria.max_secret_age
    if age is None:
        description = "Age of the current secrets (no limit)"
        return _verdict("max_secret_age", description, None, "no limit set (max_secret_age: null)")
    description = f"No current secret is older than {format_duration(age)}"
    names = [f"{item['env']}/{item['name']}" for item in old]
    found = f"secrets older than {format_duration(age)}: {len(old)}"
    found += f" ({some_names(names)})" if names else ""
    if missing:
        found += f"; not inventoried: {', '.join(missing)}"
    if old:
        return _verdict("max_secret_age", description, False, found)
    if missing:
        return _verdict("max_secret_age", description, None, f"could not check all: {found}")
    return _verdict("max_secret_age", description, True, found)
