"""The compliance report of ``bsecrets audit report``.

Three steps, each usable alone:

- :func:`load_criteria` reads the criteria file (YAML; every key optional).
  Every problem is a :class:`CriteriaError` (a UsageError, exit 2) whose
  message names ``FILE:LINE``, the key and a hint.
- :func:`build_report` walks the audit events once (a generator of a million
  events is fine: only counters, sets of readers and capped lists are kept)
  and the current inventory, and returns a JSON-able dict.
- :func:`render_report` turns that dict into markdown, JSON, CSV or HTML.

Events hold no secret value and neither does the report: names, versions,
times, actors, outcomes and reasons only. See docs/audit-report.md.

No heavy import at module level: PyYAML and the profile walker are imported by
:func:`load_criteria` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from bsecrets.audit.query import actor_key, actor_text, ci_key, event_names
from bsecrets.errors import ProfileError, UsageError
from bsecrets.timeutil import iso

if TYPE_CHECKING:
    from yaml.nodes import Node

    from bsecrets.config.parser import _Checker
    from bsecrets.models import SecretSummary

FORMATS = ("markdown", "json", "csv", "html")
CSV_HEADER = ("section", "key", "metric", "value")
REPORT_VERSION = 1
LIST_LIMIT = 1000  # denied attempts and production reads kept in the report
_ACTOR_COUNTS = ("events", "reads", "secrets_read", "writes", "denied", "failed", "not_found")

READ_ACTIONS = frozenset({"get", "read", "export", "diff", "exec"})
WRITE_ACTIONS = frozenset({"put", "rm", "restore", "rollback"})
_OK, _STARTED, _DENIED, _NOT_FOUND, _FAILED = "ok", "started", "denied", "not_found", "failed"

CRITERIA_KEYS = (
    "production_envs",
    "max_secret_age",
    "max_denied",
    "max_production_reads",
    "allow_never_read",
    "require_chain_valid",
)
_KEY_HINTS = {
    "": "the criteria file is a YAML mapping of: " + ", ".join(CRITERIA_KEYS),
    "production_envs": "a list of environment names, e.g. production_envs: [prod, production]",
    "max_secret_age": "a number and a unit (s, m, h, d, w), e.g. max_secret_age: 90d; "
    "null for no check",
    "max_denied": "a whole number of 0 or more, e.g. max_denied: 0; null for no check",
    "max_production_reads": "a whole number of 0 or more, e.g. max_production_reads: 100; "
    "null to report only",
    "allow_never_read": "true or false, e.g. allow_never_read: false",
    "require_chain_valid": "true or false, e.g. require_chain_valid: true",
}


class CriteriaError(ProfileError):
    """A criteria file that cannot be used: ``FILE:LINE: key: problem``."""

    kind = "criteria_error"


class Criteria(NamedTuple):
    """What the report checks; ``Criteria()`` is the defaults."""

    production_envs: tuple[str, ...] = ("prod", "production")
    max_secret_age: timedelta | None = timedelta(days=90)
    max_denied: int | None = 0
    max_production_reads: int | None = None
    allow_never_read: bool = True
    require_chain_valid: bool = True
    source: str | None = None  # the file they were read from; None: the defaults

    def settings(self) -> dict[str, Any]:
        """The criteria as JSON-able values (the report's ``settings``)."""
        age = self.max_secret_age
        return {
            "file": self.source,
            "production_envs": list(self.production_envs),
            "max_secret_age": format_duration(age) if age is not None else None,
            "max_denied": self.max_denied,
            "max_production_reads": self.max_production_reads,
            "allow_never_read": self.allow_never_read,
            "require_chain_valid": self.require_chain_valid,
        }


def format_duration(delta: timedelta) -> str:
    """timedelta -> '90d', '36h', '90m', '45s' (a form parse_duration reads)."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- the criteria file -----------------------------------------------------


def load_criteria(path: Path | None) -> Criteria:
    """The criteria in the YAML file at ``path``; ``None`` (or an empty file): the defaults.

    Raises CriteriaError (a UsageError, exit 2) naming ``FILE:LINE`` and the key
    for a missing or unreadable file, bad YAML, a top level that is not a
    mapping, an unknown key, a value of the wrong type and a bad duration.
    """
    if path is None:
        return Criteria()
    shown = str(path)
    hint = "pass the path of a YAML criteria file (see docs/audit-report.md)"
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CriteriaError(shown, None, "", "criteria file not found", hint=hint) from None
    except PermissionError:
        problem = "cannot read the criteria file: permission denied"
        raise CriteriaError(shown, None, "", problem, hint=hint) from None
    except OSError as exc:
        problem = f"cannot read the criteria file: {exc.strerror or exc}"
        raise CriteriaError(shown, None, "", problem, hint=hint) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = "the file is not valid UTF-8"
        raise CriteriaError(shown, line, "", problem, hint="save the file as UTF-8") from None
    root = _compose(text, shown)
    if root is None:  # empty, or comments only
        return Criteria(source=shown)
    return _read(root, shown)


def _compose(text: str, shown: str) -> Node | None:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    hint = "check the YAML syntax at that line (indentation, quotes, brackets)"
    try:
        root: Node | None = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = f"invalid YAML: {exc.problem or 'syntax error'}"
        if exc.context and exc.context_mark:
            problem += f" ({exc.context}, line {exc.context_mark.line + 1})"
        raise CriteriaError(shown, line, "", problem, hint=hint) from None
    except yaml.YAMLError as exc:
        raise CriteriaError(shown, None, "", f"invalid YAML: {exc}", hint=hint) from None
    return root


def _read(root: Node, shown: str) -> Criteria:
    """Walk the composed nodes (profile_parser's _Map: lines, duplicate keys)."""
    import difflib

    from bsecrets.config.parser import _line, _Map

    checker = _checker(shown)
    top = _Map(checker, root, "", _line(root))
    for key, (key_node, _) in top.items.items():
        if key not in CRITERIA_KEYS:
            close = difflib.get_close_matches(key, CRITERIA_KEYS, n=1)
            known = f"known keys: {', '.join(CRITERIA_KEYS)}"
            hint = f"did you mean '{close[0]}'? {known}" if close else known
            raise checker.error(key_node, key, "unknown key", hint)
    reader = _Reader(checker)
    default = Criteria()
    return Criteria(
        production_envs=top.get("production_envs", reader.env_names, default.production_envs),
        max_secret_age=top.get("max_secret_age", reader.duration, default.max_secret_age),
        max_denied=top.get("max_denied", reader.count, default.max_denied),
        max_production_reads=top.get(
            "max_production_reads", reader.count, default.max_production_reads
        ),
        allow_never_read=top.get("allow_never_read", reader.boolean, default.allow_never_read),
        require_chain_valid=top.get(
            "require_chain_valid", reader.boolean, default.require_chain_valid
        ),
        source=shown,
    )


def _checker(shown: str) -> _Checker:
    """profile_parser's checker, raising CriteriaError with a hint for every key."""
    from bsecrets.config.parser import _Checker, _line

    class _CriteriaChecker(_Checker):
        def error(
            self, where: Node | int, key_path: str, problem: str, hint: str | None = None
        ) -> ProfileError:
            line = where if isinstance(where, int) else _line(where)
            if hint is None and problem.startswith("duplicate key"):
                hint = "keep one of them"
            hint = hint or _KEY_HINTS.get(key_path.split(".")[0])
            return CriteriaError(self.shown, line, key_path, problem, hint=hint)

    return _CriteriaChecker(shown, Path(shown).parent)


class _Reader:
    """Typed values of the criteria keys; each error names the node's line."""

    def __init__(self, checker: _Checker) -> None:
        self.checker = checker

    def _is(self, node: Node, tag: str) -> bool:
        from yaml.nodes import ScalarNode

        from bsecrets.config.profile import YAML_TAG

        return isinstance(node, ScalarNode) and node.tag == YAML_TAG + tag

    def _wrong(self, node: Node, key_path: str, what: str) -> ProfileError:
        from bsecrets.config.parser import _got

        return self.checker.error(node, key_path, f"must be {what}{_got(node)}")

    def env_names(self, node: Node, key_path: str) -> tuple[str, ...]:
        from yaml.nodes import SequenceNode

        from bsecrets.config.profile import ENV_NAME_HINT, ENV_NAME_RE

        items = [node] if self._is(node, "str") else None
        if isinstance(node, SequenceNode):
            items = list(node.value)
        if items is None:
            raise self._wrong(node, key_path, "a list of environment names")
        names: list[str] = []
        for item in items:
            if not self._is(item, "str"):
                raise self._wrong(item, key_path, "a list of environment names")
            name = str(item.value)
            if not ENV_NAME_RE.fullmatch(name):
                problem = f"invalid environment name {name!r}"
                raise self.checker.error(item, key_path, problem, ENV_NAME_HINT)
            names.append(name)
        return tuple(dict.fromkeys(names))

    def duration(self, node: Node, key_path: str) -> timedelta | None:
        from bsecrets.timeutil import parse_duration

        if self._is(node, "null"):
            return None
        if not self._is(node, "str"):
            raise self._wrong(node, key_path, "a duration with a unit (90d), or null")
        try:
            return parse_duration(str(node.value))
        except UsageError as exc:
            raise self.checker.error(node, key_path, exc.message) from None

    def count(self, node: Node, key_path: str) -> int | None:
        from yaml.constructor import SafeConstructor

        if self._is(node, "null"):
            return None
        if not self._is(node, "int"):
            raise self._wrong(node, key_path, "a whole number of 0 or more, or null")
        if len(str(node.value)) > 18:  # past 64 bits (and Python's int digit limit)
            raise self.checker.error(node, key_path, "must be at most 18 digits")
        value = int(SafeConstructor().construct_yaml_int(node))  # type: ignore[arg-type]
        if value < 0:
            raise self.checker.error(node, key_path, f"must be 0 or more (got {value})")
        return value

    def boolean(self, node: Node, key_path: str) -> bool:
        if not self._is(node, "bool"):
            raise self._wrong(node, key_path, "true or false")
        return str(node.value).lower() in ("true", "yes", "on")


# --- building the report ---------------------------------------------------


class _SecretStats:
    __slots__ = ("denied", "env", "last_read", "name", "readers", "reads", "writes")

    def __init__(self, env: str, name: str) -> None:
        self.env, self.name = env, name
        self.reads = self.writes = self.denied = 0
        self.last_read: str | None = None
        self.readers: set[str] = set()


class _ActorStats:
    __slots__ = (
        "denied",
        "envs",
        "events",
        "failed",
        "not_found",
        "reads",
        "secrets_read",
        "writes",
    )

    def __init__(self) -> None:
        self.events = self.reads = self.secrets_read = self.writes = 0
        self.denied = self.failed = self.not_found = 0
        self.envs: set[str] = set()


def build_report(
    events: Iterable[Mapping[str, Any]],
    inventory: Mapping[str, Sequence[SecretSummary] | None],
    criteria: Criteria,
    *,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    chain: Mapping[str, Any] | None,
    environments: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The compliance report of ``events`` (oldest first, iterated once).

    ``inventory``: env -> its current secrets; an env mapped to None, or missing
    while named in ``environments`` (the profile's environments, optional), was
    not inventoried. Without ``environments``, every env the events name that
    is missing from ``inventory`` counts as not inventoried. ``chain``: the
    verification result (``{"ok", "problem", "events"}``) or None if not checked.
    """
    production = frozenset(criteria.production_envs)
    total = late = 0
    by_outcome: dict[str, int] = {}
    by_action: dict[str, int] = {}
    first_time: str | None = None
    last_time: str | None = None
    secrets: dict[tuple[str, str], _SecretStats] = {}
    actors: dict[str, _ActorStats] = {}
    envs_seen: set[str] = set()
    labels: dict[tuple[Any, ...], str] = {}  # actor and CI fields -> actor label
    denied_total = 0
    denied_items: list[dict[str, Any]] = []
    prod_total = prod_secret_reads = 0
    prod_items: list[dict[str, Any]] = []

    for event in events:
        total += 1
        outcome = str(event.get("outcome", "?"))
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
        when = event.get("time")
        if isinstance(when, str):  # ISO UTC strings of one form compare as times
            if first_time is None or when < first_time:
                first_time = when
            if last_time is None or when > last_time:
                last_time = when
        if event.get("late"):
            late += 1
        if outcome == _STARTED:  # the intent; its outcome event follows
            continue
        action = str(event.get("action", "?"))
        by_action[action] = by_action.get(action, 0) + 1
        env = event.get("env")
        env = env if isinstance(env, str) and env else None
        actor, ci = event.get("actor"), event.get("ci")
        key = (
            *(actor_key(actor) if type(actor) is dict else (None, None, None)),
            *(ci_key(ci) if type(ci) is dict else (None, None)),
        )
        who = labels.get(key)
        if who is None:
            who = labels[key] = actor_text(*key)
        stats = actors.get(who)
        if stats is None:
            stats = actors[who] = _ActorStats()
        stats.events += 1
        if env is not None:
            stats.envs.add(env)
            envs_seen.add(env)
        names = event_names(event)
        is_read, is_write = action in READ_ACTIONS, action in WRITE_ACTIONS
        if outcome == _OK:
            if is_read:
                stats.reads += 1
                stats.secrets_read += len(names)
                if env in production:
                    prod_total += 1
                    prod_secret_reads += len(names)
                    if len(prod_items) < LIST_LIMIT:
                        prod_items.append(_item(event, who, action, env, names, reason=False))
            elif is_write:
                stats.writes += 1
        elif outcome == _DENIED:
            stats.denied += 1
            denied_total += 1
            if len(denied_items) < LIST_LIMIT:
                denied_items.append(_item(event, who, action, env, names, reason=True))
        elif outcome == _FAILED:
            stats.failed += 1
        elif outcome == _NOT_FOUND:
            stats.not_found += 1
        if not names or not (outcome == _DENIED or (outcome == _OK and (is_read or is_write))):
            continue
        env_key = env or "-"
        bases = names if len(names) == 1 and "#" not in names[0] else _bases(names)
        for base in bases:
            secret = secrets.get((env_key, base))
            if secret is None:
                secret = secrets[(env_key, base)] = _SecretStats(env_key, base)
            if outcome == _DENIED:
                secret.denied += 1
            elif is_read:
                secret.reads += 1
                secret.readers.add(who)
                if isinstance(when, str) and (secret.last_read is None or when > secret.last_read):
                    secret.last_read = when
            else:
                secret.writes += 1

    # -- the inventory
    inventoried = {env: list(items) for env, items in inventory.items() if items is not None}
    missing = {env for env, items in inventory.items() if items is None}
    if environments is not None:
        missing |= set(environments) - set(inventoried)
    else:
        missing |= envs_seen - set(inventoried)
    not_inventoried = sorted(missing)

    never_read: dict[str, list[str]] = {}
    old: list[dict[str, Any]] = []
    cutoff = now - criteria.max_secret_age if criteria.max_secret_age is not None else None
    for env in sorted(inventoried):
        current = sorted((s for s in inventoried[env] if not s.deleted), key=lambda s: s.name)
        unread = [s.name for s in current if not _was_read(secrets.get((env, s.name)))]
        if unread:
            never_read[env] = unread
        if cutoff is not None:
            for s in current:
                if s.updated_at < cutoff:
                    old.append(
                        {
                            "env": env,
                            "name": s.name,
                            "version": s.version,
                            "updated_at": iso(s.updated_at),
                            "age_days": (now - s.updated_at).days,
                        }
                    )
    old.sort(key=lambda item: (item["updated_at"], item["env"], item["name"]))
    never_read_total = sum(len(names) for names in never_read.values())

    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "generated_at": iso(now),
        "period": {
            "since": iso(since) if since is not None else None,
            "until": iso(until) if until is not None else None,
            "first_event": first_time,
            "last_event": last_time,
        },
        "settings": criteria.settings(),
        "chain": _chain_summary(chain),
        "environments": {
            "inventoried": {env: _count_current(items) for env, items in inventoried.items()},
            "not_inventoried": not_inventoried,
        },
        "totals": {
            "events": total,
            "accesses": total - by_outcome.get(_STARTED, 0),
            "late": late,
            "by_outcome": by_outcome,
            "by_action": by_action,
        },
        "secrets": {
            f"{s.env}/{s.name}": {
                "env": s.env,
                "name": s.name,
                "reads": s.reads,
                "writes": s.writes,
                "denied": s.denied,
                "last_read": s.last_read,
                "distinct_readers": len(s.readers),
                "readers": sorted(s.readers),
            }
            for s in sorted(secrets.values(), key=lambda s: (s.env, s.name))
        },
        "actors": {
            who: {
                "events": a.events,
                "reads": a.reads,
                "secrets_read": a.secrets_read,
                "writes": a.writes,
                "denied": a.denied,
                "failed": a.failed,
                "not_found": a.not_found,
                "envs": sorted(a.envs),
            }
            for who, a in sorted(actors.items())
        },
        "denied": {
            "total": denied_total,
            "shown": len(denied_items),
            "limit": LIST_LIMIT,
            "items": denied_items,
        },
        "production_reads": {
            "envs": list(criteria.production_envs),
            "total": prod_total,
            "secret_reads": prod_secret_reads,
            "shown": len(prod_items),
            "limit": LIST_LIMIT,
            "items": prod_items,
        },
        "never_read": {"total": never_read_total, "by_env": never_read},
        "secrets_over_max_age": {
            "max_age": _report_age(criteria),
            "total": len(old),
            "items": old,
        },
    }
    results = [
        _chain_criterion(criteria, chain),
        _limit_criterion(
            "max_denied",
            "denied attempts",
            denied_total,
            criteria.max_denied,
        ),
        _limit_criterion(
            "max_production_reads",
            f"reads in production environments ({', '.join(criteria.production_envs) or 'none'})",
            prod_total,
            criteria.max_production_reads,
        ),
        _never_read_criterion(criteria, never_read, never_read_total, not_inventoried),
        _age_criterion(criteria, old, not_inventoried),
    ]
    report["criteria"] = results
    report["passed"] = not any(c["passed"] is False for c in results)
    return report


def _report_age(criteria: Criteria) -> str | None:
    age = criteria.max_secret_age
    return format_duration(age) if age is not None else None


def _bases(names: list[str]) -> list[str]:
    """Secret names without their ``#field``, each once."""
    return list(dict.fromkeys(name.partition("#")[0] for name in names))


def _was_read(stats: _SecretStats | None) -> bool:
    return stats is not None and stats.reads > 0


def _count_current(items: Sequence[SecretSummary]) -> int:
    return sum(1 for s in items if not s.deleted)


def _item(
    event: Mapping[str, Any],
    who: str,
    action: str,
    env: str | None,
    names: list[str],
    *,
    reason: bool,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "time": event.get("time"),
        "seq": event.get("seq"),
        "actor": who,
        "action": action,
        "env": env,
        "names": names,
    }
    if reason:
        item["reason"] = str(event.get("reason", ""))
    return item


def _chain_summary(chain: Mapping[str, Any] | None) -> dict[str, Any]:
    if chain is None:
        return {"checked": False, "ok": None, "events": None, "problem": None}
    problem = chain.get("problem")
    return {
        "checked": True,
        "ok": bool(chain.get("ok")),
        "events": chain.get("events"),
        "problem": dict(problem) if isinstance(problem, Mapping) else None,
    }


def _criterion(id_: str, description: str, passed: bool | None, detail: str) -> dict[str, Any]:
    return {"id": id_, "description": description, "passed": passed, "detail": detail}


def _chain_criterion(criteria: Criteria, chain: Mapping[str, Any] | None) -> dict[str, Any]:
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
        return _criterion(
            "chain_valid", description, None, f"not required (require_chain_valid: false); {status}"
        )
    if chain is None:
        return _criterion("chain_valid", description, None, status)
    return _criterion("chain_valid", description, bool(chain.get("ok")), status)


def _limit_criterion(id_: str, what: str, count: int, limit: int | None) -> dict[str, Any]:
    if limit is None:
        description = f"{what[0].upper()}{what[1:]}, reported only"
        return _criterion(id_, description, None, f"{what}: {count}; no limit set ({id_}: null)")
    description = f"At most {limit} {what}"
    return _criterion(id_, description, count <= limit, f"{what}: {count} (at most {limit})")


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _never_read_criterion(
    criteria: Criteria, never_read: dict[str, list[str]], total: int, missing: list[str]
) -> dict[str, Any]:
    description = "Every current secret was read in the period"
    names = [f"{env}/{name}" for env, items in never_read.items() for name in items]
    found = f"secrets never read: {total}" + (f" ({_some(names)})" if names else "")
    if missing:
        found += f"; not inventoried: {', '.join(missing)}"
    if criteria.allow_never_read:
        return _criterion(
            "never_read", description, None, f"not required (allow_never_read: true); {found}"
        )
    if total:
        return _criterion("never_read", description, False, found)
    if missing:
        return _criterion("never_read", description, None, f"could not check all: {found}")
    return _criterion("never_read", description, True, found)


def _age_criterion(
    criteria: Criteria, old: list[dict[str, Any]], missing: list[str]
) -> dict[str, Any]:
    age = criteria.max_secret_age
    if age is None:
        description = "Age of the current secrets (no limit)"
        return _criterion(
            "max_secret_age", description, None, "no limit set (max_secret_age: null)"
        )
    description = f"No current secret is older than {format_duration(age)}"
    names = [f"{item['env']}/{item['name']}" for item in old]
    found = f"secrets older than {format_duration(age)}: {len(old)}"
    found += f" ({_some(names)})" if names else ""
    if missing:
        found += f"; not inventoried: {', '.join(missing)}"
    if old:
        return _criterion("max_secret_age", description, False, found)
    if missing:
        return _criterion("max_secret_age", description, None, f"could not check all: {found}")
    return _criterion("max_secret_age", description, True, found)


# --- rendering -------------------------------------------------------------


def render_report(report: Mapping[str, Any], fmt: str) -> str:
    """``report`` as ``fmt`` (one of FORMATS); the text ends with a newline."""
    if fmt == "json":
        import json

        return json.dumps(report, sort_keys=True, indent=2) + "\n"
    if fmt == "csv":
        return _render_csv(report)
    if fmt == "markdown":
        return _render_markdown(report)
    if fmt == "html":
        return _render_html(report)
    raise UsageError(f"unknown report format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")


def result_word(passed: bool | None) -> str:
    return "N/A" if passed is None else ("PASS" if passed else "FAIL")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


class _Section(NamedTuple):
    """A heading, lines of text and a table (plain text: the renderer escapes)."""

    title: str
    notes: list[str]
    columns: list[str]
    rows: list[list[str]]


def _sections(report: Mapping[str, Any]) -> list[_Section]:
    period, totals = report["period"], report["totals"]
    settings, chain = report["settings"], report["chain"]
    envs = report["environments"]
    denied, prod = report["denied"], report["production_reads"]
    never, old = report["never_read"], report["secrets_over_max_age"]
    out = [
        _Section(
            "Criteria",
            [f"Overall: {result_word(report['passed'])}"],
            ["Result", "Criterion", "Detail"],
            [
                [result_word(c["passed"]), f"{c['description']} ({c['id']})", c["detail"]]
                for c in report["criteria"]
            ],
        ),
        _Section(
            "Period and totals",
            [],
            ["Metric", "Value"],
            [
                ["Since", _text(period["since"])],
                ["Until", _text(period["until"])],
                ["First event", _text(period["first_event"])],
                ["Last event", _text(period["last_event"])],
                ["Generated at", _text(report["generated_at"])],
                ["Criteria file", _text(settings["file"]) if settings["file"] else "(defaults)"],
                ["Events", str(totals["events"])],
                ["Accesses (events without 'started')", str(totals["accesses"])],
                ["Late events", str(totals["late"])],
                *[
                    [f"Outcome {outcome}", str(n)]
                    for outcome, n in sorted(totals["by_outcome"].items())
                ],
                *[
                    [f"Action {action}", str(n)]
                    for action, n in sorted(totals["by_action"].items())
                ],
            ],
        ),
        _Section(
            "Audit chain",
            [
                "Not checked."
                if not chain["checked"]
                else (
                    f"Verifies ({_text(chain['events'])} events)."
                    if chain["ok"]
                    else "Broken: " + _problem_text(chain["problem"])
                )
            ],
            [],
            [],
        ),
        _Section(
            "Environments",
            [f"Not inventoried: {', '.join(envs['not_inventoried'])}"]
            if envs["not_inventoried"]
            else [],
            ["Environment", "Inventoried", "Current secrets", "Never read", "Over max age"],
            [
                [
                    env,
                    "yes" if env in envs["inventoried"] else "no",
                    _text(envs["inventoried"].get(env)),
                    str(len(never["by_env"].get(env, []))) if env in envs["inventoried"] else "-",
                    str(sum(1 for item in old["items"] if item["env"] == env))
                    if env in envs["inventoried"]
                    else "-",
                ]
                for env in sorted({*envs["inventoried"], *envs["not_inventoried"]})
            ],
        ),
        _Section(
            "Denied attempts",
            [_shown(denied)],
            ["Time", "Seq", "Actor", "Action", "Environment", "Secrets", "Reason"],
            [[*_event_cells(i), _text(i["reason"] or None)] for i in denied["items"]],
        ),
        _Section(
            "Production reads",
            [
                f"Production environments: {_text(prod['envs'])}. {_shown(prod)} "
                f"Secrets read: {prod['secret_reads']}."
            ],
            ["Time", "Seq", "Actor", "Action", "Environment", "Secrets"],
            [_event_cells(i) for i in prod["items"]],
        ),
        _Section(
            "Access per secret",
            [],
            ["Secret", "Reads", "Writes", "Denied", "Last read", "Readers"],
            [
                [
                    key,
                    str(s["reads"]),
                    str(s["writes"]),
                    str(s["denied"]),
                    _text(s["last_read"]),
                    f"{s['distinct_readers']}"
                    + (f" ({_some(s['readers'], 3)})" if s["readers"] else ""),
                ]
                for key, s in sorted(report["secrets"].items())
            ],
        ),
        _Section(
            "Actors",
            [],
            [
                "Actor",
                "Events",
                "Reads",
                "Secrets read",
                "Writes",
                "Denied",
                "Failed",
                "Not found",
                "Environments",
            ],
            [
                [
                    who,
                    *(str(a[k]) for k in _ACTOR_COUNTS),
                    _text(a["envs"]),
                ]
                for who, a in sorted(report["actors"].items())
            ],
        ),
        _Section(
            "Secrets never read",
            [f"{never['total']} current secrets were not read in the period."],
            ["Environment", "Secret"],
            [[env, name] for env, names in sorted(never["by_env"].items()) for name in names],
        ),
        _Section(
            "Secrets older than the maximum age",
            [
                f"Maximum age: {old['max_age']}; {old['total']} secrets older."
                if old["max_age"]
                else "No maximum age set."
            ],
            ["Environment", "Secret", "Version", "Updated at", "Age (days)"],
            [
                [i["env"], i["name"], str(i["version"]), i["updated_at"], str(i["age_days"])]
                for i in old["items"]
            ],
        ),
    ]
    return out


def _event_cells(item: Mapping[str, Any]) -> list[str]:
    """Time, seq, actor, action, environment, secrets: a listed event's first columns."""
    return [
        _text(item["time"]),
        _text(item["seq"]),
        item["actor"],
        item["action"],
        _text(item["env"]),
        _text(item["names"]),
    ]


def _problem_text(problem: Mapping[str, Any] | None) -> str:
    if not problem:
        return "no detail."
    return f"event {problem.get('seq')}: {problem.get('kind')}: {problem.get('detail')}"


def _shown(part: Mapping[str, Any]) -> str:
    if part["shown"] < part["total"]:
        return f"Total: {part['total']} (the first {part['shown']} are listed)."
    return f"Total: {part['total']}."


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]<>|"} | {"\n": " ", "\r": " ", "\t": " "})


def _md(value: str) -> str:
    """Text safe in a markdown paragraph or table cell (no HTML, no cell breaks)."""
    return value.translate(_MD_SPECIAL)


def _render_markdown(report: Mapping[str, Any]) -> str:
    lines = ["# bsecrets audit report", ""]
    lines += [f"**Result: {result_word(report['passed'])}**", ""]
    for section in _sections(report):
        lines += [f"## {section.title}", ""]
        notes = section.notes[1:] if section.title == "Criteria" else section.notes
        for note in notes:
            lines += [_md(note), ""]
        if section.columns and section.rows:
            lines.append("| " + " | ".join(section.columns) + " |")
            lines.append("|" + "---|" * len(section.columns))
            lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in section.rows]
            lines.append("")
        elif section.columns:
            lines += ["None.", ""]
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.PASS { color: #fff; background: #2e7d32; font-weight: bold; }
.FAIL { color: #fff; background: #c62828; font-weight: bold; }
.NA { color: #fff; background: #757575; font-weight: bold; }
"""


def _render_html(report: Mapping[str, Any]) -> str:
    from html import escape

    def result_cell(word: str) -> str:
        css = {"PASS": "PASS", "FAIL": "FAIL"}.get(word, "NA")
        return f'<td class="{css}">{escape(word)}</td>'

    overall = result_word(report["passed"])
    title = f"bsecrets audit report {report['generated_at']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>bsecrets audit report</h1>",
        f'<p>Result: <span class="{"NA" if overall == "N/A" else overall}">'
        f"{escape(overall)}</span></p>",
    ]
    for section in _sections(report):
        parts.append(f"<h2>{escape(section.title)}</h2>")
        notes = section.notes[1:] if section.title == "Criteria" else section.notes
        parts += [f"<p>{escape(note)}</p>" for note in notes]
        if section.columns and section.rows:
            parts.append("<table>")
            head = "".join(f"<th>{escape(c)}</th>" for c in section.columns)
            parts.append(f"<thead><tr>{head}</tr></thead>")
            parts.append("<tbody>")
            for row in section.rows:
                cells = [
                    result_cell(cell)
                    if section.title == "Criteria" and index == 0
                    else f"<td>{escape(cell)}</td>"
                    for index, cell in enumerate(row)
                ]
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody>")
            parts.append("</table>")
        elif section.columns:
            parts.append("<p>None.</p>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _csv_value(value: Any) -> str:
    """A cell: JSON-ish scalars as text; text that a spreadsheet would run as a
    formula (= + - @ tab CR first) gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = " ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    if text and text[0] in "=+-@\t\r":
        text = "'" + text
    return text


def csv_rows(report: Mapping[str, Any]) -> Iterable[tuple[str, str, str, Any]]:
    """The CSV form: (section, key, metric, value) rows (see docs/audit-report.md)."""
    yield ("summary", "", "passed", report["passed"])
    yield ("summary", "", "version", report["version"])
    yield ("summary", "", "generated_at", report["generated_at"])
    for metric, value in report["period"].items():
        yield ("period", "", metric, value)
    for metric, value in report["settings"].items():
        yield ("setting", "", metric, value)
    for c in report["criteria"]:
        yield ("criteria", c["id"], "result", result_word(c["passed"]))
        yield ("criteria", c["id"], "description", c["description"])
        yield ("criteria", c["id"], "detail", c["detail"])
    chain = report["chain"]
    yield ("chain", "", "checked", chain["checked"])
    yield ("chain", "", "ok", chain["ok"])
    yield ("chain", "", "events", chain["events"])
    problem = chain["problem"] or {}
    for metric in ("seq", "kind", "detail"):
        yield ("chain", "", f"problem_{metric}", problem.get(metric))
    totals = report["totals"]
    for metric in ("events", "accesses", "late"):
        yield ("totals", "", metric, totals[metric])
    for outcome, n in sorted(totals["by_outcome"].items()):
        yield ("outcome", outcome, "events", n)
    for action, n in sorted(totals["by_action"].items()):
        yield ("action", action, "events", n)
    envs = report["environments"]
    for env, n in sorted(envs["inventoried"].items()):
        yield ("environment", env, "inventoried", True)
        yield ("environment", env, "current_secrets", n)
    for env in envs["not_inventoried"]:
        yield ("environment", env, "inventoried", False)
    for key, s in sorted(report["secrets"].items()):
        for metric in ("reads", "writes", "denied", "last_read", "distinct_readers", "readers"):
            yield ("secret", key, metric, s[metric])
    for who, a in sorted(report["actors"].items()):
        for metric in (*_ACTOR_COUNTS, "envs"):
            yield ("actor", who, metric, a[metric])
    for part, section, fields in (
        ("denied", "denied", ("time", "actor", "action", "env", "names", "reason")),
        ("production_reads", "production_read", ("time", "actor", "action", "env", "names")),
    ):
        data = report[part]
        yield (section, "", "total", data["total"])
        yield (section, "", "shown", data["shown"])
        if part == "production_reads":
            yield (section, "", "secret_reads", data["secret_reads"])
        for item in data["items"]:
            for metric in fields:
                yield (section, _text(item["seq"]), metric, item[metric])
    never = report["never_read"]
    yield ("never_read", "", "total", never["total"])
    for env, names in sorted(never["by_env"].items()):
        for name in names:
            yield ("never_read", f"{env}/{name}", "never_read", True)
    old = report["secrets_over_max_age"]
    yield ("over_max_age", "", "max_age", old["max_age"])
    yield ("over_max_age", "", "total", old["total"])
    for item in old["items"]:
        key = f"{item['env']}/{item['name']}"
        for metric in ("version", "updated_at", "age_days"):
            yield ("over_max_age", key, metric, item[metric])


def _render_csv(report: Mapping[str, Any]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for section, key, metric, value in csv_rows(report):
        writer.writerow((section, _csv_value(key), metric, _csv_value(value)))
    return out.getvalue()
